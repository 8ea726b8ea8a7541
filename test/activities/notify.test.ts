// The notify activity as a plain function against real HTTP servers: the signed webhook receiver, a Slack-like
// incoming webhook, and the GitHub deployments stand-in. (Delivery through Temporal: test/workflows/events.test.ts.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { createNotifyActivities } from '../../activities/notify';
import { createSecretResolver } from '../../activities/secrets';
import { buildEvent, type FerryEvent, type FerryEventType, type Subscriber } from '../../workflows/events';
import { startEventReceiver, type EventReceiver } from '../helpers/event-receiver';
import { startGitHubStandIn, type GitHubStandIn } from '../standin/github/server';

const HMAC = 'hmac-key-for-tests-7f3a9c';
const GH_TOKEN = 'ghs_testtoken0123456789abcdef';

function promotionEvent(type: FerryEventType, runId: string, extra: Record<string, unknown> = {}): FerryEvent {
  const workflowId = 'promotion/guestbook/dev/abc123def456';
  return buildEvent({
    type,
    time: '2026-11-28T10:00:00.000Z',
    data: {
      pipeline: 'guestbook',
      stage: 'dev',
      freight: { id: 'abc123def456', artifacts: { guestbook: '1.4.2' } },
      promotion: {
        id: workflowId,
        runId,
        phase: 'Succeeded',
        requestedBy: 'carol',
        startedAt: '2026-11-28T10:00:00.000Z',
      },
      branch: 'env/dev',
      ...extra,
    },
    run: { namespace: 'default', workflowId, runId },
  });
}

async function failure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the delivery to fail');
}

describe('notify activities (real HTTP receivers)', () => {
  let receiver: EventReceiver;
  let slack: EventReceiver;
  let github: GitHubStandIn;
  let notify: ReturnType<typeof createNotifyActivities>;
  let secrets: ReturnType<typeof createSecretResolver>;

  before(async () => {
    receiver = await startEventReceiver({ secret: HMAC });
    slack = await startEventReceiver();
    github = await startGitHubStandIn({ token: GH_TOKEN, repositories: ['example-org/guestbook'] });
    secrets = createSecretResolver({
      env: {
        FERRY_SECRET_HOOK_TOKEN: HMAC,
        FERRY_SECRET_SLACK_TOKEN: slack.url,
        FERRY_SECRET_GH_TOKEN: GH_TOKEN,
        FERRY_SECRET_GH_WRONG_TOKEN: 'ghs_wrong_token_0000',
      },
    });
    notify = createNotifyActivities({
      secrets,
      temporalUiUrl: 'http://ui.example.com',
      requestTimeoutMs: 2000,
      enrich: (event) =>
        event.type === 'dev.ferry.gate.waiting'
          ? {
              ...event,
              data: { ...event.data, gate: { ...event.data.gate!, callbackUrl: 'https://ferry/cb/one-time' } },
            }
          : event,
    });
  });

  after(async () => {
    await receiver?.close();
    await slack?.close();
    await github?.close();
  });

  const webhook: Subscriber = {
    name: 'ci',
    target: { type: 'webhook', url: '' },
    secret: 'hook',
  };

  it('POSTs the CloudEvent signed, as application/cloudevents+json, with the run link added', async () => {
    const event = promotionEvent('dev.ferry.promotion.succeeded', 'r-1');
    const result = await notify.deliverEvent({
      pipeline: 'guestbook',
      subscriber: { ...webhook, target: { type: 'webhook', url: receiver.url } },
      event,
    });
    assert.deepEqual(result, {
      subscriber: 'ci',
      eventId: event.id,
      outcome: 'delivered',
      detail: 'HTTP 202',
      attempts: 1,
    });
    const got = receiver.deliveries.at(-1)!;
    assert.deepEqual(got.signature, { ok: true });
    assert.equal(got.contentType, 'application/cloudevents+json');
    assert.equal(got.body.id, event.id);
    assert.equal(
      got.body.data.run.url,
      'http://ui.example.com/namespaces/default/workflows/promotion%2Fguestbook%2Fdev%2Fabc123def456/r-1/history',
    );
  });

  it('lets the enrich hook add what is not in history (a gate callback URL) before signing', async () => {
    const event = promotionEvent('dev.ferry.gate.waiting', 'r-1', { gate: { name: 'e2e', type: 'callback' } });
    await notify.deliverEvent({
      pipeline: 'guestbook',
      subscriber: { ...webhook, target: { type: 'webhook', url: receiver.url } },
      event,
    });
    const got = receiver.deliveries.at(-1)!;
    assert.deepEqual(got.signature, { ok: true });
    assert.equal(got.body.data.gate.callbackUrl, 'https://ferry/cb/one-time');
    assert.equal((event.data.gate as Record<string, unknown>).callbackUrl, undefined);
  });

  it('fails retryably when the receiver answers 503, and for good when it refuses the signature', async () => {
    receiver.failNext(1, 503);
    const event = promotionEvent('dev.ferry.promotion.started', 'r-2');
    const subscriber: Subscriber = { ...webhook, target: { type: 'webhook', url: receiver.url } };
    const busy = await failure(notify.deliverEvent({ pipeline: 'guestbook', subscriber, event }));
    assert.equal(busy.nonRetryable, false);
    assert.equal(busy.type, 'DeliveryServerError');
    assert.match(busy.message, /subscriber "ci" \(webhook http:\/\/127\.0\.0\.1:\d+\/events\): POST answered 503/);

    const wrongKey = createNotifyActivities({
      secrets: createSecretResolver({ env: { FERRY_SECRET_HOOK_TOKEN: 'not-the-key' } }),
    });
    const refused = await failure(wrongKey.deliverEvent({ pipeline: 'guestbook', subscriber, event }));
    assert.equal(refused.nonRetryable, true);
    assert.equal(refused.type, 'DeliveryUnauthorized');
    assert.doesNotMatch(refused.message, /not-the-key/);
  });

  it('fails retryably, naming the wait, when the receiver stalls past the request timeout', async () => {
    receiver.stall();
    try {
      const stalled = await failure(
        notify.deliverEvent({
          pipeline: 'guestbook',
          subscriber: { ...webhook, target: { type: 'webhook', url: receiver.url } },
          event: promotionEvent('dev.ferry.promotion.started', 'r-3'),
        }),
      );
      assert.equal(stalled.nonRetryable, false);
      assert.match(stalled.message, /no answer within 2000 ms/);
    } finally {
      receiver.recover();
    }
  });

  it('sends Slack a message with text and blocks, and never shows the webhook URL (the secret) in an error', async () => {
    const subscriber: Subscriber = { name: 'chat', target: { type: 'slack' }, secret: 'slack' };
    const event = promotionEvent('dev.ferry.promotion.failed', 'r-4', {
      reason: 'Timeout',
      error: 'Argo CD waited 10m',
    });
    await notify.deliverEvent({ pipeline: 'guestbook', subscriber, event });
    const message = slack.deliveries.at(-1)!.body;
    assert.match(message.text, /^:x: Promotion failed: guestbook\/dev ← guestbook:1\.4\.2 \(freight abc123def456\)/);
    assert.deepEqual(
      message.blocks.map((b: { type: string }) => b.type),
      ['section', 'section', 'section', 'context'],
    );
    assert.match(JSON.stringify(message.blocks), /\*Timeout\*: Argo CD waited 10m/);

    slack.failNext(1, 404);
    const gone = await failure(notify.deliverEvent({ pipeline: 'guestbook', subscriber, event }));
    assert.equal(gone.nonRetryable, true);
    assert.match(gone.message, /subscriber "chat" \(slack incoming webhook\): POST answered 404/);
    assert.ok(!gone.message.includes(slack.url), gone.message);
  });

  describe('github-deployment', () => {
    const gh = (secret = 'gh'): Subscriber => ({
      name: 'environments',
      target: { type: 'github-deployment', repository: 'example-org/guestbook', apiUrl: '' },
      secret,
    });
    const deliver = (type: FerryEventType, runId: string, extra: Record<string, unknown> = {}, secret = 'gh') =>
      notify.deliverEvent({
        pipeline: 'guestbook',
        subscriber: { ...gh(secret), target: { ...(gh(secret).target as any), apiUrl: github.url } },
        event: promotionEvent(type, runId, extra),
      });

    it('creates one deployment per promotion run and posts in_progress then success, with GitHub’s headers', async () => {
      await deliver('dev.ferry.promotion.started', 'gh-1');
      // A retried delivery of the same event finds the deployment and the status already there.
      await deliver('dev.ferry.promotion.started', 'gh-1');
      const done = await deliver('dev.ferry.promotion.succeeded', 'gh-1', { commit: 'a'.repeat(40) });
      assert.equal(done.outcome, 'delivered');
      const ours = github.deployments.filter((d) => (d.payload as any).ferry.runId === 'gh-1');
      assert.equal(ours.length, 1);
      assert.equal(ours[0].environment, 'dev');
      assert.equal(ours[0].ref, 'env/dev');
      assert.equal(ours[0].production_environment, false);
      assert.deepEqual(github.statusSequence('dev'), [`${ours[0].id}:in_progress`, `${ours[0].id}:success`]);
      const create = github.requests.find((r) => r.method === 'POST' && r.path.endsWith('/deployments'))!;
      assert.equal(create.headers.accept, 'application/vnd.github+json');
      assert.equal(create.headers['x-github-api-version'], '2022-11-28');
      assert.equal(create.body.auto_merge, false);
      assert.deepEqual(create.body.required_contexts, []);
      const success = github.statuses.get(ours[0].id)!.at(-1)!;
      assert.match(success.log_url, /^http:\/\/ui\.example\.com\/namespaces\/default\/workflows\//);
    });

    it('marks the previous successful deployment of the environment inactive when a new one succeeds', async () => {
      const first = github.deployments.find((d) => (d.payload as any).ferry.runId === 'gh-1')!;
      await deliver('dev.ferry.promotion.started', 'gh-2');
      await deliver('dev.ferry.promotion.failed', 'gh-2', { reason: 'Failed', error: 'render failed' });
      const failed = github.deployments.find((d) => (d.payload as any).ferry.runId === 'gh-2')!;
      assert.deepEqual(
        github.statuses.get(failed.id)!.map((s) => s.state),
        ['in_progress', 'failure'],
      );
      assert.equal(github.statuses.get(first.id)!.at(-1)!.state, 'success');

      await deliver('dev.ferry.promotion.started', 'gh-3');
      await deliver('dev.ferry.promotion.succeeded', 'gh-3');
      const third = github.deployments.find((d) => (d.payload as any).ferry.runId === 'gh-3')!;
      assert.deepEqual(
        github.statuses.get(first.id)!.map((s) => s.state),
        ['in_progress', 'success', 'inactive'],
      );
      assert.deepEqual(
        github.statuses.get(failed.id)!.map((s) => s.state),
        ['in_progress', 'failure'],
      );
      assert.deepEqual(
        github.statuses.get(third.id)!.map((s) => s.state),
        ['in_progress', 'success'],
      );
    });

    it('fails for good on a bad token (401) or an unknown repository (404), naming the target', async () => {
      const unauthorized = await failure(deliver('dev.ferry.promotion.started', 'gh-4', {}, 'gh-wrong'));
      assert.equal(unauthorized.nonRetryable, true);
      assert.match(unauthorized.message, /github-deployment example-org\/guestbook.*answered 401 \(Bad credentials\)/);
      assert.doesNotMatch(unauthorized.message, /ghs_/);

      const missing = await failure(
        notify.deliverEvent({
          pipeline: 'guestbook',
          subscriber: {
            ...gh(),
            target: { type: 'github-deployment', repository: 'example-org/nope', apiUrl: github.url },
          },
          event: promotionEvent('dev.ferry.promotion.started', 'gh-5'),
        }),
      );
      assert.equal(missing.nonRetryable, true);
      assert.match(missing.message, /answered 404 \(Not Found\): the target does not exist/);
    });

    it('honours a primary rate limit (403, remaining 0) and a secondary one (429, retry-after)', async () => {
      github.rateLimitNext('primary', 1, 3);
      const primary = await failure(deliver('dev.ferry.promotion.started', 'gh-6'));
      assert.equal(primary.nonRetryable, false);
      assert.equal(primary.type, 'DeliveryRateLimited');
      assert.ok(
        Number(primary.nextRetryDelay) >= 1000 && Number(primary.nextRetryDelay) <= 4000,
        String(primary.nextRetryDelay),
      );

      github.rateLimitNext('secondary', 1, 7);
      const secondary = await failure(deliver('dev.ferry.promotion.started', 'gh-6'));
      assert.equal(secondary.type, 'DeliveryRateLimited');
      assert.equal(secondary.nextRetryDelay, 7000);
      // Nothing was created while limited.
      assert.equal(github.deployments.filter((d) => (d.payload as any).ferry.runId === 'gh-6').length, 0);
    });
  });
});
