// What `npm start` hands its processes. The worker resolves credentials, so it gets the whole environment; the API
// needs none of them, so it gets an allow-list: a secret it never holds is a secret it can never leak.

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
  'FERRY_CALLBACK_KEY',
  'FERRY_PUBLIC_URL',
  'FERRY_LOG_LEVEL',
  'TEMPORAL_ADDRESS',
  'TEMPORAL_NAMESPACE',
];

/** The API's environment: the allowed variables of `env` (and LC_*), then `overrides`. */
export function apiEnvironment(env: NodeJS.ProcessEnv, overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && (API_VARIABLES.includes(name) || name.startsWith('LC_'))) result[name] = value;
  }
  return { ...result, ...overrides };
}
