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
}

export interface SecretResolverOptions {
  /** Environment to read `FERRY_SECRET_<NAME>_<FIELD>` from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Directory with `<name>` (a file holding a token) or `<name>/{token,username,password}` files. */
  dir?: string;
}

export interface SecretResolver {
  /** Resolves a credential by name; throws a non-retryable failure naming where it looked, never a value. */
  resolve(name: string): Credential;
  /** Replaces every secret value this resolver has handed out with `***`. */
  redact(text: string): string;
}

const FIELDS = ['token', 'username', 'password'] as const;

export function envPrefix(name: string): string {
  return `FERRY_SECRET_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_`;
}

export function createSecretResolver(options: SecretResolverOptions = {}): SecretResolver {
  const env = options.env ?? process.env;
  const dir = options.dir ?? env.FERRY_SECRETS_DIR;
  const handedOut = new Set<string>();

  const remember = (credential: Credential): Credential => {
    for (const value of Object.values(credential)) {
      if (typeof value === 'string' && value.length >= 4) {
        handedOut.add(value);
      }
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
      const value = env[prefix + field.toUpperCase()];
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
      const file = join(path, field);
      if (existsSync(file)) credential[field] = readFileSync(file, 'utf8').trim();
    }
    return Object.keys(credential).length > 0 ? credential : undefined;
  };

  return {
    resolve(name) {
      const credential = fromEnv(name) ?? fromDir(name);
      if (!credential) {
        const places = [`environment variables ${envPrefix(name)}{TOKEN,USERNAME,PASSWORD}`];
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
      for (const value of handedOut) out = out.split(value).join('***');
      return out;
    },
  };
}
