// Gates on the real Temporal dev server, through the real HTTP API: callback gates decided by POSTs to their
// one-time URLs, and http gates polling a real HTTP server on 127.0.0.1. The git remote is a real repository on disk.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { startApiServer, type ApiServer } from '../../api/server';
import { createTokenStore } from '../../client/auth';
import { FerryClient } from '../../client/ferry-client';
import { callbackToken, type GateRef } from '../../client/gate-callbacks';
import { createLogger } from '../../client/log';
import { createExampleRepo } from '../../dev/example';
import { createSecretResolver } from '../../activities/secrets';
import { validatePipeline } from '../../pipeline/load';
import type { PromotionStatus } from '../../workflows/messages';
import { createFerryWorker, WORKFLOWS_PATH } from '../../worker/create-worker';
import { until } from '../helpers/processes';
import { createTemporalTestEnv } from '../helpers/temporal';

const TASK_QUEUE = 'ferry-gate-tests';
const ROOT_TOKEN = 'root-token-for-gate-tests';
const DAVE_TOKEN = 'dave-token-for-gate-tests';
const PROBE_SECRET = 'probe-secret-value-7f3a';

/** A status endpoint that answers from a script, one entry per request, then repeats the last entry. */
interface ScriptedEndpoint {
  answers: Array<{ status: number; body: unknown }>;
  requests: Array<{ at: number; authorization?: string }>;
}

describe('gates (real dev server, real HTTP API, real HTTP endpoints)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let ferry: FerryClient;
  let api: ApiServer;
  let probe: http.Server;
  let probeUrl: string;
  let dir: string;
  const key = randomBytes(32);
  const apiLog: string[] = [];
  const endpoints = new Map<string, ScriptedEndpoint>();
  let version = 0;

  const stage = (name: string, gates: unknown[]) => ({
    name,
    render: { strategy: 'branch', from: 'apps/guestbook/overlays/dev', to: `env/${name}` },
    gates,
  });

  const call = async (
    method: string,
    path: string,
    options: { token?: string; body?: unknown } = {},
  ): Promise<{ status: number; body: any }> => {
    const response = await fetch(api.url + path, {
      method,
      headers: {
        ...(options.token ? { Authorization: `Bearer ${options.token}` } : {}),
        ...(options.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
  };
  const postTo = async (url: string, body: unknown): Promise<{ status: number; body: any }> => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };

  /** Every promotion the tests ran, for the replay at the end. */
  const promoted: string[] = [];
  /** Registers new freight and promotes it into `stage`; resolves with the promotion id. */
  const promote = async (stageName: string): Promise<string> => {
    const { id } = await ferry.addFreight('gated', { guestbook: `2.0.${++version}` });
    const promotion = (await ferry.promote('gated', stageName, id, 'carol')).id;
    promoted.push(promotion);
    return promotion;
  };
  const gateWaiting = (id: string, gate: string): Promise<PromotionStatus> =>
    until(`gate ${gate} of ${id} to wait`, async () => {
      const s = await ferry.getPromotion(id);
      if (s.phase === 'Failed') throw new Error(`promotion failed before its gate: ${s.error}`);
      return s.gates?.find((g) => g.name === gate)?.phase === 'Waiting' ? s : undefined;
    });
  const finished = (id: string): Promise<PromotionStatus> =>
    until(`${id} to finish`, async () => {
      const s = await ferry.getPromotion(id);
      return ['Succeeded', 'Failed', 'Aborted'].includes(s.phase) && s.finishedAt ? s : undefined;
    });
  const urlOf = async (id: string, gate: string): Promise<string> => {
    const answer = await call('GET', `/api/v1/promotions/${encodeURIComponent(id)}/gates/${gate}/callback-url`, {
      token: ROOT_TOKEN,
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body.url as string;
  };
  const historyOf = async (id: string): Promise<{ text: string; length: number }> => {
    const history = await env.client.workflow.getHandle(id).fetchHistory();
    // Every string and every payload's bytes (JSON inside) as text, so a search of the history sees what it carries
    // (JSON.stringify would show the protobuf's base64 instead).
    const parts: string[] = [];
    const walk = (value: unknown): void => {
      if (value instanceof Uint8Array) parts.push(Buffer.from(value).toString('utf8'));
      else if (typeof value === 'string') parts.push(value);
      else if (Array.isArray(value)) value.forEach(walk);
      else if (typeof value === 'object' && value !== null) Object.values(value).forEach(walk);
    };
    walk(history);
    return { text: parts.join('\n'), length: history.events?.length ?? 0 };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-gates-'));
    probe = http.createServer((req, res) => {
      const endpoint = endpoints.get(req.url ?? '');
      if (!endpoint) {
        res.writeHead(404).end();
        return;
      }
      const index = Math.min(endpoint.requests.length, endpoint.answers.length - 1);
      endpoint.requests.push({ at: Date.now(), authorization: req.headers.authorization });
      const answer = endpoint.answers[index];
      res.writeHead(answer.status, { 'Content-Type': 'application/json' }).end(JSON.stringify(answer.body));
    });
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;

    env = await createTemporalTestEnv();
    const remote = createExampleRepo(join(dir, 'gitops.git')).path;
    worker = await createFerryWorker({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUE,
      workspaceRoot: join(dir, 'workspaces'),
      allowFileRepos: true,
      secrets: createSecretResolver({ env: { FERRY_SECRET_PROBE_TOKEN: PROBE_SECRET } }),
    });
    running = worker.run();
    ferry = FerryClient.fromClient(env.client, TASK_QUEUE);
    api = await startApiServer({
      ferry,
      tokens: createTokenStore({ file: null, env: {}, tokens: { [ROOT_TOKEN]: 'root', [DAVE_TOKEN]: 'dave' } }),
      admins: ['root'],
      port: 0,
      callbackKey: key,
      logger: createLogger({ write: (line) => apiLog.push(line), level: 'debug' }),
    });

    const http7 = { status: 200, body: { status: 'ok' } };
    endpoints.set('/seven', {
      // fail, ok, ok, fail, ok, ok, ok: three in a row only with the 7th answer.
      answers: [
        { status: 503, body: { status: 'starting' } },
        http7,
        http7,
        { status: 200, body: { status: 'degraded' } },
        http7,
        http7,
        http7,
      ],
      requests: [],
    });
    endpoints.set('/down', { answers: [{ status: 503, body: { status: 'down' } }], requests: [] });
    endpoints.set('/forever', { answers: [{ status: 503, body: { status: 'down' } }], requests: [] });

    const checked = validatePipeline({
      apiVersion: 'ferry.dev/v1alpha1',
      kind: 'Pipeline',
      metadata: { name: 'gated' },
      spec: {
        repo: { url: `file://${remote}` },
        artifacts: [{ name: 'guestbook', image: 'registry.example.com/team/guestbook' }],
        stages: [
          stage('cb', [{ name: 'e2e', callback: { timeout: '10m' } }]),
          stage('cb-short', [{ name: 'e2e', callback: { timeout: '2s' } }]),
          stage('poll', [
            {
              name: 'smoke',
              http: {
                url: `${probeUrl}/seven`,
                credentials: 'probe',
                expect: { status: 200, jsonPath: '$.status', equals: 'ok' },
                interval: '100ms',
                successes: 3,
                timeout: '5m',
              },
            },
          ]),
          stage('poll-short', [{ name: 'smoke', http: { url: `${probeUrl}/down`, interval: '200ms', timeout: '2s' } }]),
          stage('both', [
            { name: 'smoke', http: { url: `${probeUrl}/forever`, interval: '200ms', timeout: '10m' } },
            { name: 'e2e', callback: {} },
          ]),
        ],
      },
    });
    if (!checked.ok) throw new Error(JSON.stringify(checked.errors));
    await ferry.applyPipeline(checked.pipeline);
  });

  after(async () => {
    await api?.close();
    worker?.shutdown();
    await running;
    await env?.teardown();
    await new Promise<void>((resolve) => (probe ? probe.close(() => resolve()) : resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes a callback gate on a POST to its one-time URL; a second POST is a 409 and forged tokens reach no workflow', async () => {
    const id = await promote('cb');
    const waiting = await gateWaiting(id, 'e2e');
    assert.equal(waiting.phase, 'AwaitingGates');
    assert.equal(waiting.steps.find((s) => s.name === 'gates')?.status, 'Running');
    assert.ok(waiting.gates?.[0].deadline, 'a waiting gate says until when');

    // Only an admin may read the URL; it is never part of the status.
    const forbidden = await call('GET', `/api/v1/promotions/${encodeURIComponent(id)}/gates/e2e/callback-url`, {
      token: DAVE_TOKEN,
    });
    assert.equal(forbidden.status, 403);
    assert.match(forbidden.body.error.message, /needs role admin on gated\/cb/);
    const url = await urlOf(id, 'e2e');
    assert.ok(url.startsWith(`${api.url}/api/v1/callbacks/`), url);
    const token = url.slice(url.lastIndexOf('/') + 1);
    assert.ok(!JSON.stringify(await ferry.getPromotion(id)).includes(token));

    // Forged: an altered signature, another key's token, garbage. Each is a 401 and the workflow sees nothing.
    const before = await historyOf(id);
    const altered = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA');
    const { runId } = await env.client.workflow.getHandle(id).describe();
    const otherKey = callbackToken(randomBytes(32), { promotionId: id, runId, gate: 'e2e' });
    for (const forged of [altered, otherKey, 'v1.e30.AAAA', 'not-a-token']) {
      const answer = await postTo(`${api.url}/api/v1/callbacks/${forged}`, { result: 'pass', reason: 'forged' });
      assert.equal(answer.status, 401, forged);
      assert.equal(answer.body.error.code, 'Unauthenticated');
    }
    const afterForgeries = await historyOf(id);
    assert.equal(afterForgeries.length, before.length, 'forged callbacks added nothing to the history');
    assert.equal((await ferry.getPromotion(id)).gates?.[0].phase, 'Waiting');

    const passed = await postTo(url, { result: 'pass', reason: 'all 42 checks green', by: 'e2e-suite' });
    assert.equal(passed.status, 200, JSON.stringify(passed.body));
    assert.deepEqual(passed.body, { promotion: id, gate: 'e2e', phase: 'Passed' });
    const again = await postTo(url, { result: 'fail', reason: 'replayed' });
    assert.equal(again.status, 409);
    assert.match(again.body.error.message, /gate "e2e" of promotion .* cannot be decided: it already passed/);

    const done = await finished(id);
    assert.equal(done.phase, 'Succeeded', done.error);
    const gate = done.gates?.[0];
    assert.equal(gate?.phase, 'Passed');
    assert.equal(gate?.decidedBy, 'callback by e2e-suite');
    assert.equal(gate?.message, 'all 42 checks green');
    assert.ok(gate?.at);
    const step = done.steps.find((s) => s.name === 'gates');
    assert.equal(step?.status, 'Succeeded');
    assert.equal(step?.message, 'e2e passed (callback by e2e-suite): all 42 checks green');
    // After the run ended, the URL still opens nothing.
    assert.equal((await postTo(url, { result: 'pass' })).status, 409);

    // The token is in no history and no log line; the history holds the gate's name and result only.
    const history = await historyOf(id);
    assert.ok(!history.text.includes(token.split('.')[2]), 'no token signature in the history');
    assert.ok(history.text.includes('all 42 checks green'), 'the history shows the decision');
    assert.ok(!apiLog.join('').includes(token.split('.')[2]), 'no token in the API log');
    assert.ok(apiLog.some((line) => line.includes('/api/v1/callbacks/***')));
  });

  it('fails the promotion with GateFailed and the posted reason when the callback says fail', async () => {
    const id = await promote('cb');
    await gateWaiting(id, 'e2e');
    const url = await urlOf(id, 'e2e');
    const unexplained = await postTo(url, { result: 'fail' });
    assert.equal(unexplained.status, 400);
    assert.deepEqual(unexplained.body.error.errors, [
      { path: 'reason', message: 'is required when result is "fail": say why' },
    ]);
    assert.equal((await postTo(url, { result: 'maybe', reason: 'x' })).status, 400);
    assert.equal((await ferry.getPromotion(id)).gates?.[0].phase, 'Waiting', 'a bad body decides nothing');

    const failed = await postTo(url, { result: 'fail', reason: 'checkout journey broke', by: 'change-board' });
    assert.equal(failed.status, 200);
    assert.equal(failed.body.phase, 'Failed');
    const done = await finished(id);
    assert.equal(done.phase, 'Failed');
    assert.equal(done.reason, 'GateFailed');
    assert.equal(done.error, 'gate e2e failed (callback by change-board): checkout journey broke');
    assert.deepEqual(
      { phase: done.gates?.[0].phase, reason: done.gates?.[0].reason, by: done.gates?.[0].decidedBy },
      { phase: 'Failed', reason: 'GateFailed', by: 'callback by change-board' },
    );
    const step = done.steps.find((s) => s.name === 'gates');
    assert.deepEqual([step?.status, step?.reason], ['Failed', 'GateFailed']);
  });

  it('fails the promotion with GateTimedOut when no result arrives in time; a late callback is a 409', async () => {
    const id = await promote('cb-short');
    const { runId } = await env.client.workflow.getHandle(id).describe();
    const ref: GateRef = { promotionId: id, runId, gate: 'e2e' };
    const done = await finished(id);
    assert.equal(done.phase, 'Failed');
    assert.equal(done.reason, 'GateTimedOut');
    assert.match(done.error ?? '', /gate e2e: no result was posted to its callback URL within 2s/);
    assert.equal(done.gates?.[0].phase, 'TimedOut');
    assert.equal(done.gates?.[0].decidedBy, 'timeout');

    const late = await postTo(`${api.url}/api/v1/callbacks/${callbackToken(key, ref)}`, { result: 'pass' });
    assert.equal(late.status, 409);
    assert.match(late.body.error.message, /cannot be decided: it already timed out/);
  });

  it('passes an http gate only on the third passing answer in a row: the 7th of fail, ok, ok, fail, ok, ok, ok', async () => {
    const id = await promote('poll');
    const done = await finished(id);
    assert.equal(done.phase, 'Succeeded', done.error);
    const gate = done.gates?.[0];
    assert.equal(gate?.phase, 'Passed');
    assert.equal(gate?.attempts, 7);
    assert.equal(gate?.consecutive, 3);
    assert.equal(gate?.decidedBy, `GET ${probeUrl}/seven`);
    assert.equal(gate?.message, 'HTTP 200, $.status = "ok"');
    const seen = endpoints.get('/seven')?.requests ?? [];
    assert.equal(seen.length, 7, 'no poll after the gate passed, none before it began');
    assert.ok(seen.every((r) => r.authorization === `Bearer ${PROBE_SECRET}`));
    // Polls are spaced by the interval, not a busy loop.
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].at - seen[i - 1].at >= 90, `poll ${i + 1} waited`);
    assert.ok(!(await historyOf(id)).text.includes(PROBE_SECRET), 'the credential is in no history');
  });

  it('fails an http gate with GateTimedOut and the last answer when it never passes', async () => {
    const id = await promote('poll-short');
    const done = await finished(id);
    assert.equal(done.phase, 'Failed');
    assert.equal(done.reason, 'GateTimedOut');
    assert.match(
      done.error ?? '',
      /^gate smoke: GET http:\/\/127\.0\.0\.1:\d+\/down did not pass within 2s \(\d+ answers?; last: HTTP 503 \(expected 200\): \{"status":"down"\}\)$/,
    );
    const gate = done.gates?.[0];
    assert.equal(gate?.phase, 'TimedOut');
    assert.equal(gate?.reason, 'GateTimedOut');
    assert.equal(gate?.attempts, endpoints.get('/down')?.requests.length);
  });

  it('aborts a promotion while an http gate polls: the poll stops, later gates are skipped', async () => {
    const id = await promote('both');
    await gateWaiting(id, 'smoke');
    // While it polls, the status shows its progress (from the activity's heartbeat).
    const polling = await until('the poll’s progress in the status', async () => {
      const gate = (await ferry.getPromotion(id)).gates?.[0];
      return (gate?.attempts ?? 0) >= 1 ? gate : undefined;
    });
    assert.equal(polling?.consecutive, 0);
    assert.match(polling?.message ?? '', /^last answer: HTTP 503 \(expected 200\)/);
    await ferry.abort(id, { user: 'root', admin: true, comment: 'wrong build' });
    const done = await finished(id);
    assert.equal(done.phase, 'Aborted');
    assert.deepEqual(
      done.gates?.map((g) => [g.name, g.phase, g.decidedBy]),
      [
        ['smoke', 'Cancelled', 'aborted by root'],
        ['e2e', 'Skipped', undefined],
      ],
    );
    // Cancellation reaches the activity with its next heartbeat: the endpoint stops being polled (no poll for 2 s,
    // ten intervals).
    const abortedAt = Date.now();
    const quietSince = await until('polling to stop', async () => {
      const last = endpoints.get('/forever')?.requests.at(-1)?.at ?? 0;
      return Date.now() - last > 2000 ? last : undefined;
    });
    process.stderr.write(`http gate: last poll ${Math.max(0, quietSince - abortedAt)} ms after the abort\n`);
  });

  it('aborts a promotion waiting at a callback gate; its URL then opens nothing', async () => {
    const id = await promote('cb');
    await gateWaiting(id, 'e2e');
    const url = await urlOf(id, 'e2e');
    await ferry.abort(id, { user: 'carol' });
    const done = await finished(id);
    assert.equal(done.phase, 'Aborted');
    assert.equal(done.gates?.[0].phase, 'Cancelled');
    assert.equal((await postTo(url, { result: 'pass' })).status, 409);
  });

  it('replays every gated promotion above against the workflow code (determinism of the gates block)', async () => {
    assert.ok(promoted.length >= 6);
    const histories = await Promise.all(
      promoted.map(async (workflowId) => ({
        workflowId,
        history: await env.client.workflow.getHandle(workflowId).fetchHistory(),
      })),
    );
    for await (const result of Worker.runReplayHistories({ workflowsPath: WORKFLOWS_PATH }, histories)) {
      assert.equal(result.error, undefined, `${result.workflowId}: ${String(result.error)}`);
    }
  });
});
