// The HTTP API over a real server on 127.0.0.1, backed by an in-memory FerryApi: a test double of the typed client
// (the real client against Temporal is covered by the end-to-end tests).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { createToken, createTokenStore, ensureLocalToken, ensurePrivateHome, tokenDigest } from '../../client/auth';
import { apiEnvironment } from '../../dev/environment';
import { adminsFromEnv } from '../../api/app';
import { startApiServer, type ApiServer } from '../../api/server';
import { FerryError } from '../../client/errors';
import { createLogger, silentLogger } from '../../client/log';
import type { FerryApi } from '../../client/types';
import { freightId } from '../../pipeline/freight';
import type { PipelineStatus, PromotionStatus } from '../../workflows/messages';
import { FIVE_MISTAKES_YAML, guestbookYaml } from '../helpers/fixtures';
import { createMemoryFerry, type MemoryFerry, delegateTo } from '../helpers/memory-ferry';

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

const PIPELINE_YAML = guestbookYaml(
  `
    - name: dev
      promotion: auto
      render: { strategy: branch, from: apps/guestbook/overlays/dev, to: env/dev }
    - name: prod
      after: [dev]
      render: { strategy: branch, from: apps/guestbook/overlays/prod, to: env/prod }
      approval: { required: 1, approvers: [alice, bob] }
`,
  { credentials: 'gitops' },
);

const pipelineJson = (name = 'guestbook') => ({
  apiVersion: 'ferry.dev/v1alpha1',
  kind: 'Pipeline',
  metadata: { name },
  spec: {
    repo: { url: 'https://git.example.com/org/gitops.git' },
    artifacts: [{ name: 'guestbook', image: 'registry.example.com/team/guestbook' }],
    stages: [{ name: 'dev', render: { strategy: 'branch', from: 'apps/guestbook/overlays/dev', to: 'env/dev' } }],
  },
});

const ALICE = 'tok-alice-0123456789';
const CAROL = 'tok-carol-0123456789';
const ALL_ROLES = ['viewer', 'promoter', 'approver', 'admin'];

let ferry: MemoryFerry;
let server: ApiServer;
let logLines: string[] = [];

before(async () => {
  ferry = createMemoryFerry();
  const tokens = createTokenStore({ file: null, env: {}, tokens: { [ALICE]: 'alice', [CAROL]: 'carol' } });
  const logger = createLogger({ write: (line) => logLines.push(line), level: 'debug' });
  // No role configuration: the default roles (token users promote and approve) and alice an admin (FERRY_ADMINS).
  server = await startApiServer({ ferry: { ...delegateTo(() => ferry) }, tokens, admins: ['alice'], port: 0, logger });
});

after(async () => {
  await server.close();
});

beforeEach(() => {
  ferry = createMemoryFerry();
  logLines = [];
});

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

async function http(
  method: string,
  urlPath: string,
  options: { token?: string | null; body?: string | object; type?: string } = {},
): Promise<Reply> {
  const headers: Record<string, string> = {};
  const token = options.token === undefined ? ALICE : options.token;
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['Content-Type'] =
      options.type ?? (typeof options.body === 'string' ? 'application/yaml' : 'application/json');
  }
  const response = await fetch(server.url + urlPath, { method, headers, body });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

interface ErrorBody {
  error: { code: string; message: string; errors?: Array<{ path: string; message: string }> };
}
const errorOf = (reply: Reply): ErrorBody['error'] => {
  assert.ok(
    reply.body && typeof reply.body === 'object' && 'error' in reply.body,
    `expected an error body, got: ${reply.text}`,
  );
  return (reply.body as ErrorBody).error;
};
const pathsOf = (reply: Reply): string[] => (errorOf(reply).errors ?? []).map((e) => e.path).sort();

async function applyGuestbook(): Promise<void> {
  const reply = await http('PUT', '/api/v1/pipelines/guestbook', { body: PIPELINE_YAML });
  assert.equal(reply.status, 200, reply.text);
}

async function promotionAwaitingApproval(): Promise<string> {
  await applyGuestbook();
  const freight = await http('POST', '/api/v1/pipelines/guestbook/freight', {
    body: { artifacts: { guestbook: '1.4.2' } },
  });
  const promotion = await http('POST', '/api/v1/pipelines/guestbook/stages/prod/promotions', {
    body: { freight: (freight.body as { id: string }).id },
  });
  assert.equal(promotion.status, 201, promotion.text);
  return (promotion.body as { id: string }).id;
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

describe('health and authentication', () => {
  test('GET /healthz needs no token and says whether Temporal answers', async () => {
    const up = await http('GET', '/healthz', { token: null });
    assert.equal(up.status, 200);
    assert.deepEqual(up.body, { ok: true });

    ferry.healthy = false;
    const down = await http('GET', '/healthz', { token: null });
    assert.equal(down.status, 503);
    assert.deepEqual(down.body, { ok: false });
  });

  test('a request without a token gets 401 with WWW-Authenticate: Bearer', async () => {
    const reply = await http('GET', '/api/v1/pipelines', { token: null });
    assert.equal(reply.status, 401);
    assert.match(reply.headers.get('www-authenticate') ?? '', /^Bearer /);
    assert.equal(errorOf(reply).code, 'Unauthenticated');
  });

  test('a request with an unknown token gets 401 with invalid_token, and reaches nothing', async () => {
    const reply = await http('PUT', '/api/v1/pipelines/guestbook', { token: 'not-a-token', body: PIPELINE_YAML });
    assert.equal(reply.status, 401);
    assert.match(reply.headers.get('www-authenticate') ?? '', /^Bearer .*error="invalid_token"/);
    assert.equal(errorOf(reply).code, 'Unauthenticated');
    assert.equal(ferry.applied.length, 0);
  });

  test('request log lines carry method, path, status, time and user, and never the token', async () => {
    await http('GET', '/api/v1/pipelines');
    await http('GET', '/api/v1/pipelines', { token: 'secret-wrong-token' });
    const requests = logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((l) => l.msg === 'request');
    assert.equal(requests.length, 2);
    assert.deepEqual(
      requests.map(({ method, path: p, status, user }) => ({ method, path: p, status, user })),
      [
        { method: 'GET', path: '/api/v1/pipelines', status: 200, user: 'alice' },
        { method: 'GET', path: '/api/v1/pipelines', status: 401, user: undefined },
      ],
    );
    assert.equal(typeof requests[0].ms, 'number');
    const all = logLines.join('');
    assert.ok(!all.includes(ALICE) && !all.includes('secret-wrong-token') && !/authorization/i.test(all), all);
  });
});

describe('keep-alive', () => {
  test("an idle keep-alive connection outlives the client's idle limit: the server keeps it 65 s and does not say 5", async () => {
    const socket = net.connect(server.port, '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    let ended = false;
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    socket.on('end', () => (ended = true));
    const ask = async (): Promise<string> => {
      received = '';
      socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await until(() => /\r\n\r\n\{"ok":true\}$/.test(received));
      return received;
    };
    const first = await ask();
    assert.match(first, /^HTTP\/1\.1 200/);
    assert.match(first, /\r\nConnection: keep-alive\r\n/i);
    // Node's fetch keeps an idle socket for the advertised timeout less one second, and 4 s when none is given.
    assert.doesNotMatch(first, /\r\nKeep-Alive: timeout=/i);
    await new Promise((r) => setTimeout(r, 5500));
    assert.equal(ended, false, 'the server closed an idle connection after 5 s');
    assert.match(await ask(), /^HTTP\/1\.1 200/);
    socket.destroy();
  });
});

describe('applying pipelines', () => {
  for (const type of ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain']) {
    test(`a valid pipeline sent as ${type} is applied with its defaults`, async () => {
      const reply = await http('PUT', '/api/v1/pipelines/guestbook', { body: PIPELINE_YAML, type });
      assert.equal(reply.status, 200, reply.text);
      assert.equal(ferry.applied.length, 1);
      assert.equal(ferry.applied[0].spec.repo.branch, 'main');
      assert.equal(ferry.applied[0].spec.stages[0].render.engine, 'plain');
      assert.equal((reply.body as PipelineStatus).name, 'guestbook');
    });
  }

  test('a valid pipeline sent as JSON is applied', async () => {
    const reply = await http('PUT', '/api/v1/pipelines/guestbook', { body: pipelineJson() });
    assert.equal(reply.status, 200, reply.text);
    assert.equal(ferry.applied.length, 1);
    assert.equal(ferry.applied[0].metadata.name, 'guestbook');
  });

  test('a pipeline with five mistakes gets all five back by path, and nothing is applied', async () => {
    const reply = await http('PUT', '/api/v1/pipelines/guestbook', { body: FIVE_MISTAKES_YAML });
    assert.equal(reply.status, 400, reply.text);
    const error = errorOf(reply);
    assert.equal(error.code, 'InvalidArgument');
    assert.deepEqual(pathsOf(reply), [
      'apiVersion',
      'spec.artifacts[0].image',
      'spec.repo.url',
      'spec.stages[0].render.strategy',
      'spec.stages[1].after[0]',
    ]);
    assert.ok(error.errors?.every((e) => e.message.length > 0));
    assert.equal(ferry.applied.length, 0);
  });

  test('metadata.name must equal the name in the URL', async () => {
    const reply = await http('PUT', '/api/v1/pipelines/other', { body: PIPELINE_YAML });
    assert.equal(reply.status, 400);
    assert.deepEqual(pathsOf(reply), ['metadata.name']);
    assert.match(errorOf(reply).errors?.[0].message ?? '', /"other"/);
    assert.equal(ferry.applied.length, 0);

    const json = await http('PUT', '/api/v1/pipelines/other', { body: pipelineJson('guestbook') });
    assert.deepEqual(pathsOf(json), ['metadata.name']);
  });

  test('a name mismatch is reported together with the other mistakes', async () => {
    const reply = await http('PUT', '/api/v1/pipelines/other', { body: FIVE_MISTAKES_YAML });
    assert.equal(reply.status, 400);
    assert.equal(pathsOf(reply).length, 6);
    assert.ok(pathsOf(reply).includes('metadata.name'));
  });

  test('malformed YAML and malformed JSON bodies get 400 naming the problem', async () => {
    const yaml = await http('PUT', '/api/v1/pipelines/guestbook', { body: 'kind: Pipeline\nmetadata: [unclosed\n' });
    assert.equal(yaml.status, 400);
    assert.match(JSON.stringify(errorOf(yaml)), /YAML syntax error/);

    const json = await http('PUT', '/api/v1/pipelines/guestbook', {
      body: '{"kind": "Pipeline",',
      type: 'application/json',
    });
    assert.equal(json.status, 400);
    assert.match(errorOf(json).message, /not valid JSON/);

    const empty = await http('PUT', '/api/v1/pipelines/guestbook', { body: '', type: 'application/yaml' });
    assert.equal(empty.status, 400);
    assert.match(errorOf(empty).message, /empty/);
    assert.equal(ferry.applied.length, 0);
  });

  test('a pipeline in an unsupported content type is refused with 400 saying what to send', async () => {
    const reply = await http('PUT', '/api/v1/pipelines/guestbook', { body: PIPELINE_YAML, type: 'application/xml' });
    assert.equal(reply.status, 400);
    assert.match(errorOf(reply).message, /application\/yaml or application\/json/);
  });

  test('a body over 1 MB is refused with the error shape, not a 500', async () => {
    const reply = await http('PUT', '/api/v1/pipelines/guestbook', { body: `# ${'x'.repeat(1024 * 1024 + 10)}\n` });
    assert.equal(reply.status, 413);
    assert.equal(errorOf(reply).code, 'InvalidArgument');
    assert.match(errorOf(reply).message, /1 MB/);
  });

  test('GET lists pipelines and returns one with its applied spec; an unknown one is 404', async () => {
    await applyGuestbook();
    const list = await http('GET', '/api/v1/pipelines');
    assert.equal(list.status, 200);
    assert.deepEqual(list.body, { pipelines: [{ name: 'guestbook', stages: ['dev', 'prod'], status: 'Running' }] });

    const one = await http('GET', '/api/v1/pipelines/guestbook');
    assert.equal(one.status, 200);
    assert.deepEqual((one.body as PipelineStatus).spec.spec.artifacts, [
      { name: 'guestbook', image: 'registry.example.com/team/guestbook' },
    ]);

    const missing = await http('GET', '/api/v1/pipelines/nope');
    assert.equal(missing.status, 404);
    assert.equal(errorOf(missing).code, 'NotFound');
  });
});

describe('freight and promotions', () => {
  test('registering freight returns its id: 201 the first time, 200 after', async () => {
    await applyGuestbook();
    const first = await http('POST', '/api/v1/pipelines/guestbook/freight', {
      body: { artifacts: { guestbook: '1.4.2' } },
    });
    assert.equal(first.status, 201, first.text);
    assert.deepEqual(first.body, { id: freightId({ guestbook: '1.4.2' }), created: true });
    const again = await http('POST', '/api/v1/pipelines/guestbook/freight', {
      body: { artifacts: { guestbook: '1.4.2' } },
    });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { id: freightId({ guestbook: '1.4.2' }), created: false });
  });

  test("freight is checked against the pipeline's artifacts, each problem by path", async () => {
    await applyGuestbook();
    const reply = await http('POST', '/api/v1/pipelines/guestbook/freight', {
      body: { artifacts: { guestbook: 'not a tag!', redis: '7.2' } },
    });
    assert.equal(reply.status, 400);
    assert.deepEqual(pathsOf(reply), ['artifacts.guestbook', 'artifacts.redis']);

    const shapeless = await http('POST', '/api/v1/pipelines/guestbook/freight', { body: { versions: {} } });
    assert.equal(shapeless.status, 400);
    assert.deepEqual(pathsOf(shapeless), ['artifacts', 'versions']);
    assert.equal((await ferry.getPipeline('guestbook')).freight.length, 0);
  });

  test('freight for an unknown pipeline is 404', async () => {
    const reply = await http('POST', '/api/v1/pipelines/nope/freight', { body: { artifacts: { guestbook: '1.4.2' } } });
    assert.equal(reply.status, 404);
  });

  test('a promotion is requested by the token user: 201 when started, 200 when it already existed', async () => {
    await applyGuestbook();
    await http('POST', '/api/v1/pipelines/guestbook/freight', { body: { artifacts: { guestbook: '1.4.2' } } });
    const freight = freightId({ guestbook: '1.4.2' });
    const first = await http('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', { body: { freight } });
    assert.equal(first.status, 201, first.text);
    assert.deepEqual(first.body, { id: `promotion/guestbook/dev/${freight}`, existing: false });
    assert.equal(ferry.promoteCalls[0].requestedBy, 'alice');

    const again = await http('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', {
      body: { freight },
      token: CAROL,
    });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { id: `promotion/guestbook/dev/${freight}`, existing: true });
  });

  test('a promotion body cannot name who requested it, and must name the freight', async () => {
    await applyGuestbook();
    const impersonating = await http('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', {
      body: { freight: 'abc', requestedBy: 'bob' },
    });
    assert.equal(impersonating.status, 400);
    assert.deepEqual(pathsOf(impersonating), ['requestedBy']);

    const empty = await http('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', { body: {} });
    assert.equal(empty.status, 400);
    assert.deepEqual(pathsOf(empty), ['freight']);
    assert.equal(ferry.promoteCalls.length, 0);
  });

  test('force in a promote body asks the client for a new run; it must be a boolean', async () => {
    await applyGuestbook();
    await http('POST', '/api/v1/pipelines/guestbook/freight', { body: { artifacts: { guestbook: '1.4.2' } } });
    const freight = freightId({ guestbook: '1.4.2' });
    const forced = await http('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', {
      body: { freight, force: true },
    });
    assert.equal(forced.status, 201, forced.text);
    const plain = await http('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', { body: { freight } });
    assert.equal(plain.status, 200, plain.text);
    assert.deepEqual(
      ferry.promoteCalls.map((c) => c.force),
      [true, undefined],
    );
    const wrong = await http('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', {
      body: { freight, force: 'yes' },
    });
    assert.equal(wrong.status, 400);
    assert.deepEqual(pathsOf(wrong), ['force']);
  });

  test('malformed JSON in a request body is 400 naming the problem', async () => {
    await applyGuestbook();
    const reply = await http('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', {
      body: '{"freight": ',
      type: 'application/json',
    });
    assert.equal(reply.status, 400);
    assert.equal(errorOf(reply).code, 'InvalidArgument');
    assert.match(errorOf(reply).message, /not valid JSON/);
  });
});

describe('promotion ids and decisions', () => {
  test('a promotion id works URL-encoded and with raw slashes', async () => {
    const id = await promotionAwaitingApproval();
    const encoded = await http('GET', `/api/v1/promotions/${encodeURIComponent(id)}`);
    assert.equal(encoded.status, 200, encoded.text);
    assert.equal((encoded.body as PromotionStatus).id, id);
    const raw = await http('GET', `/api/v1/promotions/${id}`);
    assert.equal(raw.status, 200, raw.text);
    assert.equal((raw.body as PromotionStatus).id, id);
  });

  test('approve with a raw-slash id: the approver is the token user, the comment is kept', async () => {
    const id = await promotionAwaitingApproval();
    const reply = await http('POST', `/api/v1/promotions/${id}/approve`, { body: { comment: 'ship it' } });
    assert.equal(reply.status, 200, reply.text);
    assert.deepEqual(ferry.decisions, [
      { action: 'approve', id, decision: { user: 'alice', comment: 'ship it', admin: true, roles: ALL_ROLES } },
    ]);
    assert.equal((reply.body as PromotionStatus).phase, 'Queued');
  });

  test('reject and abort with an encoded id and no body', async () => {
    const id = await promotionAwaitingApproval();
    const rejected = await http('POST', `/api/v1/promotions/${encodeURIComponent(id)}/reject`);
    assert.equal(rejected.status, 200, rejected.text);
    assert.deepEqual(ferry.decisions, [
      { action: 'reject', id, decision: { user: 'alice', admin: true, roles: ALL_ROLES } },
    ]);

    const aborted = await http('POST', `/api/v1/promotions/${encodeURIComponent(id)}/abort`, { body: {} });
    assert.equal(aborted.status, 409, 'a finished promotion cannot be aborted');
    assert.equal(errorOf(aborted).code, 'Conflict');
  });

  test('a user field in a decision body is refused with 400 naming it, and nothing is decided', async () => {
    const id = await promotionAwaitingApproval();
    const reply = await http('POST', `/api/v1/promotions/${encodeURIComponent(id)}/approve`, {
      body: { user: 'bob', comment: 'ok' },
    });
    assert.equal(reply.status, 400);
    assert.deepEqual(pathsOf(reply), ['user']);
    assert.match(errorOf(reply).errors?.[0].message ?? '', /token/);
    assert.equal(ferry.decisions.length, 0);
  });

  test('a decision by a user in FERRY_ADMINS carries admin: true and its roles, set by the API, never by the body', async () => {
    const id = await promotionAwaitingApproval();
    for (const body of [{ admin: true }, { roles: ['admin'] }]) {
      const claimed = await http('POST', `/api/v1/promotions/${encodeURIComponent(id)}/abort`, {
        body,
        token: CAROL,
      });
      assert.equal(claimed.status, 400, 'carol is no admin and cannot say she is');
      assert.deepEqual(pathsOf(claimed), Object.keys(body));
      assert.match(errorOf(claimed).errors?.[0].message ?? '', /FERRY_ADMINS|server configuration/);
    }
    assert.equal(ferry.decisions.length, 0);

    const aborted = await http('POST', `/api/v1/promotions/${encodeURIComponent(id)}/abort`);
    assert.equal(aborted.status, 200, aborted.text);
    assert.deepEqual(ferry.decisions, [
      { action: 'abort', id, decision: { user: 'alice', admin: true, roles: ALL_ROLES } },
    ]);
  });

  test('without role configuration a token user who is no admin decides with roles promoter and approver', async () => {
    const id = await promotionAwaitingApproval();
    const refused = await http('POST', `/api/v1/promotions/${encodeURIComponent(id)}/abort`, { token: CAROL });
    assert.equal(refused.status, 403, refused.text);
    assert.match(
      errorOf(refused).message,
      /^user "carol" may not abort promotion .*: only its requester \(alice\) with role promoter/,
    );
    const applied = await http('PUT', '/api/v1/pipelines/guestbook', { body: PIPELINE_YAML, token: CAROL });
    assert.equal(applied.status, 403);
    assert.equal(errorOf(applied).message, 'user "carol" needs role admin on guestbook/*');
  });

  test('FERRY_ADMINS is a comma-separated list of user names', () => {
    assert.deepEqual(adminsFromEnv({ FERRY_ADMINS: ' carol, dave ,,' }), ['carol', 'dave']);
    assert.deepEqual(adminsFromEnv({}), []);
  });

  test('Forbidden from the client is 403 with its reason', async () => {
    const id = await promotionAwaitingApproval();
    const reply = await http('POST', `/api/v1/promotions/${id}/approve`, { token: CAROL });
    assert.equal(reply.status, 403);
    assert.deepEqual(errorOf(reply), {
      code: 'Forbidden',
      message: 'carol is not an approver of stage "prod" (approvers: alice, bob)',
    });
  });

  test('Conflict from the client is 409', async () => {
    const id = await promotionAwaitingApproval();
    await http('POST', `/api/v1/promotions/${id}/approve`);
    const second = await http('POST', `/api/v1/promotions/${id}/approve`);
    assert.equal(second.status, 409);
    assert.equal(errorOf(second).code, 'Conflict');
  });

  test('NotFound from the client is 404', async () => {
    const reply = await http('GET', '/api/v1/promotions/promotion%2Fguestbook%2Fdev%2F000000000000');
    assert.equal(reply.status, 404);
    assert.deepEqual(errorOf(reply), {
      code: 'NotFound',
      message: 'promotion "promotion/guestbook/dev/000000000000" not found',
    });
    const decision = await http('POST', '/api/v1/promotions/promotion/guestbook/dev/000000000000/abort');
    assert.equal(decision.status, 404);
  });
});

describe('Temporal unreachable', () => {
  test('a call that hangs while Temporal does not answer is 503 at once; later calls wait for a probe; it recovers', async () => {
    let down = true;
    let listCalls = 0;
    const memory = createMemoryFerry();
    const fake: FerryApi = {
      ...delegateTo(() => memory),
      health: async () => {
        await new Promise((r) => setTimeout(r, 50));
        return !down;
      },
      listPipelines: () => {
        listCalls++;
        // What the Temporal client does for about 20 s when the server is gone: nothing.
        return down ? new Promise<never>(() => undefined) : memory.listPipelines();
      },
    };
    const tokens = createTokenStore({ file: null, env: {}, tokens: { [ALICE]: 'alice' } });
    const own = await startApiServer({
      ferry: fake,
      tokens,
      port: 0,
      logger: silentLogger,
      availability: { checkAfterMs: 200 },
    });
    try {
      const get = async (path: string): Promise<{ status: number; ms: number; body: any }> => {
        const started = Date.now();
        const res = await fetch(own.url + path, { headers: { Authorization: `Bearer ${ALICE}` } });
        return { status: res.status, ms: Date.now() - started, body: await res.json() };
      };
      const first = await get('/api/v1/pipelines');
      assert.equal(first.status, 503);
      assert.equal(first.body.error.code, 'Unavailable');
      assert.ok(first.ms < 2000, `${first.ms} ms`);
      assert.equal(listCalls, 1);

      const second = await get('/api/v1/pipelines');
      assert.equal(second.status, 503);
      assert.equal(listCalls, 1, 'while Temporal is known to be unreachable, a call waits for a successful probe');
      assert.deepEqual((await get('/healthz')).body, { ok: false });

      down = false;
      const back = await get('/api/v1/pipelines');
      assert.equal(back.status, 200, JSON.stringify(back.body));
      assert.equal((await get('/healthz')).status, 200);
    } finally {
      await own.close();
    }
  });
});

describe('errors', () => {
  test('an unknown route is 404 in the JSON error shape, inside and outside /api', async () => {
    for (const [method, urlPath] of [
      ['GET', '/api/v1/nothing'],
      ['DELETE', '/api/v1/pipelines/guestbook'],
      ['POST', '/api/v1/promotions/promotion/guestbook/dev/abc/explode'],
      ['GET', '/nothing'],
    ]) {
      const reply = await http(method, urlPath);
      assert.equal(reply.status, 404, `${method} ${urlPath}`);
      assert.equal(errorOf(reply).code, 'NotFound');
      assert.match(reply.headers.get('content-type') ?? '', /application\/json/);
    }
  });

  test('an unexpected failure is 500 without its message or stack', async () => {
    ferry.listFailure = new Error('connection to postgres://admin:hunter2@db failed');
    const reply = await http('GET', '/api/v1/pipelines');
    assert.equal(reply.status, 500);
    assert.equal(errorOf(reply).code, 'Internal');
    assert.ok(!reply.text.includes('hunter2') && !reply.text.includes('at '), reply.text);
  });

  test('an Internal FerryError from the typed client is 500 without its message, which goes to the log', async () => {
    // FerryClient turns any Temporal failure it does not recognise into Internal with the raw message.
    ferry.listFailure = new FerryError('Internal', 'pipelines: connection to postgres://admin:hunter2@db failed');
    const reply = await http('GET', '/api/v1/pipelines');
    assert.equal(reply.status, 500);
    assert.equal(errorOf(reply).code, 'Internal');
    assert.ok(!reply.text.includes('hunter2'), reply.text);
    assert.ok(
      logLines.some((line) => line.includes('"level":"error"') && line.includes('"code":"Internal"')),
      logLines.join(''),
    );
  });

  test('malformed percent-encoding in the path is 400, not 500', async () => {
    const reply = await http('GET', '/api/v1/promotions/promotion%ZZ');
    assert.equal(reply.status, 400);
    assert.equal(errorOf(reply).code, 'InvalidArgument');
  });
});

describe('token store', () => {
  let home: string;
  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-auth-'));
  });
  afterEach(() => {
    fs.rmSync(home, { recursive: true, force: true });
  });

  test('tokens come from FERRY_TOKENS and from the tokens file; unknown and empty tokens map to nobody', () => {
    fs.writeFileSync(path.join(home, 'tokens.json'), JSON.stringify({ tokens: { 'file-token': 'dave' } }));
    const store = createTokenStore({
      env: { FERRY_HOME: home, FERRY_TOKENS: 'tok1=alice, tok2==bob' },
      logger: silentLogger,
    });
    assert.equal(store.userForToken('tok1'), 'alice');
    assert.equal(store.userForToken('tok2='), 'bob', 'a token may end in "=" (base64)');
    assert.equal(store.userForToken('file-token'), 'dave');
    assert.equal(store.userForToken('tok3'), undefined);
    assert.equal(store.userForToken(''), undefined);
    assert.equal(store.size(), 3);
  });

  test('a malformed FERRY_TOKENS entry is an error that does not repeat the token', () => {
    assert.throws(
      () => createTokenStore({ file: null, env: { FERRY_TOKENS: 'tok1=alice,supersecret' } }),
      (err: Error) => /entry 2/.test(err.message) && !err.message.includes('supersecret'),
    );
  });

  test('ensureLocalToken creates one token, mode 0600, that the store accepts, and reuses it', () => {
    const env = { FERRY_HOME: home };
    const saved = process.env.FERRY_TOKENS_FILE;
    delete process.env.FERRY_TOKENS_FILE;
    try {
      const token = ensureLocalToken(home, 'admin');
      assert.ok(token.length >= 32);
      assert.equal(fs.readFileSync(path.join(home, 'token'), 'utf8').trim(), token);
      assert.equal(fs.statSync(path.join(home, 'token')).mode & 0o777, 0o600);
      assert.equal(fs.statSync(path.join(home, 'tokens.json')).mode & 0o777, 0o600);
      assert.equal(createTokenStore({ env, logger: silentLogger }).userForToken(token), 'admin');
      assert.equal(ensureLocalToken(home, 'admin'), token);
      // The tokens file holds the digest, never the token.
      const stored = fs.readFileSync(path.join(home, 'tokens.json'), 'utf8');
      assert.ok(!stored.includes(token), stored);
      assert.deepEqual(JSON.parse(stored), { tokens: [{ sha256: tokenDigest(token), user: 'admin' }] });
    } finally {
      if (saved !== undefined) process.env.FERRY_TOKENS_FILE = saved;
    }
  });

  test('a token added to the tokens file works without restarting', () => {
    const file = path.join(home, 'tokens.json');
    const store = createTokenStore({ file, env: {}, logger: silentLogger });
    assert.equal(store.userForToken('late-token'), undefined);
    fs.writeFileSync(file, JSON.stringify({ tokens: [{ sha256: tokenDigest('late-token'), user: 'erin' }] }));
    assert.equal(store.userForToken('late-token'), 'erin');
    const created = createToken(file, 'frank');
    assert.equal(store.userForToken(created), 'frank');
    assert.equal(store.userForToken('late-token'), 'erin', 'createToken keeps the tokens already there');
    assert.ok(!fs.readFileSync(file, 'utf8').includes(created));
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  });

  test('a tokens file in the old plaintext form is read, and the API start rewrites it with digests', () => {
    const file = path.join(home, 'tokens.json');
    fs.writeFileSync(file, JSON.stringify({ tokens: { 'old-plain-token': 'grace' } }));
    assert.equal(createTokenStore({ file, env: {}, logger: silentLogger }).userForToken('old-plain-token'), 'grace');
    assert.ok(fs.readFileSync(file, 'utf8').includes('old-plain-token'), 'reading alone changes nothing');

    const lines: string[] = [];
    const store = createTokenStore({
      file,
      env: {},
      migratePlaintext: true,
      logger: createLogger({ write: (l) => lines.push(l) }),
    });
    assert.equal(store.userForToken('old-plain-token'), 'grace');
    const stored = fs.readFileSync(file, 'utf8');
    assert.ok(!stored.includes('old-plain-token'), stored);
    assert.deepEqual(JSON.parse(stored), { tokens: [{ sha256: tokenDigest('old-plain-token'), user: 'grace' }] });
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.match(lines.join(''), /rewrote it with their sha256 digests/);
    assert.ok(!lines.join('').includes('old-plain-token'));
  });

  test('a malformed digest entry is an error naming its path', () => {
    const file = path.join(home, 'tokens.json');
    fs.writeFileSync(file, JSON.stringify({ tokens: [{ sha256: 'abc', user: 'x' }] }));
    assert.throws(() => createTokenStore({ file, env: {} }), /tokens\[0\]\.sha256 must be the 64 hex digits/);
  });
});

describe('local state (npm start)', () => {
  test('FERRY_HOME is created 0700, and one that exists with wider permissions is made 0700', () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-home-'));
    try {
      const fresh = ensurePrivateHome(path.join(parent, 'fresh', '.ferry'));
      assert.equal(fs.statSync(fresh).mode & 0o777, 0o700);
      const open = path.join(parent, 'open');
      fs.mkdirSync(open, { mode: 0o755 });
      fs.chmodSync(open, 0o755);
      ensurePrivateHome(open);
      assert.equal(fs.statSync(open).mode & 0o777, 0o700);
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
    }
  });

  test("the API process gets an allow-listed environment: none of the worker's secrets", () => {
    const env = apiEnvironment(
      {
        PATH: '/usr/bin',
        HOME: '/home/alice',
        LC_ALL: 'C.UTF-8',
        FERRY_TOKENS: 'tok=alice',
        FERRY_ADMINS: 'carol',
        FERRY_SECRET_GITOPS_TOKEN: 'ghp_secret',
        FERRY_SECRET_ARGOCD_PASSWORD: 'pw',
        FERRY_SECRETS_DIR: '/run/secrets/ferry',
        AWS_SECRET_ACCESS_KEY: 'aws',
        GITHUB_TOKEN: 'gh',
        FERRY_ALLOW_FILE_REPOS: '1',
      },
      { TEMPORAL_ADDRESS: '127.0.0.1:7233' },
    );
    assert.deepEqual(env, {
      PATH: '/usr/bin',
      HOME: '/home/alice',
      LC_ALL: 'C.UTF-8',
      FERRY_TOKENS: 'tok=alice',
      FERRY_ADMINS: 'carol',
      TEMPORAL_ADDRESS: '127.0.0.1:7233',
    });
  });
});
