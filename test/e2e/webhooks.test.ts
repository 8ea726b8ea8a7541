// Inbound webhooks end to end: the HTTP API on 127.0.0.1 over the real typed client, a real Temporal dev server,
// Ferry's worker and real git. A signed generic delivery registers freight and dev auto-promotes it, rendering the
// sources at the commit the freight pins; every refused delivery leaves the freight list as it was; GitHub's
// registry_package and push deliveries and GitLab's Push Hook register freight; a merged pull (merge) request wakes a
// workflow waiting on it.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createSecretResolver } from '../../activities/secrets';
import { startApiServer, type ApiServer } from '../../api/server';
import { createWebhookSecrets, signGenericDelivery, signGitHubDelivery } from '../../api/webhooks';
import { createTokenStore } from '../../client/auth';
import { FerryClient } from '../../client/ferry-client';
import { silentLogger } from '../../client/log';
import { createExampleRepo, EXAMPLE_IMAGE } from '../../dev/example';
import { freightId } from '../../pipeline/freight';
import { pullRequestKey } from '../../pipeline/ids';
import { validatePipeline } from '../../pipeline/load';
import { createFerryWorker } from '../../worker/create-worker';
import type { PromotionStatus } from '../../workflows/messages';
import { git } from '../helpers/git';
import { until } from '../helpers/processes';
import { createTemporalTestEnv } from '../helpers/temporal';
import type { waitForPullRequestMerge } from '../helpers/pull-request-waiter';

const TASK_QUEUE = 'ferry-webhooks-e2e';
const WAITER_QUEUE = 'ferry-webhooks-e2e-waiter';
const CI_SECRET = 'ci-s3cret-for-the-e2e-webhooks';
const GITHUB_SECRET = 'github-s3cret-for-the-e2e-webhooks';
const GITLAB_SECRET = 'gitlab-s3cret-for-the-e2e-webhooks';

describe('inbound webhooks end to end (HTTP API, real Temporal, worker, git)', () => {
  let dir: string;
  let env: TestWorkflowEnvironment;
  let workers: Worker[] = [];
  let running: Promise<void>[] = [];
  let ferry: FerryClient;
  let api: ApiServer;
  let remote: { path: string; url: string };
  let work: string;

  const post = async (
    path: string,
    body: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${api.url}${path}`, { method: 'POST', headers, body });
    return { status: res.status, body: await res.json() };
  };
  const now = (): string => String(Math.floor(Date.now() / 1000));
  const generic = (body: unknown, options: { timestamp?: string; secret?: string; signature?: string } = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const timestamp = options.timestamp ?? now();
    return post('/webhooks/generic/shop', text, {
      'content-type': 'application/json',
      'x-ferry-timestamp': timestamp,
      'x-ferry-signature': options.signature ?? signGenericDelivery(options.secret ?? CI_SECRET, timestamp, text),
    });
  };
  let deliveries = 0;
  const github = (event: string, payload: unknown) => {
    const text = JSON.stringify(payload);
    return post('/webhooks/github', text, {
      'content-type': 'application/json',
      'x-github-event': event,
      'x-github-delivery': `72d3162e-cc78-11e3-81ab-${String(++deliveries).padStart(12, '0')}`,
      'x-hub-signature-256': signGitHubDelivery(GITHUB_SECRET, text),
    });
  };
  const gitlab = (event: string, payload: unknown) =>
    post('/webhooks/gitlab', JSON.stringify(payload), {
      'content-type': 'application/json',
      'x-gitlab-event': event,
      'x-gitlab-token': GITLAB_SECRET,
      'x-gitlab-event-uuid': `gitlab-event-${++deliveries}`,
    });
  const freightList = async (): Promise<string[]> => (await ferry.getPipeline('shop')).freight.map((f) => f.id);
  const succeeded = (id: string): Promise<PromotionStatus> =>
    until(
      `${id} to succeed`,
      async () => {
        const status = await ferry.getPromotion(id).catch(() => undefined);
        if (status && ['Failed', 'Rejected', 'Aborted'].includes(status.phase))
          throw new Error(`${id} ended ${status.phase}: ${status.error}`);
        return status?.phase === 'Succeeded' ? status : undefined;
      },
      120_000,
    );
  /** A commit on main of the remote that changes dev's replica count, so a render shows which commit it came from. */
  const commitOnMain = (replicas: number): string => {
    const file = join(work, 'apps/guestbook/overlays/dev/deployment.yaml');
    git(work, 'pull', '--quiet', '--ff-only', 'origin', 'main');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace(/replicas: \d+/, `replicas: ${replicas}`));
    git(work, 'commit', '--quiet', '-am', `dev runs ${replicas} replicas`);
    git(work, 'push', '--quiet', 'origin', 'main');
    return git(work, 'rev-parse', 'HEAD');
  };
  const rendered = (commit: string): string => git(dir, '--git-dir', remote.path, 'show', `${commit}:deployment.yaml`);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-webhooks-'));
    remote = createExampleRepo(join(dir, 'gitops.git'));
    work = join(dir, 'work');
    git(dir, 'clone', '--quiet', remote.url, work);

    env = await createTemporalTestEnv();
    const ferryWorker = await createFerryWorker({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUE,
      workspaceRoot: join(dir, 'workspaces'),
      secrets: createSecretResolver({ env: {} }),
      allowFileRepos: true,
    });
    const waiter = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: WAITER_QUEUE,
      workflowsPath: require.resolve('../helpers/pull-request-waiter'),
    });
    workers = [ferryWorker, waiter];
    running = workers.map((w) => w.run());
    ferry = FerryClient.fromClient(env.client, TASK_QUEUE);

    // The API resolves webhook secrets from its own directory, as an operator would set it up.
    const secretsDir = join(dir, 'webhook-secrets');
    mkdirSync(secretsDir);
    writeFileSync(join(secretsDir, 'ci-webhook'), `${CI_SECRET}\n`);
    writeFileSync(join(secretsDir, 'github-webhook'), `${GITHUB_SECRET}\n`);
    writeFileSync(join(secretsDir, 'gitlab-webhook'), `${GITLAB_SECRET}\n`);
    api = await startApiServer({
      ferry,
      tokens: createTokenStore({ file: null, env: {}, tokens: {} }),
      port: 0,
      logger: silentLogger,
      webhooks: { secrets: createWebhookSecrets({ FERRY_WEBHOOK_SECRETS_DIR: secretsDir }) },
    });

    const loaded = validatePipeline({
      apiVersion: 'ferry.dev/v1alpha1',
      kind: 'Pipeline',
      metadata: { name: 'shop' },
      spec: {
        repo: { url: remote.url, branch: 'main' },
        artifacts: [
          { name: 'guestbook', image: EXAMPLE_IMAGE },
          { name: 'sources', git: { url: remote.url, branch: 'main' } },
        ],
        stages: [
          {
            name: 'dev',
            promotion: 'auto',
            render: { strategy: 'branch', from: 'apps/guestbook/overlays/dev', to: 'env/dev' },
          },
        ],
        triggers: {
          generic: { secret: 'ci-webhook' },
          github: [{ repository: 'org/gitops', secret: 'github-webhook' }],
          gitlab: [{ project: 'group/gitops', secret: 'gitlab-webhook' }],
        },
      },
    });
    assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors));
    await ferry.applyPipeline(loaded.pipeline);
    // GitHub deliveries find their pipelines through Temporal's visibility: wait until it lists this one.
    await until('the pipeline to be listed', async () =>
      (await ferry.listPipelines()).some((p) => p.name === 'shop') ? true : undefined,
    );
  });

  after(async () => {
    await api?.close();
    for (const w of workers) w.shutdown();
    await Promise.all(running);
    await env?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let first: { id: string; pinned: string };

  it('a signed generic delivery registers freight, and dev auto-promotes it rendered at the pinned commit', async (t) => {
    const pinned = commitOnMain(4);
    const later = commitOnMain(5); // main moves on: the freight still renders the commit it pins
    const artifacts = { guestbook: '1.4.2', sources: pinned };
    const sent = performance.now();
    const res = await generic({ artifacts });
    const answered = performance.now();
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body, { pipeline: 'shop', id: freightId(artifacts), created: true, artifacts });

    const promotion = await succeeded(`promotion/shop/dev/${res.body.id}`);
    // For the record, not asserted: how long the delivery took to answer, and until dev had the freight (polled).
    t.diagnostic(
      `generic delivery answered in ${Math.round(answered - sent)} ms; dev Succeeded ${Math.round(performance.now() - sent)} ms after sending`,
    );
    assert.equal(promotion.requestedBy, 'ferry/auto-promotion');
    assert.equal(promotion.sourceCommit, pinned);
    assert.notEqual(promotion.sourceCommit, later);
    const deployment = rendered(promotion.commit!);
    assert.match(deployment, /replicas: 4 /);
    assert.match(deployment, /image: registry\.example\.com\/team\/guestbook:1\.4\.2/);
    first = { id: res.body.id, pinned };
  });

  it('forged, replayed, expired, oversized and malformed deliveries each get their 4xx and change nothing', async () => {
    const before = await freightList();
    const body = JSON.stringify({ artifacts: { guestbook: '9.9.9' } });
    const timestamp = now();
    const signature = signGenericDelivery(CI_SECRET, timestamp, body);

    const forged = await generic(body, { secret: 'guessed-secret' });
    assert.equal(forged.status, 401, JSON.stringify(forged.body));

    const accepted = await generic(body, { timestamp, signature });
    assert.equal(accepted.status, 201, 'the genuine delivery, once');
    const afterGenuine = await freightList();
    assert.equal(afterGenuine.length, before.length + 1);
    const replayed = await generic(body, { timestamp, signature });
    assert.deepEqual([replayed.status, replayed.body], [200, { duplicate: true }]);

    const expired = await generic(body, { timestamp: String(Number(now()) - 600) });
    assert.equal(expired.status, 401);
    assert.match(expired.body.error.message, /in the past/);

    const malformed = await generic('{"artifacts": ');
    assert.equal(malformed.status, 400);
    const unknown = await generic({ artifacts: { frontend: '1.0.0' } });
    assert.deepEqual(
      [unknown.status, unknown.body.error.errors.map((e: { path: string }) => e.path)],
      [400, ['artifacts.frontend']],
    );

    const oversized = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${api.url}/webhooks/generic/shop`, {
        method: 'POST',
        headers: { 'content-length': 2 * 1024 * 1024, 'x-ferry-timestamp': now(), 'x-ferry-signature': signature },
      });
      req.on('response', (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(Buffer.alloc(8 * 1024, ' '));
    });
    assert.equal(oversized, 413);

    assert.deepEqual(await freightList(), afterGenuine);
  });

  it('GitHub: a published container image and a push to main each register freight', async () => {
    const published = await github('registry_package', {
      action: 'published',
      registry_package: {
        name: 'guestbook',
        namespace: 'team',
        ecosystem: 'CONTAINER',
        package_type: 'CONTAINER',
        package_version: {
          version: `sha256:${'1'.repeat(64)}`,
          package_url: `${EXAMPLE_IMAGE}:1.5.0`,
          container_metadata: { tag: { name: '1.5.0', digest: `sha256:${'1'.repeat(64)}` } },
        },
      },
      repository: { full_name: 'org/gitops' },
    });
    assert.equal(published.status, 200, JSON.stringify(published.body));
    const image = published.body.pipelines[0].freight;
    assert.equal(image.artifacts.guestbook, '1.5.0');
    assert.equal((await freightList())[0], image.id);

    const pushed = commitOnMain(6);
    const push = await github('push', {
      ref: 'refs/heads/main',
      before: first.pinned,
      after: pushed,
      deleted: false,
      repository: { full_name: 'org/gitops', clone_url: remote.url },
    });
    assert.equal(push.status, 200, JSON.stringify(push.body));
    const freight = push.body.pipelines[0].freight;
    assert.deepEqual(freight.artifacts, { guestbook: '1.5.0', sources: pushed });
    const promotion = await succeeded(`promotion/shop/dev/${freight.id}`);
    assert.equal(promotion.sourceCommit, pushed);
    assert.match(rendered(promotion.commit!), /replicas: 6 /);
  });

  it('GitLab: a Push Hook registers freight with the pushed commit, and dev renders it', async () => {
    const pushed = commitOnMain(7);
    const res = await gitlab('Push Hook', {
      object_kind: 'push',
      ref: 'refs/heads/main',
      after: pushed,
      project: { path_with_namespace: 'group/gitops', git_http_url: remote.url },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const freight = res.body.pipelines[0].freight;
    assert.equal(freight.artifacts.sources, pushed);
    const promotion = await succeeded(`promotion/shop/dev/${freight.id}`);
    assert.equal(promotion.sourceCommit, pushed);
    assert.match(rendered(promotion.commit!), /replicas: 7 /);
  });

  it('freight pinning a commit that is not on main fails its promotion with the reason, and writes nothing', async () => {
    git(work, 'checkout', '--quiet', '-b', 'unmerged');
    writeFileSync(join(work, 'apps/guestbook/overlays/dev/extra.yaml'), 'kind: ConfigMap\n');
    git(work, 'add', '-A');
    git(work, 'commit', '--quiet', '-m', 'not merged');
    git(work, 'push', '--quiet', 'origin', 'unmerged');
    const unmerged = git(work, 'rev-parse', 'HEAD');
    git(work, 'checkout', '--quiet', 'main');
    const devBefore = git(dir, '--git-dir', remote.path, 'rev-parse', 'env/dev');

    const res = await generic({ artifacts: { sources: unmerged } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const id = `promotion/shop/dev/${res.body.id}`;
    const failed = await until(
      `${id} to fail`,
      async () => {
        const status = await ferry.getPromotion(id).catch(() => undefined);
        return status && ['Failed', 'Succeeded'].includes(status.phase) ? status : undefined;
      },
      120_000,
    );
    assert.equal(failed.phase, 'Failed');
    assert.match(
      failed.error ?? '',
      new RegExp(`pins artifact "sources" to commit ${unmerged}, which is not on .* branch main`),
    );
    assert.equal(git(dir, '--git-dir', remote.path, 'rev-parse', 'env/dev'), devBefore);
  });

  it('GitHub: a merged pull request signals the workflow waiting on it', async () => {
    const key = pullRequestKey('github', 'org/gitops', 12);
    const handle = await env.client.workflow.start<typeof waitForPullRequestMerge>('waitForPullRequestMerge', {
      taskQueue: WAITER_QUEUE,
      workflowId: 'waits-on-org-gitops-12',
      args: [{ pullRequest: key }],
    });
    await until('the waiting workflow to be found by its search attribute', async () => {
      for await (const wf of env.client.workflow.list({ query: `FerryPullRequest = "${key}"` })) return wf;
      return undefined;
    });
    const mergeCommit = 'd'.repeat(40);
    const res = await github('pull_request', {
      action: 'closed',
      number: 12,
      pull_request: { number: 12, merged: true, merge_commit_sha: mergeCommit },
      repository: { full_name: 'Org/GitOps' },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.signalled, ['waits-on-org-gitops-12']);
    assert.deepEqual(await handle.result(), { provider: 'github', repository: 'Org/GitOps', number: 12, mergeCommit });
  });

  it('GitLab: a merged merge request signals the workflow waiting on it', async () => {
    const key = pullRequestKey('gitlab', 'group/gitops', 7);
    const handle = await env.client.workflow.start<typeof waitForPullRequestMerge>('waitForPullRequestMerge', {
      taskQueue: WAITER_QUEUE,
      workflowId: 'waits-on-group-gitops-7',
      args: [{ pullRequest: key }],
    });
    await until('the waiting workflow to be found by its search attribute', async () => {
      for await (const wf of env.client.workflow.list({ query: `FerryPullRequest = "${key}"` })) return wf;
      return undefined;
    });
    const res = await gitlab('Merge Request Hook', {
      object_kind: 'merge_request',
      project: { path_with_namespace: 'group/gitops' },
      object_attributes: { iid: 7, action: 'merge', state: 'merged', merge_commit_sha: 'e'.repeat(40) },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.signalled, ['waits-on-group-gitops-7']);
    assert.deepEqual(await handle.result(), {
      provider: 'gitlab',
      repository: 'group/gitops',
      number: 7,
      mergeCommit: 'e'.repeat(40),
    });
  });
});
