// Real git servers on loopback for the transport tests: Debian's sshd on a free port (key authentication only),
// and `git http-backend` behind Node's HTTPS server with a certificate from a private CA and HTTP basic auth.
// Each counts what reached it (ssh connections, HTTP requests), so a test can tell one attempt from a retry loop.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, appendFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
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

export interface HttpsGitServer {
  /** `https://127.0.0.1:<port>/<name>` for a bare repository `<projectRoot>/<name>`. */
  repoUrl(name: string): string;
  /** The `Authorization` header of every request so far (undefined where none was sent). */
  requests(): (string | undefined)[];
  close(): Promise<void>;
}

/**
 * `git http-backend` (smart HTTP, push enabled) behind Node's HTTPS server with `ca`'s certificate; a request
 * without one of `accepted` (`user:password` pairs) as HTTP basic auth gets 401.
 */
export async function startHttpsGitServer(options: {
  projectRoot: string;
  ca: PrivateCa;
  accepted: string[];
}): Promise<HttpsGitServer> {
  const allowed = new Set(options.accepted.map((pair) => `Basic ${Buffer.from(pair).toString('base64')}`));
  const seen: (string | undefined)[] = [];
  const server: Server = createServer({ cert: options.ca.cert, key: options.ca.key }, (req, res) => {
    seen.push(req.headers.authorization);
    if (!req.headers.authorization || !allowed.has(req.headers.authorization)) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="gitops"' }).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'https://localhost');
    const header = (name: string) => String(req.headers[name] ?? '');
    const user = Buffer.from(req.headers.authorization.slice('Basic '.length), 'base64').toString().split(':')[0];
    const backend = spawn('git', ['http-backend'], {
      env: {
        ...process.env,
        GIT_PROJECT_ROOT: options.projectRoot,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: header('content-type'),
        ...(req.headers['content-length'] ? { CONTENT_LENGTH: header('content-length') } : {}),
        HTTP_CONTENT_ENCODING: header('content-encoding'),
        GIT_PROTOCOL: header('git-protocol'),
        // Set only for an authenticated user: http-backend then allows receive-pack (push).
        REMOTE_USER: user ?? 'ferry',
        REMOTE_ADDR: '127.0.0.1',
      },
    });
    req.pipe(backend.stdin);
    const out: Buffer[] = [];
    backend.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    backend.on('close', () => {
      const response = Buffer.concat(out);
      const end = response.indexOf('\r\n\r\n');
      const headers: Record<string, string> = {};
      let status = 200;
      for (const line of response.subarray(0, end).toString('latin1').split('\r\n')) {
        const [name = '', ...value] = line.split(':');
        if (name.toLowerCase() === 'status') status = Number.parseInt(value.join(':').trim(), 10);
        else if (name) headers[name] = value.join(':').trim();
      }
      res.writeHead(status, headers).end(response.subarray(end + 4));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    repoUrl: (name) => `https://127.0.0.1:${port}/${name}`,
    requests: () => [...seen],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
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
