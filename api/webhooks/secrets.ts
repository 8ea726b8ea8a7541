// Webhook secrets, resolved by the HTTP API. They are named credentials like every other secret (activities/
// secrets.ts resolves them), but the API gets only these: its own directory, FERRY_WEBHOOK_SECRETS_DIR, and the
// environment variables FERRY_SECRET_<NAME>_TOKEN of the names the operator lists in FERRY_WEBHOOK_SECRETS. A
// pipeline that names its git or Argo CD credential as a webhook secret therefore gets nothing from the API.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSecretResolver, envPrefix } from '../../activities/secrets';

export interface WebhookSecrets {
  /** The secret's value, or undefined when the API has no such webhook secret. */
  resolve(name: string): string | undefined;
  /** Where the API looks for a name, for the operator's log (never a value). */
  describe(name: string): string;
}

/** FERRY_WEBHOOK_SECRETS: comma-separated credential names whose FERRY_SECRET_<NAME>_TOKEN the API may read. */
export function webhookSecretNames(env: NodeJS.ProcessEnv): string[] {
  return (env.FERRY_WEBHOOK_SECRETS ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
}

export function createWebhookSecrets(env: NodeJS.ProcessEnv = process.env): WebhookSecrets {
  const listed = webhookSecretNames(env);
  // Only the listed names' TOKEN variables reach the resolver: nothing else of the environment can be resolved.
  const allowed: NodeJS.ProcessEnv = {};
  for (const name of listed) {
    const variable = `${envPrefix(name)}TOKEN`;
    if (env[variable] !== undefined) allowed[variable] = env[variable];
  }
  const dir = env.FERRY_WEBHOOK_SECRETS_DIR || undefined;
  const resolver = createSecretResolver({ env: allowed, ...(dir ? { dir } : {}) });

  return {
    resolve(name) {
      try {
        const credential = resolver.resolve(name);
        return credential.token && credential.token !== '' ? credential.token : undefined;
      } catch {
        return undefined;
      }
    },
    describe(name) {
      const places = [`${envPrefix(name)}TOKEN (when "${name}" is listed in FERRY_WEBHOOK_SECRETS)`];
      places.push(dir ? `${dir}/${name}` : 'FERRY_WEBHOOK_SECRETS_DIR/<name> (FERRY_WEBHOOK_SECRETS_DIR is not set)');
      return places.join(' or ');
    },
  };
}

/** Fixed secrets by name (tests, and programs that embed the API). */
export function staticWebhookSecrets(secrets: Record<string, string>): WebhookSecrets {
  return {
    resolve: (name) => (Object.prototype.hasOwnProperty.call(secrets, name) ? secrets[name] : undefined),
    describe: (name) => `the API's configured webhook secrets (no "${name}")`,
  };
}

/**
 * For `npm start`: makes sure `<home>/webhook-secrets/<name>` holds a secret (a random one, mode 0600, created once)
 * and returns the directory, for the API's FERRY_WEBHOOK_SECRETS_DIR.
 */
export function ensureLocalWebhookSecret(home: string, name: string): string {
  const dir = join(home, 'webhook-secrets');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, name);
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  return dir;
}
