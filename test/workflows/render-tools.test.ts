// A missing render binary is an error when the pipeline is applied, not in the middle of a promotion: applying asks
// a worker (renderToolsWorkflow) which binaries it has. Real dev server; the worker has kustomize and no helm.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createSecretResolver } from '../../activities/secrets';
import { FerryError } from '../../client/errors';
import { FerryClient } from '../../client/ferry-client';
import { checkRenderTools } from '../../client/render-tools';
import { validatePipeline } from '../../pipeline/load';
import type { Pipeline } from '../../pipeline/schema';
import { createFerryWorker } from '../../worker/create-worker';
import { createTemporalTestEnv } from '../helpers/temporal';

const TASK_QUEUE = 'ferry-render-tools-tests';

function pipeline(name: string, engines: ('plain' | 'kustomize' | 'helm')[]): Pipeline {
  const loaded = validatePipeline({
    apiVersion: 'ferry.dev/v1alpha1',
    kind: 'Pipeline',
    metadata: { name },
    spec: {
      repo: { url: `https://git.example.com/org/${name}.git` },
      artifacts: [{ name: 'guestbook', image: 'registry.example.com/team/guestbook' }],
      stages: engines.map((engine, i) => ({
        name: `stage-${i}`,
        render: { strategy: 'branch', engine, from: `apps/${i}`, to: `env/${i}` },
      })),
    },
  });
  assert.ok(loaded.ok, JSON.stringify(loaded));
  return loaded.pipeline;
}

describe('render tools at apply time (real dev server, a worker without helm)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let dir: string;
  let ferry: FerryClient;
  let kustomize: string;

  before(async () => {
    kustomize = process.env.FERRY_KUSTOMIZE_PATH ?? '';
    assert.ok(kustomize, 'FERRY_KUSTOMIZE_PATH is not set: run `npm run tools` and the tests through `npm test`');
    dir = mkdtempSync(join(tmpdir(), 'ferry-render-tools-'));
    env = await createTemporalTestEnv();
    worker = await createFerryWorker({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUE,
      workspaceRoot: join(dir, 'ws'),
      secrets: createSecretResolver({ env: {} }),
      renderTools: { kustomize },
    });
    running = worker.run();
    ferry = FerryClient.fromClient(env.client, TASK_QUEUE);
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a pipeline with a helm stage as InvalidArgument naming the field, and applies nothing', async () => {
    await assert.rejects(
      ferry.applyPipeline(pipeline('needs-helm', ['plain', 'kustomize', 'helm'])),
      (err: unknown) => {
        assert.ok(err instanceof FerryError, String(err));
        assert.equal(err.code, 'InvalidArgument');
        assert.equal(err.status, 400);
        assert.match(err.message, /pipeline "needs-helm" needs render engines the workers do not have/);
        const errors = err.details?.errors ?? [];
        assert.equal(errors.length, 1, JSON.stringify(errors));
        assert.equal(errors[0]!.path, 'spec.stages[2].render.engine');
        assert.match(errors[0]!.message, /stage "stage-2" renders with helm/);
        assert.match(errors[0]!.message, new RegExp(`task queue "${TASK_QUEUE}" do not have`));
        assert.match(errors[0]!.message, /FERRY_HELM_PATH/);
        assert.match(errors[0]!.message, /npm run tools/);
        return true;
      },
    );
    await assert.rejects(ferry.getPipeline('needs-helm'), (err: unknown) => {
      assert.ok(err instanceof FerryError);
      assert.equal(err.code, 'NotFound');
      return true;
    });
  });

  it('applies a pipeline whose engines the worker has', async () => {
    const status = await ferry.applyPipeline(pipeline('has-kustomize', ['kustomize', 'plain']));
    assert.equal(status.name, 'has-kustomize');
    assert.equal((await ferry.getPipeline('has-kustomize')).spec.spec.stages[0]!.render.engine, 'kustomize');
  });

  it('asks no worker for a pipeline that renders plain only', async () => {
    // No worker polls this queue: an ask would wait for the timeout and come back as an error.
    assert.deepEqual(
      await checkRenderTools(env.client, 'ferry-nobody-here', pipeline('plain-only', ['plain', 'plain'])),
      [],
    );
  });

  it('says no worker answered when none polls the task queue', async () => {
    const errors = await checkRenderTools(env.client, 'ferry-nobody-here', pipeline('lonely', ['plain', 'helm']), {
      timeoutMs: 1500,
    });
    assert.deepEqual(
      errors.map((e) => e.path),
      ['spec.stages[1].render.engine'],
    );
    assert.match(errors[0]!.message, /no Ferry worker on task queue "ferry-nobody-here" answered within 2s/);
    assert.match(errors[0]!.message, /start a worker/);
  });

  it("answers with the worker's kustomize version, probed by running it", async () => {
    const versions = await env.client.workflow.execute('renderToolsWorkflow', {
      workflowId: 'render-tools/versions-test',
      taskQueue: TASK_QUEUE,
      workflowExecutionTimeout: '30s',
    });
    assert.match(String((versions as { kustomize?: string }).kustomize), /^v5\.\d+\.\d+/);
    assert.equal((versions as { helm?: string }).helm, undefined);
  });
});
