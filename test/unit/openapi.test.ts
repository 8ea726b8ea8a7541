// The OpenAPI document against the app it describes: the routes express registers and the documented operations are
// the same set, and what the real app answers (over a real server on 127.0.0.1, backed by the in-memory FerryApi)
// validates against the schema documented for that operation and status. The published docs/openapi.json is what
// `npm run docs` generates. (test/e2e/schemathesis.test.ts fuzzes the full stack from the same document.)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Express } from 'express';
import { z } from 'zod';
import { createApiApp } from '../../api/app';
import { openApiDocument, ROUTES, type RouteDoc } from '../../api/openapi';
import { EXAMPLE_PROMOTION, FreightBody, PromotionBody } from '../../api/schemas';
import { createTokenStore } from '../../client/auth';
import { FerryError } from '../../client/errors';
import { silentLogger } from '../../client/log';
import { ensureSchemathesis, SCHEMATHESIS_VERSION } from '../../dev/schemathesis';
import { freightId } from '../../pipeline/freight';
import { validatePipeline } from '../../pipeline/load';
import { OPENAPI_FILE, generateOpenApi } from '../../scripts/gen-docs';
import { guestbookYaml } from '../helpers/fixtures';
import { createMemoryFerry, type MemoryFerry } from '../helpers/memory-ferry';

const ALICE = 'tok-alice-openapi-0123456789';
const EVE = 'tok-eve-openapi-0123456789';

const PIPELINE_YAML = guestbookYaml(`
    - name: dev
      render: { strategy: branch, from: apps/guestbook/overlays/dev, to: env/dev }
    - name: prod
      after: [dev]
      render: { strategy: branch, from: apps/guestbook/overlays/prod, to: env/prod }
      approval: { required: 1, approvers: [alice] }
`);

type Json = Record<string, unknown>;
const document = openApiDocument() as {
  paths: Record<string, Record<string, { responses: Record<string, Json>; security?: unknown[] }>>;
  components: { schemas: Record<string, Json>; responses: Record<string, Json> };
};

/** express's `:name` and `*name` as OpenAPI's `{name}`. */
const openApiPath = (expressPath: string): string => expressPath.replace(/[:*](\w+)/g, '{$1}');

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  rawPath?: unknown;
}

/** Every method and path the app registers, walking its router stack and the routers mounted in it. */
function registeredRoutes(app: Express): string[] {
  const found: string[] = [];
  const walk = (stack: Layer[], prefix: string): void => {
    for (const layer of stack) {
      if (layer.route) {
        for (const method of Object.keys(layer.route.methods).filter((m) => m !== '_all')) {
          found.push(`${method.toUpperCase()} ${openApiPath(prefix + layer.route.path)}`);
        }
      } else if (layer.handle?.stack) {
        const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
        walk(layer.handle.stack, prefix + mount);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return found.sort();
}

/** The documented answer of an operation with that status, its $ref resolved. */
function documentedResponse(route: RouteDoc, status: number): (Json & { headers?: Json }) | undefined {
  const response = document.paths[route.path]?.[route.method]?.responses[String(status)];
  if (typeof response?.$ref === 'string') {
    return document.components.responses[response.$ref.replace('#/components/responses/', '')];
  }
  return response;
}

/** The documented schema of an operation's answer, as a zod schema (refs resolved within the document). */
function documentedSchema(route: RouteDoc, status: number): z.ZodType | undefined {
  const response = documentedResponse(route, status);
  if (!response) return undefined;
  const schema = (response.content as Record<string, { schema: Json }>)['application/json'].schema;
  const root = JSON.parse(
    JSON.stringify({ ...schema, $defs: document.components.schemas }).replaceAll('#/components/schemas/', '#/$defs/'),
  );
  return z.fromJSONSchema(root);
}

describe('the OpenAPI document', () => {
  let ferry: MemoryFerry;
  let app: Express;
  let server: http.Server;
  let base: string;
  /** `METHOD path status` of every answer checked against the document. */
  const seen = new Set<string>();

  before(async () => {
    ferry = createMemoryFerry({ phases: { dev: ['Pending', 'Rendering', 'Succeeded'] } });
    const tokens = createTokenStore({ file: null, env: {}, tokens: { [ALICE]: 'alice', [EVE]: 'eve' } });
    app = createApiApp({ ferry, tokens, admins: ['alice'], logger: silentLogger });
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /**
   * Calls the operation `METHOD path` (documented form) with `params` filled in, and checks that the status is
   * documented for it and that the body validates against the documented schema. Returns the body.
   */
  async function call(
    operation: string,
    options: {
      params?: Record<string, string>;
      body?: string | object;
      type?: string;
      token?: string | null;
      expect: number;
    },
  ): Promise<Json> {
    const [method, template] = operation.split(' ');
    const route = ROUTES.find((r) => r.method === method.toLowerCase() && r.path === template);
    assert.ok(route, `${operation} is not documented`);
    const url = template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(options.params?.[name] ?? ''));
    const headers: Record<string, string> = {};
    const token = options.token === undefined ? ALICE : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
      headers['content-type'] = options.type ?? 'application/json';
    }
    const response = await fetch(base + url, { method, headers, body });
    const text = await response.text();
    assert.equal(response.status, options.expect, `${operation}: ${text.slice(0, 500)}`);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json\b/, `${operation} content type`);
    const schema = documentedSchema(route, response.status);
    assert.ok(schema, `${operation} answered ${response.status}, which the document does not list`);
    for (const header of Object.keys(documentedResponse(route, response.status)?.headers ?? {})) {
      assert.ok(response.headers.get(header), `${operation} ${response.status} lacks the documented ${header} header`);
    }
    const value = JSON.parse(text) as Json;
    const result = schema.safeParse(value);
    assert.ok(
      result.success,
      `${operation} ${response.status} does not match the documented schema:\n${result.error?.message}\n${text.slice(0, 1000)}`,
    );
    seen.add(`${operation} ${response.status}`);
    return value;
  }

  test('documents exactly the routes the app registers (method and path)', () => {
    const documented = Object.entries(document.paths)
      .flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    const registered = registeredRoutes(app);
    assert.ok(registered.length >= 16, registered.join('\n'));
    assert.deepEqual(registered, documented);
  });

  test('is OpenAPI 3.1 with bearer security, public routes marked, and every $ref resolvable', () => {
    const doc = openApiDocument() as Json & typeof document;
    assert.equal(doc.openapi, '3.1.0');
    assert.deepEqual(doc.security, [{ bearer: [] }]);
    assert.deepEqual((doc.components as Json).securitySchemes, {
      bearer: { type: 'http', scheme: 'bearer', description: 'An API token (`FERRY_TOKENS`, `.ferry/token`).' },
    });
    assert.deepEqual(doc.paths['/healthz'].get.security, []);
    assert.deepEqual(doc.paths['/api/v1/openapi.json'].get.security, []);
    assert.equal(doc.paths['/api/v1/pipelines'].get.security, undefined);
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    assert.ok(refs.length > 20);
    for (const ref of new Set(refs)) {
      const [, kind, name] = /"#\/components\/(\w+)\/(\w+)"/.exec(ref.slice(7)) ?? [];
      assert.ok(kind && (doc.components as Record<string, Json>)[kind]?.[name], `unresolvable ${ref}`);
    }
    const ids = Object.values(doc.paths).flatMap((methods) =>
      Object.values(methods).map((op) => (op as Json).operationId),
    );
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
    // Every authenticated route lists the statuses auth, the body reader and Temporal can give.
    for (const route of ROUTES.filter((r) => !r.public)) {
      const statuses = Object.keys(doc.paths[route.path][route.method].responses);
      for (const status of ['400', '401', '403', '413', '415', '503']) {
        assert.ok(statuses.includes(status), `${route.method} ${route.path} lacks ${status}`);
      }
    }
  });

  test('the published docs/openapi.json is current (run `npm run docs`)', () => {
    assert.ok(
      readFileSync(OPENAPI_FILE, 'utf8') === generateOpenApi(),
      'docs/openapi.json is out of date: run npm run docs',
    );
  });

  test("the app's answers, success and error, validate against the documented schemas", async () => {
    await call('GET /healthz', { token: null, expect: 200 });
    const served = await call('GET /api/v1/openapi.json', { token: null, expect: 200 });
    assert.deepEqual(served, openApiDocument());

    await call('PUT /api/v1/pipelines/{name}', {
      params: { name: 'guestbook' },
      body: PIPELINE_YAML,
      type: 'application/yaml',
      expect: 200,
    });
    await call('PUT /api/v1/pipelines/{name}', {
      params: { name: 'other' },
      body: PIPELINE_YAML,
      type: 'application/yaml',
      expect: 400,
    });
    await call('GET /api/v1/pipelines', { expect: 200 });
    await call('GET /api/v1/pipelines/{name}', { params: { name: 'nope' }, expect: 404 });
    await call('GET /api/v1/pipelines', { token: null, expect: 401 });
    await call('GET /api/v1/pipelines', { token: 'not-a-token', expect: 401 });

    const freight = { params: { name: 'guestbook' }, body: { artifacts: { guestbook: '1.4.2' } } };
    const { id } = await call('POST /api/v1/pipelines/{name}/freight', { ...freight, expect: 201 });
    await call('POST /api/v1/pipelines/{name}/freight', { ...freight, expect: 200 });
    await call('POST /api/v1/pipelines/{name}/freight', { ...freight, body: { artifacts: 'x' }, expect: 400 });
    await call('POST /api/v1/pipelines/{name}/freight', { ...freight, body: 'x'.repeat(1024 * 1024 + 1), expect: 413 });
    await call('POST /api/v1/pipelines/{name}/freight', {
      ...freight,
      body: JSON.stringify(freight.body),
      type: 'application/json; charset=klingon',
      expect: 415,
    });
    const pipeline = await call('GET /api/v1/pipelines/{name}', { params: { name: 'guestbook' }, expect: 200 });
    assert.equal((pipeline.freight as Json[]).length, 1);

    const promote = 'POST /api/v1/pipelines/{name}/stages/{stage}/promotions';
    const dev = await call(promote, {
      params: { name: 'guestbook', stage: 'dev' },
      body: { freight: id },
      expect: 201,
    });
    await call(promote, { params: { name: 'guestbook', stage: 'dev' }, body: { freight: id }, expect: 200 });
    await call(promote, { params: { name: 'guestbook', stage: 'qa' }, body: { freight: id }, expect: 404 });
    await call(promote, { params: { name: 'guestbook', stage: 'dev' }, body: { freight: 1 }, expect: 400 });
    for (let i = 0; i < 3; i++) {
      await call('GET /api/v1/promotions/{id}', { params: { id: dev.id as string }, expect: 200 });
    }
    await call('GET /api/v1/promotions/{id}', { params: { id: 'promotion/guestbook/dev/000000000000' }, expect: 404 });

    const prod = await call(promote, {
      params: { name: 'guestbook', stage: 'prod' },
      body: { freight: id },
      expect: 201,
    });
    const decide = (verb: string, who: string | undefined, expect: number, body?: object) =>
      call(`POST /api/v1/promotions/{id}/${verb}`, { params: { id: prod.id as string }, token: who, body, expect });
    await decide('approve', EVE, 403);
    await decide('approve', undefined, 400, { user: 'bob' });
    const approved = await decide('approve', undefined, 200, { comment: 'ship it' });
    assert.equal(approved.phase, 'Queued');
    await decide('approve', undefined, 409);
    await decide('reject', undefined, 409);
    await decide('abort', EVE, 403);
    await decide('abort', undefined, 200);
    await decide('abort', undefined, 409);
    await call('POST /api/v1/promotions/{id}/reject', { params: { id: 'promotion/x/y/z' }, expect: 404 });
    const rejectable = await call(promote, {
      params: { name: 'guestbook', stage: 'prod' },
      body: { freight: id, force: true },
      expect: 201,
    });
    await call('POST /api/v1/promotions/{id}/reject', {
      params: { id: rejectable.id as string },
      body: { comment: 'not today' },
      expect: 200,
    });

    ferry.listFailure = new FerryError('Unavailable', 'Temporal is not reachable');
    await call('GET /api/v1/pipelines', { expect: 503 });
    ferry.listFailure = new Error('something unexpected');
    await call('GET /api/v1/pipelines', { expect: 500 });
    ferry.listFailure = undefined;
    ferry.healthy = false;
    await call('GET /healthz', { token: null, expect: 503 });
    ferry.healthy = true;

    // Webhooks without a valid signature: 401, and nothing done.
    const unsigned = { body: { artifacts: { guestbook: '1.4.9' } }, token: null, expect: 401 };
    await call('POST /webhooks/generic/{pipeline}', { ...unsigned, params: { pipeline: 'guestbook' } });
    await call('POST /webhooks/github', unsigned);
    await call('POST /webhooks/gitlab', unsigned);
    await call('POST /api/v1/callbacks/{token}', {
      params: { token: 'not-a-token' },
      body: { result: 'pass' },
      token: null,
      expect: 503,
    });

    // Every documented success answer was produced and checked, except those of the routes that need a signature
    // or a gate's token (their own tests, webhooks.test.ts and gates-api.test.ts, set those up).
    const SIGNED = ['/webhooks/', '/api/v1/callbacks/', '/api/v1/promotions/{id}/gates/'];
    for (const route of ROUTES.filter((r) => !SIGNED.some((prefix) => r.path.startsWith(prefix)))) {
      for (const status of Object.keys(route.responses)) {
        const key = `${route.method.toUpperCase()} ${route.path} ${status}`;
        assert.ok(seen.has(key), `not exercised: ${key}`);
      }
    }
    const errorStatuses = new Set([...seen].map((key) => key.split(' ')[2]));
    for (const status of ['400', '401', '403', '404', '409', '413', '415', '500', '503']) {
      assert.ok(errorStatuses.has(status), `no ${status} was checked`);
    }
  });

  test("the document's examples are requests the API accepts", () => {
    const schemas = document.components.schemas;
    const [pipeline] = schemas.Pipeline.examples as unknown[];
    const loaded = validatePipeline(pipeline);
    assert.ok(loaded.ok, JSON.stringify(loaded));
    for (const [name, schema] of [
      ['FreightRequest', FreightBody],
      ['PromotionRequest', PromotionBody],
    ] as const) {
      const [example] = schemas[name].examples as unknown[];
      assert.ok(schema.safeParse(example).success, `${name} example`);
    }
    assert.equal(EXAMPLE_PROMOTION, `promotion/guestbook/dev/${freightId({ guestbook: '1.4.2' })}`);
  });

  test('the fuzzer the CI runs is the pinned schemathesis: another SCHEMATHESIS_PATH is refused with what to do', () => {
    assert.throws(
      () => ensureSchemathesis({ env: { SCHEMATHESIS_PATH: process.execPath } }),
      new RegExp(`is not schemathesis ${SCHEMATHESIS_VERSION.replaceAll('.', '\\.')} .*pip install schemathesis==`),
    );
  });

  test('a response that breaks the documented schema is caught', () => {
    const route = ROUTES.find((r) => r.operationId === 'getPromotion') as RouteDoc;
    const schema = documentedSchema(route, 200) as z.ZodType;
    const status = {
      id: 'promotion/guestbook/dev/147e2509566b',
      pipeline: 'guestbook',
      stage: 'dev',
      freight: { id: '147e2509566b', artifacts: { guestbook: '1.4.2' } },
      phase: 'Succeeded',
      steps: [{ name: 'render', status: 'Succeeded', startedAt: '2025-01-01T00:00:00.000Z', attempt: 2 }],
      approvals: [],
      requestedBy: 'alice',
      startedAt: '2025-01-01T00:00:00.000Z',
    };
    assert.ok(schema.safeParse(status).success);
    assert.ok(!schema.safeParse({ ...status, phase: 'Done' }).success, 'unknown phase');
    assert.ok(!schema.safeParse({ ...status, surprise: 1 }).success, 'undocumented field');
    assert.ok(!schema.safeParse({ ...status, startedAt: 'yesterday' }).success, 'not a timestamp');
    const { requestedBy: _, ...missing } = status;
    assert.ok(!schema.safeParse(missing).success, 'missing required field');
  });
});
