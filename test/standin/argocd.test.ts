// Fidelity of the Argo CD stand-in: the wire rules of the Argo CD API and the timeline of its application controller, checked
// over real HTTP, so the activity tests that run against it test against Argo CD's behaviour and not our own guess.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { argoCdStandInForFile } from '../helpers/argocd-standin';
import { makeToken, type ArgoCdStandIn } from './argocd/server';

const REPO = 'https://git.example.com/org/gitops.git';
const SHA_A = 'a'.repeat(40);
const SHA_B = 'b'.repeat(40);
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const TIMING = {
  reconcileDelayMs: 10,
  pickupDelayMs: 20,
  syncDurationMs: 60,
  postOpReconcileDelayMs: 200,
  progressingMs: 300,
};

interface Answer {
  status: number;
  contentType: string;
  text: string;
  json: any;
}

const token = makeToken('ferry');
let standIn: ArgoCdStandIn;

async function call(
  method: string,
  path: string,
  options: {
    body?: unknown;
    raw?: string;
    headers?: Record<string, string>;
    auth?: string | null;
    signal?: AbortSignal;
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {
    ...(options.auth === null ? {} : { Authorization: `Bearer ${options.auth ?? token}` }),
  };
  if (method !== 'GET') headers['Content-Type'] = 'application/json';
  Object.assign(headers, options.headers);
  const response = await fetch(standIn.url + path, {
    method,
    headers,
    ...(options.body !== undefined
      ? { body: JSON.stringify(options.body) }
      : options.raw !== undefined
        ? { body: options.raw }
        : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', text, json };
}

function assertGrpcError(answer: Answer, status: number, code: number, message: string | RegExp): void {
  assert.equal(answer.status, status, answer.text);
  assert.match(answer.contentType, /^application\/json/);
  assert.deepEqual(Object.keys(answer.json).sort(), ['code', 'error', 'message']);
  assert.equal(answer.json.code, code);
  assert.equal(answer.json.error, answer.json.message);
  if (typeof message === 'string') assert.equal(answer.json.message, message);
  else assert.match(answer.json.message, message);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function allTimes(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v) => allTimes(v, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (/(At|Time|Timestamp)$/.test(k) && typeof v === 'string') out.push(v);
      else allTimes(v, out);
    }
  }
  return out;
}

argoCdStandInForFile({ tokens: { [token]: true }, timing: TIMING }, (s) => (standIn = s));

async function seedGuestbook(extra: Partial<Parameters<ArgoCdStandIn['control']['addApp']>[0]> = {}): Promise<void> {
  standIn.control.setRepo(REPO, { 'env/dev': SHA_A });
  await standIn.control.addApp({
    name: 'guestbook-dev',
    repoURL: REPO,
    targetRevision: 'env/dev',
    resources: [
      { kind: 'Deployment', name: 'guestbook' },
      { kind: 'Service', name: 'guestbook' },
    ],
    ...extra,
  });
}

describe('Argo CD stand-in: wire format', () => {
  test('authentication: no or non-JWT token is 401 "no session information", an unknown JWT is 401 "invalid session"', async () => {
    await seedGuestbook();
    assertGrpcError(
      await call('GET', '/api/v1/applications/guestbook-dev', { auth: null }),
      401,
      16,
      'no session information',
    );
    assertGrpcError(
      await call('GET', '/api/v1/applications/guestbook-dev', { auth: 'not-a-jwt' }),
      401,
      16,
      'no session information',
    );
    assertGrpcError(
      await call('GET', '/api/v1/applications/guestbook-dev', { auth: makeToken('mallory') }),
      401,
      16,
      /^invalid session: /,
    );
    const viaCookie = await call('GET', '/api/v1/session/userinfo', {
      auth: null,
      headers: { Cookie: `argocd.token=${token}` },
    });
    assert.deepEqual(viaCookie.json, { loggedIn: true, username: 'ferry', iss: 'argocd' });
  });

  test('a missing app is 403 "permission denied" without ?project= and 404 with it (also for an app in another project)', async () => {
    await seedGuestbook();
    assertGrpcError(await call('GET', '/api/v1/applications/nope'), 403, 7, 'permission denied');
    assertGrpcError(
      await call('GET', '/api/v1/applications/nope?project=default'),
      404,
      5,
      'applications.argoproj.io "nope" not found',
    );
    assertGrpcError(
      await call('GET', '/api/v1/applications/guestbook-dev?project=other'),
      404,
      5,
      'applications.argoproj.io "guestbook-dev" not found',
    );
    assert.equal((await call('GET', '/api/v1/applications/guestbook-dev?project=default')).status, 200);
    // The same rule on the sync route, where project travels in the body.
    assertGrpcError(await call('POST', '/api/v1/applications/nope/sync', { body: {} }), 403, 7, 'permission denied');
    assertGrpcError(
      await call('POST', '/api/v1/applications/nope/sync', { body: { project: 'default' } }),
      404,
      5,
      /not found/,
    );
  });

  test('a token without rights gets 403 on app endpoints and an empty list', async () => {
    await seedGuestbook();
    const reader = makeToken('reader');
    const nobody = makeToken('nobody');
    standIn.control.setTokens({ [token]: true, [reader]: { actions: ['get'] }, [nobody]: false });
    assertGrpcError(
      await call('GET', '/api/v1/applications/guestbook-dev', { auth: nobody }),
      403,
      7,
      'permission denied',
    );
    assert.deepEqual((await call('GET', '/api/v1/applications', { auth: nobody })).json.items, []);
    assert.equal((await call('GET', '/api/v1/applications/guestbook-dev', { auth: reader })).status, 200);
    assertGrpcError(
      await call('POST', '/api/v1/applications/guestbook-dev/sync', { auth: reader, body: {} }),
      403,
      7,
      /^permission denied: applications, sync, default\/guestbook-dev, sub: reader/,
    );
  });

  test('non-GET requests without Content-Type application/json get 415 "Invalid content type" in plain text, DELETE included', async () => {
    await seedGuestbook();
    for (const [method, path] of [
      ['POST', '/api/v1/applications/guestbook-dev/sync'],
      ['DELETE', '/api/v1/applications/guestbook-dev/operation'],
      ['PUT', '/api/v1/applications/guestbook-dev/spec'],
    ]) {
      const answer = await call(method, path, {
        raw: method === 'DELETE' ? undefined : '{}',
        headers: { 'Content-Type': 'text/plain' },
      });
      assert.equal(answer.status, 415, `${method} ${path}`);
      assert.equal(answer.text, 'Invalid content type\n');
      assert.match(answer.contentType, /^text\/plain/);
    }
    assert.equal(
      (
        await call('POST', '/api/v1/applications/guestbook-dev/sync', {
          body: {},
          headers: { 'Content-Type': 'application/json; charset=utf-8' },
        })
      ).status,
      200,
    );
  });

  test('unknown routes are a plain-text 404 "Not Found", a known path with the wrong method 405', async () => {
    const unknown = await call('GET', '/api/v1/nothing-here');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.text, 'Not Found\n');
    assert.match(unknown.contentType, /^text\/plain/);
    const wrongMethod = await call('POST', '/api/v1/applications/guestbook-dev/resource-tree', { body: {} });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.text, 'Method Not Allowed\n');
  });

  test('a malformed body is 400 code 3; sourcePositions as strings fail like Go decoding into []int64', async () => {
    await seedGuestbook();
    assertGrpcError(
      await call('POST', '/api/v1/applications/guestbook-dev/sync', { raw: '{"prune":' }),
      400,
      3,
      /JSON/,
    );
    assertGrpcError(
      await call('POST', '/api/v1/applications/guestbook-dev/sync', {
        body: { revisions: [SHA_A], sourcePositions: ['1'] },
      }),
      400,
      3,
      'json: cannot unmarshal string into Go struct field ApplicationSyncRequest.sourcePositions of type int64',
    );
  });

  test('int64 fields are JSON numbers, times have second precision, resourceVersion grows on every write and generation on spec writes', async () => {
    await seedGuestbook();
    const before = (await call('GET', '/api/v1/applications/guestbook-dev')).json;
    assert.equal(typeof before.status.history[0].id, 'number');
    assert.equal(typeof before.metadata.generation, 'number');
    assert.match(before.metadata.resourceVersion, /^\d+$/);
    assert.equal(before.kind, undefined, 'TypeMeta is absent on API objects');

    const synced = await call('POST', '/api/v1/applications/guestbook-dev/sync', {
      body: { infos: [{ name: 'ferry.dev/promotion', value: 'p1' }] },
    });
    assert.ok(Number(synced.json.metadata.resourceVersion) > Number(before.metadata.resourceVersion));
    assert.equal(synced.json.metadata.generation, before.metadata.generation, 'an operation is not a spec change');
    const done = await until('the operation to finish', async () => {
      const app = (await call('GET', '/api/v1/applications/guestbook-dev')).json;
      return app.status.operationState?.phase === 'Succeeded' ? app : undefined;
    });
    assert.deepEqual(
      done.status.history.map((h: { id: number }) => h.id),
      [0, 1],
    );
    const times = allTimes(done);
    assert.ok(times.length >= 8, `found ${times.length} times`);
    for (const time of times) assert.match(time, TIME);

    const spec = { ...done.spec, source: { ...done.spec.source, path: 'apps/guestbook' } };
    const put = await call('PUT', '/api/v1/applications/guestbook-dev/spec', { body: spec });
    assert.equal(put.status, 200);
    assert.equal(put.json.source.path, 'apps/guestbook', 'PUT spec answers with the spec, not the Application');
    assert.equal(put.json.metadata, undefined);
    const afterPut = (await call('GET', '/api/v1/applications/guestbook-dev')).json;
    assert.equal(afterPut.metadata.generation, done.metadata.generation + 1);
    assert.ok(Number(afterPut.metadata.resourceVersion) > Number(done.metadata.resourceVersion));
  });

  test('PATCH takes the patch as a JSON string, json (default) or merge; a failed test op is code 2 / HTTP 500', async () => {
    await seedGuestbook();
    standIn.control.setRepo(REPO, { 'env/staging': SHA_B });
    const json = await call('PATCH', '/api/v1/applications/guestbook-dev', {
      body: {
        patch: JSON.stringify([{ op: 'replace', path: '/spec/source/targetRevision', value: 'env/staging' }]),
        patchType: 'json',
      },
    });
    assert.equal(json.status, 200, json.text);
    assert.equal(json.json.spec.source.targetRevision, 'env/staging');
    const merge = await call('PATCH', '/api/v1/applications/guestbook-dev', {
      body: { patch: JSON.stringify({ metadata: { labels: { team: 'web' } } }), patchType: 'merge' },
    });
    assert.deepEqual(merge.json.metadata.labels, { team: 'web' });
    assertGrpcError(
      await call('PATCH', '/api/v1/applications/guestbook-dev', {
        body: { patch: JSON.stringify([{ op: 'test', path: '/spec/source/targetRevision', value: 'nope' }]) },
      }),
      500,
      2,
      /^error applying patch: testing value \/spec\/source\/targetRevision failed/,
    );
    assertGrpcError(
      await call('PATCH', '/api/v1/applications/guestbook-dev', { body: { patch: { op: 'replace' } } }),
      400,
      3,
      /cannot unmarshal object .* of type string/,
    );
    assertGrpcError(
      await call('PATCH', '/api/v1/applications/guestbook-dev', { body: { patch: '{}', patchType: 'strategic' } }),
      400,
      3,
      "Patch type 'strategic' is not supported",
    );
    // validation on PATCH: an unresolvable targetRevision is an InvalidSpecError.
    assertGrpcError(
      await call('PATCH', '/api/v1/applications/guestbook-dev', {
        body: { patch: JSON.stringify({ spec: { source: { targetRevision: 'nope' } } }), patchType: 'merge' },
      }),
      400,
      3,
      /^application spec for guestbook-dev is invalid: InvalidSpecError: .*unable to resolve 'nope' to a commit SHA/,
    );
  });

  test('GET /api/version answers without a session (Version only) and in full with one; userinfo needs a session', async () => {
    assert.deepEqual(Object.keys((await call('GET', '/api/version', { auth: null })).json), ['Version']);
    const full = (await call('GET', '/api/version')).json;
    assert.match(full.Version, /^v3\./);
    assert.equal(full.Platform, 'linux/amd64');
    assertGrpcError(await call('GET', '/api/v1/session/userinfo', { auth: null }), 401, 16, 'no session information');
  });
});

describe('Argo CD stand-in: simulated controller', () => {
  test('sync copies infos to operation.info, resolves the target to a SHA, clears operationState; a second sync is 400 "another operation is already in progress"', async () => {
    await seedGuestbook();
    const answer = await call('POST', '/api/v1/applications/guestbook-dev/sync', {
      body: { infos: [{ name: 'ferry.dev/promotion', value: 'p1' }] },
    });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json.operation.info, [{ name: 'ferry.dev/promotion', value: 'p1' }]);
    assert.equal(answer.json.operation.sync.revision, SHA_A);
    assert.deepEqual(answer.json.operation.initiatedBy, { username: 'ferry' });
    assert.equal(answer.json.status.operationState, undefined);
    assertGrpcError(
      await call('POST', '/api/v1/applications/guestbook-dev/sync', { body: {} }),
      400,
      9,
      'another operation is already in progress',
    );
    const [recorded] = standIn.control.requests({ method: 'POST', path: '/api/v1/applications/guestbook-dev/sync' });
    assert.deepEqual(recorded.body, { infos: [{ name: 'ferry.dev/promotion', value: 'p1' }] });
    assert.equal(recorded.status, 200);
  });

  test('after a sync the old health and sync status stay visible until the post-op reconcile, then Progressing → Healthy', async () => {
    await seedGuestbook();
    standIn.control.setRepo(REPO, { 'env/dev': SHA_B });
    const refreshed = (await call('GET', '/api/v1/applications/guestbook-dev?refresh=normal')).json;
    assert.deepEqual(
      [refreshed.status.sync.status, refreshed.status.sync.revision, refreshed.status.health.status],
      ['OutOfSync', SHA_B, 'Healthy'],
    );
    await call('POST', '/api/v1/applications/guestbook-dev/sync', { body: {} });

    const seen: string[] = [];
    await until('Healthy at B after the deploy', async () => {
      const app = (await call('GET', '/api/v1/applications/guestbook-dev')).json;
      const state = [
        app.operation ? 'op' : 'no-op',
        app.status.operationState?.phase ?? 'none',
        app.status.sync.status,
        app.status.health.status,
      ].join(' ');
      if (seen.at(-1) !== state) seen.push(state);
      return app.status.sync.status === 'Synced' && app.status.health.status === 'Healthy' ? app : undefined;
    });
    assert.deepEqual(seen, [
      'op none OutOfSync Healthy', // requested, not picked up
      'op Running OutOfSync Healthy',
      'no-op Succeeded OutOfSync Healthy', // done, but status is stale: the old Healthy
      'no-op Succeeded Synced Progressing', // post-op reconcile
      'no-op Succeeded Synced Healthy',
    ]);
    const events = standIn.control.events('guestbook-dev');
    const completed = events.find((e) => e.type === 'operationCompleted');
    const postOp = events.find((e) => e.type === 'reconciled' && e.reason === 'operationCompleted');
    assert.ok(completed && postOp);
    assert.ok(
      postOp.at - completed.at >= TIMING.postOpReconcileDelayMs - 5,
      'the stale window lasts postOpReconcileDelayMs',
    );
  });

  test('GET ?refresh=hard blocks until the controller reconciled and removed the annotation; under hangRefresh it hangs until the client gives up', async () => {
    await seedGuestbook();
    standIn.control.setTiming({ reconcileDelayMs: 150 });
    const started = Date.now();
    const app = (await call('GET', '/api/v1/applications/guestbook-dev?refresh=hard')).json;
    assert.ok(Date.now() - started >= 140);
    assert.equal(app.metadata.annotations?.['argocd.argoproj.io/refresh'], undefined);
    assert.ok(
      standIn.control.events('guestbook-dev').some((e) => e.type === 'reconciled' && e.reason === 'refresh=hard'),
    );

    await standIn.control.inject({ kind: 'hangRefresh', app: 'guestbook-dev' });
    await assert.rejects(
      call('GET', '/api/v1/applications/guestbook-dev?refresh=normal', { signal: AbortSignal.timeout(300) }),
      { name: 'TimeoutError' },
    );
    assert.equal(
      standIn.control.getApp('guestbook-dev')?.metadata.annotations?.['argocd.argoproj.io/refresh'],
      'normal',
    );
  });

  test('resource-tree carries per-resource health and the Degraded message; Get infers it into status.resources, List does not', async () => {
    await seedGuestbook();
    await standIn.control.inject({ kind: 'degraded', app: 'guestbook-dev', afterMs: 50 });
    await call('POST', '/api/v1/applications/guestbook-dev/sync', { body: {} });
    const app = await until('Degraded', async () => {
      const a = (await call('GET', '/api/v1/applications/guestbook-dev')).json;
      return a.status.health.status === 'Degraded' ? a : undefined;
    });
    assert.equal(app.status.health.message, undefined, 'app-level health message is empty before 3.6');
    assert.equal(app.status.resourceHealthSource, 'appTree');
    const deployment = app.status.resources.find((r: { kind: string }) => r.kind === 'Deployment');
    assert.deepEqual(deployment.health, {
      status: 'Degraded',
      message: 'Deployment "guestbook" exceeded its progress deadline',
    });

    const tree = (await call('GET', '/api/v1/applications/guestbook-dev/resource-tree')).json;
    const node = tree.nodes.find((n: { kind: string }) => n.kind === 'Deployment');
    assert.deepEqual(node.health, {
      status: 'Degraded',
      message: 'Deployment "guestbook" exceeded its progress deadline',
    });
    assert.equal(node.group, 'apps');
    assert.equal(node.name, 'guestbook', 'ResourceRef fields are inlined at the top level');
    const replicaSet = tree.nodes.find((n: { kind: string }) => n.kind === 'ReplicaSet');
    assert.equal(replicaSet.parentRefs[0].uid, node.uid);

    const list = (await call('GET', '/api/v1/applications?projects=default')).json;
    assert.equal(list.items.length, 1);
    assert.match(list.metadata.resourceVersion, /^\d+$/);
    assert.ok(list.items[0].status.resources.every((r: { health?: unknown }) => r.health === undefined));
  });

  test('a failed sync ends phase Failed with the resource SyncFailed message; nothing is deployed', async () => {
    await seedGuestbook();
    standIn.control.setRepo(REPO, { 'env/dev': SHA_B });
    await standIn.control.inject({
      kind: 'syncFailed',
      app: 'guestbook-dev',
      message: 'admission webhook denied the request',
    });
    await call('POST', '/api/v1/applications/guestbook-dev/sync', { body: {} });
    const app = await until('Failed', async () => {
      const a = (await call('GET', '/api/v1/applications/guestbook-dev')).json;
      return a.status.operationState?.phase === 'Failed' ? a : undefined;
    });
    assert.equal(
      app.status.operationState.message,
      'one or more objects failed to apply, reason: admission webhook denied the request',
    );
    assert.deepEqual(
      app.status.operationState.syncResult.resources
        .filter((r: { status: string }) => r.status === 'SyncFailed')
        .map((r: { name: string; message: string }) => [r.name, r.message]),
      [['guestbook', 'admission webhook denied the request']],
    );
    assert.equal(app.operation, undefined);
    assert.equal(app.status.history.length, 1);
  });

  test('terminate: 400 without an operation; otherwise Terminating, then Failed "Operation terminated"', async () => {
    await seedGuestbook();
    standIn.control.setTiming({ syncDurationMs: 2000 });
    assertGrpcError(
      await call('DELETE', '/api/v1/applications/guestbook-dev/operation'),
      400,
      3,
      'Unable to terminate operation. No operation is in progress',
    );
    await call('POST', '/api/v1/applications/guestbook-dev/sync', { body: {} });
    await until('Running', async () =>
      (await call('GET', '/api/v1/applications/guestbook-dev')).json.status.operationState?.phase === 'Running'
        ? true
        : undefined,
    );
    const terminated = await call('DELETE', '/api/v1/applications/guestbook-dev/operation');
    assert.deepEqual([terminated.status, terminated.json], [200, {}]);
    const app = await until('Failed', async () => {
      const a = (await call('GET', '/api/v1/applications/guestbook-dev')).json;
      return a.status.operationState?.phase === 'Failed' ? a : undefined;
    });
    assert.equal(app.status.operationState.message, 'Operation terminated');
    assert.equal(app.operation, undefined);
  });

  test('an automated app syncs itself once a refresh shows it OutOfSync; auto-sync rejects a sync to another revision', async () => {
    await seedGuestbook({ automated: true });
    assertGrpcError(
      await call('POST', '/api/v1/applications/guestbook-dev/sync', { body: { revision: 'main' } }),
      400,
      9,
      'Cannot sync to main: auto-sync currently set to env/dev',
    );
    standIn.control.setRepo(REPO, { 'env/dev': SHA_B });
    await call('GET', '/api/v1/applications/guestbook-dev?refresh=normal');
    const app = await until('auto-sync to B', async () => {
      const a = (await call('GET', '/api/v1/applications/guestbook-dev')).json;
      return a.status.operationState?.syncResult?.revision === SHA_B && a.status.operationState.phase === 'Succeeded'
        ? a
        : undefined;
    });
    assert.deepEqual(app.status.operationState.operation.initiatedBy, { automated: true });
  });

  test('an unresolvable targetRevision gives a ComparisonError condition and Unknown sync and health; sync is 400', async () => {
    await seedGuestbook({ targetRevision: 'env/missing', deployedRevision: SHA_A });
    const app = (await call('GET', '/api/v1/applications/guestbook-dev')).json;
    assert.equal(app.status.sync.status, 'Unknown');
    assert.equal(app.status.health.status, 'Unknown');
    assert.equal(app.status.conditions[0].type, 'ComparisonError');
    assert.match(app.status.conditions[0].message, /unable to resolve 'env\/missing' to a commit SHA/);
    assertGrpcError(
      await call('POST', '/api/v1/applications/guestbook-dev/sync', { body: {} }),
      400,
      9,
      "unable to resolve 'env/missing' to a commit SHA",
    );
  });

  test('branches of a file:// remote resolve through git ls-remote, and a push shows up after a refresh', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-argocd-standin-'));
    try {
      const git = (cwd: string, ...args: string[]): string =>
        execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
          cwd,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        }).trim();
      const remote = join(dir, 'remote.git');
      const work = join(dir, 'work');
      git(dir, 'init', '--bare', '-b', 'main', remote);
      git(dir, 'clone', remote, work);
      writeFileSync(join(work, 'app.yaml'), 'kind: ConfigMap\n');
      git(work, 'add', '.');
      git(work, 'commit', '-m', 'one');
      git(work, 'push', 'origin', 'HEAD:refs/heads/env/dev');
      const first = git(work, 'rev-parse', 'HEAD');

      await standIn.control.addApp({ name: 'from-git', repoURL: `file://${remote}`, targetRevision: 'env/dev' });
      let app = (await call('GET', '/api/v1/applications/from-git')).json;
      assert.deepEqual([app.status.sync.revision, app.status.sync.status], [first, 'Synced']);

      writeFileSync(join(work, 'app.yaml'), 'kind: ConfigMap\nmetadata: {name: x}\n');
      git(work, 'commit', '-am', 'two');
      git(work, 'push', 'origin', 'HEAD:refs/heads/env/dev');
      const second = git(work, 'rev-parse', 'HEAD');
      app = (await call('GET', '/api/v1/applications/from-git?refresh=hard')).json;
      assert.deepEqual([app.status.sync.revision, app.status.sync.status], [second, 'OutOfSync']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Argo CD stand-in: injections and control', () => {
  test('serverError: 500 code 13, 503 code 14, 502 as an HTML page from a proxy; `times` makes it one-shot', async () => {
    await seedGuestbook();
    await standIn.control.inject({ kind: 'serverError', status: 503, app: 'guestbook-dev', times: 1 });
    assertGrpcError(await call('GET', '/api/v1/applications/guestbook-dev'), 503, 14, /connection refused/);
    assert.equal((await call('GET', '/api/v1/applications/guestbook-dev')).status, 200);
    await standIn.control.inject({ kind: 'serverError', times: 1 });
    assertGrpcError(await call('GET', '/api/version'), 500, 13, /./);
    await standIn.control.inject({ kind: 'serverError', status: 502, times: 1 });
    const proxy = await call('GET', '/api/v1/applications/guestbook-dev');
    assert.equal(proxy.status, 502);
    assert.match(proxy.contentType, /^text\/html/);
    assert.match(proxy.text, /<title>502 Bad Gateway<\/title>/);
  });

  test('slow adds latency; unauthenticated, forbidden and notFound change the answer for one app only', async () => {
    await seedGuestbook();
    await standIn.control.addApp({ name: 'other', repoURL: REPO, targetRevision: 'env/dev' });
    await standIn.control.inject({ kind: 'slow', latencyMs: 200, app: 'guestbook-dev', times: 1 });
    const started = Date.now();
    assert.equal((await call('GET', '/api/v1/applications/guestbook-dev')).status, 200);
    assert.ok(Date.now() - started >= 190);

    await standIn.control.inject({ kind: 'unauthenticated', app: 'guestbook-dev', times: 1 });
    assertGrpcError(
      await call('GET', '/api/v1/applications/guestbook-dev'),
      401,
      16,
      'invalid session: token has invalid claims: token is expired',
    );
    await standIn.control.inject({ kind: 'forbidden', app: 'guestbook-dev', times: 1 });
    assertGrpcError(await call('GET', '/api/v1/applications/guestbook-dev'), 403, 7, 'permission denied');
    await standIn.control.inject({ kind: 'notFound', app: 'guestbook-dev' });
    assertGrpcError(await call('GET', '/api/v1/applications/guestbook-dev'), 403, 7, 'permission denied');
    assertGrpcError(await call('GET', '/api/v1/applications/guestbook-dev?project=default'), 404, 5, /not found/);
    assert.equal((await call('GET', '/api/v1/applications/other')).status, 200);
  });

  test('operationInProgress starts a foreign operation by admin that makes our sync 400 until it completes', async () => {
    await seedGuestbook();
    await standIn.control.inject({ kind: 'operationInProgress', app: 'guestbook-dev', durationMs: 150 });
    const app = (await call('GET', '/api/v1/applications/guestbook-dev')).json;
    assert.deepEqual(app.operation.initiatedBy, { username: 'admin' });
    assertGrpcError(
      await call('POST', '/api/v1/applications/guestbook-dev/sync', { body: {} }),
      400,
      9,
      'another operation is already in progress',
    );
    await until('the foreign operation to end', async () =>
      (await call('GET', '/api/v1/applications/guestbook-dev')).json.operation ? undefined : true,
    );
    assert.equal((await call('POST', '/api/v1/applications/guestbook-dev/sync', { body: {} })).status, 200);
  });

  test('the control API over HTTP seeds apps, repos and tokens, injects, and shows recorded requests', async () => {
    const control = async (method: string, path: string, body?: unknown): Promise<Answer> =>
      call(method, `/__standin${path}`, { body, auth: null });
    const other = makeToken('ci');
    assert.equal((await control('PUT', '/tokens', { [other]: true })).status, 200);
    assert.equal(
      (await control('POST', '/repos', { repoURL: REPO, refs: { 'refs/heads/env/dev': SHA_B } })).status,
      200,
    );
    const added = await control('POST', '/apps', { name: 'via-http', repoURL: REPO, targetRevision: 'env/dev' });
    assert.equal(added.json.status.sync.revision, SHA_B);
    assert.equal((await control('POST', '/injections', { kind: 'serverError', status: 503, times: 1 })).status, 200);
    assert.equal((await call('GET', '/api/v1/applications/via-http', { auth: other })).status, 503);
    assert.equal((await call('GET', '/api/v1/applications/via-http', { auth: other })).status, 200);
    assertGrpcError(await call('GET', '/api/v1/applications/via-http'), 401, 16, /^invalid session/); // the start token was replaced
    const requests = (await control('GET', '/requests?app=via-http')).json;
    assert.deepEqual(
      requests.map((r: { method: string; path: string; status: number }) => [r.method, r.path, r.status]),
      [
        ['GET', '/api/v1/applications/via-http', 503],
        ['GET', '/api/v1/applications/via-http', 200],
        ['GET', '/api/v1/applications/via-http', 401],
      ],
    );
    assert.ok(
      (await control('GET', '/events?app=via-http')).json.some((e: { type: string }) => e.type === 'reconciled'),
    );
    assert.equal((await control('GET', '/apps/via-http')).status, 200);
    assert.equal((await control('POST', '/reset')).status, 200);
    assert.equal((await control('GET', '/apps/via-http')).status, 404);
    assert.deepEqual((await control('GET', '/requests')).json, []);
  });

  test('main.ts runs the stand-in as its own process: one JSON line with the URL, exit on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(__dirname, 'argocd', 'main.ts'), '--port', '0', '--token', token],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        child.once('exit', (code) => reject(new Error(`exited with ${code} before printing`)));
      });
      const { url } = JSON.parse(line) as { url: string };
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const info = await fetch(`${url}/api/v1/session/userinfo`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(info.status, 200);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
