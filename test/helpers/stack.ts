// The whole of Ferry in one test process, real everywhere: a Temporal dev server, the worker on a task queue of
// its own, the HTTP API on 127.0.0.1 (port 0) over the typed client, and the example GitOps repository as a
// file:// remote. End-to-end tests start it in `before` and `close` it in `after`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createSecretResolver, envPrefix } from '../../activities/secrets';
import { startApiServer, type ApiServer, type ApiServerOptions } from '../../api/server';
import { createTokenStore } from '../../client/auth';
import { FerryClient } from '../../client/ferry-client';
import { silentLogger } from '../../client/log';
import { createExampleRepo, type ExampleRepo } from '../../dev/example';
import { createFerryWorker, type FerryWorkerOptions } from '../../worker/create-worker';
import { createTemporalTestEnv } from './temporal';

export interface StackOptions {
  /** Names the temporary directory and the task queue. */
  name: string;
  /** Static tokens of the API: token → user. */
  tokens: Record<string, string>;
  /**
   * The worker's named credentials: a token (`FERRY_SECRET_<NAME>_TOKEN`), or fields by their variable suffix
   * (`{ USERNAME: …, PASSWORD: … }` → `FERRY_SECRET_<NAME>_USERNAME`, …).
   */
  secrets?: Record<string, string | Record<string, string>>;
  /** More API options: admins, roles, OIDC, webhook secrets, the callback key. */
  api?: Omit<ApiServerOptions, 'ferry' | 'tokens' | 'port' | 'logger'>;
  /** More worker options. */
  worker?: Partial<Omit<FerryWorkerOptions, 'connection' | 'taskQueue' | 'workspaceRoot' | 'secrets'>>;
}

export interface Stack {
  dir: string;
  env: TestWorkflowEnvironment;
  worker: Worker;
  api: ApiServer;
  /** The typed client the API runs over. */
  ferry: FerryClient;
  /** The example repository (file://). */
  repo: ExampleRepo;
  close(): Promise<void>;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), `ferry-${options.name}-`));
  const taskQueue = `ferry-${options.name}`;
  const env = await createTemporalTestEnv();
  const repo = createExampleRepo(join(dir, 'gitops.git'));
  const worker = await createFerryWorker({
    ...options.worker,
    connection: env.nativeConnection,
    taskQueue,
    workspaceRoot: join(dir, 'workspaces'),
    allowFileRepos: true,
    secrets: createSecretResolver({ env: secretVariables(options.secrets ?? {}) }),
  });
  const running = worker.run();
  const ferry = FerryClient.fromClient(env.client, taskQueue);
  const api = await startApiServer({
    ...options.api,
    ferry,
    tokens: createTokenStore({ file: null, env: {}, tokens: options.tokens }),
    port: 0,
    logger: silentLogger,
  });
  return {
    dir,
    env,
    worker,
    api,
    ferry,
    repo,
    async close() {
      await api.close();
      worker.shutdown();
      await running;
      await env.teardown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function secretVariables(secrets: Record<string, string | Record<string, string>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(secrets).flatMap(([name, value]) =>
      typeof value === 'string'
        ? [[`${envPrefix(name)}TOKEN`, value]]
        : Object.entries(value).map(([field, v]) => [`${envPrefix(name)}${field}`, v]),
    ),
  );
}

/**
 * Calls Ferry's HTTP API as the holder of `token`: a JSON body (or a string, sent as it is with `type`), the status
 * and the parsed answer back.
 */
export function apiCaller(
  url: () => string,
  token: string,
): (method: string, path: string, body?: unknown, type?: string) => Promise<{ status: number; body: any }> {
  return async (method, path, body, type = 'application/json') => {
    const res = await fetch(`${url()}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': type },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
}
