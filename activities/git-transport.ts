// How git reaches a remote with a named credential, and what its failures to get in mean. git.ts asks for a
// transport before every fetch, push and ls-remote and runs git with it; nothing here runs git.
//
// - https:// (and http://): a token, or a username and password, travel as an `http.<url>.extraHeader` Basic
//   header; a `ca` (PEM) becomes `http.<url>.sslCAInfo`. Both are scoped to the repository's URL, so neither reaches
//   another host, and certificate checks are never turned off. Credential helpers are reset, so the worker's own
//   stored passwords are never sent in the credential's place.
// - ssh://: an `ssh_key` and the host's known_hosts lines become files and a GIT_SSH_COMMAND that uses that key
//   alone (no agent, no other identity, no ssh_config) and checks the host strictly against those lines alone. No
//   known_hosts, no connection: Ferry never trusts a host key it is shown for the first time.
//
// All of it reaches git through its environment (GIT_CONFIG_COUNT/KEY/VALUE and GIT_SSH_COMMAND), never the remote
// URL, the workspace's config or process arguments. Key and known_hosts files live in a private directory of this
// process (0700, files 0600), named by a salted hash of their content so a credential rotated on disk gets a new
// file; the directory is removed when the process exits, and the next worker removes one a killed worker left.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { SSH_KNOWN_HOSTS_ENV, type Credential, type SecretResolver } from './secrets';

/** What git needs to reach one remote: configuration entries (scoped to its URL) and environment variables. */
export interface Transport {
  config: [key: string, value: string][];
  env: NodeJS.ProcessEnv;
}

export interface TransportRequest {
  /** The remote URL as the pipeline gives it (no userinfo but an ssh:// user). */
  url: string;
  /** The URL as it may appear in messages. */
  displayUrl: string;
  /** The credential's name (spec.repo.credentials), if any. */
  credentials: string | undefined;
  secrets: SecretResolver;
}

/**
 * How git reaches ssh:// remotes without a credential: the worker's own keys and known_hosts, never prompting and
 * never adding a host it does not know (StrictHostKeyChecking=yes outranks an `accept-new` in ssh_config).
 */
export const DEFAULT_SSH_COMMAND = 'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes';

/** A remote URL as it may appear in messages: without userinfo (an ssh:// user included), redacted. */
export function remoteDisplayUrl(url: string, secrets: SecretResolver): string {
  return secrets.redact(url.replace(/^([a-z]+:\/\/)[^/@]*@/, '$1'));
}

export function isSshUrl(url: string): boolean {
  return /^ssh:\/\//i.test(url);
}

/**
 * The transport for `request`; throws a non-retryable failure, before anything connects, when the credential
 * cannot be used for the URL's scheme (naming the credential and the fields it lacks, never a value).
 */
export function transportFor(request: TransportRequest): Transport {
  const { credentials: name, secrets } = request;
  if (!name) return { config: [], env: {} };
  const credential = secrets.resolve(name);
  return isSshUrl(request.url) ? sshTransport(request, name, credential) : httpsTransport(request, name, credential);
}

function httpsTransport(request: TransportRequest, name: string, credential: Credential): Transport {
  const { url, displayUrl, secrets } = request;
  const header = authorizationHeader(credential);
  if (!header && credential.ca === undefined) {
    const lacks = credential.sshKey !== undefined ? ' (its ssh_key is only used for ssh:// URLs)' : '';
    throw ApplicationFailure.nonRetryable(
      `credential "${name}" for ${displayUrl} has neither a token nor a password${lacks}: set ` +
        `${secrets.whereIs(name, 'token')}, or ${secrets.whereIs(name, 'username')} and ` +
        secrets.whereIs(name, 'password'),
      'CredentialNotFound',
    );
  }
  const config: Transport['config'] = [
    // An empty helper resets the list: only this credential is offered, never one the worker's git config stores.
    ['credential.helper', ''],
    // A secret goes only to a server whose certificate verifies, whatever the worker's git config says.
    [`http.${url}.sslVerify`, 'true'],
  ];
  // GIT_SSL_NO_VERIFY would outrank the configuration above, and GIT_SSL_CAINFO the credential's CA.
  const env: NodeJS.ProcessEnv = { GIT_SSL_NO_VERIFY: undefined };
  if (header) config.push([`http.${url}.extraHeader`, header]);
  if (credential.ca !== undefined) {
    config.push([`http.${url}.sslCAInfo`, privateFile(withNewline(credential.ca))]);
    env.GIT_SSL_CAINFO = undefined;
  }
  return { config, env };
}

function sshTransport(request: TransportRequest, name: string, credential: Credential): Transport {
  const { displayUrl, secrets } = request;
  if (credential.sshKey === undefined) {
    if (credential.token !== undefined || credential.password !== undefined) {
      throw ApplicationFailure.nonRetryable(
        `${displayUrl}: credential "${name}" holds a token or password, which git cannot use over ssh://; use an ` +
          `https:// URL, or give the credential an ssh_key (${secrets.whereIs(name, 'sshKey')})`,
        'InvalidArgument',
      );
    }
    throw ApplicationFailure.nonRetryable(
      `credential "${name}" for ${displayUrl} has no ssh_key: set ${secrets.whereIs(name, 'sshKey')}`,
      'CredentialNotFound',
    );
  }
  const worker = secrets.workerKnownHosts();
  const lines = [credential.knownHosts, worker?.text].filter((t): t is string => hasKnownHostsLines(t));
  if (lines.length === 0) {
    throw ApplicationFailure.nonRetryable(
      `${displayUrl}: credential "${name}" has no known_hosts and ` +
        (worker
          ? `${SSH_KNOWN_HOSTS_ENV} (${worker.path}) holds no host line`
          : `the worker has no ${SSH_KNOWN_HOSTS_ENV}`) +
        `, so the host's key cannot be checked and Ferry does not connect: set ${secrets.whereIs(name, 'knownHosts')} ` +
        `to the host's known_hosts line (${keyscanHint(request.url)}, compared with the fingerprint the host's ` +
        `operator gives you)`,
      'GitHostKeyUnknown',
    );
  }
  const key = privateFile(withNewline(credential.sshKey));
  const knownHosts = privateFile(withNewline(lines.join('\n')));
  const command = [
    'ssh',
    // No ssh_config: nothing there (another IdentityFile, a ProxyCommand, StrictHostKeyChecking=no) changes what the
    // credential says.
    '-F /dev/null',
    `-i ${shellQuote(key)}`,
    '-o IdentitiesOnly=yes',
    '-o IdentityAgent=none',
    `-o ${shellQuote(`UserKnownHostsFile=${knownHosts}`)}`,
    '-o GlobalKnownHostsFile=/dev/null',
    '-o StrictHostKeyChecking=yes',
    '-o UpdateHostKeys=no',
    '-o BatchMode=yes',
  ].join(' ');
  return { config: [], env: { GIT_SSH_COMMAND: command } };
}

/** The Basic `Authorization` header for a token (user `x-access-token` unless given) or a username and password. */
export function authorizationHeader(credential: Credential): string | undefined {
  const secret = credential.password ?? credential.token;
  if (!secret) return undefined;
  // The same user:secret pair secrets.ts redacts in base64 form.
  const user = credential.username ?? 'x-access-token';
  return `Authorization: Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;
}

function hasKnownHostsLines(text: string | undefined): boolean {
  return (text ?? '').split('\n').some((line) => line.trim() !== '' && !line.trim().startsWith('#'));
}

/** `ssh-keyscan -p 2222 git.example.com` for the URL's host and port. */
function keyscanHint(url: string): string {
  const authority = /^ssh:\/\/(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?/i.exec(url);
  const host = (authority?.[1] ?? 'HOST').replace(/^\[|\]$/g, '');
  const port = authority?.[2];
  return `ssh-keyscan ${port && port !== '22' ? `-p ${port} ` : ''}${host}`;
}

function withNewline(text: string): string {
  // ssh refuses a key whose last line has no newline ("invalid format"), and secrets are read trimmed.
  const lf = text.replace(/\r\n/g, '\n');
  return lf.endsWith('\n') ? lf : `${lf}\n`;
}

/** `'…'` for sh, which runs GIT_SSH_COMMAND. */
function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

// --- what a failure to get in means ---

export interface TransportFailureContext {
  /** `git fetch ssh://host/org/repo.git (branch main)`: what failed, where. */
  where: string;
  url: string;
  credentials: string | undefined;
  secrets: SecretResolver;
  /** git's stderr. */
  stderr: string;
}

const HOST_KEY_CHANGED = /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed/;
const HOST_KEY_UNKNOWN = /Host key verification failed|No \S+ host key is known for/;
const SSH_KEY_UNREADABLE = /Load key "[^"]*": (?!No such file)[^\n]*/;
const SSH_KEY_REFUSED = /Permission denied \(publickey/;
const HTTP_AUTH_REFUSED =
  /Authentication failed|could not read (Username|Password)|terminal prompts disabled|HTTP Basic: Access denied|Invalid username or password|returned error: 40[13]/i;
const TLS_UNTRUSTED =
  /SSL certificate problem|server certificate verification failed|no alternative certificate subject name|certificate subject name .* does not match/i;

/**
 * The failure for git's refusal to get in (a credential the server refused, a host key Ferry cannot trust, a TLS
 * certificate it cannot verify), or undefined for any other failure. Each is non-retryable, since retrying cannot
 * change the answer, and says which credential field to check; the text is redacted.
 */
export function transportFailure(context: TransportFailureContext): ApplicationFailure | undefined {
  const { where, stderr, credentials: name, secrets } = context;
  const said = (pattern: RegExp) => secrets.redact(lineMatching(stderr, pattern) ?? '');
  const field = (f: keyof Credential) => (name ? `${secrets.whereIs(name, f)}` : '');
  const fail = (message: string, type: string) => ApplicationFailure.nonRetryable(secrets.redact(message), type);
  if (isSshUrl(context.url)) {
    const offered = /(SHA256:[A-Za-z0-9+/=]+)/.exec(stderr)?.[1];
    const knownHostsPlaces = name
      ? `the known_hosts of credential "${name}" (${field('knownHosts')}) or ${SSH_KNOWN_HOSTS_ENV}`
      : `the worker's known_hosts (~/.ssh/known_hosts)`;
    if (HOST_KEY_CHANGED.test(stderr)) {
      return fail(
        `${where}: host key verification failed: the host offered a key that does not match its line in ` +
          `${knownHostsPlaces}${offered ? ` (offered ${offered})` : ''}. A reinstalled server or a machine in the ` +
          `middle: confirm the new key with the host's operator before replacing the line`,
        'GitHostKeyChanged',
      );
    }
    if (HOST_KEY_UNKNOWN.test(stderr)) {
      return fail(
        `${where}: host key verification failed: no line for this host in ${knownHostsPlaces}` +
          `${offered ? ` (offered ${offered})` : ''}; add the host's line (${keyscanHint(context.url)}, compared ` +
          `with the fingerprint the host's operator gives you)`,
        'GitHostKeyUnknown',
      );
    }
    if (name && SSH_KEY_UNREADABLE.test(stderr)) {
      return fail(
        `${where}: ssh cannot read the ssh_key of credential "${name}" (${field('sshKey')}): it must be an ` +
          `unencrypted private key in OpenSSH or PEM format (ssh: ${said(SSH_KEY_UNREADABLE).replace(/^.*Load key "[^"]*": /, '')})`,
        'GitAuthFailed',
      );
    }
    if (SSH_KEY_REFUSED.test(stderr)) {
      const hint = name
        ? `check the ssh_key of credential "${name}" (${field('sshKey')}) and that its public key is authorized ` +
          `on the host for the URL's user`
        : `the worker's own ssh keys were refused; name a credential with an ssh_key in spec.repo.credentials`;
      return fail(
        // ssh's line starts with `user@host: `; the remote is already named, without its user.
        `${where}: authentication failed: the server refused the SSH key (${hint}): ${said(SSH_KEY_REFUSED).replace(/^\S+@\S+: /, '')}`,
        'GitAuthFailed',
      );
    }
    return undefined;
  }
  if (TLS_UNTRUSTED.test(stderr)) {
    const hint = name
      ? `if the host's certificate is signed by an internal CA, set the ca of credential "${name}" (${field('ca')}) ` +
        `to that CA's PEM certificate`
      : `if the host's certificate is signed by an internal CA, name a credential with a ca in spec.repo.credentials`;
    return fail(
      `${where}: the server's TLS certificate is not trusted (${hint}; certificate checks are never turned off): ` +
        said(TLS_UNTRUSTED),
      'GitTlsUntrusted',
    );
  }
  if (HTTP_AUTH_REFUSED.test(stderr)) {
    const hint = name
      ? `the server refused credential "${name}": check its token (${field('token')}), or its username and ` +
        `password (${field('username')}, ${field('password')})`
      : 'the repository needs credentials: name one in spec.repo.credentials';
    // After a 401 to the credential's header, git looks for another one and reports that it could not prompt.
    const answer =
      name && /could not read (Username|Password)/i.test(stderr)
        ? 'the server answered 401 Unauthorized'
        : said(HTTP_AUTH_REFUSED);
    return fail(`${where}: authentication failed (${hint}): ${answer}`, 'GitAuthFailed');
  }
  return undefined;
}

/** The line of `text` that matches, trimmed, without git's `fatal: ` prefix. */
function lineMatching(text: string, pattern: RegExp): string | undefined {
  const line = text.split(/\r?\n/).find((l) => pattern.test(l));
  return line?.trim().replace(/^(fatal|error): /, '');
}

// --- the private directory of key and known_hosts files ---

const PRIVATE_DIR_PREFIX = 'ferry-transport-';
const SALT = randomBytes(16);
let privateDir: string | undefined;

/** Writes `content` (once) into this process's private directory, 0600; returns its path. */
function privateFile(content: string): string {
  const dir = ensurePrivateDir();
  const path = join(dir, createHash('sha256').update(SALT).update(content).digest('hex').slice(0, 32));
  // Checked on every use: a temp cleaner may remove files of a long-running worker.
  if (!existsSync(path)) writeFileSync(path, content, { mode: 0o600 });
  return path;
}

function ensurePrivateDir(): string {
  if (privateDir && existsSync(privateDir)) return privateDir;
  const root = tmpdir();
  if (privateDir === undefined) {
    removeLeftBehind(root);
    process.once('exit', () => {
      if (privateDir) rmSync(privateDir, { recursive: true, force: true });
    });
  }
  // mkdtemp creates the directory 0700.
  const dir = mkdtempSync(join(root, `${PRIVATE_DIR_PREFIX}${process.pid}-`));
  // ssh expands `%` tokens, `${VAR}` and `~` in these paths and splits them at whitespace.
  if (!/^[A-Za-z0-9._/+-]+$/.test(dir)) {
    rmSync(dir, { recursive: true, force: true });
    throw ApplicationFailure.nonRetryable(
      `the worker's temporary directory ${root} has characters ssh cannot take in a file name; set TMPDIR to a plain path`,
      'InvalidArgument',
    );
  }
  privateDir = dir;
  return dir;
}

/** Private directories of workers that died without their exit handler (SIGKILL): they hold private keys. */
function removeLeftBehind(root: string): void {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(new RegExp(`^${PRIVATE_DIR_PREFIX}(\\d+)-`).exec(name)?.[1] ?? Number.NaN);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    if (pid !== process.pid) {
      try {
        process.kill(pid, 0);
        continue; // alive: another worker's (or a process that reused the pid: it is left alone)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
      }
    }
    try {
      rmSync(join(root, name), { recursive: true, force: true });
    } catch {
      // another user's directory is not ours to remove
    }
  }
}

/** @internal The private directory, if one was made (for tests). */
export function transportPrivateDir(): string | undefined {
  return privateDir;
}
