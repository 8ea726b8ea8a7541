// The HTTP API and the Temporal server start and stop in any order: a real API process against a real dev server
// that is not there yet, then started, stopped and started again on the same port and SQLite file.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureTemporalCli, PROJECT_ROOT, startDevServer, type DevServer } from '../../dev/temporal';
import { freePort, spawnProcess, stopGroup, until, type Spawned } from '../helpers/processes';

const TOKEN = 'tok-alice-unavailable-0123456789';
const PIPELINE = `apiVersion: ferry.dev/v1alpha1
kind: Pipeline
metadata:
  name: shop
spec:
  repo: { url: https://git.example.com/org/gitops.git }
  artifacts: [{ name: guestbook, image: registry.example.com/team/guestbook }]
  stages:
    - name: dev
      render: { strategy: branch, from: apps/guestbook/overlays/dev, to: env/dev }
`;
const PROMOTION = 'promotion/shop/dev/0123456789ab';

/** Every route of the API, with a body it accepts, so that only Temporal stands between it and an answer. */
const ROUTES: Array<{ method: string; path: string; body?: string; type?: string }> = [
  { method: 'GET', path: '/healthz' },
  { method: 'PUT', path: '/api/v1/pipelines/shop', body: PIPELINE, type: 'application/yaml' },
  { method: 'GET', path: '/api/v1/pipelines' },
  { method: 'GET', path: '/api/v1/pipelines/shop' },
  { method: 'POST', path: '/api/v1/pipelines/shop/freight', body: '{"artifacts":{"guestbook":"1.4.2"}}' },
  { method: 'POST', path: '/api/v1/pipelines/shop/stages/dev/promotions', body: '{"freight":"0123456789ab"}' },
  { method: 'GET', path: `/api/v1/promotions/${PROMOTION}` },
  { method: 'POST', path: `/api/v1/promotions/${PROMOTION}/approve` },
  { method: 'POST', path: `/api/v1/promotions/${PROMOTION}/reject` },
  { method: 'POST', path: `/api/v1/promotions/${PROMOTION}/abort` },
];

describe('the HTTP API while Temporal is unreachable (real processes)', () => {
  let dir: string;
  let temporalPort: number;
  let temporal: DevServer | undefined;
  let api: Spawned;
  let apiUrl: string;
  const cli = ensureTemporalCli();

  const startTemporal = async (): Promise<void> => {
    temporal = await startDevServer({ cli, dbFile: join(dir, 'temporal.db'), port: temporalPort, uiPort: false });
  };

  const request = async (route: (typeof ROUTES)[number]): Promise<{ status: number; ms: number; body: any }> => {
    const started = Date.now();
    const res = await fetch(`${apiUrl}${route.path}`, {
      method: route.method,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': route.type ?? 'application/json' },
      ...(route.body === undefined ? {} : { body: route.body }),
      signal: AbortSignal.timeout(60_000),
    });
    const body = await res.json();
    return { status: res.status, ms: Date.now() - started, body };
  };

  /** Each route, one after another (the API's own state is what is tested, not its concurrency). */
  const everyRouteAnswers503Quickly = async (): Promise<string[]> => {
    const answers: string[] = [];
    for (const route of ROUTES) {
      const { status, ms, body } = await request(route);
      answers.push(`${route.method} ${route.path}: ${status} in ${ms} ms`);
      assert.equal(status, 503, `${route.method} ${route.path}: ${JSON.stringify(body)}`);
      if (route.path === '/healthz') {
        assert.deepEqual(body, { ok: false });
        assert.ok(ms < 2000, answers.join('\n'));
      } else {
        assert.equal(body.error.code, 'Unavailable');
        assert.match(body.error.message, /Temporal is not reachable/);
      }
      assert.ok(ms < 5000, answers.join('\n'));
    }
    return answers;
  };

  const recovered = (): Promise<true> =>
    until(
      'the API to reach Temporal again',
      async () => {
        const health = await request(ROUTES[0]);
        if (health.status !== 200) return undefined;
        const missing = await request({ method: 'GET', path: '/api/v1/pipelines/nothing-here' });
        assert.equal(missing.status, 404, JSON.stringify(missing.body));
        const listed = await request({ method: 'GET', path: '/api/v1/pipelines' });
        assert.equal(listed.status, 200, JSON.stringify(listed.body));
        return true;
      },
      60_000,
      500,
    );

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-unavailable-'));
    temporalPort = await freePort();
    const apiPort = await freePort();
    apiUrl = `http://127.0.0.1:${apiPort}`;
    api = spawnProcess(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'api', 'main.ts')], {
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
        FERRY_HOME: join(dir, 'ferry-home'),
        FERRY_PORT: String(apiPort),
        FERRY_TOKENS: `${TOKEN}=alice`,
        // alice applies pipelines, which needs role admin.
        FERRY_ADMINS: 'alice',
      },
    });
    await api.waitFor(/ferry api listening/, 60_000);
  });

  after(async () => {
    if (api) await stopGroup(api);
    await temporal?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('starts before the Temporal server and answers every route 503 Unavailable in under 5 s (/healthz in 2 s)', async (t) => {
    t.diagnostic((await everyRouteAnswers503Quickly()).join('; '));
    assert.equal(api.child.exitCode, null, api.output());
  });

  it('recovers by itself once the Temporal server is up', async () => {
    await startTemporal();
    await recovered();
  });

  it('answers 503 in under 5 s while the Temporal server it used is stopped, and recovers when it is back', async (t) => {
    await temporal?.stop();
    temporal = undefined;
    t.diagnostic((await everyRouteAnswers503Quickly()).join('; '));
    await startTemporal();
    await recovered();
    assert.equal(api.child.exitCode, null, api.output());
    // One line when Temporal goes away and one when it is back, not one per request.
    const lines = api.output().split('\n');
    assert.ok(lines.filter((l) => l.includes('Temporal is not reachable; answering 503')).length <= 2, api.output());
    assert.ok(!api.output().includes('"level":"error"'), api.output());
  });
});
