// The pipeline workflow is long-lived: it continues as new when Temporal suggests it, carrying its catalog and
// stage state, while promotions it started keep running and report back to the new run.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { FerryClient } from '../../client/ferry-client';
import { parsePipelineText } from '../../pipeline/load';
import { createExampleRepo, examplePipelineYaml } from '../../dev/example';
import { createFerryWorker } from '../../worker/create-worker';
import { until } from '../helpers/processes';
import { createTemporalTestEnv } from '../helpers/temporal';

const TASK_QUEUE = 'ferry-can-tests';

describe('pipeline workflow continue-as-new (real dev server with a low history limit)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-can-'));
    // Suggest continue-as-new after 60 events instead of 4096.
    env = await createTemporalTestEnv(['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=60']);
    worker = await createFerryWorker({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUE,
      workspaceRoot: join(dir, 'ws'),
      // The test repositories are file:// remotes, which a worker uses only when its operator allows it.
      allowFileRepos: true,
    });
    running = worker.run();
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps freight, stage state and running promotions across runs', async () => {
    const ferry = FerryClient.fromClient(env.client, TASK_QUEUE);
    const repo = createExampleRepo(join(dir, 'gitops.git'));
    const loaded = parsePipelineText(examplePipelineYaml(repo.url, ['alice']));
    assert.ok(loaded.ok);
    await ferry.applyPipeline(loaded.pipeline);
    const handle = env.client.workflow.getHandle('pipeline/guestbook');
    const firstRun = (await handle.describe()).runId;

    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const { id } = await ferry.addFreight('guestbook', { guestbook: `2.0.${i}` });
      ids.push(id);
      // Every new freight auto-promotes into dev; promotions of one stage take turns.
    }
    for (const id of ids) {
      const done = await ferry.waitForPromotion(`promotion/guestbook/dev/${id}`, { timeoutMs: 120_000 });
      assert.equal(done.phase, 'Succeeded', done.error);
    }

    const status = await until('all dev promotions recorded', async () => {
      const s = await ferry.getPipeline('guestbook');
      const dev = s.stages.find((x) => x.name === 'dev');
      return dev && dev.history.length === ids.length && !dev.running ? s : undefined;
    });
    const described = await handle.describe();
    assert.notEqual(described.runId, firstRun, 'the pipeline workflow continued as new');
    assert.equal(described.status.name, 'RUNNING');
    assert.deepEqual(status.freight.map((f) => f.id).sort(), [...ids].sort());
    const dev = status.stages.find((s) => s.name === 'dev');
    assert.ok(dev);
    assert.deepEqual(dev.queue, []);
    assert.deepEqual(dev.active, []);
    assert.ok(status.freight.every((f) => f.verifiedIn.includes('dev')));
    // The stage's current freight is the one whose promotion finished last.
    assert.equal(dev.current?.promotion, dev.history[0].id);
  });
});
