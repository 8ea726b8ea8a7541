// The HTTP API process: one Temporal client, the token store, the server. `npm run api`, or started by `npm start`.
// Stdout carries one line (where it listens) for people and scripts; everything else is the JSON log on stderr.
import { createTokenStore, resolveTokensFile } from '../client/auth';
import { FerryClient } from '../client/ferry-client';
import { callbackKeyFromEnv, PUBLIC_URL_ENV } from '../client/gate-callbacks';
import { createLogger } from '../client/log';
import { adminsFromEnv } from './app';
import { apiAddressFromEnv, startApiServer } from './server';

const log = createLogger({ base: { component: 'api' } });

async function main(): Promise<void> {
  const { host, port } = apiAddressFromEnv();
  const tokens = createTokenStore({ logger: log });
  if (tokens.size() === 0) {
    log.warn('no API tokens are configured; every request but /healthz will get 401', {
      tokensFile: resolveTokensFile(),
      hint: 'set FERRY_TOKENS="token=user" or run `npm start`, which creates .ferry/token',
    });
  }

  // Connects on first use: the API starts whether or not Temporal is up, and answers 503 while it is not.
  const ferry = await FerryClient.connect({});
  const admins = adminsFromEnv();
  const callbackKey = callbackKeyFromEnv();
  if (!callbackKey) log.warn('FERRY_CALLBACK_KEY is not set: callback gates cannot be decided through this API');
  const publicUrl = process.env[PUBLIC_URL_ENV]?.trim() || undefined;
  const server = await startApiServer({ ferry, tokens, admins, host, port, logger: log, callbackKey, publicUrl });
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
