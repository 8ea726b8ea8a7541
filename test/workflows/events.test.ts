// Outbound events end to end on the real Temporal dev server: the real worker promotes into a real git remote,
// and the deliveries reach real HTTP servers on 127.0.0.1 (the signing receiver, a Slack-like webhook, the GitHub
// deployments stand-in) and a real release-train workflow.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { createSecretResolver } from '../../activities/secrets';
import { FerryClient } from '../../client/ferry-client';
import { createExampleRepo, examplePipelineYaml } from '../../dev/example';
import { parsePipelineText, validatePipeline } from '../../pipeline/load';
import type { Pipeline, Subscriber } from '../../pipeline/schema';
import { verifyCallbackToken } from '../../client/gate-callbacks';
import { createFerryWorker, WORKFLOWS_PATH } from '../../worker/create-worker';
import { gateCallbackEnricher } from '../../worker/gate-callback-events';
import type { PromotionStatus } from '../../workflows/messages';
import { deliveryWorkflowId, eventId, type FerryEvent } from '../../workflows/events';
import { startEventReceiver, type EventReceiver } from '../helpers/event-receiver';
import { until } from '../helpers/processes';
import { createTemporalTestEnv } from '../helpers/temporal';
import { startGitHubStandIn, type GitHubStandIn } from '../standin/github/server';

const TASK_QUEUE = 'ferry-events-tests';
const TRAIN_QUEUE = 'release-trains';
const HMAC = 'hmac-secret-value-3c1f9e77';
const GH_TOKEN = 'ghs_secretTokenValue0123456789';
const CALLBACK_KEY = 'callback-key-for-tests-0123456789abcdef';
const FAST_RETRY = { deadline: '10m', initialInterval: '100ms', maximumInterval: '1s' };

const durationMs = (s: PromotionStatus): number => Date.parse(s.finishedAt ?? '') - Date.parse(s.startedAt);

/** Every string in a fetched history, payload bytes decoded: what someone reading the history could see. */
function historyText(value: unknown, out: string[] = []): string[] {
  if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
  else if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) historyText(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) historyText(v, out);
  return out;
}

describe('outbound events (real dev server, real git, real HTTP receivers)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let trainWorker: Worker;
  let running: Promise<void>;
  let trainRunning: Promise<void>;
  let ferry: FerryClient;
  let dir: string;
  let base: Pipeline;
  let receiver: EventReceiver;
  let slack: EventReceiver;
  let github: GitHubStandIn;

  const apply = async (notify: Subscriber[], extraStages: Pipeline['spec']['stages'] = []) => {
    const loaded = validatePipeline({
      ...base,
      spec: { ...base.spec, stages: [...base.spec.stages, ...extraStages], notify },
    });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    await ferry.applyPipeline(loaded.pipeline);
  };
  const webhook = (): Subscriber => ({
    name: 'ci',
    target: { type: 'webhook', url: receiver.url },
    secret: 'hook',
    retry: FAST_RETRY,
  });
  const chat = (): Subscriber => ({ name: 'chat', target: { type: 'slack' }, secret: 'slack', retry: FAST_RETRY });
  const promoteAndWait = async (stage: string, freight: string): Promise<PromotionStatus> => {
    const { id } = await ferry.promote('guestbook', stage, freight, 'carol');
    return ferry.waitForPromotion(id, { timeoutMs: 60_000 });
  };
  const autoPromoted = (freight: string) =>
    ferry.waitForPromotion(`promotion/guestbook/dev/${freight}`, { timeoutMs: 60_000 });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-events-'));
    env = await createTemporalTestEnv();
    const remote = createExampleRepo(join(dir, 'gitops.git')).path;
    const loaded = parsePipelineText(examplePipelineYaml(`file://${remote}`, ['alice', 'bob']));
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    base = loaded.pipeline;
    receiver = await startEventReceiver({ secret: HMAC });
    slack = await startEventReceiver();
    github = await startGitHubStandIn({ token: GH_TOKEN, repositories: ['example-org/guestbook'] });
    worker = await createFerryWorker({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUE,
      workspaceRoot: join(dir, 'workspaces'),
      allowFileRepos: true,
      secrets: createSecretResolver({
        env: { FERRY_SECRET_HOOK_TOKEN: HMAC, FERRY_SECRET_GH_TOKEN: GH_TOKEN, FERRY_SECRET_SLACK_TOKEN: slack.url },
      }),
      temporalUiUrl: 'http://127.0.0.1:8233',
      notifyTimeoutMs: 1000,
      enrichEvent: gateCallbackEnricher({
        FERRY_CALLBACK_KEY: CALLBACK_KEY,
        FERRY_PUBLIC_URL: 'https://ferry.example.com',
      }),
    });
    trainWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: TRAIN_QUEUE,
      workflowsPath: require.resolve('../helpers/release-train-workflow'),
    });
    running = worker.run();
    trainRunning = trainWorker.run();
    ferry = FerryClient.fromClient(env.client, TASK_QUEUE);
  });

  after(async () => {
    worker?.shutdown();
    trainWorker?.shutdown();
    await Promise.all([running, trainRunning]);
    await env?.teardown();
    await receiver?.close();
    await slack?.close();
    await github?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const durations: Record<string, number[]> = { without: [], failing: [], stalled: [] };

  it('delivers each event exactly once per id when the receiver fails the first five deliveries; promotions end as without it', async (t) => {
    // Without subscribers: the reference outcome and duration.
    await apply([]);
    const { id: plain } = await ferry.addFreight('guestbook', { guestbook: '1.0.0' });
    const plainDev = await autoPromoted(plain);
    const plainStaging = await promoteAndWait('staging', plain);
    assert.equal(plainDev.phase, 'Succeeded', plainDev.error);
    assert.equal(plainStaging.phase, 'Succeeded', plainStaging.error);
    durations.without.push(durationMs(plainDev), durationMs(plainStaging));
    assert.equal(receiver.deliveries.length, 0);

    await apply([webhook(), chat()]);
    receiver.failNext(5, 503);
    const { id: freight } = await ferry.addFreight('guestbook', { guestbook: '1.1.0' });
    const dev = await autoPromoted(freight);
    const staging = await promoteAndWait('staging', freight);
    const { id: prodId } = await ferry.promote('guestbook', 'prod', freight, 'carol');
    await until('approval gate', async () =>
      (await ferry.getPromotion(prodId)).phase === 'AwaitingApproval' ? true : undefined,
    );
    await ferry.approve(prodId, { user: 'alice', comment: 'ship it' });
    const prod = await ferry.waitForPromotion(prodId, { timeoutMs: 60_000 });
    for (const p of [dev, staging, prod]) assert.equal(p.phase, 'Succeeded', p.error);
    durations.failing.push(durationMs(dev), durationMs(staging));

    const expected = [
      'guestbook dev.ferry.freight.registered',
      'guestbook/dev dev.ferry.promotion.started',
      'guestbook/dev dev.ferry.promotion.succeeded',
      'guestbook/staging dev.ferry.promotion.started',
      'guestbook/staging dev.ferry.promotion.succeeded',
      'guestbook/prod dev.ferry.promotion.started',
      'guestbook/prod dev.ferry.approval.requested',
      'guestbook/prod dev.ferry.promotion.approved',
      'guestbook/prod dev.ferry.promotion.succeeded',
    ];
    const accepted = await until('all nine events accepted', async () =>
      receiver.accepted.size >= expected.length ? [...receiver.accepted.values()] : undefined,
    );
    assert.deepEqual(accepted.map((e: FerryEvent) => `${e.subject} ${e.type}`).sort(), [...expected].sort());
    // Five refusals, then every event once: the retries carried the same ids, and no id was accepted twice.
    assert.equal(receiver.deliveries.filter((d) => d.status === 503).length, 5);
    assert.equal(receiver.duplicates.size, 0);
    assert.equal(new Set(receiver.deliveries.map((d) => d.id)).size, expected.length);
    assert.ok(receiver.deliveries.every((d) => d.signature?.ok === true));
    assert.ok(receiver.deliveries.every((d) => d.contentType === 'application/cloudevents+json'));

    // The ids are the promotion's: deterministic from workflow id, run id and the state change.
    const succeeded = accepted.find((e: FerryEvent) => e.subject === 'guestbook/prod' && e.type.endsWith('succeeded'));
    assert.equal(succeeded.id, eventId(prodId, succeeded.data.run.runId, 'dev.ferry.promotion.succeeded'));
    assert.equal(succeeded.data.freight.id, freight);
    assert.equal(succeeded.data.commit, prod.commit);
    assert.equal(succeeded.data.promotion.requestedBy, 'carol');
    assert.match(succeeded.data.run.url, /^http:\/\/127\.0\.0\.1:8233\/namespaces\/default\/workflows\/promotion%2F/);
    const approved = accepted.find((e: FerryEvent) => e.type === 'dev.ferry.promotion.approved');
    assert.deepEqual(approved.data.actor, { user: 'alice', comment: 'ship it' });

    // A second start of a delivery is refused by Temporal: an event has one delivery per subscriber.
    const deliveryId = deliveryWorkflowId('guestbook', 'ci', succeeded.id);
    await until('the delivery workflow to complete', async () =>
      (await env.client.workflow.getHandle(deliveryId).describe()).status.name === 'COMPLETED' ? true : undefined,
    );
    await assert.rejects(
      env.client.workflow.start('deliveryWorkflow', {
        taskQueue: TASK_QUEUE,
        workflowId: deliveryId,
        args: [{ pipeline: 'guestbook', subscriber: webhook(), event: succeeded }],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      }),
      WorkflowExecutionAlreadyStartedError,
    );

    // Slack got the same nine events as messages.
    await until('slack messages', async () => (slack.accepted.size >= expected.length ? true : undefined));
    assert.ok([...slack.accepted.values()].some((m) => /Approval needed: guestbook\/prod/.test(m.text)));
    t.diagnostic(
      `durations without subscribers ${durations.without.join(', ')} ms; failing receiver ${durations.failing.join(', ')} ms`,
    );
  });

  it('measures promotion durations with and without a receiver that fails its first five deliveries', async (t) => {
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const samples = { without: [] as number[], failing: [] as number[] };
    const freights: string[] = [];
    // Alternating rounds, so load on the machine hits both sides alike.
    for (let round = 0; round < 3; round++) {
      for (const side of ['without', 'failing'] as const) {
        await apply(side === 'failing' ? [webhook()] : []);
        if (side === 'failing') receiver.failNext(5, 503);
        const { id } = await ferry.addFreight('guestbook', { guestbook: `2.${round}.0-${side}` });
        const dev = await autoPromoted(id);
        const staging = await promoteAndWait('staging', id);
        for (const p of [dev, staging]) assert.equal(p.phase, 'Succeeded', p.error);
        samples[side].push(durationMs(dev), durationMs(staging));
        if (side === 'failing') freights.push(id);
      }
    }
    // Every event of the rounds with subscribers arrives, once.
    await until('the events of the measured promotions', async () => {
      const got = [...receiver.accepted.values()].filter((e) => freights.includes(e.data.freight.id));
      return got.length >= freights.length * 5 ? true : undefined;
    });
    assert.equal(receiver.duplicates.size, 0);
    t.diagnostic(
      `promotion duration, median of ${samples.without.length}: without subscribers ${median(samples.without)} ms ` +
        `(${samples.without.join(', ')}); receiver failing its first five deliveries ${median(samples.failing)} ms ` +
        `(${samples.failing.join(', ')})`,
    );
  });

  it('finishes a promotion while the receiver stalls every delivery; the events arrive once it recovers', async (t) => {
    await apply([webhook()]);
    receiver.stall();
    const before = receiver.accepted.size;
    const { id: freight } = await ferry.addFreight('guestbook', { guestbook: '1.2.0' });
    const dev = await autoPromoted(freight);
    assert.equal(dev.phase, 'Succeeded', dev.error);
    durations.stalled.push(durationMs(dev));
    // The promotion did not wait for its events: none of them has been accepted.
    assert.equal(receiver.accepted.size, before);
    await until('a stalled delivery', async () =>
      receiver.deliveries.some((d) => d.body?.data?.freight?.id === freight) ? true : undefined,
    );
    receiver.recover();
    const mine = await until('the three events of the new freight', async () => {
      const got = [...receiver.accepted.values()].filter((e) => e.data.freight.id === freight);
      return got.length >= 3 ? got : undefined;
    });
    assert.deepEqual(mine.map((e) => e.type).sort(), [
      'dev.ferry.freight.registered',
      'dev.ferry.promotion.started',
      'dev.ferry.promotion.succeeded',
    ]);
    assert.equal(receiver.duplicates.size, 0);
    t.diagnostic(`dev promotion with a stalled receiver: ${durations.stalled.join(', ')} ms`);
  });

  it('reports a rejection and an abort with who decided and the reason; a second run of a promotion has new ids', async () => {
    await apply([webhook()]);
    const { id: freight } = await ferry.addFreight('guestbook', { guestbook: '1.2.5' });
    assert.equal((await autoPromoted(freight)).phase, 'Succeeded');
    assert.equal((await promoteAndWait('staging', freight)).phase, 'Succeeded');
    const awaitingApproval = async (id: string) =>
      until('approval gate', async () =>
        (await ferry.getPromotion(id)).phase === 'AwaitingApproval' ? true : undefined,
      );

    const { id } = await ferry.promote('guestbook', 'prod', freight, 'carol');
    await awaitingApproval(id);
    await ferry.reject(id, { user: 'bob', comment: 'not on a Friday' });
    assert.equal((await ferry.waitForPromotion(id, { timeoutMs: 60_000 })).phase, 'Rejected');
    // The same promotion again is a new run of the same workflow id; aborted by its requester.
    const again = await ferry.promote('guestbook', 'prod', freight, 'carol');
    assert.equal(again.id, id);
    assert.equal(again.existing, false, 'a new run');
    await awaitingApproval(id);
    await ferry.abort(id, { user: 'carol', comment: 'wrong build' });
    assert.equal((await ferry.waitForPromotion(id, { timeoutMs: 60_000 })).phase, 'Aborted');

    const seen = () =>
      [...receiver.accepted.values()]
        .filter((e) => e.subject === 'guestbook/prod' && e.data.freight.id === freight)
        .map((e) => `${e.type}@${e.data.run.runId}`)
        .join(', ');
    const mine = await until('both runs’ events', async () => {
      const got = [...receiver.accepted.values()].filter(
        (e) => e.subject === 'guestbook/prod' && e.data.freight.id === freight,
      );
      return got.length >= 6 ? got : undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}; accepted so far: ${seen()}`);
    });
    const rejected = mine.find((e) => e.type === 'dev.ferry.promotion.rejected');
    const aborted = mine.find((e) => e.type === 'dev.ferry.promotion.aborted');
    assert.deepEqual(rejected.data.actor, { user: 'bob', comment: 'not on a Friday' });
    assert.equal(rejected.data.reason, 'Rejected');
    assert.equal(rejected.data.error, 'rejected by bob: not on a Friday');
    assert.deepEqual(aborted.data.actor, { user: 'carol', comment: 'wrong build' });
    assert.equal(aborted.data.reason, 'Aborted');
    const started = mine.filter((e) => e.type === 'dev.ferry.promotion.started');
    assert.equal(started.length, 2);
    assert.notEqual(started[0].id, started[1].id);
    assert.notEqual(started[0].data.run.runId, started[1].data.run.runId);
    assert.equal(receiver.duplicates.size, 0);
  });

  it('a rejection does not cancel the deliveries its promotion started (approval requested, still in flight)', async () => {
    await apply([webhook()]);
    const { id: freight } = await ferry.addFreight('guestbook', { guestbook: '1.2.7' });
    assert.equal((await autoPromoted(freight)).phase, 'Succeeded');
    assert.equal((await promoteAndWait('staging', freight)).phase, 'Succeeded');
    receiver.stall();
    const { id } = await ferry.promote('guestbook', 'prod', freight, 'carol');
    // The approval-requested event's delivery has reached the receiver and hangs there when the rejection comes.
    await until('the approval-requested delivery in flight', async () =>
      receiver.deliveries.some(
        (d) => d.body?.type === 'dev.ferry.approval.requested' && d.body?.data?.freight?.id === freight,
      )
        ? true
        : undefined,
    );
    await ferry.reject(id, { user: 'bob', comment: 'not now' });
    assert.equal((await ferry.waitForPromotion(id)).phase, 'Rejected');
    receiver.recover();
    const types = await until('the prod run’s three events', async () => {
      const got = [...receiver.accepted.values()]
        .filter((e) => e.subject === 'guestbook/prod' && e.data.freight.id === freight)
        .map((e) => e.type as string);
      return got.length >= 3 ? got.sort() : undefined;
    });
    assert.deepEqual(types, [
      'dev.ferry.approval.requested',
      'dev.ferry.promotion.rejected',
      'dev.ferry.promotion.started',
    ]);
    assert.equal(receiver.duplicates.size, 0);
  });

  it('reports a promotion terminated from outside as failed with reason EndedOutside', async () => {
    await apply([webhook()]);
    const { id: freight } = await ferry.addFreight('guestbook', { guestbook: '1.2.8' });
    assert.equal((await autoPromoted(freight)).phase, 'Succeeded');
    assert.equal((await promoteAndWait('staging', freight)).phase, 'Succeeded');
    const { id } = await ferry.promote('guestbook', 'prod', freight, 'carol');
    await until('approval gate', async () =>
      (await ferry.getPromotion(id)).phase === 'AwaitingApproval' ? true : undefined,
    );
    const { runId } = await env.client.workflow.getHandle(id).describe();
    await env.client.workflow.getHandle(id).terminate('an operator in the Temporal UI');
    const failed = await until('the failed event of the terminated run', async () =>
      [...receiver.accepted.values()].find(
        (e) => e.type === 'dev.ferry.promotion.failed' && e.data.promotion?.runId === runId,
      ),
    );
    assert.equal(failed.subject, 'guestbook/prod');
    assert.equal(failed.data.reason, 'EndedOutside');
    assert.equal(failed.data.promotion.requestedBy, 'carol');
    assert.equal(failed.data.freight.id, freight);
    assert.match(failed.data.error, /terminated or timed out/);
  });

  it('shows a succeeding and a failing promotion as GitHub deployment statuses, and signals a release-train workflow', async () => {
    const train = await env.client.workflow.start('releaseTrainWorkflow', {
      taskQueue: TRAIN_QUEUE,
      workflowId: 'release-train-2026-11',
      args: ['guestbook/dev'],
    });
    const qa = {
      ...base.spec.stages[0],
      name: 'qa',
      promotion: 'manual' as const,
      render: { ...base.spec.stages[0].render, to: 'env/qa' },
      // Its Argo CD credential is not configured on the worker: the promotion fails in preflight.
      argocd: {
        server: 'http://127.0.0.1:9',
        app: 'guestbook-qa',
        credentials: 'absent-argocd',
        timeout: '1m',
        degradedGrace: '30s',
        unhealthyGrace: '60s',
      },
    };
    await apply(
      [
        {
          name: 'environments',
          target: { type: 'github-deployment', repository: 'example-org/guestbook', apiUrl: github.url },
          secret: 'gh',
          retry: FAST_RETRY,
        },
        {
          name: 'train',
          target: { type: 'temporal', workflowId: 'release-train-2026-11', signal: 'ferry.event' },
          events: ['dev.ferry.promotion.*'],
        },
      ],
      [qa],
    );
    // GitHub's secondary rate limit answers the first request: the delivery waits the 2 s it asks for.
    github.rateLimitNext('secondary', 1, 2);
    const { id: freight } = await ferry.addFreight('guestbook', { guestbook: '1.3.0' });
    const dev = await autoPromoted(freight);
    assert.equal(dev.phase, 'Succeeded', dev.error);
    const failed = await promoteAndWait('qa', freight);
    assert.equal(failed.phase, 'Failed');

    const devSequence = await until('dev statuses', async () =>
      github.statusSequence('dev').length >= 2 ? github.statusSequence('dev') : undefined,
    );
    const qaSequence = await until('qa statuses', async () =>
      github.statusSequence('qa').length >= 2 ? github.statusSequence('qa') : undefined,
    );
    assert.deepEqual(
      devSequence.map((s) => s.split(':')[1]),
      ['in_progress', 'success'],
    );
    assert.deepEqual(
      qaSequence.map((s) => s.split(':')[1]),
      ['in_progress', 'failure'],
    );
    const limited = github.requests.find((r) => r.status === 429);
    assert.ok(limited, 'the rate limit was hit');
    // The same request again (other promotions' deliveries may call in between).
    const retried = github.requests.find(
      (r) => r.at > limited.at && r.path === limited.path && r.method === limited.method,
    );
    assert.ok(retried, 'the limited request was retried');
    assert.ok(retried.at - limited.at >= 2000, `retried ${retried.at - limited.at} ms after the 429`);
    const qaDeployment = github.deployments.find((d) => d.environment === 'qa')!;
    const failure = github.statuses.get(qaDeployment.id)!.at(-1)!;
    assert.match(failure.description, /^CredentialNotFound: /);
    assert.match(failure.log_url, /\/workflows\/promotion%2Fguestbook%2Fqa%2F/);

    const { succeeded, received } = await train.result();
    assert.equal(succeeded.type, 'dev.ferry.promotion.succeeded');
    assert.equal(succeeded.subject, 'guestbook/dev');
    assert.equal(succeeded.data.freight.id, freight);
    assert.equal(succeeded.data.commit, dev.commit);
    assert.ok(received.includes('dev.ferry.promotion.started'));

    // Events after the train closed are not retried for a day: the delivery fails at once, saying why.
    const late = await until('a delivery to the closed train to fail', async () => {
      for await (const wf of env.client.workflow.list({
        query: `WorkflowType = "deliveryWorkflow" AND ExecutionStatus = "Failed"`,
      })) {
        if (wf.workflowId.startsWith('event/guestbook/train/')) return wf.workflowId;
      }
      return undefined;
    });
    const error = await env.client.workflow
      .getHandle(late)
      .result()
      .then(
        () => undefined,
        (err: Error & { cause?: Error & { cause?: Error } }) => err.cause?.cause?.message ?? '',
      );
    assert.match(error ?? '', /workflow "release-train-2026-11" has closed \(COMPLETED\); nothing listens/);
  });

  it('carries a callback gate’s one-time URL in dev.ferry.gate.waiting, added at delivery, never in history', async () => {
    const uat = {
      ...base.spec.stages[0],
      name: 'uat',
      promotion: 'manual' as const,
      render: { ...base.spec.stages[0].render, to: 'env/uat' },
      gates: [{ name: 'e2e', callback: { timeout: '10m' } }],
    };
    await apply([webhook()], [uat] as Pipeline['spec']['stages']);
    const { id: freight } = await ferry.addFreight('guestbook', { guestbook: '1.3.5' });
    assert.equal((await autoPromoted(freight)).phase, 'Succeeded');
    const { id } = await ferry.promote('guestbook', 'uat', freight, 'carol');
    const waiting = await until('the gate.waiting event', async () =>
      [...receiver.accepted.values()].find((e) => e.type === 'dev.ferry.gate.waiting' && e.data.promotion.id === id),
    );
    assert.equal(waiting.subject, 'guestbook/uat');
    assert.equal(waiting.data.gate.name, 'e2e');
    assert.equal(waiting.data.gate.timeout, '10m');
    const url: string = waiting.data.gate.callbackUrl;
    assert.match(url, /^https:\/\/ferry\.example\.com\/api\/v1\/callbacks\/v1\./);
    const token = url.split('/').pop() as string;
    assert.deepEqual(verifyCallbackToken(Buffer.from(CALLBACK_KEY), token), {
      promotionId: id,
      runId: waiting.data.promotion.runId,
      gate: 'e2e',
    });
    await ferry.abort(id, { user: 'carol' });
    assert.equal((await ferry.waitForPromotion(id, { timeoutMs: 60_000 })).phase, 'Aborted');
    const delivery = deliveryWorkflowId('guestbook', 'ci', waiting.id);
    for (const wf of [id, delivery]) {
      const text = historyText(await env.client.workflow.getHandle(wf).fetchHistory()).join('\n');
      assert.ok(text.includes('gate.waiting'), `${wf} holds the event`);
      assert.ok(!text.includes(token), `${wf}'s history holds the callback token`);
    }
  });

  it('replays the histories it made: promotions and the pipeline with events, and ordered deliveries', async () => {
    const ids: string[] = ['pipeline/guestbook'];
    for await (const wf of env.client.workflow.list({ query: `FerryPipeline = "guestbook"` })) {
      if (/^promotion\/guestbook\/(prod|qa|uat)\//.test(wf.workflowId)) ids.push(wf.workflowId);
      if (wf.workflowId.startsWith('event/guestbook/environments/') && ids.every((i) => !i.startsWith('event/')))
        ids.push(wf.workflowId);
    }
    assert.ok(ids.some((id) => id.startsWith('promotion/guestbook/prod/')));
    assert.ok(ids.some((id) => id.startsWith('event/')));
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH });
    for (const id of ids) {
      const history = await env.client.workflow.getHandle(id).fetchHistory();
      await Worker.runReplayHistory({ workflowBundle, replayName: id }, history);
    }
  });

  it('keeps every secret out of workflow history: HMAC key, GitHub token, Slack webhook URL', async () => {
    const ids: string[] = [];
    for await (const wf of env.client.workflow.list({ query: `FerryPipeline = "guestbook"` })) ids.push(wf.workflowId);
    const deliveries = ids.filter((id) => id.startsWith('event/guestbook/'));
    assert.ok(deliveries.some((id) => id.startsWith('event/guestbook/ci/')));
    assert.ok(deliveries.some((id) => id.startsWith('event/guestbook/chat/')));
    assert.ok(deliveries.some((id) => id.startsWith('event/guestbook/environments/')));
    assert.ok(ids.some((id) => id.startsWith('promotion/')));
    for (const id of ids) {
      const text = historyText(await env.client.workflow.getHandle(id).fetchHistory()).join('\n');
      // What the history does hold, so the search below reads the right text.
      if (id.startsWith('event/guestbook/ci/')) assert.ok(text.includes(receiver.url), `${id} names its target`);
      for (const secret of [HMAC, GH_TOKEN, slack.url]) {
        assert.ok(!text.includes(secret), `${id}'s history holds a secret`);
      }
    }
  });
});
