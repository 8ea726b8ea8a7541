// Where the local HTTP API is reached when no URL is configured: FERRY_HOST and FERRY_PORT, the variables the API
// listens by (a wildcard listen address is reached on loopback). The CLI and callback URLs both start from it.

export function localApiUrl(env: NodeJS.ProcessEnv): string {
  const listen = env.FERRY_HOST || '127.0.0.1';
  const host = listen === '0.0.0.0' ? '127.0.0.1' : listen === '::' ? '::1' : listen;
  return `http://${host.includes(':') ? `[${host}]` : host}:${env.FERRY_PORT || 8234}`;
}
