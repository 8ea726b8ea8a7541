// What Ferry promises about promotions, on the real dev server with real git: decisions are final and only the
// right people abort; the same promotion asked for 50 times runs once; no freight a promotion waits on is dropped;
// a lock holder ended from outside frees its stage; nothing is written before the preflight passed; a retrying
// step shows its attempt; two pipelines never own one branch. The preflight activity is replaced here per pipeline
// (failing, retrying, holding the stage) so each behaviour can be produced on demand; git is real.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import type { PreflightInput, PreflightResult } from '../../activities/types';
import { createSecretResolver } from '../../activities/secrets';
import { FerryError } from '../../client/errors';
import { FerryClient } from '../../client/ferry-client';
import { createExampleRepo } from '../../dev/example';
import { validatePipeline } from '../../pipeline/load';
import type { Pipeline } from '../../pipeline/schema';
import { WORKFLOWS_PATH } from '../../worker/create-worker';
import { applySpecUpdate } from '../../workflows/messages';
import { connectWithEarlyUpdateAnswers } from '../helpers/early-update-answers';
import { until } from '../helpers/processes';
import { refusal } from '../helpers/refusal';
import { createTemporalTestEnv } from '../helpers/temporal';

const TASK_QUEUE = 'ferry-keeps-its-word';
const IMAGE = 'registry.example.com/team/guestbook';

describe('Ferry keeps its word (real dev server, real git)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let ferry: FerryClient;
  let dir: string;
  /** Per pipeline, what the preflight does instead of the real checks. */
  const preflights = new Map<string, (input: PreflightInput) => Promise<PreflightResult>>();

  /** A pipeline over its own example repository: one stage `stage`, writing env/<stage>. */
  function onePipeline(
    name: string,
    stage: { name: string; promotion?: 'auto' | 'manual'; approval?: { required: number; approvers: string[] } },
    repoUrl?: string,
  ): { pipeline: Pipeline; remote: string } {
    const remote = join(dir, `${name}.git`);
    const url = repoUrl ?? createExampleRepo(remote).url;
    const loaded = validatePipeline({
      apiVersion: 'ferry.dev/v1alpha1',
      kind: 'Pipeline',
      metadata: { name },
      spec: {
        repo: { url },
        artifacts: [{ name: 'guestbook', image: IMAGE }],
        stages: [
          {
            name: stage.name,
            ...(stage.promotion ? { promotion: stage.promotion } : {}),
            ...(stage.approval ? { approval: stage.approval } : {}),
            render: { strategy: 'branch', from: 'apps/guestbook/overlays/prod', to: `env/${stage.name}` },
          },
        ],
      },
    });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    return { pipeline: loaded.pipeline, remote };
  }

  const branchHead = (remote: string, branch: string): string => {
    try {
      return execFileSync('git', ['--git-dir', remote, 'rev-parse', '--verify', '-q', `refs/heads/${branch}`], {
        encoding: 'utf8',
      }).trim();
    } catch {
      return '(none)';
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-word-'));
    env = await createTemporalTestEnv();
    const real = createActivities({
      workspaceRoot: join(dir, 'workspaces'),
      secrets: createSecretResolver(),
      allowFileRepos: true,
    });
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUE,
      workflowsPath: WORKFLOWS_PATH,
      activities: {
        ...real,
        preflightPromotion: (input: PreflightInput) =>
          (preflights.get(input.pipeline) ?? real.preflightPromotion)(input),
      },
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

  it('takes exactly one of an approval and a rejection sent at the same moment, 20 times, and refuses the late one', async () => {
    const { pipeline } = onePipeline('decide', {
      name: 'prod',
      approval: { required: 1, approvers: ['alice', 'bob'] },
    });
    await ferry.applyPipeline(pipeline);
    const ids = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const { id: freight } = await ferry.addFreight('decide', { guestbook: `1.0.${i}` });
        return (await ferry.promote('decide', 'prod', freight, 'carol')).id;
      }),
    );
    await until('all 20 await approval', async () =>
      (await Promise.all(ids.map((id) => ferry.getPromotion(id)))).every((p) => p.phase === 'AwaitingApproval')
        ? true
        : undefined,
    );

    const races = await Promise.all(
      ids.map((id) =>
        Promise.allSettled([
          ferry.approve(id, { user: 'alice', comment: 'ship it' }),
          ferry.reject(id, { user: 'bob', comment: 'not yet' }),
        ]),
      ),
    );
    for (const [i, [approved, rejected]] of races.entries()) {
      const accepted = [approved, rejected].filter((r) => r.status === 'fulfilled').length;
      assert.equal(accepted, 1, `promotion ${ids[i]}: ${accepted} decisions accepted`);
      const loser = approved.status === 'rejected' ? approved : (rejected as PromiseRejectedResult);
      assert.ok(loser.reason instanceof FerryError, String(loser.reason));
      assert.equal(loser.reason.code, 'Conflict');
      assert.match(loser.reason.message, approved.status === 'fulfilled' ? /approved by alice/ : /rejected by bob/);
    }

    // The approved ones run one after another on the stage; how long that takes depends on the machine's load, so
    // the wait ends with the promotions (the default bound is 10 minutes), not at a deadline sized for an idle box.
    const done = await Promise.all(ids.map((id) => ferry.waitForPromotion(id)));
    for (const [i, status] of done.entries()) {
      // The record never contradicts the outcome.
      if (races[i][0].status === 'fulfilled') {
        assert.equal(status.phase, 'Succeeded', status.error);
        assert.equal(status.rejectedBy, undefined);
      } else {
        assert.equal(status.phase, 'Rejected');
        assert.equal(status.reason, 'Rejected');
        assert.deepEqual(status.approvals, []);
      }
    }
    const rejectedOne = ids.find((_, i) => races[i][1].status === 'fulfilled');
    if (rejectedOne) {
      // After the promotion ended too: the 409 still names the decision.
      const late = await refusal(ferry.approve(rejectedOne, { user: 'alice' }));
      assert.equal(late.code, 'Conflict');
      assert.match(late.message, /cannot be approved: it was rejected by bob/);
    }
  });

  it('refuses an approval after a rejection with a 409 naming the rejection, before the promotion has ended', async () => {
    const { id: freight } = await ferry.addFreight('decide', { guestbook: '2.0.0' });
    const { id } = await ferry.promote('decide', 'prod', freight, 'carol');
    await until('awaiting approval', async () =>
      (await ferry.getPromotion(id)).phase === 'AwaitingApproval' ? true : undefined,
    );
    await ferry.reject(id, { user: 'bob' });
    const late = await refusal(ferry.approve(id, { user: 'alice' }));
    assert.equal(late.code, 'Conflict');
    assert.match(late.message, /rejected by bob/);
    assert.equal((await ferry.waitForPromotion(id, { timeoutMs: 30_000 })).phase, 'Rejected');
  });

  it('lets only the requester, an approver or an admin abort, and says so to anyone else', async () => {
    const { id: freight } = await ferry.addFreight('decide', { guestbook: '2.0.1' });
    const { id } = await ferry.promote('decide', 'prod', freight, 'carol');
    await until('awaiting approval', async () =>
      (await ferry.getPromotion(id)).phase === 'AwaitingApproval' ? true : undefined,
    );
    const forbidden = await refusal(ferry.abort(id, { user: 'mallory' }));
    assert.equal(forbidden.code, 'Forbidden');
    assert.match(
      forbidden.message,
      /only its requester \(carol\), the approvers of stage "prod" \(alice, bob\) or an admin may/,
    );
    const aborted = await ferry.abort(id, { user: 'root', admin: true, comment: 'freeze' });
    assert.equal(aborted.abortedBy?.user, 'root');
    const done = await ferry.waitForPromotion(id, { timeoutMs: 30_000 });
    assert.deepEqual([done.phase, done.reason], ['Aborted', 'Aborted']);
  });

  it('starts one run for 50 identical promote requests at once, without a lock handshake on the free stage', async () => {
    const { pipeline, remote } = onePipeline('idem', { name: 'qa' });
    await ferry.applyPipeline(pipeline);
    const { id: freight } = await ferry.addFreight('idem', { guestbook: '1.0.0' });
    const answers = await Promise.all(Array.from({ length: 50 }, () => ferry.promote('idem', 'qa', freight, 'carol')));
    assert.equal(new Set(answers.map((a) => a.id)).size, 1);
    assert.equal(answers.filter((a) => !a.existing).length, 1);
    const id = answers[0].id;
    assert.equal((await ferry.waitForPromotion(id, { timeoutMs: 30_000 })).phase, 'Succeeded');
    // Asked again once it is current: the same promotion, not a new run; `force` asks for one.
    assert.deepEqual(await ferry.promote('idem', 'qa', freight, 'carol'), { id, existing: true });
    const history = await env.client.workflow.getHandle(id).fetchHistory();
    assert.equal(history.events?.filter((e) => e.workflowExecutionStartedEventAttributes).length, 1);
    assert.ok(
      !JSON.stringify(history).includes('stageLockRequested'),
      'a promotion into a free stage does not ask for the lock',
    );
    assert.equal(
      execFileSync('git', ['--git-dir', remote, 'rev-list', '--count', 'env/qa'], { encoding: 'utf8' }).trim(),
      '1',
    );
    const forced = await ferry.promote('idem', 'qa', freight, 'carol', { force: true });
    assert.deepEqual(forced, { id, existing: false });
    assert.equal((await ferry.waitForPromotion(id, { timeoutMs: 30_000 })).phase, 'Succeeded');
  });

  it('takes 60 requests at once from three API processes, more than Temporal admits in flight, and drops none', async () => {
    const { pipeline } = onePipeline('burst', { name: 'qa', approval: { required: 1, approvers: ['alice'] } });
    await ferry.applyPipeline(pipeline);
    // Three clients, like three API replicas: each keeps at most a few updates in flight, together more than the
    // server's limit of 10 per workflow, so some are turned away and must be retried, not reported as errors.
    const clients = [
      ferry,
      FerryClient.fromClient(env.client, TASK_QUEUE),
      FerryClient.fromClient(env.client, TASK_QUEUE),
    ];
    const answers = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) =>
        clients[i % 3]
          .addFreight('burst', { guestbook: `3.0.${i}` })
          .then(({ id }) => clients[(i + 1) % 3].promote('burst', 'qa', id, 'carol')),
      ),
    );
    const failed = answers.flatMap((a) => (a.status === 'rejected' ? [String(a.reason)] : []));
    assert.deepEqual(failed, []);
    const status = await ferry.getPipeline('burst');
    assert.equal(status.freight.length, 60);
    assert.equal(status.stages.find((s) => s.name === 'qa')?.active.length, 60);
  });

  it('answers a promote request accepted by a pipeline run that then continued as new, from the run that took it', async () => {
    const { pipeline } = onePipeline('carried', { name: 'qa' });
    await ferry.applyPipeline(pipeline);
    const pipelineHandle = env.client.workflow.getHandle('pipeline/carried');
    const firstRun = (await pipelineHandle.describe()).runId;
    const early = await connectWithEarlyUpdateAnswers(env.address);
    try {
      const loaded = FerryClient.fromClient(new Client({ connection: early.connection }), TASK_QUEUE);
      const { id: freight } = await ferry.addFreight('carried', { guestbook: '5.0.0' });
      // Accepted by the first run; the answer to it is polled for only after that run continued as new.
      const promoted = loaded.promote('carried', 'qa', freight, 'carol');
      await until('the promote request accepted', async () =>
        (await ferry.getPipeline('carried')).stages[0].active.length === 1 ? true : undefined,
      );
      for (let i = 0; (await pipelineHandle.describe()).runId === firstRun; i += 10) {
        assert.ok(i < 400, 'the pipeline continued as new');
        await Promise.all(
          Array.from({ length: 10 }, (_, k) => ferry.addFreight('carried', { guestbook: `5.1.${i + k}` })),
        );
      }
      early.releasePolls();
      const answer = await promoted;
      assert.equal(answer.existing, false);
      assert.match(answer.id, /^promotion\/carried\/qa\//);
      assert.ok(early.polledRuns.length > 0, 'the client polled for the outcome');
      assert.deepEqual(new Set(early.polledRuns), new Set([firstRun]));
      assert.equal((await ferry.waitForPromotion(answer.id, { timeoutMs: 30_000 })).phase, 'Succeeded');
    } finally {
      early.releasePolls();
      await early.connection.close();
    }
  });

  it('checks freight in the pipeline’s update itself and returns every bad artifact by path', async () => {
    const { pipeline } = onePipeline('fields', { name: 'qa' });
    await ferry.applyPipeline(pipeline);
    const refused = await refusal(
      ferry.addFreight('fields', { guestbok: '1.0.0', extra: 'not a tag!' } as Record<string, string>),
    );
    assert.equal(refused.code, 'InvalidArgument');
    assert.equal(refused.message, 'freight does not match the artifacts of pipeline "fields"');
    assert.deepEqual(
      refused.details?.errors?.map((e) => e.path),
      ['artifacts.guestbok', 'artifacts.extra', 'artifacts.guestbook'],
    );
    assert.equal((await refusal(ferry.addFreight('nope', { guestbook: '1.0.0' }))).code, 'NotFound');
    assert.deepEqual((await ferry.getPipeline('fields')).freight, []);
  });

  it('keeps 150 freights waiting for approval: 150 promotions wait, none dropped from the catalogue', async () => {
    const { pipeline } = onePipeline('many', {
      name: 'prod',
      promotion: 'auto',
      approval: { required: 1, approvers: ['alice'] },
    });
    await ferry.applyPipeline(pipeline);
    const versions = Array.from({ length: 150 }, (_, i) => `3.0.${i}`);
    for (let i = 0; i < versions.length; i += 25) {
      const answers = await Promise.all(
        versions.slice(i, i + 25).map((v) => ferry.addFreight('many', { guestbook: v })),
      );
      assert.ok(answers.every((a) => a.created));
    }
    const status = await ferry.getPipeline('many');
    assert.equal(status.freight.length, 150);
    assert.equal(status.stages[0].active.length, 150);
    const waiting = await until('150 promotions waiting for approval', async () => {
      const ids = status.stages[0].active.map((p) => p.id);
      const phases = await Promise.all(ids.map((id) => ferry.getPromotion(id).then((p) => p.phase)));
      const count = phases.filter((p) => p === 'AwaitingApproval').length;
      return count === 150 ? count : undefined;
    });
    assert.equal(waiting, 150);
  });

  it('frees the stage of a lock holder terminated from outside and grants the next promotion within seconds', async () => {
    const { pipeline } = onePipeline('ended', { name: 'qa' });
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    preflights.set('ended', async () => {
      if (++calls === 1) await held; // the first promotion holds the stage here
      return { checked: [] };
    });
    await ferry.applyPipeline(pipeline);
    const a = (await ferry.addFreight('ended', { guestbook: '4.0.0' })).id;
    const b = (await ferry.addFreight('ended', { guestbook: '4.0.1' })).id;
    const first = (await ferry.promote('ended', 'qa', a, 'carol')).id;
    await until('first holds the stage', async () =>
      (await ferry.getPromotion(first)).steps.find((s) => s.name === 'preflight')?.status === 'Running'
        ? true
        : undefined,
    );
    const second = (await ferry.promote('ended', 'qa', b, 'carol')).id;
    await until('second queued', async () =>
      (await ferry.getPipeline('ended')).stages[0].queue.some((q) => q.id === second) ? true : undefined,
    );

    await env.client.workflow.getHandle(first).terminate('stuck');
    const terminatedAt = Date.now();
    const next = await ferry.waitForPromotion(second, { timeoutMs: 30_000 });
    release();
    assert.equal(next.phase, 'Succeeded', next.error);
    assert.ok(Date.now() - terminatedAt < 10_000, `the next one took ${Date.now() - terminatedAt} ms`);
    const stage = (await ferry.getPipeline('ended')).stages[0];
    const ended = stage.history.find((h) => h.id === first);
    assert.equal(ended?.reason, 'EndedOutside');
    assert.equal(stage.current?.freight, b);
  });

  it('frees the stage of a lock holder that an earlier run of the pipeline started, once it is terminated', async () => {
    const { pipeline } = onePipeline('carried', { name: 'qa' });
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    preflights.set('carried', async () => {
      if (++calls === 1) await held;
      return { checked: [] };
    });
    await ferry.applyPipeline(pipeline);
    const a = (await ferry.addFreight('carried', { guestbook: '4.1.0' })).id;
    const b = (await ferry.addFreight('carried', { guestbook: '4.1.1' })).id;
    const first = (await ferry.promote('carried', 'qa', a, 'carol')).id;
    const second = (await ferry.promote('carried', 'qa', b, 'carol')).id;
    await until('second queued behind the first', async () =>
      (await ferry.getPipeline('carried')).stages[0].queue.some((q) => q.id === second) ? true : undefined,
    );
    // Grow the pipeline's history until it continues as new: the new run did not start the holder.
    const handle = env.client.workflow.getHandle('pipeline/carried');
    const firstRun = (await handle.describe()).runId;
    while ((await handle.describe()).runId === firstRun)
      for (let i = 0; i < 20; i++) await handle.executeUpdate(applySpecUpdate, { args: [pipeline] });
    assert.equal((await ferry.getPipeline('carried')).stages[0].running?.id, first);

    await env.client.workflow.getHandle(first).terminate('stuck');
    const terminatedAt = Date.now();
    const next = await ferry.waitForPromotion(second, { timeoutMs: 30_000 });
    release();
    assert.equal(next.phase, 'Succeeded', next.error);
    assert.ok(Date.now() - terminatedAt < 15_000, `the next one took ${Date.now() - terminatedAt} ms`);
  });

  it('fails a promotion whose preflight fails, with its message and reason, and writes nothing', async () => {
    const { pipeline, remote } = onePipeline('preflight', { name: 'qa' });
    preflights.set('preflight', async () => {
      throw ApplicationFailure.nonRetryable(
        'Argo CD app guestbook-qa does not exist on https://argocd.example.com; create it or fix argocd.app',
        'ArgoAppNotFound',
      );
    });
    await ferry.applyPipeline(pipeline);
    const before = branchHead(remote, 'env/qa');
    const { id: freight } = await ferry.addFreight('preflight', { guestbook: '5.0.0' });
    const { id } = await ferry.promote('preflight', 'qa', freight, 'carol');
    const done = await ferry.waitForPromotion(id, { timeoutMs: 30_000 });
    assert.equal(done.phase, 'Failed');
    assert.equal(done.reason, 'ArgoAppNotFound');
    assert.match(done.error ?? '', /guestbook-qa does not exist/);
    const step = done.steps.find((s) => s.name === 'preflight');
    assert.deepEqual([step?.status, step?.reason], ['Failed', 'ArgoAppNotFound']);
    assert.equal(done.steps.find((s) => s.name === 'render')?.status, 'Skipped');
    assert.equal(branchHead(remote, 'env/qa'), before);
    const history = (await ferry.getPipeline('preflight')).stages[0].history[0];
    assert.deepEqual([history.phase, history.reason], ['Failed', 'ArgoAppNotFound']);
  });

  it('shows the attempt and the last error of a step while it retries', async () => {
    const { pipeline } = onePipeline('retry', { name: 'qa' });
    let attempts = 0;
    let healthy = false;
    preflights.set('retry', async () => {
      attempts++;
      if (!healthy) throw new Error(`could not reach https://argocd.example.com (attempt ${attempts})`);
      return { checked: ['argocd reachable'] };
    });
    await ferry.applyPipeline(pipeline);
    const { id: freight } = await ferry.addFreight('retry', { guestbook: '6.0.0' });
    const { id } = await ferry.promote('retry', 'qa', freight, 'carol');
    const step = await until('the retrying step shows its attempt', async () => {
      const s = (await ferry.getPromotion(id)).steps.find((x) => x.name === 'preflight');
      return s?.status === 'Running' && (s.attempt ?? 0) >= 2 ? s : undefined;
    });
    assert.match(step.lastError ?? '', /could not reach https:\/\/argocd\.example\.com/);
    healthy = true;
    assert.equal((await ferry.waitForPromotion(id)).phase, 'Succeeded');
  });

  it('refuses a pipeline that would write a branch another pipeline owns in the same repository', async () => {
    const owner = await ferry.getPipeline('idem');
    const { pipeline } = onePipeline('intruder', { name: 'qa' }, `${owner.spec.spec.repo.url}/`);
    const refused = await until('the owner is listed', async () => {
      const err = await ferry.applyPipeline(pipeline).then(
        () => undefined,
        (e: unknown) => e,
      );
      return err instanceof FerryError ? err : undefined;
    });
    assert.equal(refused.code, 'InvalidArgument');
    assert.equal(refused.details?.errors?.[0]?.path, 'spec.stages[0].render.to');
    assert.match(refused.details?.errors?.[0]?.message ?? '', /pipeline "idem" \(stage "qa"\)/);
  });
});
