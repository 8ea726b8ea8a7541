// The one place that turns a credential *name* from a pipeline into a secret value, at run time, in the worker.
// Values never leave the activity that asked for them: not in results, errors, logs or workflow history.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';

export interface Credential {
  username?: string;
  password?: string;
  /** A bearer token (Argo CD) or a git token (used as the password, username defaulting to "x-access-token"). */
  token?: string;
  /** A private key for git over ssh:// (OpenSSH or PEM text, without a passphrase). */
  sshKey?: string;
  /** known_hosts lines (as `ssh-keyscan` prints them) of the ssh:// hosts the key may be used with. Not secret. */
  knownHosts?: string;
  /** PEM certificate(s) of the CA that signed an https:// host's certificate, for hosts with an internal CA. Not secret. */
  ca?: string;
}

export interface SecretResolverOptions {
  /** Environment to read `FERRY_SECRET_<NAME>_<FIELD>` from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Directory with `<name>` (a file holding a token) or `<name>/{token,username,password,ssh_key,known_hosts,ca.pem}`. */
  dir?: string;
  /**
   * A known_hosts file every ssh:// repository of this worker may be checked against, beside a credential's own
   * known_hosts (default: env FERRY_SSH_KNOWN_HOSTS).
   */
  sshKnownHostsFile?: string;
}

/** The worker-wide known_hosts file: its path (for messages) and its lines. */
export interface WorkerKnownHosts {
  path: string;
  text: string;
}

export interface SecretResolver {
  /** Resolves a credential by name; throws a non-retryable failure naming where it looked, never a value. */
  resolve(name: string): Credential;
  /** Replaces every secret value this resolver has handed out with `***`. */
  redact(text: string): string;
  /**
   * The worker-wide known_hosts (FERRY_SSH_KNOWN_HOSTS), read at each call so an operator can edit it while the
   * worker runs; undefined when not set. Throws a non-retryable failure when it is set but cannot be read.
   */
  workerKnownHosts(): WorkerKnownHosts | undefined;
  /** Where a credential's field is read, for messages: `FERRY_SECRET_GITOPS_SSH_KEY or <dir>/gitops/ssh_key`. */
  whereIs(name: string, field: keyof Credential): string;
}

/** The worker setting naming a known_hosts file for every ssh:// repository. */
export const SSH_KNOWN_HOSTS_ENV = 'FERRY_SSH_KNOWN_HOSTS';

/** Each field, the suffix of its environment variable and its file name in `<dir>/<name>/`. */
export const CREDENTIAL_FIELDS = {
  token: { env: 'TOKEN', file: 'token' },
  username: { env: 'USERNAME', file: 'username' },
  password: { env: 'PASSWORD', file: 'password' },
  sshKey: { env: 'SSH_KEY', file: 'ssh_key' },
  knownHosts: { env: 'KNOWN_HOSTS', file: 'known_hosts' },
  ca: { env: 'CA', file: 'ca.pem' },
} as const satisfies Record<keyof Credential, { env: string; file: string }>;

const FIELDS = Object.keys(CREDENTIAL_FIELDS) as (keyof Credential)[];

/** Fields that are not secret (public keys and certificates) and are not redacted: they are no use to anyone. */
const PUBLIC_FIELDS: ReadonlySet<keyof Credential> = new Set(['knownHosts', 'ca']);

export function envPrefix(name: string): string {
  return `FERRY_SECRET_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_`;
}

export function createSecretResolver(options: SecretResolverOptions = {}): SecretResolver {
  const env = options.env ?? process.env;
  const dir = options.dir ?? env.FERRY_SECRETS_DIR;
  const knownHostsFile = options.sshKnownHostsFile ?? (env[SSH_KNOWN_HOSTS_ENV] || undefined);
  const handedOut = new Set<string>();

  const remember = (credential: Credential): Credential => {
    for (const field of FIELDS) {
      const value = credential[field];
      if (PUBLIC_FIELDS.has(field) || value === undefined || value.length < 4) continue;
      handedOut.add(value);
      // A secret may reach a message base64-encoded (as a Kubernetes secret's data holds it).
      handedOut.add(Buffer.from(value).toString('base64'));
    }
    // An error may echo a fragment of a private key: every line of it is redacted on its own as well.
    for (const line of credential.sshKey?.split(/\r?\n/) ?? []) {
      const text = line.trim();
      if (text.length >= 4 && !/^-----(BEGIN|END) /.test(text)) handedOut.add(text);
    }
    // Basic auth headers carry the base64 of user:password; redact that form as well.
    if (credential.password !== undefined || credential.token !== undefined) {
      const user = credential.username ?? 'x-access-token';
      handedOut.add(Buffer.from(`${user}:${credential.password ?? credential.token}`).toString('base64'));
    }
    return credential;
  };

  const fromEnv = (name: string): Credential | undefined => {
    const prefix = envPrefix(name);
    const credential: Credential = {};
    for (const field of FIELDS) {
      const value = env[prefix + CREDENTIAL_FIELDS[field].env];
      if (value !== undefined && value !== '') credential[field] = value;
    }
    return Object.keys(credential).length > 0 ? credential : undefined;
  };

  const fromDir = (name: string): Credential | undefined => {
    if (!dir || name.includes('/') || name.startsWith('.')) return undefined;
    const path = join(dir, name);
    if (!existsSync(path)) return undefined;
    if (statSync(path).isFile()) return { token: readFileSync(path, 'utf8').trim() };
    const credential: Credential = {};
    for (const field of FIELDS) {
      const file = join(path, CREDENTIAL_FIELDS[field].file);
      if (existsSync(file)) credential[field] = readFileSync(file, 'utf8').trim();
    }
    return Object.keys(credential).length > 0 ? credential : undefined;
  };

  return {
    resolve(name) {
      const credential = fromEnv(name) ?? fromDir(name);
      if (!credential) {
        const suffixes = FIELDS.map((f) => CREDENTIAL_FIELDS[f].env).join(',');
        const places = [`environment variables ${envPrefix(name)}{${suffixes}}`];
        if (dir) places.push(`${join(dir, name)} in the secrets directory`);
        throw ApplicationFailure.nonRetryable(
          `credential "${name}" is not configured on the worker: looked in ${places.join(' and ')}`,
          'CredentialNotFound',
        );
      }
      return remember(credential);
    },
    redact(text) {
      let out = text;
      // Longest first: a key line inside the whole key must not leave the rest of the key behind.
      for (const value of [...handedOut].sort((a, b) => b.length - a.length)) out = out.split(value).join('***');
      return out;
    },
    whereIs(name, field) {
      const places = [`${envPrefix(name)}${CREDENTIAL_FIELDS[field].env}`];
      if (dir) places.push(join(dir, name, CREDENTIAL_FIELDS[field].file));
      return places.join(' or ');
    },
    workerKnownHosts() {
      if (!knownHostsFile) return undefined;
      try {
        return { path: knownHostsFile, text: readFileSync(knownHostsFile, 'utf8') };
      } catch (err) {
        throw ApplicationFailure.nonRetryable(
          `${SSH_KNOWN_HOSTS_ENV}=${knownHostsFile} cannot be read on the worker: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
          'CredentialNotFound',
        );
      }
    },
  };
}
