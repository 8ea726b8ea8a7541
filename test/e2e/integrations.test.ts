// Ferry in a toolchain, end to end over real HTTP and a real Temporal dev server: a CI job's signed generic webhook
// registers freight, dev promotes it by itself, a subscriber receives the CloudEvents signed, and
// `ferry promote … staging --wait` exits 0 after an approval and with the rejection code after a rejection.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ApiServer } from '../../api/server';
import { signGenericDelivery, staticWebhookSecrets } from '../../api/webhooks';
import { WAIT_EXIT_CODES } from '../../cli/commands/promote';
import { run } from '../../cli/run';
import type { Io } from '../../cli/io';
import { startEventReceiver, type EventReceiver } from '../helpers/event-receiver';
import { until } from '../helpers/processes';
import { startStack, type Stack } from '../helpers/stack';

const WEBHOOK_SECRET = 'ci-webhook-secret-0123456789abcdef';
const EVENT_SECRET = 'event-signing-secret-0123456789abcdef';
const TOKENS = {
  'tok-root-0123456789abcdef0123456789': 'root',
  'tok-carol-0123456789abcdef012345678': 'carol',
  'tok-rita-0123456789abcdef0123456789': 'rita',
};
const token = (user: string): string => Object.entries(TOKENS).find(([, u]) => u === user)![0];

const pipelineYaml = (repoUrl: string, receiverUrl: string): string => `apiVersion: ferry.dev/v1alpha1
kind: Pipeline
metadata:
  name: shop
spec:
  repo:
    url: ${repoUrl}
  artifacts:
    - name: guestbook
      image: registry.example.com/team/guestbook
  triggers:
    generic: { secret: ci-webhook }
  notify:
    - name: release-bot
      target: { type: webhook, url: ${receiverUrl} }
      secret: events
  stages:
    - name: dev
      promotion: auto
      render: { strategy: branch, from: apps/guestbook/overlays/dev, to: env/dev }
    - name: staging
      after: [dev]
      approval: { required: 1, approvers: [rita] }
      render: { strategy: branch, from: apps/guestbook/overlays/staging, to: env/staging }
`;

describe('a CI webhook in, events out, and promote --wait on the real stack', () => {
  let stack: Stack;
  let api: ApiServer;
  let receiver: EventReceiver;
  let dir: string;

  before(async () => {
    receiver = await startEventReceiver({ secret: EVENT_SECRET });
    stack = await startStack({
      name: 'integrations',
      tokens: TOKENS,
      secrets: { events: EVENT_SECRET },
      api: { admins: ['root'], webhooks: { secrets: staticWebhookSecrets({ 'ci-webhook': WEBHOOK_SECRET }) } },
    });
    ({ api, dir } = stack);
    const applied = await fetch(`${api.url}/api/v1/pipelines/shop`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token('root')}`, 'Content-Type': 'application/yaml' },
      body: pipelineYaml(stack.repo.url, receiver.url),
    });
    assert.equal(applied.status, 200, await applied.text());
  });

  after(async () => {
    await stack?.close();
    await receiver?.close();
  });

  /** What a CI job sends: the artifacts it built, signed over the timestamp and the raw body. */
  const deliver = async (artifacts: Record<string, string>): Promise<{ status: number; body: { id?: string } }> => {
    const body = JSON.stringify({ artifacts });
    const timestamp = String(Math.floor(Date.now() / 1000));
    const response = await fetch(`${api.url}/webhooks/generic/shop`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-Ferry-Timestamp': timestamp,
        'X-Ferry-Signature': signGenericDelivery(WEBHOOK_SECRET, timestamp, body),
      },
      body,
    });
    return { status: response.status, body: (await response.json()) as { id?: string } };
  };

  /** The CLI in process, as carol (a promoter) runs it from a CI job. */
  const ferry = async (args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const io: Io = {
      out: (line = '') => void (out += `${line}\n`),
      err: (line) => void (err += `${line}\n`),
      env: { FERRY_URL: api.url, FERRY_TOKEN: token('carol') },
      cwd: dir,
      readStdin: () => '',
    };
    const code = await run(args, io);
    return { code, out, err };
  };

  const decide = async (id: string, verb: 'approve' | 'reject'): Promise<void> => {
    const path = `/api/v1/promotions/${id}/${verb}`;
    // The CLI asked first; the approver answers once the promotion waits for it.
    await until(`${id} to await approval`, async () => {
      const r = await fetch(`${api.url}/api/v1/promotions/${id}`, {
        headers: { Authorization: `Bearer ${token('rita')}` },
      });
      return r.ok && ((await r.json()) as { phase: string }).phase === 'AwaitingApproval' ? true : undefined;
    });
    const response = await fetch(api.url + path, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token('rita')}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ comment: verb === 'approve' ? 'ship it' : 'not this one' }),
    });
    assert.equal(response.status, 200, await response.text());
  };

  it('a signed webhook registers freight, dev promotes it, the receiver gets signed CloudEvents, --wait exits 0 after approval', async () => {
    const delivered = await deliver({ guestbook: '2.0.0' });
    assert.equal(delivered.status, 201, JSON.stringify(delivered.body));
    const freight = delivered.body.id!;

    // dev is `promotion: auto`: the freight lands there by itself.
    const dev = await ferry(['promote', 'shop', 'dev', freight, '--wait']);
    assert.equal(dev.code, 0, dev.err);

    const staging = `promotion/shop/staging/${freight}`;
    const [waited] = await Promise.all([
      ferry(['promote', 'shop', 'staging', freight, '--wait']),
      decide(staging, 'approve'),
    ]);
    assert.equal(waited.code, 0, waited.err + waited.out);
    assert.match(waited.out, /Succeeded/);

    // The subscriber got the story, each event signed and accepted once.
    const types = await until('the staging success event', async () => {
      const seen = [...receiver.accepted.values()].map(
        (e: { type: string; subject?: string }) => `${e.type} ${e.subject ?? ''}`,
      );
      return seen.includes('dev.ferry.promotion.succeeded shop/staging') ? seen : undefined;
    });
    for (const expected of [
      'dev.ferry.freight.registered',
      'dev.ferry.promotion.succeeded shop/dev',
      'dev.ferry.promotion.approved shop/staging',
    ]) {
      assert.ok(
        types.some((t) => t.startsWith(expected)),
        `${expected} not in ${types.join(', ')}`,
      );
    }
    assert.ok(receiver.deliveries.length > 0);
    for (const d of receiver.deliveries) assert.deepEqual(d.signature, { ok: true });
    assert.equal(
      [...receiver.duplicates.values()].reduce((a, b) => a + b, 0),
      0,
    );
  });

  it('--wait exits with the rejection code after a rejection', async () => {
    const delivered = await deliver({ guestbook: '2.0.1' });
    assert.equal(delivered.status, 201, JSON.stringify(delivered.body));
    const freight = delivered.body.id!;
    assert.equal((await ferry(['promote', 'shop', 'dev', freight, '--wait'])).code, 0);

    const staging = `promotion/shop/staging/${freight}`;
    const [waited] = await Promise.all([
      ferry(['promote', 'shop', 'staging', freight, '--wait']),
      decide(staging, 'reject'),
    ]);
    assert.equal(waited.code, WAIT_EXIT_CODES.Rejected, waited.err + waited.out);
    assert.match(waited.err, /Rejected/);
    assert.match(waited.err, /rita/);
  });
});
