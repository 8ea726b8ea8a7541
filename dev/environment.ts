// What `npm start` hands its processes. The worker resolves credentials, so it gets the whole environment; the API
// needs none of them but the webhook secrets, so it gets an allow-list: a secret it never holds is a secret it can
// never leak. Of the FERRY_SECRET_* variables it gets only FERRY_SECRET_<NAME>_TOKEN of the names the operator
// lists in FERRY_WEBHOOK_SECRETS.
import { envPrefix } from '../activities/secrets';
import { webhookSecretNames } from '../api/webhooks/secrets';

/** Variables the API process reads, plus what any process needs to run (locale, paths, Node's own settings). */
const API_VARIABLES = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  'TERM',
  'NO_COLOR',
  'NODE_OPTIONS',
  'NODE_EXTRA_CA_CERTS',
  'FERRY_HOME',
  'FERRY_HOST',
  'FERRY_PORT',
  'FERRY_TOKENS',
  'FERRY_TOKENS_FILE',
  'FERRY_ADMINS',
  'FERRY_CONFIG',
  'FERRY_CALLBACK_KEY',
  'FERRY_PUBLIC_URL',
  'FERRY_LOG_LEVEL',
  'FERRY_WEBHOOK_SECRETS',
  'FERRY_WEBHOOK_SECRETS_DIR',
  'TEMPORAL_ADDRESS',
  'TEMPORAL_NAMESPACE',
];

/** The API's environment: the allowed variables of `env` (and LC_*), then `overrides`. */
export function apiEnvironment(env: NodeJS.ProcessEnv, overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = {};
  const webhookSecrets = webhookSecretNames(env).map((name) => `${envPrefix(name)}TOKEN`);
  for (const [name, value] of Object.entries(env)) {
    const allowed = API_VARIABLES.includes(name) || name.startsWith('LC_') || webhookSecrets.includes(name);
    if (value !== undefined && allowed) result[name] = value;
  }
  return { ...result, ...overrides };
}
