// The http gate activity against a real HTTP server on 127.0.0.1: credentials, what counts as an answer, a retried
// attempt that keeps the gate's clock, and cancellation mid-pause. Inside Temporal's activity context where that
// matters (heartbeats, cancellation), as a plain call otherwise.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createGateActivities, type HttpGateInput } from '../../activities/gates/http-gate';
import { createSecretResolver } from '../../activities/secrets';
import type { HttpGateSpec } from '../../pipeline/schema';
import { until } from '../helpers/processes';

describe('pollHttpGate (real HTTP server)', () => {
  let server: http.Server;
  let base: string;
  const seen: Array<{ path: string; method: string; authorization?: string }> = [];

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push({ path: req.url ?? '', method: req.method ?? '', authorization: req.headers.authorization });
      if (req.url === '/ok') res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"ok"}');
      else if (req.url === '/redirect') res.writeHead(302, { Location: '/ok' }).end();
      else res.writeHead(503).end('down for maintenance');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const gate = (http: Partial<HttpGateSpec>): HttpGateInput => ({
    pipeline: 'guestbook',
    stage: 'prod',
    promotionId: 'promotion/guestbook/prod/f',
    gate: 'smoke',
    http: {
      url: `${base}/ok`,
      method: 'GET',
      expect: { status: 200 },
      interval: '50ms',
      successes: 1,
      timeout: '1m',
      ...http,
    },
  });
  const secrets = createSecretResolver({
    env: { FERRY_SECRET_PROBE_USERNAME: 'probe', FERRY_SECRET_PROBE_PASSWORD: 'p4ssw0rd-secret' },
  });
  const { pollHttpGate } = createGateActivities({ secrets, requestTimeoutMs: 2000 });

  it('sends basic credentials and HEAD when asked, and passes on the expected status', async () => {
    seen.length = 0;
    const result = await pollHttpGate(gate({ method: 'HEAD', credentials: 'probe', successes: 2 }));
    assert.deepEqual([result.attempts, result.consecutive, result.last], [2, 2, 'HTTP 200']);
    assert.deepEqual(
      seen.map((r) => [r.method, r.authorization]),
      [
        ['HEAD', `Basic ${Buffer.from('probe:p4ssw0rd-secret').toString('base64')}`],
        ['HEAD', `Basic ${Buffer.from('probe:p4ssw0rd-secret').toString('base64')}`],
      ],
    );
  });

  it('does not follow redirects: a 302 is an answer that does not pass', async () => {
    const failure = await pollHttpGate(gate({ url: `${base}/redirect`, timeout: '120ms' })).then(
      () => assert.fail('passed'),
      (err: unknown) => err,
    );
    assert.ok(failure instanceof ApplicationFailure);
    assert.equal(failure.type, 'GateTimedOut');
    assert.equal(failure.nonRetryable, true);
    assert.match(failure.message, /last: HTTP 302 \(expected 200\)\)$/);
  });

  it('counts no answer as an answer that does not pass, and says so', async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = http.createServer();
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const failure = (await pollHttpGate(gate({ url: `http://127.0.0.1:${closed}/`, timeout: '100ms' })).catch(
      (err: unknown) => err,
    )) as ApplicationFailure;
    assert.match(failure.message, /last: no answer \(ECONNREFUSED\)\)$/);
    assert.deepEqual(Object.keys(failure.details?.[0] as object).sort(), ['attempts', 'consecutive', 'last']);
  });

  it('a retried attempt keeps the gate’s clock from its heartbeat: past the deadline it fails after one poll', async () => {
    seen.length = 0;
    const env = new MockActivityEnvironment({
      heartbeatDetails: { startedAt: Date.now() - 120_000, attempts: 41, consecutive: 2, last: 'HTTP 503' },
    });
    const failure = (await env
      .run(pollHttpGate, gate({ url: `${base}/down`, timeout: '1m' }))
      .catch((err: unknown) => err)) as ApplicationFailure;
    assert.equal(failure.type, 'GateTimedOut');
    assert.match(failure.message, /\(42 answers; last: HTTP 503 \(expected 200\): down for maintenance\)$/);
    assert.equal(seen.length, 1);
  });

  it('stops at once when cancelled during the pause between polls', async () => {
    seen.length = 0;
    const env = new MockActivityEnvironment();
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => heartbeats.push(d));
    const polling = env.run(pollHttpGate, gate({ url: `${base}/down`, interval: '1h', timeout: '2h' }));
    // One heartbeat before the poll, the next as the pause begins: then it is pausing.
    await until('the pause', async () => (heartbeats.length >= 2 ? true : undefined), 60_000, 10);
    env.cancel();
    await assert.rejects(polling, (err: unknown) => err instanceof CancelledFailure);
    assert.equal(seen.length, 1, 'one poll, then the pause was cut short');
  });

  it('never puts a credential into its messages', async () => {
    const token = createSecretResolver({ env: { FERRY_SECRET_ECHO_TOKEN: 'tok-very-secret-123' } });
    const echo = http.createServer((req, res) => res.writeHead(500).end(`you sent ${req.headers.authorization}`));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(echo.address() as AddressInfo).port}/`;
    const failure = (await createGateActivities({ secrets: token })
      .pollHttpGate(gate({ url, credentials: 'echo', timeout: '100ms' }))
      .catch((err: unknown) => err)) as ApplicationFailure;
    await new Promise<void>((resolve) => echo.close(() => resolve()));
    assert.match(failure.message, /you sent Bearer \*\*\*/);
    assert.ok(!failure.message.includes('tok-very-secret-123'));
  });
});
