// One promotion writes a stage at a time; the others wait in order. Aborting the one that holds the stage
// cancels its Argo CD wait and hands the stage to the next.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createSecretResolver } from '../../activities/secrets';
import { FerryClient } from '../../client/ferry-client';
import { validatePipeline } from '../../pipeline/load';
import { createExampleRepo } from '../../dev/example';
import { createFerryWorker } from '../../worker/create-worker';
import { oneArgoCdStagePipeline } from '../helpers/fixtures';
import { until } from '../helpers/processes';
import { createTemporalTestEnv } from '../helpers/temporal';
import { makeToken, startArgoCdStandIn, type ArgoCdStandIn } from '../standin/argocd/server';

const TASK_QUEUE = 'ferry-lock-tests';

describe('stage lock (real dev server, real git, Argo CD stand-in)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let dir: string;
  let argocd: ArgoCdStandIn;
  let ferry: FerryClient;
  let remote: string;

  // Each promotion stays Progressing for 4 s: long enough that the next requests queue behind it even on a
  // loaded CI machine.
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-lock-'));
    env = await createTemporalTestEnv();
    const token = makeToken('ferry');
    argocd = await startArgoCdStandIn({
      tokens: { [token]: true },
      timing: { progressingMs: 4000, postOpReconcileDelayMs: 100 },
    });
    const repo = createExampleRepo(join(dir, 'gitops.git'));
    remote = repo.path;
    await argocd.control.addApp({
      name: 'guestbook-dev',
      project: 'default',
      repoURL: repo.url,
      path: '.',
      targetRevision: 'env/dev',
      deployedRevision: null,
    });
    worker = await createFerryWorker({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUE,
      workspaceRoot: join(dir, 'ws'),
      // The test repositories are file:// remotes, which a worker uses only when its operator allows it.
      allowFileRepos: true,
      secrets: createSecretResolver({ env: { FERRY_SECRET_ARGOCD_TOKEN: token } }),
      argoPollIntervalMs: 100,
    });
    running = worker.run();
    ferry = FerryClient.fromClient(env.client, TASK_QUEUE);
    const loaded = validatePipeline(oneArgoCdStagePipeline({ repoUrl: repo.url, argocdUrl: argocd.url, stage: 'dev' }));
    assert.ok(loaded.ok);
    await ferry.applyPipeline(loaded.pipeline);
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
    await argocd?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('queues promotions of one stage in order and lets the next one write only after the first finished', async () => {
    const freights: string[] = [];
    for (const version of ['3.0.0', '3.0.1', '3.0.2'])
      freights.push((await ferry.addFreight('guestbook', { guestbook: version })).id);
    const ids: string[] = [];
    for (const f of freights) {
      ids.push((await ferry.promote('guestbook', 'dev', f, 'carol')).id);
      // Ask for the stage in a known order.
      await until('queued or running', async () =>
        ['Queued', 'Rendering', 'Syncing', 'WaitingHealthy'].includes(
          (await ferry.getPromotion(ids[ids.length - 1])).phase,
        )
          ? true
          : undefined,
      );
    }

    // A promotion shows Queued as it asks the pipeline for the stage; the pipeline lists it once the ask arrives.
    const dev = await until(
      'both later promotions in the queue',
      async () => {
        const stage = (await ferry.getPipeline('guestbook')).stages[0];
        return stage.queue.length === 2 ? stage : undefined;
      },
      10_000,
    );
    assert.equal(dev.running?.id, ids[0]);
    assert.deepEqual(
      dev.queue.map((q) => q.id),
      [ids[1], ids[2]],
    );
    assert.equal((await ferry.getPromotion(ids[1])).phase, 'Queued');
    assert.equal((await ferry.getPromotion(ids[2])).phase, 'Queued');

    const results = [];
    for (const id of ids) results.push(await ferry.waitForPromotion(id, { timeoutMs: 60_000 }));
    assert.deepEqual(
      results.map((r) => r.phase),
      ['Succeeded', 'Succeeded', 'Succeeded'],
    );
    // Each one took the stage only after the previous one had finished (Argo CD healthy included).
    for (let i = 1; i < results.length; i++) {
      const queueEnd = results[i].steps.find((s) => s.name === 'queue')?.finishedAt ?? '';
      assert.ok(
        queueEnd >= (results[i - 1].finishedAt ?? ''),
        `promotion ${i} started writing before ${i - 1} finished`,
      );
    }
    const log = execFileSync('git', ['--git-dir', remote, 'log', '--format=%s', 'env/dev'], { encoding: 'utf8' })
      .trim()
      .split('\n');
    assert.deepEqual(log, freights.map((f) => `ferry: promote ${f} to dev`).reverse());
  });

  it('aborts the promotion that holds the stage while it waits on Argo CD, and hands the stage to the next', async () => {
    const a = (await ferry.addFreight('guestbook', { guestbook: '3.1.0' })).id;
    const b = (await ferry.addFreight('guestbook', { guestbook: '3.1.1' })).id;
    const first = (await ferry.promote('guestbook', 'dev', a, 'carol')).id;
    await until('first waits on Argo CD', async () =>
      (await ferry.getPromotion(first)).phase === 'WaitingHealthy' ? true : undefined,
    );
    const second = (await ferry.promote('guestbook', 'dev', b, 'carol')).id;
    await until('second queued', async () =>
      (await ferry.getPromotion(second)).phase === 'Queued' ? true : undefined,
    );

    const startedAbort = Date.now();
    await ferry.abort(first, { user: 'carol', comment: 'bad build' });
    const aborted = await ferry.waitForPromotion(first, { timeoutMs: 30_000 });
    assert.equal(aborted.phase, 'Aborted');
    assert.equal(aborted.error, 'aborted by carol: bad build');
    assert.equal(aborted.steps.find((s) => s.name === 'health')?.status, 'Cancelled');
    assert.ok(Date.now() - startedAbort < 10_000);

    const next = await ferry.waitForPromotion(second, { timeoutMs: 60_000 });
    assert.equal(next.phase, 'Succeeded', next.error);
    const dev = (await ferry.getPipeline('guestbook')).stages[0];
    assert.equal(dev.current?.freight, b);
    assert.equal(dev.running, undefined);
  });
});
