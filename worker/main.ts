// The worker process: `npm run worker`. Connects to Temporal (TEMPORAL_ADDRESS, default 127.0.0.1:7233) and runs
// Ferry's workflows and activities on task queue "ferry" until SIGINT/SIGTERM.
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { resolveFerryHome } from '../client/auth';
import { ALLOW_FILE_REPOS_ENV } from '../activities/git';
import { renderToolVersionsOf } from '../activities/render/tools-activity';
import { createFerryWorker, defaultWorkspaceRoot } from './create-worker';
import { gateCallbackEnricher } from './gate-callback-events';
import { writeLogEntry } from './log';
import { describeRenderTools, findRenderTools } from './render-tools';

async function main(): Promise<void> {
  // FERRY_LOG_LEVEL is shared with the API (debug, info, warn, error; any case).
  const level = (process.env.FERRY_LOG_LEVEL ?? 'warn').toUpperCase();
  const levels = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'] as const;
  Runtime.install({ logger: new DefaultLogger(levels.find((l) => l === level) ?? 'WARN', writeLogEntry) });
  const address = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
  const enrichEvent = gateCallbackEnricher(process.env);
  const renderTools = findRenderTools(process.env);
  const connection = await NativeConnection.connect({ address });
  try {
    const worker = await createFerryWorker({
      connection,
      namespace,
      workspaceRoot: process.env.FERRY_WORKSPACES ?? defaultWorkspaceRoot(resolveFerryHome()),
      ...(process.env.FERRY_ARGOCD_POLL_MS ? { argoPollIntervalMs: Number(process.env.FERRY_ARGOCD_POLL_MS) } : {}),
      allowFileRepos: process.env[ALLOW_FILE_REPOS_ENV] === '1',
      ...(process.env.FERRY_TEMPORAL_UI_URL ? { temporalUiUrl: process.env.FERRY_TEMPORAL_UI_URL } : {}),
      ...(process.env.FERRY_NOTIFY_TIMEOUT_MS ? { notifyTimeoutMs: Number(process.env.FERRY_NOTIFY_TIMEOUT_MS) } : {}),
      // Callback gates' URLs reach subscribers in their dev.ferry.gate.waiting events (needs FERRY_CALLBACK_KEY).
      ...(enrichEvent ? { enrichEvent } : {}),
      renderTools,
    });
    process.stdout.write(`${describeRenderTools(renderTools, await renderToolVersionsOf(renderTools))}\n`);
    process.stdout.write(`ferry worker polling task queue "ferry" on ${address} (namespace ${namespace})\n`);
    await worker.run();
  } finally {
    await connection.close();
  }
}

main().catch((err) => {
  process.stderr.write(`ferry worker failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
