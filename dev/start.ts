// `npm start`: the whole Ferry stack on one machine. Starts the Temporal dev server (SQLite under FERRY_HOME, UI on
// :8233), the worker and the HTTP API; creates (once) an example GitOps repository and pipeline and applies it;
// prints the URLs and a CLI token. Ctrl-C stops everything.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { apiAddressFromEnv, DEFAULT_API_HOST, DEFAULT_API_PORT } from '../api/server';
import { ensureLocalWebhookSecret } from '../api/webhooks/secrets';
import { ensureLocalToken, ensurePrivateHome, resolveFerryHome } from '../client/auth';
import { FerryClient } from '../client/ferry-client';
import { CALLBACK_KEY_ENV, ensureCallbackKey } from '../client/gate-callbacks';
import { formatSpecErrors, loadPipelineFile } from '../pipeline/load';
import { localServerConfigYaml, resolveServerConfigFile } from '../api/server-config';
import { apiEnvironment } from './environment';
import { createExampleRepo, examplePipelineYaml } from './example';
import { ensureTemporalCli, PROJECT_ROOT, startDevServer, stopProcess, type DevServer } from './temporal';
import { installedRenderTools } from './tools';

const LOCAL_USER = 'alice';

const children: ChildProcess[] = [];
let server: DevServer | undefined;
let stopping: Promise<never> | undefined;

/**
 * Stops the API, the worker and the dev server, then exits. Ctrl-C signals the whole process group, so this runs
 * more than once: every call waits for the one stop in progress instead of exiting halfway and orphaning the
 * dev server.
 */
function stopAll(code: number): Promise<never> {
  stopping ??= (async () => {
    say('\nStopping Ferry …');
    await Promise.all(children.map((c) => stopProcess(c)));
    await server?.stop();
    process.exit(code);
  })();
  return stopping;
}

/** A word as the shell reads it: as it is when it is plain, else in single quotes. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** Runs a TypeScript entry point of this project as a child process, its output prefixed with `[name]`. */
function spawnEntry(name: string, entry: string, env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, entry)], {
    cwd: PROJECT_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = (chunk: Buffer): string =>
    chunk
      .toString()
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => `[${name}] ${l}\n`)
      .join('');
  child.stdout?.on('data', (c: Buffer) => process.stdout.write(prefix(c)));
  child.stderr?.on('data', (c: Buffer) => process.stderr.write(prefix(c)));
  return child;
}

async function waitForHealthz(url: string, child: ChildProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the API exited with code ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the API did not answer ${url}/healthz within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function main(): Promise<void> {
  const home = ensurePrivateHome(resolveFerryHome());
  const temporalPort = Number(process.env.TEMPORAL_PORT ?? 7233);
  const uiPort = Number(process.env.TEMPORAL_UI_PORT ?? 8233);
  const listen = apiAddressFromEnv();
  const apiUrl = `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;

  const cli = ensureTemporalCli();
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  say(`Starting the Temporal dev server (state in ${relative(process.cwd(), join(home, 'temporal.db')) || home}) …`);
  server = await startDevServer({ cli, dbFile: join(home, 'temporal.db'), port: temporalPort, uiPort });

  server.process.once('exit', (code, signal) => {
    if (stopping !== undefined) return;
    const log = relative(process.cwd(), join(home, 'temporal.db.log')) || 'temporal.db.log';
    process.stderr.write(
      `the Temporal dev server exited unexpectedly (${signal ?? `code ${code}`}); its log is ${log}. Stopping Ferry.\n`,
    );
    void stopAll(1);
  });

  const repo = createExampleRepo(join(home, 'example', 'gitops.git'));
  const pipelineFile = join(home, 'example', 'pipeline.yaml');
  if (!existsSync(pipelineFile)) writeFileSync(pipelineFile, examplePipelineYaml(repo.url, [LOCAL_USER, 'bob']));
  const token = ensureLocalToken(home, LOCAL_USER);
  // Roles: the local user is an admin (it applies the example and approves prod). Written once, when the operator
  // names no configuration of their own; edit it to try other roles or an OIDC issuer.
  const serverConfig = resolveServerConfigFile({ ...process.env, FERRY_HOME: home });
  if (!serverConfig.explicit && !existsSync(serverConfig.file)) {
    writeFileSync(serverConfig.file, localServerConfigYaml(LOCAL_USER), { mode: 0o600 });
  }

  const common = {
    FERRY_HOME: home,
    TEMPORAL_ADDRESS: server.address,
    FERRY_PORT: String(listen.port),
    // The API checks callback gates' URLs with it; the worker's event delivery makes them.
    [CALLBACK_KEY_ENV]: process.env[CALLBACK_KEY_ENV] || ensureCallbackKey(home),
  };
  // The example pipeline's repository is a file:// path on this machine, which a worker refuses unless told. The
  // kustomize and helm engines are there when `npm run tools` has installed them (the worker says which it has).
  const worker = spawnEntry('worker', 'worker/main.ts', {
    FERRY_TEMPORAL_UI_URL: `http://127.0.0.1:${uiPort}`,
    ...installedRenderTools(),
    ...process.env,
    ...common,
    FERRY_ALLOW_FILE_REPOS: '1',
  });
  // The example pipeline takes signed generic webhooks (spec.triggers.generic: ci-webhook); its secret is local too.
  const webhookSecrets = process.env.FERRY_WEBHOOK_SECRETS_DIR || ensureLocalWebhookSecret(home, 'ci-webhook');
  const api = spawnEntry(
    'api',
    'api/main.ts',
    apiEnvironment(process.env, { ...common, FERRY_WEBHOOK_SECRETS_DIR: webhookSecrets }),
  );
  children.push(worker, api);
  for (const child of children) {
    child.once('exit', (code) => {
      if (stopping === undefined) {
        process.stderr.write(`a Ferry process exited unexpectedly (code ${code}); stopping\n`);
        void stopAll(1);
      }
    });
  }
  await waitForHealthz(apiUrl, api);

  const loaded = await loadPipelineFile(pipelineFile);
  if (!loaded.ok) throw new Error(`${pipelineFile} is invalid:\n${formatSpecErrors(loaded.errors)}`);
  const ferry = await FerryClient.connect({ address: server.address });
  await ferry.applyPipeline(loaded.pipeline);
  await ferry.close();

  const shownFile = relative(process.cwd(), pipelineFile) || pipelineFile;
  say('');
  say('Ferry is running.');
  say(`  HTTP API     ${apiUrl}`);
  say(`  Temporal UI  ${server.uiUrl ?? '(headless)'}`);
  say(`  Temporal     ${server.address}`);
  say(
    `  CLI token    ${token}   (user "${LOCAL_USER}"; saved in ${relative(process.cwd(), join(home, 'token'))}, the CLI reads it)`,
  );
  say(`  Example      pipeline "guestbook" from ${shownFile}, repository ${repo.url}`);
  say('');
  // What to type in another terminal in this directory, exactly: the CLI finds the API and the token by the same
  // defaults as npm start, so only what differs from them is exported.
  const tries = [
    ...(apiUrl !== `http://${DEFAULT_API_HOST}:${DEFAULT_API_PORT}` ? [`export FERRY_URL=${apiUrl}`] : []),
    ...(process.env.FERRY_HOME ? [`export FERRY_HOME=${shellQuote(home)}`] : []),
    'npx ferry status guestbook',
    'F=$(npx ferry freight add guestbook guestbook=1.4.2)',
    `${shellQuote(relative(process.cwd(), cli) || cli)} workflow list --address ${server.address} --query 'FerryPipeline = "guestbook"'`,
  ];
  tries.forEach((line, i) => say(`${i === 0 ? 'Try:' : '    '}  ${line}`));
  say('Press Ctrl-C to stop.');
}

main().catch((err) => {
  process.stderr.write(`npm start failed: ${err instanceof Error ? err.message : String(err)}\n`);
  void stopAll(1);
});
