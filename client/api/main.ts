// The HTTP API process: one Temporal client, the token store, the server. `npm run api`, or started by `npm start`.
// Stdout carries one line (where it listens) for people and scripts; everything else is the JSON log on stderr.
import { createTokenStore, resolveTokensFile } from '../auth';
import { FerryClient } from '../ferry-client';
import { createLogger } from '../log';
import { DEFAULT_API_HOST, DEFAULT_API_PORT, startApiServer } from './server';

const log = createLogger({ base: { component: 'api' } });

function portFromEnv(value: string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_API_PORT;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`FERRY_PORT must be a port number (0-65535), got "${value}"`);
  }
  return port;
}

async function main(): Promise<void> {
  const port = portFromEnv(process.env.FERRY_PORT);
  const host = process.env.FERRY_HOST || DEFAULT_API_HOST;
  const tokens = createTokenStore({ logger: log });
  if (tokens.size() === 0) {
    log.warn('no API tokens are configured; every request but /healthz will get 401', {
      tokensFile: resolveTokensFile(),
      hint: 'set FERRY_TOKENS="token=user" or run `npm start`, which creates .ferry/token',
    });
  }

  const ferry = await FerryClient.connect({});
  const server = await startApiServer({ ferry, tokens, host, port, logger: log });
  process.stdout.write(`ferry api listening on ${server.url}\n`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    // A stuck connection must not keep the process alive forever.
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    server
      .close()
      .then(() => ferry.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error('shutdown failed', { error: err });
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: unknown) => {
  log.error('ferry api failed to start', { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
