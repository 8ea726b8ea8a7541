// Real servers on loopback for the transport tests: Debian's sshd on a free port (key authentication only, counting
// the connections that reached it, so a test can tell one attempt from a retry loop); a private CA and a certificate
// for 127.0.0.1 for git-http-server.ts's TLS; and a recording `git` that counts what Ferry ran.
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnProcess, type Spawned } from './processes';

export const SSHD = '/usr/sbin/sshd';

export interface KeyPair {
  /** The private key file's text (OpenSSH format). */
  privateKey: string;
  /** The `ssh-ed25519 AAAA… comment` line. */
  publicKey: string;
}

/** A new ed25519 key pair, made by ssh-keygen in `dir`. */
export function generateKeyPair(dir: string, name: string): KeyPair {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file], { stdio: 'pipe' });
  return { privateKey: readFileSync(file, 'utf8'), publicKey: readFileSync(`${file}.pub`, 'utf8').trim() };
}

export interface Sshd {
  port: number;
  /** The user git logs in as (the one running the tests). */
  user: string;
  /** `[127.0.0.1]:<port> ssh-ed25519 AAAA…`: the line `ssh-keyscan -p <port> 127.0.0.1` prints. */
  knownHostsLine: string;
  /** Lets the holder of `publicKey` in. */
  authorize(publicKey: string): void;
  /** `ssh://<user>@127.0.0.1:<port><path>` for a repository at an absolute path on this machine. */
  repoUrl(path: string): string;
  /** How many ssh connections reached the server so far. */
  connections(): number;
  log(): string;
  stop(): Promise<void>;
}

/** Starts Debian's sshd (`-D`, in the foreground, logging to stderr) on a free loopback port. */
export async function startSshd(dir: string): Promise<Sshd> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: install Debian's openssh-server (.ci/run does)`);
  mkdirSync(dir, { recursive: true });
  // sshd refuses to start without its privilege separation directory (the package makes it at boot).
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'host_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ferry-test-host', '-f', hostKey], {
    stdio: 'pipe',
  });
  const authorizedKeys = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, '', { mode: 0o600 });
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      // The test directory is under a world-writable /tmp: sshd's ownership checks would refuse it.
      'StrictModes no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      `PidFile ${join(dir, 'sshd.pid')}`,
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  const sshd: Spawned = spawnProcess(SSHD, ['-D', '-e', '-f', config]);
  await sshd.waitFor(/Server listening on 127\.0\.0\.1 port \d+/, 30_000);
  const user = userInfo().username;
  const hostPublic = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
  return {
    port,
    user,
    knownHostsLine: `[127.0.0.1]:${port} ${hostPublic}`,
    authorize: (publicKey) => appendFileSync(authorizedKeys, `${publicKey}\n`),
    repoUrl: (path) => `ssh://${user}@127.0.0.1:${port}${path}`,
    connections: () => (sshd.output().match(/^Connection from 127\.0\.0\.1 port \d+/gm) ?? []).length,
    log: () => sshd.output(),
    async stop() {
      if (sshd.child.exitCode === null) sshd.child.kill('SIGTERM');
      await sshd.exited;
    },
  };
}

export interface PrivateCa {
  /** The CA certificate, PEM. */
  caPem: string;
  caFile: string;
  /** A certificate for 127.0.0.1 signed by the CA, and its key. */
  cert: string;
  key: string;
}

/** A CA and a server certificate for IP 127.0.0.1 (openssl), valid for two days. */
export function createPrivateCa(dir: string, name = 'Ferry Test CA'): PrivateCa {
  mkdirSync(dir, { recursive: true });
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=${name}`);
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '2',
    '-extfile',
    'server.ext',
  );
  return {
    caPem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    caFile: join(dir, 'ca.pem'),
    cert: readFileSync(join(dir, 'server.pem'), 'utf8'),
    key: readFileSync(join(dir, 'server.key'), 'utf8'),
  };
}

export interface GitCalls {
  /** Directory to put first on PATH. */
  bin: string;
  /** The argument lists of every git run so far, one string each. */
  calls(): string[];
  /** Those that talk to a remote (fetch, push, ls-remote). */
  networkCalls(): string[];
  reset(): void;
}

/** A `git` on PATH that records its arguments and runs the real git: counts what Ferry ran. */
export function recordGitCalls(dir: string): GitCalls {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const log = join(dir, 'git-calls.log');
  const real = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
  writeFileSync(join(bin, 'git'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec '${real}' "$@"\n`, { mode: 0o755 });
  const calls = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
  return {
    bin,
    calls,
    networkCalls: () => calls().filter((c) => /(^| )(fetch|push|ls-remote)( |$)/.test(c)),
    reset: () => writeFileSync(log, ''),
  };
}
