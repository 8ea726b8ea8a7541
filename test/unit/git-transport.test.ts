// What git is given to reach a remote with a named credential (git-transport.ts), and how credentials with the new
// fields resolve and redact. The real servers (Gitea over https, sshd) are in test/activities/git-transport.test.ts.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { DEFAULT_SSH_COMMAND, transportFor, transportPrivateDir, type Transport } from '../../activities/git-transport';
import { createSecretResolver } from '../../activities/secrets';

const SSH_URL = 'ssh://git@git.example.com:2222/org/gitops.git';
const HTTPS_URL = 'https://git.example.com/org/gitops.git';
const KNOWN_HOSTS =
  '[git.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP9uirIBtLqBZLhkZ1jQEZN9jtFPALONZ9shKzBYirIx';
const CA = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2hlY2tlZA==\n-----END CERTIFICATE-----';

/** A real private key in OpenSSH's PEM form (PKCS#8 is one ssh reads), trimmed as secrets are. */
function privateKey(): string {
  const { privateKey: pem } = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return pem.trim();
}

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ferry-transport-test-'));
  dirs.push(d);
  return d;
}

function transport(url: string, env: NodeJS.ProcessEnv, options: { dir?: string; knownHostsFile?: string } = {}) {
  const secrets = createSecretResolver({
    env,
    ...(options.dir ? { dir: options.dir } : {}),
    ...(options.knownHostsFile ? { sshKnownHostsFile: options.knownHostsFile } : {}),
  });
  return { secrets, transport: transportFor({ url, displayUrl: url, credentials: 'gitops', secrets }) };
}

function refused(run: () => unknown, type: string, patterns: RegExp[]): ApplicationFailure {
  let caught: unknown;
  try {
    run();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(caught)}`);
  assert.equal(caught.type, type, caught.message);
  assert.equal(caught.nonRetryable, true);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught;
}

/** The GIT_SSH_COMMAND's words as sh splits them (it runs the command through sh). */
function shWords(command: string): string[] {
  const out = execFileSync('sh', ['-c', `for w in ${command}; do printf '%s\\0' "$w"; done`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

function option(words: string[], name: string): string | undefined {
  const i = words.findIndex((w, j) => w.startsWith(`${name}=`) && words[j - 1] === '-o');
  return i >= 0 ? words[i]!.slice(name.length + 1) : undefined;
}

describe('credentials with ssh and CA fields', () => {
  test('ssh_key, known_hosts and ca are read from the environment and from the secrets directory', () => {
    const key = privateKey();
    const fromEnv = createSecretResolver({
      env: {
        FERRY_SECRET_GITOPS_SSH_KEY: key,
        FERRY_SECRET_GITOPS_KNOWN_HOSTS: KNOWN_HOSTS,
        FERRY_SECRET_GITOPS_CA: CA,
      },
    }).resolve('gitops');
    assert.deepEqual(fromEnv, { sshKey: key, knownHosts: KNOWN_HOSTS, ca: CA });

    const dir = tempDir();
    mkdirSync(join(dir, 'gitops'));
    writeFileSync(join(dir, 'gitops', 'ssh_key'), `${key}\n`);
    writeFileSync(join(dir, 'gitops', 'known_hosts'), `${KNOWN_HOSTS}\n`);
    writeFileSync(join(dir, 'gitops', 'ca.pem'), `${CA}\n`);
    assert.deepEqual(createSecretResolver({ env: {}, dir }).resolve('gitops'), fromEnv);
  });

  test('a missing credential names every variable and file it can be set in', () => {
    refused(() => createSecretResolver({ env: {}, dir: '/run/secrets' }).resolve('gitops'), 'CredentialNotFound', [
      /FERRY_SECRET_GITOPS_\{TOKEN,USERNAME,PASSWORD,SSH_KEY,KNOWN_HOSTS,CA\}/,
      /\/run\/secrets\/gitops/,
    ]);
  });

  test('the whole key, every line of it and its base64 are redacted; known_hosts and the CA are not secret', () => {
    const key = privateKey();
    const secrets = createSecretResolver({
      env: {
        FERRY_SECRET_GITOPS_SSH_KEY: key,
        FERRY_SECRET_GITOPS_KNOWN_HOSTS: KNOWN_HOSTS,
        FERRY_SECRET_GITOPS_CA: CA,
      },
    });
    secrets.resolve('gitops');
    const body = key.split('\n').filter((l) => !l.startsWith('-----'));
    assert.ok(body.length >= 1);
    const echoed = `whole: ${key}\nfragment: ${body.at(-1)}\nbase64: ${Buffer.from(key).toString('base64')}`;
    const redacted = secrets.redact(echoed);
    for (const line of body) assert.ok(!redacted.includes(line), `key line redacted: ${redacted}`);
    assert.ok(!redacted.includes(Buffer.from(key).toString('base64')));
    assert.match(redacted, /^whole: \*\*\*\nfragment: \*\*\*\nbase64: \*\*\*$/);
    assert.equal(secrets.redact(`${KNOWN_HOSTS} ${CA}`), `${KNOWN_HOSTS} ${CA}`);
  });

  test('a token and a password are redacted in their base64 form too', () => {
    const secrets = createSecretResolver({
      env: { FERRY_SECRET_GITOPS_PASSWORD: 'pa55-w0rd', FERRY_SECRET_GITOPS_USERNAME: 'ferry-bot' },
    });
    secrets.resolve('gitops');
    const text = `${Buffer.from('pa55-w0rd').toString('base64')} ${Buffer.from('ferry-bot:pa55-w0rd').toString('base64')}`;
    assert.equal(secrets.redact(text), '*** ***');
  });
});

describe('transport over ssh://', () => {
  test('git runs ssh with the key alone, checked strictly against the known_hosts alone', () => {
    const key = privateKey();
    const { transport: t } = transport(SSH_URL, {
      FERRY_SECRET_GITOPS_SSH_KEY: key,
      FERRY_SECRET_GITOPS_KNOWN_HOSTS: KNOWN_HOSTS,
    });
    assert.deepEqual(t.config, []);
    const words = shWords(t.env.GIT_SSH_COMMAND!);
    assert.equal(words[0], 'ssh');
    assert.deepEqual(words.slice(1, 3), ['-F', '/dev/null'], 'no ssh_config');
    const keyFile = words[words.indexOf('-i') + 1]!;
    assert.equal(readFileSync(keyFile, 'utf8'), `${key}\n`, 'the key, with the final newline ssh needs');
    const knownHostsFile = option(words, 'UserKnownHostsFile')!;
    assert.equal(readFileSync(knownHostsFile, 'utf8'), `${KNOWN_HOSTS}\n`);
    assert.equal(option(words, 'IdentitiesOnly'), 'yes');
    assert.equal(option(words, 'IdentityAgent'), 'none');
    assert.equal(option(words, 'GlobalKnownHostsFile'), '/dev/null');
    assert.equal(option(words, 'StrictHostKeyChecking'), 'yes');
    assert.equal(option(words, 'UpdateHostKeys'), 'no');
    assert.equal(option(words, 'BatchMode'), 'yes');
    for (const file of [keyFile, knownHostsFile]) {
      assert.equal(statSync(file).mode & 0o777, 0o600, `${file} is 0600`);
      assert.ok(!file.includes(key.slice(40, 60)));
    }
    assert.equal(statSync(transportPrivateDir()!).mode & 0o777, 0o700, 'the directory is private');
    // ssh itself parses the command: every option is one this OpenSSH knows, with a value it accepts.
    const parsed = spawnSync('sh', ['-c', `${t.env.GIT_SSH_COMMAND} -G git.example.com`], { encoding: 'utf8' });
    assert.equal(parsed.status, 0, parsed.stderr);
    assert.match(parsed.stdout, /^stricthostkeychecking true$/m);
    assert.match(parsed.stdout, new RegExp(`^userknownhostsfile ${knownHostsFile}$`, 'm'));
    assert.match(parsed.stdout, /^globalknownhostsfile \/dev\/null$/m);
    assert.match(parsed.stdout, /^identityagent none$/m);
    assert.match(parsed.stdout, /^batchmode yes$/m);
  });

  test('the same key is one file; a rotated key is a new one', () => {
    const env = { FERRY_SECRET_GITOPS_SSH_KEY: privateKey(), FERRY_SECRET_GITOPS_KNOWN_HOSTS: KNOWN_HOSTS };
    const keyOf = (t: Transport) =>
      shWords(t.env.GIT_SSH_COMMAND!).at(shWords(t.env.GIT_SSH_COMMAND!).indexOf('-i') + 1);
    const first = keyOf(transport(SSH_URL, env).transport);
    assert.equal(keyOf(transport(SSH_URL, env).transport), first);
    assert.notEqual(keyOf(transport(SSH_URL, { ...env, FERRY_SECRET_GITOPS_SSH_KEY: privateKey() }).transport), first);
    rmSync(first!);
    assert.equal(keyOf(transport(SSH_URL, env).transport), first, 'written again when a temp cleaner removed it');
    assert.ok(existsSync(first!));
  });

  test('without known_hosts in the credential or on the worker, it is refused before connecting (no blind trust)', () => {
    const env = { FERRY_SECRET_GITOPS_SSH_KEY: privateKey() };
    refused(() => transport(SSH_URL, env, { dir: '/run/secrets' }), 'GitHostKeyUnknown', [
      /^ssh:\/\/git@git\.example\.com:2222\/org\/gitops\.git: credential "gitops" has no known_hosts/,
      /the worker has no FERRY_SSH_KNOWN_HOSTS/,
      /set FERRY_SECRET_GITOPS_KNOWN_HOSTS or \/run\/secrets\/gitops\/known_hosts/,
      /ssh-keyscan -p 2222 git\.example\.com/,
    ]);
    const onlyComments = join(tempDir(), 'known_hosts');
    writeFileSync(onlyComments, '# nothing yet\n\n');
    refused(() => transport(SSH_URL, env, { knownHostsFile: onlyComments }), 'GitHostKeyUnknown', [
      new RegExp(`FERRY_SSH_KNOWN_HOSTS \\(${onlyComments}\\) holds no host line`),
    ]);
    refused(() => transport(SSH_URL, env, { knownHostsFile: join(tempDir(), 'absent') }), 'CredentialNotFound', [
      /FERRY_SSH_KNOWN_HOSTS=.*absent cannot be read on the worker: ENOENT/,
    ]);
  });

  test("the worker's FERRY_SSH_KNOWN_HOSTS is trusted beside the credential's own lines", () => {
    const file = join(tempDir(), 'known_hosts');
    const workerLine =
      'git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBzUj7U7tg9m0nOL7jN9v0d2n3dOmS0nTn1q7R0sQf5a';
    writeFileSync(file, `${workerLine}\n`);
    const key = privateKey();
    const onlyWorker = transport(SSH_URL, { FERRY_SECRET_GITOPS_SSH_KEY: key, FERRY_SSH_KNOWN_HOSTS: file }).transport;
    assert.equal(
      readFileSync(option(shWords(onlyWorker.env.GIT_SSH_COMMAND!), 'UserKnownHostsFile')!, 'utf8'),
      `${workerLine}\n`,
    );
    const both = transport(
      SSH_URL,
      { FERRY_SECRET_GITOPS_SSH_KEY: key, FERRY_SECRET_GITOPS_KNOWN_HOSTS: KNOWN_HOSTS },
      { knownHostsFile: file },
    ).transport;
    const lines = readFileSync(option(shWords(both.env.GIT_SSH_COMMAND!), 'UserKnownHostsFile')!, 'utf8')
      .trim()
      .split('\n');
    assert.deepEqual(lines, [KNOWN_HOSTS, workerLine]);
  });

  test('a token or password for ssh:// is refused as before; a credential with nothing for ssh names ssh_key', () => {
    refused(() => transport(SSH_URL, { FERRY_SECRET_GITOPS_TOKEN: 'ghp_token-value' }), 'InvalidArgument', [
      /credential "gitops" holds a token or password, which git cannot use over ssh:\/\//,
      /give the credential an ssh_key \(FERRY_SECRET_GITOPS_SSH_KEY\)/,
    ]);
    refused(() => transport(SSH_URL, { FERRY_SECRET_GITOPS_KNOWN_HOSTS: KNOWN_HOSTS }), 'CredentialNotFound', [
      /credential "gitops" for ssh:\/\/.* has no ssh_key: set FERRY_SECRET_GITOPS_SSH_KEY/,
    ]);
  });

  test("without a credential, git gets nothing of Ferry's and ssh never adds a host it does not know", () => {
    const secrets = createSecretResolver({ env: {} });
    assert.deepEqual(transportFor({ url: SSH_URL, displayUrl: SSH_URL, credentials: undefined, secrets }), {
      config: [],
      env: {},
    });
    // The default GIT_SSH_COMMAND (the worker's own keys and known_hosts), as ssh reads it.
    const parsed = spawnSync(
      'sh',
      ['-c', `${DEFAULT_SSH_COMMAND} -o StrictHostKeyChecking=accept-new -G git.example.com`],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(parsed.status, 0, parsed.stderr);
    assert.match(parsed.stdout, /^stricthostkeychecking true$/m, 'an accept-new after it (as in ssh_config) loses');
    assert.match(parsed.stdout, /^batchmode yes$/m);
  });
});

describe('transport over https://', () => {
  test('a token travels as a Basic header scoped to the URL, only to a verified server, and no stored credential is offered', () => {
    const { transport: t } = transport(HTTPS_URL, { FERRY_SECRET_GITOPS_TOKEN: 'ghp_token-value' });
    assert.deepEqual(t.config, [
      ['credential.helper', ''],
      [`http.${HTTPS_URL}.sslVerify`, 'true'],
      [
        `http.${HTTPS_URL}.extraHeader`,
        `Authorization: Basic ${Buffer.from('x-access-token:ghp_token-value').toString('base64')}`,
      ],
    ]);
    // Present and undefined: the variable is removed from git's environment (spawn drops undefined values).
    assert.ok('GIT_SSL_NO_VERIFY' in t.env && t.env.GIT_SSL_NO_VERIFY === undefined);
    assert.ok(!('GIT_SSL_CAINFO' in t.env), "the worker's CA bundle stays without a ca of the credential's own");
  });

  test('a ca becomes sslCAInfo for that URL only, beside username and password; verification stays on', () => {
    const { transport: t } = transport(HTTPS_URL, {
      FERRY_SECRET_GITOPS_USERNAME: 'ferry-bot',
      FERRY_SECRET_GITOPS_PASSWORD: 'pa55-w0rd',
      FERRY_SECRET_GITOPS_CA: CA,
    });
    const config = new Map(t.config);
    assert.deepEqual(
      [...config.keys()],
      [
        'credential.helper',
        `http.${HTTPS_URL}.sslVerify`,
        `http.${HTTPS_URL}.extraHeader`,
        `http.${HTTPS_URL}.sslCAInfo`,
      ],
    );
    assert.equal(
      config.get(`http.${HTTPS_URL}.extraHeader`),
      `Authorization: Basic ${Buffer.from('ferry-bot:pa55-w0rd').toString('base64')}`,
    );
    assert.equal(readFileSync(config.get(`http.${HTTPS_URL}.sslCAInfo`)!, 'utf8'), `${CA}\n`);
    assert.equal(config.get(`http.${HTTPS_URL}.sslVerify`), 'true');
    // GIT_SSL_CAINFO in the worker's environment would outrank the credential's CA: it is removed.
    assert.ok('GIT_SSL_CAINFO' in t.env && t.env.GIT_SSL_CAINFO === undefined);
    // A ca alone (a public repository behind an internal CA) is enough.
    const caOnly = transport(HTTPS_URL, { FERRY_SECRET_GITOPS_CA: CA }).transport;
    assert.deepEqual(
      caOnly.config.map(([k]) => k),
      ['credential.helper', `http.${HTTPS_URL}.sslVerify`, `http.${HTTPS_URL}.sslCAInfo`],
    );
  });

  test('a credential with only an ssh_key for https:// is refused, naming the fields it lacks', () => {
    refused(() => transport(HTTPS_URL, { FERRY_SECRET_GITOPS_SSH_KEY: privateKey() }), 'CredentialNotFound', [
      /credential "gitops" for https:\/\/git\.example\.com\/org\/gitops\.git has neither a token nor a password/,
      /its ssh_key is only used for ssh:\/\/ URLs/,
      /FERRY_SECRET_GITOPS_TOKEN, or FERRY_SECRET_GITOPS_USERNAME and FERRY_SECRET_GITOPS_PASSWORD/,
    ]);
  });
});

describe('the private directory of key files', () => {
  const script = (body: string) => {
    const file = join(tempDir(), 'run.ts');
    const module = JSON.stringify(join(__dirname, '..', '..', 'activities', 'git-transport'));
    const secretsModule = JSON.stringify(join(__dirname, '..', '..', 'activities', 'secrets'));
    writeFileSync(
      file,
      [
        `import { transportFor, transportPrivateDir } from ${module};`,
        `import { createSecretResolver } from ${secretsModule};`,
        body,
        '',
      ].join('\n'),
    );
    return execFileSync(process.execPath, ['--import', 'tsx', file], {
      cwd: join(__dirname, '..', '..'),
      encoding: 'utf8',
      env: { ...process.env, TMPDIR: root },
    }).trim();
  };
  const root = tempDir();
  const make = `const secrets = createSecretResolver({ env: { FERRY_SECRET_G_SSH_KEY: 'k-e-y-text', FERRY_SECRET_G_KNOWN_HOSTS: 'h ssh-ed25519 AAAA' } });
transportFor({ url: 'ssh://h/r.git', displayUrl: 'ssh://h/r.git', credentials: 'g', secrets });
process.stdout.write(transportPrivateDir() ?? '');`;

  test('is removed when the worker exits', () => {
    const dir = script(make);
    assert.ok(dir.startsWith(join(root, 'ferry-transport-')), dir);
    assert.ok(!existsSync(dir), 'gone after exit');
  });

  test('a killed worker’s is removed by the next one; a live process’s is left alone', () => {
    const dead = spawnSync('true').pid;
    const deadDir = join(root, `ferry-transport-${dead}-AbCdEf`);
    const liveDir = join(root, `ferry-transport-${process.pid}-AbCdEf`);
    for (const d of [deadDir, liveDir]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'key'), 'secret');
    }
    script(make);
    assert.ok(!existsSync(deadDir), 'the dead worker’s keys are removed');
    assert.ok(existsSync(liveDir), 'a live worker’s are kept');
  });
});
