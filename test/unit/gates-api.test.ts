// The callback routes and `ferry gate url` / `ferry get` against the real HTTP API app, backed by the in-memory
// FerryApi (the real workflow behind them: test/workflows/gates.test.ts). What is checked here is the HTTP edge:
// who may read a URL, what a forged, oversized or malformed callback gets, and that no token reaches the log.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test, type TestContext } from 'node:test';
import { startApiServer } from '../../api/server';
import { createTokenStore } from '../../client/auth';
import { callbackToken } from '../../client/gate-callbacks';
import { createLogger } from '../../client/log';
import type { Io } from '../../cli/io';
import { run } from '../../cli/run';
import { parsePipelineText } from '../../pipeline/load';
import { guestbookYaml } from '../helpers/fixtures';
import { createMemoryFerry } from '../helpers/memory-ferry';

const ROOT = 'root-token-0123456789';
const ALICE = 'alice-token-0123456789';

const PIPELINE = guestbookYaml(`
    - name: prod
      render: { strategy: branch, from: apps/guestbook/overlays/prod, to: env/prod }
      gates:
        - { name: e2e, callback: { timeout: 30m } }
        - { name: smoke, http: { url: "https://guestbook.example.com/healthz" } }
`);

async function world(t: TestContext, options: { key?: Buffer | null } = {}) {
  const key = options.key === null ? undefined : (options.key ?? randomBytes(32));
  const ferry = createMemoryFerry();
  const log: string[] = [];
  const server = await startApiServer({
    ferry,
    tokens: createTokenStore({ file: null, env: {}, tokens: { [ROOT]: 'root', [ALICE]: 'alice' } }),
    admins: ['root'],
    port: 0,
    callbackKey: key,
    logger: createLogger({ write: (line) => log.push(line), level: 'debug' }),
  });
  t.after(() => server.close());
  const loaded = parsePipelineText(PIPELINE);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  await ferry.applyPipeline(loaded.pipeline);
  const { id: freight } = await ferry.addFreight('guestbook', { guestbook: '1.4.2' });
  const { id } = await ferry.promote('guestbook', 'prod', freight, 'alice');

  const http = async (method: string, path: string, init: { token?: string; body?: string } = {}) => {
    const response = await fetch(server.url + path, {
      method,
      headers: {
        ...(init.token ? { Authorization: `Bearer ${init.token}` } : {}),
        'Content-Type': 'application/json',
      },
      body: init.body,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  };
  const cli = async (args: string[], token: string) => {
    let stdout = '';
    let stderr = '';
    const io: Io = {
      out: (line = '') => void (stdout += `${line}\n`),
      err: (line) => void (stderr += `${line}\n`),
      env: { FERRY_URL: server.url, FERRY_TOKEN: token },
      cwd: process.cwd(),
      readStdin: () => '',
    };
    const code = await run(args, io);
    return { code, stdout, stderr };
  };
  const urlPath = `/api/v1/promotions/${encodeURIComponent(id)}/gates/e2e/callback-url`;
  return { ferry, server, key, id, http, cli, log, urlPath };
}

describe('callback gates over HTTP (in-memory FerryApi)', () => {
  test('an admin reads a waiting gate’s URL (API and CLI); others get a 403; a gate not waiting is a 409', async (t) => {
    const { ferry, server, id, http, cli, urlPath } = await world(t);
    const early = await http('GET', urlPath, { token: ROOT });
    assert.equal(early.status, 409);
    ferry.startGate(id, 'e2e');

    const forbidden = await http('GET', urlPath, { token: ALICE });
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error.message, 'user "alice" needs role admin on guestbook/prod');
    const answer = await http('GET', urlPath, { token: ROOT });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.promotion, id);
    assert.match(answer.body.url, new RegExp(`^${server.url}/api/v1/callbacks/v1\\.[\\w-]+\\.[\\w-]{43}$`));

    const printed = await cli(['gate', 'url', id, 'e2e'], ROOT);
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stdout, `${answer.body.url}\n`);
    const refused = await cli(['gate', 'url', id, 'e2e'], ALICE);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error: user "alice" needs role admin on guestbook\/prod/);
    assert.equal((await cli(['gate', 'url', id, 'smoke'], ROOT)).code, 1);
    assert.equal((await cli(['gate', 'open', id], ROOT)).code, 2);
    assert.equal((await http('GET', urlPath.replace('/e2e/', '/nope/'), { token: ROOT })).status, 404);
  });

  test('forged, oversized and malformed callbacks get a 4xx and decide nothing; the token never reaches the log', async (t) => {
    const { ferry, key, id, http, log } = await world(t);
    ferry.startGate(id, 'e2e');
    const runId = ferry.runIds.get(id) ?? '';
    const token = callbackToken(key as Buffer, { promotionId: id, runId, gate: 'e2e' });
    const post = (tok: string, body: string) => http('POST', `/api/v1/callbacks/${tok}`, { body });

    const forged = callbackToken(randomBytes(32), { promotionId: id, runId, gate: 'e2e' });
    assert.equal((await post(forged, '{"result":"pass"}')).status, 401);
    assert.equal((await post('x'.repeat(2000), '{"result":"pass"}')).status, 401);
    const huge = await post(token, JSON.stringify({ result: 'pass', reason: 'x'.repeat(20_000) }));
    assert.equal(huge.status, 413);
    const malformed = await post(token, '{"result": "pass",');
    assert.equal(malformed.status, 400);
    assert.match(malformed.body.error.message, /not valid JSON/);
    const unknown = await post(token, '{"result":"pass","user":"root"}');
    assert.deepEqual(unknown.body.error.errors, [{ path: 'user', message: 'unknown field' }]);
    assert.equal((await http('GET', `/api/v1/callbacks/${token}`)).status, 400);
    assert.deepEqual(ferry.decisions, [], 'nothing was decided');

    const passed = await post(token, '{"result":"pass","reason":"green","by":"e2e"}');
    assert.deepEqual(passed, { status: 200, body: { promotion: id, gate: 'e2e', phase: 'Passed' } });
    const replayed = await post(token, '{"result":"pass","reason":"green","by":"e2e"}');
    assert.equal(replayed.status, 409);
    assert.match(replayed.body.error.message, /cannot be decided: it already passed \(callback by e2e\)/);
    assert.equal(ferry.decisions.length, 1);

    const text = log.join('');
    assert.ok(!text.includes(token.split('.')[2]), 'no token in the log');
    assert.ok(!text.includes(forged.split('.')[2]), 'no forged token in the log either');
    assert.match(text, /"path":"\/api\/v1\/callbacks\/\*\*\*","status":200/);
  });

  test('ferry get shows the gates: what decided them, and until when one waits', async (t) => {
    const { ferry, id, cli } = await world(t);
    ferry.startGate(id, 'e2e');
    const runId = ferry.runIds.get(id) ?? '';
    await ferry.decideGate({ promotionId: id, runId, gate: 'e2e' }, { result: 'fail', reason: 'red', by: 'ci' });
    const get = await cli(['get', id], ROOT);
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /^GATE +TYPE +PHASE +DECIDED BY +ANSWERS +MESSAGE$/m);
    assert.match(get.stdout, /^e2e +callback +Failed +callback by ci +- +GateFailed: red$/m);
    assert.match(get.stdout, /^smoke +http +Pending +- +-$/m);
  });

  test('without FERRY_CALLBACK_KEY the callback routes answer 503 and say what to set', async (t) => {
    const { ferry, id, http, urlPath } = await world(t, { key: null });
    ferry.startGate(id, 'e2e');
    const callback = await http('POST', '/api/v1/callbacks/v1.a.b', { body: '{"result":"pass"}' });
    assert.equal(callback.status, 503);
    assert.match(callback.body.error.message, /set FERRY_CALLBACK_KEY/);
    assert.equal((await http('GET', urlPath, { token: ROOT })).status, 503);
  });
});
