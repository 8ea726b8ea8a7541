// Builds Ferry's worker: the workflows bundle plus activities wired to their collaborators.
import { join } from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { EventEnricher } from '../activities/notify';
import type { RenderTools } from '../activities/render/engine';
import { createSecretResolver, type SecretResolver } from '../activities/secrets';
import { TASK_QUEUE } from '../workflows/messages';
import { findRenderTools } from './render-tools';

export interface FerryWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  /** Cached git workspaces (default: `<FERRY_HOME>/workspaces`). */
  workspaceRoot: string;
  secrets?: SecretResolver;
  argoPollIntervalMs?: number;
  /** Whether pipelines may use `file://` repositories (default false; `npm run worker` reads FERRY_ALLOW_FILE_REPOS). */
  allowFileRepos?: boolean;
  /** Base URL of the Temporal UI for the run link in events (`npm run worker` reads FERRY_TEMPORAL_UI_URL). */
  temporalUiUrl?: string;
  /** Per-request timeout of event deliveries in ms (`npm run worker` reads FERRY_NOTIFY_TIMEOUT_MS). */
  notifyTimeoutMs?: number;
  /** Adds to each event, at delivery, what must not be in workflow history (a gate's callback URL). */
  enrichEvent?: EventEnricher;
  /**
   * The kustomize and helm binaries (default: FERRY_KUSTOMIZE_PATH / FERRY_HELM_PATH, else `kustomize` / `helm` on
   * PATH; see worker/render-tools.ts). `{}` leaves the worker with the plain engine only.
   */
  renderTools?: RenderTools;
  /** Extra worker options (tests tune caching and shutdown). */
  tuning?: Partial<
    Pick<WorkerOptions, 'maxCachedWorkflows' | 'shutdownGraceTime' | 'maxConcurrentActivityTaskExecutions'>
  >;
}

export const WORKFLOWS_PATH = require.resolve('../workflows');

export async function createFerryWorker(options: FerryWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    workflowsPath: WORKFLOWS_PATH,
    activities: createActivities({
      workspaceRoot: options.workspaceRoot,
      secrets: options.secrets ?? createSecretResolver(),
      ...(options.argoPollIntervalMs !== undefined ? { argoPollIntervalMs: options.argoPollIntervalMs } : {}),
      allowFileRepos: options.allowFileRepos ?? false,
      ...(options.temporalUiUrl !== undefined ? { temporalUiUrl: options.temporalUiUrl } : {}),
      ...(options.notifyTimeoutMs !== undefined ? { notifyTimeoutMs: options.notifyTimeoutMs } : {}),
      ...(options.enrichEvent ? { enrichEvent: options.enrichEvent } : {}),
      renderTools: options.renderTools ?? findRenderTools(process.env),
    }),
    // Promotions and pipelines are few and long-lived; a bounded cache keeps memory flat (a large cache of pipeline
    // workflows has exhausted worker memory).
    maxCachedWorkflows: 200,
    shutdownGraceTime: '10s',
    ...options.tuning,
  });
}

export function defaultWorkspaceRoot(home: string): string {
  return join(home, 'workspaces');
}
