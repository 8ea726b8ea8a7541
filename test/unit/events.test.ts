// Outbound events without a server: building events, who receives which, the signature a receiver checks, the
// Slack message, and the `notify` section of the pipeline file.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { signPayload, verifySignature } from '../../activities/notify/signature';
import { slackMessage } from '../../activities/notify/slack';
import { deploymentStateFor } from '../../activities/notify/github-deployment';
import { retryDelayMs } from '../../activities/notify/http';
import { temporalUiRunUrl } from '../../activities/notify';
import { parsePipelineText } from '../../pipeline/load';
import {
  buildEvent,
  deliveryWorkflowId,
  EVENT_TYPES,
  eventId,
  eventTypeMatches,
  subscribersFor,
  type Subscriber,
} from '../../workflows/events';
import { guestbookYaml } from '../helpers/fixtures';

const run = { namespace: 'default', workflowId: 'promotion/guestbook/prod/abc123def456', runId: 'r-1' };
const data = {
  pipeline: 'guestbook',
  stage: 'prod',
  freight: { id: 'abc123def456', artifacts: { guestbook: '1.4.2' } },
  promotion: {
    id: run.workflowId,
    runId: 'r-1',
    phase: 'Succeeded' as const,
    requestedBy: 'carol',
    startedAt: '2026-11-28T10:00:00.000Z',
    finishedAt: '2026-11-28T10:01:00.000Z',
  },
  branch: 'env/prod',
  commit: 'f'.repeat(40),
  actor: { user: 'alice', comment: 'ship it' },
};

describe('events: building CloudEvents', () => {
  it('builds a CloudEvents 1.0 structured event with subject pipeline/stage and an id stable for the same change', () => {
    const event = buildEvent({ type: 'dev.ferry.promotion.succeeded', time: '2026-11-28T10:01:00.000Z', data, run });
    assert.equal(event.specversion, '1.0');
    assert.equal(event.type, 'dev.ferry.promotion.succeeded');
    assert.equal(event.source, '/ferry/pipelines/guestbook');
    assert.equal(event.subject, 'guestbook/prod');
    assert.equal(event.datacontenttype, 'application/json');
    assert.match(event.id, /^[0-9a-f]{32}$/);
    assert.deepEqual(event.data.run, run);
    // A replay or a second emit of the same change in the same run has the same id, whatever the time.
    const again = buildEvent({ type: 'dev.ferry.promotion.succeeded', time: '2030-01-01T00:00:00.000Z', data, run });
    assert.equal(again.id, event.id);
    // Another change, another run, or another workflow: another id.
    const ids = new Set([
      event.id,
      eventId(run.workflowId, run.runId, 'dev.ferry.promotion.started'),
      eventId(run.workflowId, 'r-2', 'dev.ferry.promotion.succeeded'),
      eventId('promotion/guestbook/dev/abc123def456', run.runId, 'dev.ferry.promotion.succeeded'),
    ]);
    assert.equal(ids.size, 4);
  });

  it('gives freight events the pipeline as subject and one id per freight', () => {
    const pipelineRun = { namespace: 'default', workflowId: 'pipeline/guestbook', runId: 'p-1' };
    const registered = (id: string) =>
      buildEvent({
        type: 'dev.ferry.freight.registered',
        change: `freight.registered/${id}`,
        time: 't',
        data: { pipeline: 'guestbook', freight: { id, artifacts: { guestbook: id } } },
        run: pipelineRun,
      });
    assert.equal(registered('aaa111').subject, 'guestbook');
    assert.notEqual(registered('aaa111').id, registered('bbb222').id);
    assert.equal(
      deliveryWorkflowId('guestbook', 'ci', registered('aaa111').id),
      `event/guestbook/ci/${registered('aaa111').id}`,
    );
  });

  it('matches event filters: exact types, globs, and all events when there is no filter', () => {
    assert.ok(eventTypeMatches('dev.ferry.promotion.failed', 'dev.ferry.promotion.*'));
    assert.ok(eventTypeMatches('dev.ferry.promotion.failed', '*.failed'));
    assert.ok(eventTypeMatches('dev.ferry.approval.requested', 'dev.*.requested'));
    assert.ok(!eventTypeMatches('dev.ferry.approval.requested', 'dev.ferry.promotion.*'));
    assert.ok(!eventTypeMatches('dev.ferry.promotion.failed', 'dev.ferry.promotion.succeeded'));
    const subscribers: Subscriber[] = [
      { name: 'all', target: { type: 'webhook', url: 'https://a.example.com' }, secret: 's' },
      { name: 'failures', target: { type: 'slack' }, secret: 's', events: ['*.failed', '*.rejected'] },
      {
        name: 'gh',
        target: { type: 'github-deployment', repository: 'o/r', apiUrl: 'https://api.github.com' },
        secret: 's',
      },
    ];
    const names = (type: (typeof EVENT_TYPES)[number]) => subscribersFor(subscribers, type).map((s) => s.name);
    assert.deepEqual(names('dev.ferry.promotion.failed'), ['all', 'failures', 'gh']);
    // A GitHub deployment follows a promotion's start and end only.
    assert.deepEqual(names('dev.ferry.freight.registered'), ['all']);
    assert.deepEqual(names('dev.ferry.approval.requested'), ['all']);
    assert.deepEqual(names('dev.ferry.promotion.started'), ['all', 'gh']);
    assert.deepEqual(subscribersFor(undefined, 'dev.ferry.promotion.started'), []);
  });

  it('maps promotion events to GitHub deployment states', () => {
    assert.equal(deploymentStateFor('dev.ferry.promotion.started'), 'in_progress');
    assert.equal(deploymentStateFor('dev.ferry.promotion.succeeded'), 'success');
    assert.equal(deploymentStateFor('dev.ferry.promotion.failed'), 'failure');
    assert.equal(deploymentStateFor('dev.ferry.promotion.rejected'), 'failure');
    assert.equal(deploymentStateFor('dev.ferry.promotion.aborted'), 'error');
    assert.equal(deploymentStateFor('dev.ferry.approval.requested'), undefined);
  });

  it('links the run in the Temporal UI, escaping the workflow id', () => {
    assert.equal(
      temporalUiRunUrl('http://localhost:8233/', 'default', 'promotion/guestbook/prod/abc', 'r-1'),
      'http://localhost:8233/namespaces/default/workflows/promotion%2Fguestbook%2Fprod%2Fabc/r-1/history',
    );
  });
});

describe('events: the webhook signature', () => {
  const secret = 'whsec-test-0123456789';
  const body = '{"id":"1"}';
  const now = 1_790_000_000;

  it('is HMAC-SHA256 over "<timestamp>.<body>", as sha256=<hex>', () => {
    const expected = createHmac('sha256', secret).update(`${now}.${body}`).digest('hex');
    assert.equal(signPayload(secret, now, body), `sha256=${expected}`);
    assert.deepEqual(verifySignature(secret, { signature: `sha256=${expected}`, timestamp: String(now) }, body, now), {
      ok: true,
    });
  });

  it('refuses a tampered body, a wrong secret, a missing header and a timestamp outside five minutes', () => {
    const signature = signPayload(secret, now, body);
    const check = (s: string | undefined, t: string | undefined, b: string, k = secret, at = now) =>
      verifySignature(k, { ...(s ? { signature: s } : {}), ...(t ? { timestamp: t } : {}) }, b, at);
    assert.match((check(signature, String(now), '{"id":"2"}') as { problem: string }).problem, /does not match/);
    assert.match(
      (check(signature, String(now), body, 'another-secret') as { problem: string }).problem,
      /does not match/,
    );
    assert.match((check(undefined, String(now), body) as { problem: string }).problem, /missing X-Ferry-Signature/);
    assert.match((check(signature, undefined, body) as { problem: string }).problem, /X-Ferry-Timestamp/);
    assert.match(
      (check(signature, String(now), body, secret, now + 301) as { problem: string }).problem,
      /more than 300s/,
    );
  });

  it('reads how long a receiver asks to wait: Retry-After seconds, an HTTP date, or a rate limit reset', () => {
    const answer = (headers: Record<string, string>) => ({ status: 429, headers: new Headers(headers), text: '' });
    assert.equal(retryDelayMs(answer({ 'retry-after': '7' })), 7000);
    assert.equal(retryDelayMs(answer({ 'retry-after': new Date(60_000).toUTCString() }), 30_000), 30_000);
    assert.equal(retryDelayMs(answer({ 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '100' }), 90_000), 10_000);
    assert.equal(retryDelayMs(answer({ 'x-ratelimit-remaining': '12', 'x-ratelimit-reset': '100' })), undefined);
  });
});

describe('events: the Slack message', () => {
  it('says what, where, which freight, who and links the run', () => {
    const event = buildEvent({
      type: 'dev.ferry.promotion.succeeded',
      time: 't',
      data,
      run: { ...run, url: 'http://ui.example.com/run' },
    });
    const message = slackMessage(event);
    assert.equal(
      message.text,
      ':white_check_mark: Promotion succeeded: guestbook/prod ← guestbook:1.4.2 (freight abc123def456), alice — “ship it”',
    );
    assert.equal(message.blocks[0].type, 'section');
    assert.match(JSON.stringify(message.blocks), /\*Where\*\\nguestbook\/prod/);
    assert.match(JSON.stringify(message.blocks), /<http:\/\/ui\.example\.com\/run\|Open the run in the Temporal UI>/);
    assert.equal(message.blocks.at(-1)?.type, 'context');
  });

  it('shows a failure’s reason and escapes what Slack would read as markup', () => {
    const event = buildEvent({
      type: 'dev.ferry.promotion.failed',
      time: 't',
      data: { ...data, actor: undefined, reason: 'CredentialNotFound', error: 'credential "argo" <missing> & more' },
      run,
    });
    const blocks = JSON.stringify(slackMessage(event).blocks);
    assert.match(blocks, /\*CredentialNotFound\*: credential \\"argo\\" &lt;missing&gt; &amp; more/);
  });
});

describe('events: spec.notify in the pipeline file', () => {
  const stages = `
    - name: dev
      render: { strategy: branch, from: apps/guestbook/overlays/dev, to: env/dev }
  notify:`;

  it('accepts the four targets and fills their defaults', () => {
    const loaded = parsePipelineText(
      guestbookYaml(`${stages}
    - { name: ci, target: { type: webhook, url: "https://ci.example.com/ferry" }, secret: ci-hmac, events: ["dev.ferry.promotion.*"] }
    - { name: chat, target: { type: slack }, secret: slack-url }
    - { name: gh, target: { type: github-deployment, repository: example-org/guestbook }, secret: gh-token }
    - { name: train, target: { type: temporal, workflowId: release-train } }`),
    );
    assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors));
    const notify = loaded.pipeline.spec.notify ?? [];
    assert.deepEqual(
      notify.map((s) => s.target.type),
      ['webhook', 'slack', 'github-deployment', 'temporal'],
    );
    assert.deepEqual(notify[2].target, {
      type: 'github-deployment',
      repository: 'example-org/guestbook',
      apiUrl: 'https://api.github.com',
    });
    assert.deepEqual(notify[3].target, { type: 'temporal', workflowId: 'release-train', signal: 'ferry.event' });
  });

  it('reports every mistake in notify at once, by path', () => {
    const loaded = parsePipelineText(
      guestbookYaml(`${stages}
    - { name: ci, target: { type: webhook, url: "https://ci.example.com/ferry" }, secret: ci-hmac }
    - { name: ci, target: { type: webhook, url: "https://user:pw@ci.example.com" } }
    - { name: chat, target: { type: sms }, secret: s }
    - { name: gh, target: { type: github-deployment, repository: guestbook }, secret: gh, events: [dev.ferry.promotion.finished] }
    - { name: chat2, target: { type: slack }, secret: "https://hooks.slack.com/services/T/B/X" }`),
    );
    assert.ok(!loaded.ok);
    assert.deepEqual(
      loaded.errors.map((e) => e.path),
      [
        'spec.notify[1].name',
        'spec.notify[1].target.url',
        'spec.notify[1].secret',
        'spec.notify[2].target.type',
        'spec.notify[3].target.repository',
        'spec.notify[3].events[0]',
        'spec.notify[4].secret',
      ],
    );
    const message = (path: string) => loaded.errors.find((e) => e.path === path)?.message;
    assert.match(
      message('spec.notify[1].name') ?? '',
      /duplicate subscriber name "ci" \(also spec\.notify\[0\]\.name\)/,
    );
    assert.match(message('spec.notify[1].secret') ?? '', /a webhook subscriber needs a secret/);
    assert.match(message('spec.notify[2].target.type') ?? '', /must be one of "webhook", "slack"/);
    assert.match(message('spec.notify[3].events[0]') ?? '', /must be an event type/);
    assert.match(message('spec.notify[4].secret') ?? '', /credential name/);
  });
});
