// The HTTP API process: one Temporal client, the token store, the server configuration (roles, OIDC issuers), the
// server. `npm run api`, or started by `npm start`.
// Stdout carries one line (where it listens) for people and scripts; everything else is the JSON log on stderr.
import { createTokenStore, resolveTokensFile } from '../client/auth';
import { FerryClient } from '../client/ferry-client';
import { callbackKeyFromEnv, PUBLIC_URL_ENV } from '../client/gate-callbacks';
import { createLogger } from '../client/log';
import { adminsFromEnv } from './app';
import { createOidcVerifier } from './identity/oidc';
import { createRoleBook } from './roles';
import { loadServerConfig, roleBindingsOf } from './server-config';
import { apiAddressFromEnv, startApiServer } from './server';
import { createWebhookSecrets } from './webhooks';

const log = createLogger({ base: { component: 'api' } });

async function main(): Promise<void> {
  const { host, port } = apiAddressFromEnv();
  // A mistake in the server configuration stops the start, with every bad field by path.
  const { config, file: configFile } = loadServerConfig();
  // Plaintext tokens of an older tokens file are rewritten as digests now, so none stays on disk.
  const tokens = createTokenStore({ logger: log, migratePlaintext: true });
  if (tokens.size() === 0) {
    log.warn('no API tokens are configured; every request but /healthz will get 401', {
      tokensFile: resolveTokensFile(),
      hint: 'set FERRY_TOKENS="token=user" or run `npm start`, which creates .ferry/token',
    });
  }

  // Connects on first use: the API starts whether or not Temporal is up, and answers 503 while it is not.
  const ferry = await FerryClient.connect({});
  const admins = adminsFromEnv();
  const roles = createRoleBook({ bindings: roleBindingsOf(config), admins });
  const issuers = config.oidc?.issuers ?? [];
  const oidc = issuers.length > 0 ? createOidcVerifier(issuers, { roles, logger: log }) : undefined;
  log.info('server configuration', {
    file: configFile ?? '(none)',
    roles: roles.configured ? 'configured' : 'default (token users: promoter and approver; FERRY_ADMINS: admin)',
    admins: admins.length,
    oidcIssuers: issuers.map((i) => i.issuer),
  });
  const webhooks = { secrets: createWebhookSecrets() };
  const callbackKey = callbackKeyFromEnv();
  if (!callbackKey) log.warn('FERRY_CALLBACK_KEY is not set: callback gates cannot be decided through this API');
  const publicUrl = process.env[PUBLIC_URL_ENV]?.trim() || undefined;
  const server = await startApiServer({
    ferry,
    tokens,
    admins,
    roles,
    oidc,
    webhooks,
    host,
    port,
    logger: log,
    callbackKey,
    publicUrl,
  });
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
