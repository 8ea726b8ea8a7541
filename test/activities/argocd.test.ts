// The Argo CD activities, run under MockActivityEnvironment against the Argo CD stand-in over real HTTP: what a
// promotion sees when it syncs an app and waits for it to be Synced and Healthy at the commit it pushed.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import {
  assessApplication,
  createArgoCdActivities,
  PROMOTION_INFO,
  type ArgoCdActivitiesOptions,
} from '../../activities/argocd/activities';
import type { Application } from '../../activities/argocd/client';
import { createSecretResolver } from '../../activities/secrets';
import type { SyncArgoAppInput, WaitArgoAppHealthyInput } from '../../activities/types';
import type { ArgoCdSpec } from '../../pipeline/schema';
import { argoCdStandInForFile } from '../helpers/argocd-standin';
import { makeToken, type AppSeed, type ArgoCdStandIn } from '../standin/argocd/server';

const REPO = 'https://git.example.com/org/gitops.git';
const OLD = 'a'.repeat(40);
const NEW = 'b'.repeat(40);
const TAG = 'promotion/guestbook/dev/3f9a2c/run-1';
const TIMING = {
  reconcileDelayMs: 10,
  pickupDelayMs: 20,
  syncDurationMs: 60,
  postOpReconcileDelayMs: 150,
  progressingMs: 300,
};

const token = makeToken('ferry');
let standIn: ArgoCdStandIn;

function activities(options: Partial<ArgoCdActivitiesOptions> = {}, secretToken = token) {
  const secrets = createSecretResolver({ env: { FERRY_SECRET_ARGOCD_TOKEN: secretToken } });
  return createArgoCdActivities({
    secrets,
    pollIntervalMs: 40,
    requestTimeoutMs: 1000,
    degradedGraceMs: 300,
    unhealthyGraceMs: 500,
    ...options,
  });
}

function argocd(overrides: Partial<ArgoCdSpec> = {}): ArgoCdSpec {
  return {
    server: standIn.url,
    app: 'guestbook-dev',
    credentials: 'argocd',
    timeout: '10m',
    degradedGrace: '300ms',
    unhealthyGrace: '500ms',
    ...overrides,
  };
}

function syncInput(overrides: Partial<SyncArgoAppInput> = {}): SyncArgoAppInput {
  return { argocd: argocd(), revision: NEW, branch: 'env/dev', repoUrl: REPO, tag: TAG, ...overrides };
}

/**
 * The stage's timeout is the bound of a wait, not what a test measures: generous, so a loaded machine (a reconcile
 * seconds late) fails no test whose subject is something else. The tests of the timeout itself give their own.
 */
function waitInput(timeoutMs = 60_000, overrides: Partial<WaitArgoAppHealthyInput> = {}): WaitArgoAppHealthyInput {
  return { ...syncInput(), timeoutMs, ...overrides };
}

/** An activity environment whose logger keeps expected failures out of the test output. */
function newEnv(): MockActivityEnvironment {
  return new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
}

/** MockActivityEnvironment.run loses the result type; this keeps it. */
function run<A, R>(env: MockActivityEnvironment, fn: (input: A) => Promise<R>, input: A): Promise<R> {
  return env.run(fn, input) as Promise<R>;
}

/** The app at OLD, Synced and Healthy; then a commit NEW lands on the stage branch. */
async function seedPushed(seed: Partial<AppSeed> = {}): Promise<void> {
  standIn.control.setRepo(REPO, { 'env/dev': OLD });
  await standIn.control.addApp({
    name: 'guestbook-dev',
    repoURL: `${REPO.replace(/\.git$/, '')}/`, // written differently from the pipeline: normalized before comparing
    targetRevision: 'env/dev',
    resources: [
      { kind: 'Deployment', name: 'guestbook' },
      { kind: 'Service', name: 'guestbook' },
    ],
    ...seed,
  });
  standIn.control.setRepo(REPO, { 'env/dev': NEW });
}

async function failure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => assert.fail('expected the activity to fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
  return err;
}

function syncRequests() {
  return standIn.control.requests({ method: 'POST', path: '/api/v1/applications/guestbook-dev/sync' });
}

argoCdStandInForFile({ tokens: { [token]: true }, timing: TIMING }, (s) => (standIn = s));

describe('syncArgoApp and waitArgoAppHealthy', () => {
  test('happy path: sync is requested with our tag and no revision, and the wait ends Healthy at the revision only after the post-op reconcile', async () => {
    await seedPushed();
    const { syncArgoApp, waitArgoAppHealthy } = activities();
    const env = newEnv();
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => heartbeats.push(d));

    assert.deepEqual(await run(env, syncArgoApp, syncInput()), { started: true, automated: false });
    const result = await run(env, waitArgoAppHealthy, waitInput());
    const returnedAt = Date.now();

    assert.equal(result.revision, NEW);
    assert.equal(result.health, 'Healthy');
    assert.equal(result.syncStatus, 'Synced');
    assert.ok(result.waitedMs > 0);

    // Sync carried the tag, no revision, and came after a hard refresh.
    const [sync] = syncRequests();
    assert.deepEqual(sync.body, { name: 'guestbook-dev', infos: [{ name: 'ferry.dev/promotion', value: TAG }] });
    const hardRefresh = standIn.control.requests({ method: 'GET' }).find((r) => r.query.refresh === 'hard');
    assert.ok(hardRefresh && hardRefresh.at < sync.at, 'a hard refresh precedes the sync');

    // The trap was there: before the deploy finished, Argo CD showed the new revision with the old Healthy.
    const events = standIn.control.events('guestbook-dev');
    const completed = events.find((e) => e.type === 'operationCompleted');
    assert.ok(completed);
    assert.ok(
      events.some(
        (e) =>
          e.type === 'reconciled' &&
          e.at < completed.at &&
          e.revision === NEW &&
          e.health === 'Healthy' &&
          e.syncStatus === 'OutOfSync',
      ),
    );
    // ... and the wait did not fall into it: it returned only once a reconcile after the deploy reported Healthy,
    // having seen Progressing in between.
    const fresh = events.filter((e) => e.type === 'reconciled' && e.at >= completed.at);
    const firstHealthy = fresh.find((e) => e.health === 'Healthy');
    assert.ok(firstHealthy, 'a post-deploy reconcile reported Healthy');
    // The stand-in reports Progressing for progressingMs after the deploy; on a loaded machine its first reconcile
    // can come later than that, and then Healthy is already the truth.
    if (fresh[0].at - completed.at < TIMING.progressingMs) {
      assert.ok(fresh.indexOf(firstHealthy) > 0 && fresh[0].health === 'Progressing', 'Progressing came first');
    }
    assert.ok(returnedAt >= firstHealthy.at, 'the wait returned only after Argo CD reported Healthy after the deploy');

    assert.ok(heartbeats.length > 0, 'the wait heartbeats');
    assert.ok(heartbeats.every((d) => !JSON.stringify(d).includes(token)));
  });

  test('a stale Healthy is not success even when Argo CD never answers refreshes: the wait holds until the post-op reconcile', async () => {
    await seedPushed();
    const { syncArgoApp, waitArgoAppHealthy } = activities({ requestTimeoutMs: 200 });
    const env = newEnv();
    await standIn.control.inject({ kind: 'staleHealthWindow', app: 'guestbook-dev', postOpReconcileDelayMs: 1200 });
    await run(env, syncArgoApp, syncInput());
    await standIn.control.inject({ kind: 'hangRefresh', app: 'guestbook-dev' });

    const result = await run(env, waitArgoAppHealthy, waitInput());
    const returnedAt = Date.now();
    assert.equal(result.health, 'Healthy');
    const events = standIn.control.events('guestbook-dev');
    const completed = events.find((e) => e.type === 'operationCompleted');
    const postOp = events.find((e) => e.type === 'reconciled' && e.reason === 'operationCompleted');
    assert.ok(completed && postOp);
    assert.ok(postOp.at - completed.at >= 1150, 'the stale window was long');
    assert.ok(returnedAt >= postOp.at, 'success came only after the post-op reconcile');
    assert.ok(
      standIn.control.requests({ method: 'GET' }).some((r) => r.query.refresh === 'normal'),
      'the wait asked for refreshes meanwhile',
    );
  });

  test('a retried syncArgoApp with the same tag starts no second operation, in flight or after it finished', async () => {
    await seedPushed();
    const { syncArgoApp, waitArgoAppHealthy } = activities();
    const env = newEnv();
    assert.equal((await run(env, syncArgoApp, syncInput())).started, true);
    assert.deepEqual(await run(env, syncArgoApp, syncInput()), { started: false, automated: false });
    await run(env, waitArgoAppHealthy, waitInput());
    assert.deepEqual(await run(env, syncArgoApp, syncInput()), { started: false, automated: false });
    assert.equal(syncRequests().length, 1);
    // Another promotion (another tag) does get its own operation.
    assert.equal(
      (await run(env, syncArgoApp, syncInput({ tag: 'promotion/guestbook/dev/other/run-1' }))).started,
      true,
    );
    assert.equal(syncRequests().length, 2);
  });

  test('an app with automated sync is only refreshed; the wait correlates the auto-sync by revision', async () => {
    await seedPushed({ automated: true });
    const { syncArgoApp, waitArgoAppHealthy } = activities();
    const env = newEnv();
    assert.deepEqual(await run(env, syncArgoApp, syncInput()), { started: false, automated: true });
    assert.equal(syncRequests().length, 0);
    const result = await run(env, waitArgoAppHealthy, waitInput());
    assert.equal(result.revision, NEW);
    assert.deepEqual(standIn.control.getApp('guestbook-dev')?.status.operationState?.operation.initiatedBy, {
      automated: true,
    });
  });

  test('a foreign operation in progress is waited out (with heartbeats), then our sync is requested', async () => {
    await seedPushed();
    await standIn.control.inject({ kind: 'operationInProgress', app: 'guestbook-dev', durationMs: 400 });
    const { syncArgoApp, waitArgoAppHealthy } = activities();
    const env = newEnv();
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => heartbeats.push(d));
    assert.deepEqual(await run(env, syncArgoApp, syncInput()), { started: true, automated: false });
    assert.deepEqual(
      syncRequests().map((r) => r.status),
      [400, 200],
    );
    assert.ok(heartbeats.some((d) => JSON.stringify(d).includes('another operation')));
    assert.equal((await run(env, waitArgoAppHealthy, waitInput())).health, 'Healthy');
  });

  test('an app that does not track the stage branch fails at once, saying what it tracks and what to set', async () => {
    await seedPushed({ targetRevision: 'main' });
    standIn.control.setRepo(REPO, { main: OLD });
    const { syncArgoApp } = activities();
    const err = await failure(run(newEnv(), syncArgoApp, syncInput()));
    assert.equal(err.type, 'ArgoCdInvalid');
    assert.equal(err.nonRetryable, true);
    assert.match(
      err.message,
      /^argocd app "guestbook-dev" at http:\/\/127\.0\.0\.1:\d+: tracks .* at targetRevision "main", not the stage branch "env\/dev": set spec\.source\.targetRevision to "env\/dev"$/,
    );
    assert.equal(syncRequests().length, 0);

    await seedPushed({ repoURL: 'https://git.example.com/org/other.git' });
    const other = await failure(run(newEnv(), syncArgoApp, syncInput()));
    assert.match(
      other.message,
      /tracks https:\/\/git\.example\.com\/org\/other\.git@env\/dev, not https:\/\/git\.example\.com\/org\/gitops\.git: set spec\.source\.repoURL/,
    );
  });
});

describe('failures', () => {
  test("401: an unknown token and a non-JWT token fail at once, non-retryable, with Argo CD's message and without the token", async () => {
    await seedPushed();
    const unknown = makeToken('revoked');
    const err = await failure(run(newEnv(), activities({}, unknown).syncArgoApp, syncInput()));
    assert.equal(err.type, 'ArgoCdUnauthorized');
    assert.equal(err.nonRetryable, true);
    assert.match(
      err.message,
      /^argocd app "guestbook-dev" at http:\/\/127\.0\.0\.1:\d+: reading the app: invalid session: .*\(HTTP 401\); check the token in credential "argocd"$/,
    );
    assert.ok(!err.message.includes(unknown));

    const plain = 'plain-secret-token-value';
    const noSession = await failure(run(newEnv(), activities({}, plain).waitArgoAppHealthy, waitInput()));
    assert.equal(noSession.type, 'ArgoCdUnauthorized');
    assert.match(noSession.message, /no session information/);
    assert.ok(!noSession.message.includes(plain));
    assert.equal(standIn.control.requests().length, 2, 'no retries inside the activity');
  });

  test('403: a token without rights fails non-retryable with "permission denied", hinting at argocd.project', async () => {
    await seedPushed();
    const nobody = makeToken('nobody');
    standIn.control.setTokens({ [nobody]: false });
    const err = await failure(run(newEnv(), activities({}, nobody).syncArgoApp, syncInput()));
    assert.equal(err.type, 'ArgoCdForbidden');
    assert.equal(err.nonRetryable, true);
    assert.match(
      err.message,
      /permission denied \(HTTP 403\); the token may lack access, or the app may not exist .*argocd\.project/,
    );
    assert.ok(!err.message.includes(nobody));
  });

  test('404: a missing app with argocd.project set fails non-retryable as not found; without project it is a 403', async () => {
    await seedPushed();
    const { syncArgoApp } = activities();
    const err = await failure(
      run(newEnv(), syncArgoApp, syncInput({ argocd: argocd({ app: 'nope', project: 'default' }) })),
    );
    assert.equal(err.type, 'ArgoCdNotFound');
    assert.equal(err.nonRetryable, true);
    assert.match(
      err.message,
      /^argocd app "nope" at .*: reading the app: applications\.argoproj\.io "nope" not found \(HTTP 404\)/,
    );
    const hidden = await failure(run(newEnv(), syncArgoApp, syncInput({ argocd: argocd({ app: 'nope' }) })));
    assert.equal(hidden.type, 'ArgoCdForbidden');
    assert.ok(standIn.control.requests().every((r) => r.path === '/api/v1/applications/nope'));
    assert.equal(standIn.control.requests()[0].query.project, 'default');
  });

  test("5xx and a proxy's HTML 502 are retryable failures carrying the reason", async () => {
    await seedPushed();
    const { syncArgoApp } = activities();
    await standIn.control.inject({ kind: 'serverError', status: 503, app: 'guestbook-dev', times: 1 });
    const unavailable = await failure(run(newEnv(), syncArgoApp, syncInput()));
    assert.equal(unavailable.type, 'ArgoCdUnavailable');
    assert.equal(unavailable.nonRetryable, false);
    assert.match(unavailable.message, /: reading the app: connection error: .*connection refused.* \(HTTP 503\)$/);

    await standIn.control.inject({ kind: 'serverError', status: 502, app: 'guestbook-dev', times: 1 });
    const proxy = await failure(run(newEnv(), syncArgoApp, syncInput()));
    assert.equal(proxy.nonRetryable, false);
    assert.match(
      proxy.message,
      /502 Bad Gateway \(HTTP 502 from GET \/api\/v1\/applications\/guestbook-dev, not an Argo CD error body\)/,
    );
    // Once Argo CD answers again, the retry goes through.
    assert.equal((await run(newEnv(), syncArgoApp, syncInput())).started, true);
  });

  test("a Degraded rollout fails non-retryable with the resource's health message", async () => {
    await seedPushed();
    await standIn.control.inject({ kind: 'degraded', app: 'guestbook-dev', afterMs: 350 });
    const { syncArgoApp, waitArgoAppHealthy } = activities();
    const env = newEnv();
    await run(env, syncArgoApp, syncInput());
    const started = Date.now();
    const err = await failure(run(env, waitArgoAppHealthy, waitInput()));
    assert.equal(err.type, 'ArgoCdDegraded');
    assert.equal(err.nonRetryable, true);
    assert.match(
      err.message,
      new RegExp(
        `^argocd app "guestbook-dev" at .*: Degraded at ${NEW}: apps/Deployment guestbook-dev/guestbook: Deployment "guestbook" exceeded its progress deadline$`,
      ),
    );
    // Progressing was seen first, so the regression fails at once rather than after the grace period.
    const degradedAt = standIn.control
      .events('guestbook-dev')
      .find((e) => e.type === 'reconciled' && e.health === 'Degraded');
    assert.ok(
      degradedAt && Date.now() - degradedAt.at < 250,
      `failed ${Date.now() - (degradedAt?.at ?? 0)} ms after Degraded`,
    );
    assert.ok(Date.now() - started < 2000);
  });

  test('a failed sync operation fails non-retryable with the operation and resource messages', async () => {
    await seedPushed();
    await standIn.control.inject({
      kind: 'syncFailed',
      app: 'guestbook-dev',
      message: 'admission webhook "policy" denied the request',
    });
    const { syncArgoApp, waitArgoAppHealthy } = activities();
    const env = newEnv();
    await run(env, syncArgoApp, syncInput());
    const err = await failure(run(env, waitArgoAppHealthy, waitInput()));
    assert.equal(err.type, 'ArgoCdSyncFailed');
    assert.equal(err.nonRetryable, true);
    assert.match(
      err.message,
      /sync operation Failed: one or more objects failed to apply, reason: admission webhook "policy" denied the request; Deployment guestbook-dev\/guestbook: admission webhook/,
    );
  });

  test('a branch that moved before Argo CD resolved it fails as "synced X, expected Y"', async () => {
    await seedPushed();
    const moved = 'c'.repeat(40);
    standIn.control.setRepo(REPO, { 'env/dev': moved });
    const { syncArgoApp, waitArgoAppHealthy } = activities();
    const env = newEnv();
    await run(env, syncArgoApp, syncInput());
    const err = await failure(run(env, waitArgoAppHealthy, waitInput()));
    assert.equal(err.type, 'ArgoCdWrongRevision');
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, new RegExp(`synced ${moved}, expected ${NEW}`));
  });

  test('stuck Progressing times out non-retryable with the last state', async () => {
    await seedPushed();
    await standIn.control.inject({ kind: 'stuckProgressing', app: 'guestbook-dev' });
    const { syncArgoApp, waitArgoAppHealthy } = activities();
    const env = newEnv();
    await run(env, syncArgoApp, syncInput());
    const started = Date.now();
    const err = await failure(run(env, waitArgoAppHealthy, waitInput(800)));
    const took = Date.now() - started;
    assert.equal(err.type, 'ArgoCdTimeout');
    assert.equal(err.nonRetryable, true);
    assert.match(
      err.message,
      new RegExp(
        `: not healthy at ${NEW} after 800ms: last state Synced, Progressing \\(Deployment guestbook: Waiting for rollout to finish`,
      ),
    );
    assert.ok(took >= 800 && took < 1500, `took ${took} ms`);
  });

  test('Missing health beyond the grace period fails non-retryable', async () => {
    await seedPushed();
    await standIn.control.inject({ kind: 'missing', app: 'guestbook-dev' });
    const { syncArgoApp, waitArgoAppHealthy } = activities();
    const env = newEnv();
    await run(env, syncArgoApp, syncInput());
    const err = await failure(run(env, waitArgoAppHealthy, waitInput()));
    assert.equal(err.type, 'ArgoCdUnhealthy');
    assert.match(err.message, new RegExp(`health Missing at ${NEW} for more than 500ms`));
  });

  test("a Degraded app is given the stage's argocd.degradedGrace before the promotion fails", async () => {
    await seedPushed({ healthScript: [{ afterMs: 0, status: 'Degraded', message: 'Available: 0/1 replicas' }] });
    const { syncArgoApp, waitArgoAppHealthy } = activities();
    const env = newEnv();
    await run(env, syncArgoApp, syncInput());
    const started = Date.now();
    const err = await failure(
      run(env, waitArgoAppHealthy, waitInput(10_000, { argocd: argocd({ degradedGrace: '1200ms' }) })),
    );
    const took = Date.now() - started;
    assert.equal(err.type, 'ArgoCdDegraded');
    assert.match(err.message, /Available: 0\/1 replicas/);
    assert.ok(took >= 1200 && took < 4000, `took ${took} ms; the stage allows 1200 ms (the worker default is 300 ms)`);
  });

  test('a Degraded app with a terminal reason fails at once, without waiting out the grace period', async () => {
    const message = 'Back-off pulling image "registry.example.com/team/guestbook:9.9.9": ImagePullBackOff';
    await seedPushed({ healthScript: [{ afterMs: 0, status: 'Degraded', message }] });
    const { syncArgoApp, waitArgoAppHealthy } = activities({ degradedGraceMs: 60_000 });
    const env = newEnv();
    await run(env, syncArgoApp, syncInput());
    const started = Date.now();
    const err = await failure(
      run(env, waitArgoAppHealthy, waitInput(10_000, { argocd: argocd({ degradedGrace: '1m' }) })),
    );
    assert.equal(err.type, 'ArgoCdDegraded');
    assert.match(err.message, /ImagePullBackOff/);
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  });

  test("Missing health is given the stage's argocd.unhealthyGrace", async () => {
    await seedPushed();
    await standIn.control.inject({ kind: 'missing', app: 'guestbook-dev' });
    const { syncArgoApp, waitArgoAppHealthy } = activities();
    const env = newEnv();
    await run(env, syncArgoApp, syncInput());
    const started = Date.now();
    const err = await failure(
      run(env, waitArgoAppHealthy, waitInput(10_000, { argocd: argocd({ unhealthyGrace: '1500ms' }) })),
    );
    const took = Date.now() - started;
    assert.equal(err.type, 'ArgoCdUnhealthy');
    assert.match(err.message, new RegExp(`health Missing at ${NEW} for more than 1.5s`));
    assert.ok(took >= 1500 && took < 4500, `took ${took} ms`);
  });

  test('cancellation stops the wait promptly, mid-sleep, with a CancelledFailure', async () => {
    await seedPushed();
    await standIn.control.inject({ kind: 'stuckProgressing', app: 'guestbook-dev' });
    const { syncArgoApp, waitArgoAppHealthy } = activities({ pollIntervalMs: 10_000 });
    await run(newEnv(), syncArgoApp, syncInput());
    const env = newEnv();
    const waiting = run(env, waitArgoAppHealthy, waitInput(60_000));
    await new Promise((r) => setTimeout(r, 300));
    const cancelledAt = Date.now();
    env.cancel();
    const err = await waiting.then(
      () => assert.fail('expected cancellation'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof CancelledFailure, `expected CancelledFailure, got ${String(err)}`);
    assert.ok(Date.now() - cancelledAt < 200, `stopped ${Date.now() - cancelledAt} ms after the cancel`);
  });
});

describe('assessApplication: conditions', () => {
  /** An app our sync brought to NEW, freshly reconciled, carrying `conditions`. */
  function settledApp(conditions: { type: string; message: string }[]): Application {
    const source = { repoURL: REPO, path: '.', targetRevision: 'env/dev' };
    return {
      metadata: { name: 'guestbook-dev' },
      spec: { source },
      status: {
        sync: { status: 'Synced', revision: NEW, comparedTo: { source } },
        health: { status: 'Healthy' },
        operationState: {
          operation: { info: [{ name: PROMOTION_INFO, value: TAG }] },
          phase: 'Succeeded',
          finishedAt: '2026-11-28T03:00:00Z',
          syncResult: { revision: NEW },
        },
        reconciledAt: '2026-11-28T03:00:01Z',
        conditions,
      },
    };
  }
  const expectation = { revision: NEW, tag: TAG, sourceIndex: 0, degradedGraceMs: 30_000, unhealthyGraceMs: 60_000 };

  test('a ComparisonError is waited on for the unhealthy grace; an InvalidSpecError fails at once', () => {
    const comparison = settledApp([{ type: 'ComparisonError', message: 'rpc error: repo server unavailable' }]);
    const memory = { sawProgress: false };
    assert.equal(assessApplication(comparison, expectation, memory, 1_000).verdict, 'wait');
    assert.equal(assessApplication(comparison, expectation, memory, 60_999).verdict, 'wait');
    assert.equal(assessApplication(comparison, expectation, memory, 61_000).verdict, 'fail');

    const invalid = settledApp([
      { type: 'InvalidSpecError', message: 'application repo is not permitted in project "default"' },
    ]);
    assert.deepEqual(assessApplication(invalid, expectation, { sawProgress: false }, 1_000), {
      verdict: 'fail',
      type: 'ArgoCdUnhealthy',
      message: 'InvalidSpecError: application repo is not permitted in project "default"',
    });
  });
});

describe('assessApplication: a shared branch (directory stages on the trunk)', () => {
  const LATER = 'c'.repeat(40);
  function syncedAt(revision: string): Application {
    const source = { repoURL: REPO, path: 'envs/dev', targetRevision: 'main' };
    return {
      metadata: { name: 'trunk-dev' },
      spec: { source },
      status: {
        sync: { status: 'Synced', revision, comparedTo: { source } },
        health: { status: 'Healthy' },
        operationState: {
          operation: { info: [{ name: PROMOTION_INFO, value: TAG }] },
          phase: 'Succeeded',
          finishedAt: '2026-11-28T03:00:00Z',
          syncResult: { revision },
        },
        reconciledAt: '2026-11-28T03:00:01Z',
      },
    };
  }
  const base = { revision: NEW, tag: TAG, sourceIndex: 0, degradedGraceMs: 30_000, unhealthyGraceMs: 60_000 };

  test('a later commit known to contain ours is healthy; one not known to is the wrong revision', () => {
    const app = syncedAt(LATER);
    assert.deepEqual(assessApplication(app, { ...base, containing: new Set([LATER]) }, { sawProgress: false }, 1_000), {
      verdict: 'healthy',
    });
    const alone = assessApplication(app, base, { sawProgress: false }, 1_000);
    assert.equal(alone.verdict, 'fail');
    assert.match((alone as { message: string }).message, /^synced c{40}, expected/);
  });
});
