// Pipeline and promotion workflows on the real Temporal dev server, with the real worker and real activities
// writing to a real git remote on disk. (Argo CD paths: argocd-promotion.test.ts.)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { FerryClient } from '../../client/ferry-client';
import { parsePipelineText } from '../../pipeline/load';
import type { Pipeline } from '../../pipeline/schema';
import { createExampleRepo, examplePipelineYaml } from '../../dev/example';
import { approveSignal } from '../../workflows/messages';
import { createFerryWorker } from '../../worker/create-worker';
import { until } from '../helpers/processes';
import { refusal } from '../helpers/refusal';
import { createTemporalTestEnv } from '../helpers/temporal';

const TASK_QUEUE = 'ferry-workflow-tests';

function pipelineFor(repoUrl: string): Pipeline {
  const loaded = parsePipelineText(examplePipelineYaml(repoUrl, ['alice', 'bob']));
  if (!loaded.ok) throw new Error(loaded.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return loaded.pipeline;
}

describe('pipeline and promotion workflows (real dev server, real git)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let ferry: FerryClient;
  let dir: string;
  let remote: string;

  const git = (...args: string[]): string =>
    execFileSync('git', ['--git-dir', remote, ...args], { encoding: 'utf8' }).trim();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-wf-'));
    env = await createTemporalTestEnv();
    remote = createExampleRepo(join(dir, 'gitops.git')).path;
    worker = await createFerryWorker({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUE,
      workspaceRoot: join(dir, 'workspaces'),
      // The test repositories are file:// remotes, which a worker uses only when its operator allows it.
      allowFileRepos: true,
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

  it('auto-promotes new freight into dev, renders it into env/dev and records it as the stage’s current freight', async () => {
    const spec = pipelineFor(`file://${remote}`);
    const applied = await ferry.applyPipeline(spec);
    assert.deepEqual(
      applied.stages.map((s) => s.name),
      ['dev', 'staging', 'prod'],
    );

    const { id, created } = await ferry.addFreight('guestbook', { guestbook: '1.4.2' });
    assert.equal(created, true);
    assert.deepEqual(await ferry.addFreight('guestbook', { guestbook: '1.4.2' }), { id, created: false });

    const promotionId = `promotion/guestbook/dev/${id}`;
    // The auto-promotion exists as soon as the freight is registered: a caller can look it up at once.
    assert.equal((await ferry.getPromotion(promotionId)).requestedBy, 'ferry/auto-promotion');
    const done = await until('dev promotion to finish', async () => {
      const s = await ferry.getPromotion(promotionId);
      return ['Succeeded', 'Failed'].includes(s.phase) ? s : undefined;
    });
    assert.equal(done.phase, 'Succeeded', done.error);
    assert.equal(done.requestedBy, 'ferry/auto-promotion');
    assert.equal(git('rev-parse', 'env/dev'), done.commit);
    assert.match(
      git('show', 'env/dev:deployment.yaml'),
      /image: registry\.example\.com\/team\/guestbook:1\.4\.2 # replaced on promotion/,
    );
    assert.match(git('log', '-1', '--format=%B', 'env/dev'), new RegExp(`Ferry-Promotion: ${promotionId}`));

    const status = await until('pipeline to record dev', async () => {
      const p = await ferry.getPipeline('guestbook');
      return p.stages.find((s) => s.name === 'dev')?.current ? p : undefined;
    });
    const dev = status.stages.find((s) => s.name === 'dev');
    assert.equal(dev?.current?.freight, id);
    assert.equal(dev?.current?.commit, done.commit);
    assert.deepEqual(status.freight.find((f) => f.id === id)?.verifiedIn, ['dev']);
  });

  it('refuses freight that has not passed the stages a stage comes after, naming them', async () => {
    const { id } = await ferry.addFreight('guestbook', { guestbook: '1.4.2' });
    const err = await refusal(ferry.promote('guestbook', 'prod', id, 'alice'));
    assert.equal(err.code, 'Conflict');
    assert.match(err.message, /not available to stage "prod": it has not succeeded in staging/);
    assert.equal((await refusal(ferry.promote('guestbook', 'qa', id, 'alice'))).code, 'NotFound');
    assert.equal((await refusal(ferry.promote('guestbook', 'staging', 'ffffffffffff', 'alice'))).code, 'NotFound');
  });

  it('runs a manual promotion once however often it is requested while it runs', async () => {
    const { id } = await ferry.addFreight('guestbook', { guestbook: '1.4.2' });
    const [first, second] = await Promise.all([
      ferry.promote('guestbook', 'staging', id, 'carol'),
      ferry.promote('guestbook', 'staging', id, 'carol'),
    ]);
    assert.equal(first.id, `promotion/guestbook/staging/${id}`);
    assert.equal(second.id, first.id);
    assert.deepEqual([first.existing, second.existing].sort(), [false, true]);
    const done = await ferry.waitForPromotion(first.id, { timeoutMs: 30_000 });
    assert.equal(done.phase, 'Succeeded', done.error);
    assert.equal(git('rev-list', '--count', 'env/staging'), '1');
  });

  it('holds a prod promotion for approval: refuses non-approvers with a reason (403), keeps waiting, then succeeds', async () => {
    const { id } = await ferry.addFreight('guestbook', { guestbook: '1.4.2' });
    const { id: promotionId } = await ferry.promote('guestbook', 'prod', id, 'carol');
    await until('approval gate', async () =>
      (await ferry.getPromotion(promotionId)).phase === 'AwaitingApproval' ? true : undefined,
    );

    const forbidden = await refusal(ferry.approve(promotionId, { user: 'mallory' }));
    assert.equal(forbidden.code, 'Forbidden');
    assert.match(forbidden.message, /"mallory" is not an approver of stage "prod" \(approvers: alice, bob\)/);
    assert.equal((await ferry.getPromotion(promotionId)).phase, 'AwaitingApproval');

    // The Temporal UI / CLI can find it by search attributes while it waits.
    const listed = await until('visibility', async () => {
      const ids: string[] = [];
      for await (const wf of env.client.workflow.list({
        query: `FerryStage = "prod" AND FerryPhase = "AwaitingApproval"`,
      })) {
        ids.push(wf.workflowId);
      }
      return ids.includes(promotionId) ? ids : undefined;
    });
    assert.ok(listed.includes(promotionId));

    const approved = await ferry.approve(promotionId, { user: 'alice', comment: 'ship it' });
    assert.equal(approved.approvals[0]?.user, 'alice');
    assert.equal(approved.approvals[0]?.comment, 'ship it');
    // The answer is the state after the approval: it completed the gate, so the promotion is past it.
    assert.notEqual(approved.phase, 'AwaitingApproval');
    assert.equal(approved.steps[0].status, 'Succeeded');
    const again = await refusal(ferry.approve(promotionId, { user: 'alice' }));
    assert.equal(again.code, 'Conflict');

    const done = await ferry.waitForPromotion(promotionId, { timeoutMs: 30_000 });
    assert.equal(done.phase, 'Succeeded', done.error);
    assert.deepEqual(
      done.steps.map((s) => [s.name, s.status]),
      [
        ['approval', 'Succeeded'],
        ['queue', 'Succeeded'],
        ['preflight', 'Succeeded'],
        ['render', 'Succeeded'],
      ],
    );
    assert.ok(done.steps.every((s) => s.startedAt && s.finishedAt));
    assert.match(git('show', 'env/prod:deployment.yaml'), /guestbook:1\.4\.2/);
  });

  it('accepts an approval sent as a signal, ignoring one from a non-approver', async () => {
    const { id } = await ferry.addFreight('guestbook', { guestbook: '1.4.2-signal' });
    assert.equal(
      (await ferry.waitForPromotion(`promotion/guestbook/dev/${id}`, { timeoutMs: 30_000 })).phase,
      'Succeeded',
    );
    assert.equal(
      (
        await ferry.waitForPromotion((await ferry.promote('guestbook', 'staging', id, 'carol')).id, {
          timeoutMs: 30_000,
        })
      ).phase,
      'Succeeded',
    );
    const { id: promotionId } = await ferry.promote('guestbook', 'prod', id, 'carol');
    await until('approval gate', async () =>
      (await ferry.getPromotion(promotionId)).phase === 'AwaitingApproval' ? true : undefined,
    );

    const handle = env.client.workflow.getHandle(promotionId);
    await handle.signal(approveSignal, { user: 'mallory' });
    await new Promise((r) => setTimeout(r, 500));
    const still = await ferry.getPromotion(promotionId);
    assert.equal(still.phase, 'AwaitingApproval');
    assert.deepEqual(still.approvals, []);

    await handle.signal(approveSignal, { user: 'bob', comment: 'via signal' });
    const done = await ferry.waitForPromotion(promotionId, { timeoutMs: 30_000 });
    assert.equal(done.phase, 'Succeeded', done.error);
    assert.deepEqual(
      done.approvals.map((a) => [a.user, a.comment]),
      [['bob', 'via signal']],
    );
  });

  it('fails a rejected promotion and cancels an aborted one, writing nothing', async () => {
    const { id } = await ferry.addFreight('guestbook', { guestbook: '1.4.3' });
    const dev = await ferry.waitForPromotion(`promotion/guestbook/dev/${id}`, { timeoutMs: 30_000 });
    assert.equal(dev.phase, 'Succeeded');
    const staging = await ferry.promote('guestbook', 'staging', id, 'carol');
    assert.equal((await ferry.waitForPromotion(staging.id, { timeoutMs: 30_000 })).phase, 'Succeeded');
    const prodBefore = git('rev-parse', 'env/prod');

    const { id: promotionId } = await ferry.promote('guestbook', 'prod', id, 'carol');
    await until('approval gate', async () =>
      (await ferry.getPromotion(promotionId)).phase === 'AwaitingApproval' ? true : undefined,
    );
    assert.equal((await refusal(ferry.reject(promotionId, { user: 'mallory' }))).code, 'Forbidden');
    await ferry.reject(promotionId, { user: 'bob', comment: 'not during the sale' });
    const rejected = await ferry.waitForPromotion(promotionId, { timeoutMs: 30_000 });
    assert.equal(rejected.phase, 'Rejected');
    assert.equal(rejected.error, 'rejected by bob: not during the sale');
    assert.equal((await refusal(ferry.approve(promotionId, { user: 'alice' }))).code, 'Conflict');

    // Promoting again after the first run finished starts a new run under the same id.
    const retry = await ferry.promote('guestbook', 'prod', id, 'carol');
    assert.equal(retry.id, promotionId);
    await until('approval gate', async () => {
      const s = await ferry.getPromotion(promotionId);
      return s.phase === 'AwaitingApproval' && !s.rejectedBy ? true : undefined;
    });
    await ferry.abort(promotionId, { user: 'carol', comment: 'wrong freight' });
    const aborted = await ferry.waitForPromotion(promotionId, { timeoutMs: 30_000 });
    assert.equal(aborted.phase, 'Aborted');
    assert.equal(aborted.steps.find((s) => s.name === 'approval')?.status, 'Cancelled');
    assert.equal((await refusal(ferry.abort(promotionId, { user: 'carol' }))).code, 'Conflict');
    assert.equal(git('rev-parse', 'env/prod'), prodBefore);

    // The pipeline learns of the end by a signal the promotion sends as it closes: give it a moment.
    const prod = await until(
      'the pipeline to record the aborted promotion',
      async () => {
        const stage = (await ferry.getPipeline('guestbook')).stages.find((s) => s.name === 'prod');
        return stage?.history[0]?.phase === 'Aborted' ? stage : undefined;
      },
      10_000,
    );
    assert.deepEqual(prod?.active, []);
    assert.equal(prod?.running, undefined);
    assert.deepEqual(
      prod?.history.slice(0, 2).map((h) => h.phase),
      ['Aborted', 'Rejected'],
    );
  });

  it('answers NotFound for unknown pipelines and promotions', async () => {
    assert.equal((await refusal(ferry.getPipeline('nope'))).code, 'NotFound');
    assert.equal((await refusal(ferry.getPromotion('promotion/guestbook/dev/000000000000'))).code, 'NotFound');
    assert.equal((await refusal(ferry.getPromotion('not-an-id'))).code, 'NotFound');
  });
});
