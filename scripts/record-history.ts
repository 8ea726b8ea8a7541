// Records real workflow histories for the replay test (test/workflows/replay.test.ts): on a real dev server, with
// the real worker, real git and the Argo CD stand-in, promotes freight into a free stage without approval (dev) and
// then into a stage with an approval gate and two gates after health, a callback gate and an http gate (prod), both
// with Argo CD and a webhook subscriber for every event; then into a directory stage on a trunk, and through a
// pull request on the GitHub stand-in that a person merges there, both with Argo CD. Writes the histories to
// test/histories/<name>-{pipeline,promotion,free-stage-promotion,directory-promotion,pull-request-promotion}.json.
//
//   npm run history:record -- <name>     (e.g. v1; never overwrite a recorded history: add a new one)
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { FerryClient } from '../client/ferry-client';
import { createSecretResolver } from '../activities/secrets';
import { validatePipeline } from '../pipeline/load';
import { createExampleRepo, EXAMPLE_IMAGE, exampleSources } from '../dev/example';
import { PROJECT_ROOT } from '../dev/temporal';
import { oneArgoCdStagePipeline } from '../test/helpers/fixtures';
import { makeToken, startArgoCdStandIn, type ArgoCdStandIn } from '../test/standin/argocd/server';
import { startGitHubStandIn, type GitHubStandIn } from '../test/standin/github/server';
import { createRepoFromExample } from '../test/helpers/example-repos';
import { bareRepository } from '../test/helpers/git-host';
import { createTemporalTestEnv } from '../test/helpers/temporal';
import { createFerryWorker } from '../worker/create-worker';

async function main(): Promise<void> {
  const name = process.argv[2];
  if (!name || !/^[a-z0-9-]+$/.test(name)) throw new Error('usage: npm run history:record -- <name>');
  const outDir = join(PROJECT_ROOT, 'test', 'histories');
  const files = ['pipeline', 'promotion', 'free-stage-promotion', 'directory-promotion', 'pull-request-promotion'].map(
    (kind) => join(outDir, `${name}-${kind}.json`),
  );
  if (files.some(existsSync)) throw new Error(`histories named "${name}" exist already; pick a new name`);

  const dir = mkdtempSync(join(tmpdir(), 'ferry-record-'));
  const env = await createTemporalTestEnv();
  const token = makeToken('ferry-recorder');
  const argocd = await startArgoCdStandIn({ tokens: { [token]: true } });
  const github = await startGitHubStandIn({
    token: GITHUB_TOKEN,
    repositories: [],
    git: { 'org/gitops': bareRepository(join(dir, 'github.git'), exampleSources()) },
    users: { alice: 'ghp_recorder_alice' },
  });
  // What the http gate polls and the subscriber the events go to: both answer 200 to everything.
  const endpoint = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}'));
  });
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  const endpointUrl = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
  try {
    const repo = createExampleRepo(join(dir, 'gitops.git'));
    await argocd.control.addApp({
      name: 'guestbook-dev',
      project: 'default',
      repoURL: repo.url,
      path: '.',
      targetRevision: 'env/dev',
      deployedRevision: null,
    });
    await argocd.control.addApp({
      name: 'guestbook-prod',
      project: 'default',
      repoURL: repo.url,
      path: '.',
      targetRevision: 'env/prod',
      deployedRevision: null,
    });
    const worker = await createFerryWorker({
      connection: env.nativeConnection,
      taskQueue: 'ferry',
      workspaceRoot: join(dir, 'workspaces'),
      // The test repositories are file:// remotes, which a worker uses only when its operator allows it.
      allowFileRepos: true,
      secrets: createSecretResolver({
        env: {
          FERRY_SECRET_ARGOCD_TOKEN: token,
          FERRY_SECRET_EVENTS_TOKEN: 'recorder-event-secret',
          FERRY_SECRET_GITHUB_TOKEN: GITHUB_TOKEN,
        },
      }),
      argoPollIntervalMs: 100,
    });
    const ferry = FerryClient.fromClient(env.client);
    await worker.runUntil(async () => {
      const spec = oneArgoCdStagePipeline({
        repoUrl: repo.url,
        argocdUrl: argocd.url,
        stage: 'prod',
        approval: { required: 1, approvers: ['alice'] },
      });
      const dev = oneArgoCdStagePipeline({ repoUrl: repo.url, argocdUrl: argocd.url, stage: 'dev' }).spec.stages[0];
      const loaded = validatePipeline({
        ...spec,
        spec: {
          ...spec.spec,
          notify: [{ name: 'recorder', target: { type: 'webhook', url: `${endpointUrl}/events` }, secret: 'events' }],
          stages: [
            dev,
            {
              ...spec.spec.stages[0],
              after: ['dev'],
              gates: [
                { name: 'e2e', callback: { timeout: '10m' } },
                { name: 'smoke', http: { url: `${endpointUrl}/health`, interval: '100ms', successes: 2 } },
              ],
            },
          ],
        },
      });
      if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
      await ferry.applyPipeline(loaded.pipeline);
      const { id: freight } = await ferry.addFreight('guestbook', { guestbook: '1.4.2' });
      const { id: devId } = await ferry.promote('guestbook', 'dev', freight, 'carol');
      const devDone = await ferry.waitForPromotion(devId, { timeoutMs: 60_000 });
      if (devDone.phase !== 'Succeeded') throw new Error(`dev promotion ended ${devDone.phase}: ${devDone.error}`);
      const { id } = await ferry.promote('guestbook', 'prod', freight, 'carol');
      while ((await ferry.getPromotion(id)).phase !== 'AwaitingApproval') await new Promise((r) => setTimeout(r, 100));
      await ferry.approve(id, { user: 'alice', comment: 'recorded' });
      for (;;) {
        const gate = (await ferry.getPromotion(id)).gates?.find((g) => g.name === 'e2e');
        if (gate?.phase === 'Waiting') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await ferry.decideGate(await ferry.waitingGate(id, 'e2e'), {
        result: 'pass',
        reason: 'recorded',
        by: 'recorder',
      });
      const done = await ferry.waitForPromotion(id, { timeoutMs: 60_000 });
      if (done.phase !== 'Succeeded') throw new Error(`promotion ended ${done.phase}: ${done.error}`);
      const directoryId = await recordDirectoryPromotion(ferry, argocd, dir);
      const pullRequestId = await recordPullRequestPromotion(ferry, argocd, github);
      // Let the pipeline workflow process the promotion's "finished" signal before its history is taken.
      await new Promise((r) => setTimeout(r, 1000));
      mkdirSync(outDir, { recursive: true });
      const pipelineHistory = await env.client.workflow.getHandle('pipeline/guestbook').fetchHistory();
      const promotionHistory = await env.client.workflow.getHandle(id).fetchHistory();
      const devHistory = await env.client.workflow.getHandle(devId).fetchHistory();
      writeFileSync(files[0], `${historyToJSON(pipelineHistory)}\n`);
      writeFileSync(files[1], `${historyToJSON(promotionHistory)}\n`);
      writeFileSync(files[2], `${historyToJSON(devHistory)}\n`);
      for (const [file, promotion] of [
        [files[3]!, directoryId],
        [files[4]!, pullRequestId],
      ] as const) {
        writeFileSync(file, `${historyToJSON(await env.client.workflow.getHandle(promotion).fetchHistory())}\n`);
      }
    });
    process.stdout.write(`recorded ${files.join(', ')}\n`);
  } finally {
    await argocd.close();
    await github.close();
    await new Promise<void>((resolve) => endpoint.close(() => resolve()));
    await env.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}

const GITHUB_TOKEN = 'ghs_recorder_ferry_bot';

async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A directory stage on a trunk (the trunk example), deployed by Argo CD from envs/dev of main. */
async function recordDirectoryPromotion(ferry: FerryClient, argocd: ArgoCdStandIn, dir: string): Promise<string> {
  const trunk = join(dir, 'trunk.git');
  createRepoFromExample('trunk', trunk);
  const url = `file://${trunk}`;
  await argocd.control.addApp({
    name: 'trunk-dev',
    project: 'default',
    repoURL: url,
    path: 'envs/dev',
    targetRevision: 'main',
    deployedRevision: null,
  });
  const loaded = validatePipeline({
    apiVersion: 'ferry.dev/v1alpha1',
    kind: 'Pipeline',
    metadata: { name: 'trunk' },
    spec: {
      repo: { url, branch: 'main' },
      artifacts: [{ name: 'guestbook', image: EXAMPLE_IMAGE }],
      stages: [
        {
          name: 'dev',
          render: { strategy: 'directory', to: 'envs/dev' },
          argocd: { server: argocd.url, app: 'trunk-dev', project: 'default', credentials: 'argocd' },
        },
      ],
    },
  });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  await ferry.applyPipeline(loaded.pipeline);
  const { id: freight } = await ferry.addFreight('trunk', { guestbook: '2.0.0' });
  const { id } = await ferry.promote('trunk', 'dev', freight, 'carol');
  const done = await ferry.waitForPromotion(id, { timeoutMs: 60_000 });
  if (done.phase !== 'Succeeded') throw new Error(`directory promotion ended ${done.phase}: ${done.error}`);
  return id;
}

/** A pull request on the GitHub stand-in, into env/prod, merged there by a person; Argo CD deploys the merge. */
async function recordPullRequestPromotion(
  ferry: FerryClient,
  argocd: ArgoCdStandIn,
  github: GitHubStandIn,
): Promise<string> {
  const url = `${github.url}/org/gitops.git`;
  argocd.control.setRepoCredentials(url, { username: 'x-access-token', password: GITHUB_TOKEN });
  await argocd.control.addApp({
    name: 'shop-prod',
    project: 'default',
    repoURL: url,
    path: '.',
    targetRevision: 'env/prod',
    deployedRevision: null,
  });
  const loaded = validatePipeline({
    apiVersion: 'ferry.dev/v1alpha1',
    kind: 'Pipeline',
    metadata: { name: 'shop' },
    spec: {
      repo: { url, branch: 'main', credentials: 'github' },
      artifacts: [{ name: 'guestbook', image: EXAMPLE_IMAGE }],
      stages: [
        {
          name: 'prod',
          render: {
            strategy: 'pull-request',
            from: 'apps/guestbook/overlays/prod',
            to: 'env/prod',
            pullRequest: { provider: 'github', api: github.url, pollInterval: '1s' },
          },
          argocd: { server: argocd.url, app: 'shop-prod', project: 'default', credentials: 'argocd' },
        },
      ],
    },
  });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  await ferry.applyPipeline(loaded.pipeline);
  const { id: freight } = await ferry.addFreight('shop', { guestbook: '3.0.0' });
  const { id } = await ferry.promote('shop', 'prod', freight, 'carol');
  const waiting = await until('the pull request', async () => {
    const status = await ferry.getPromotion(id);
    return status.phase === 'AwaitingMerge' ? status : undefined;
  });
  const merged = await github.as('alice')('PUT', `/repos/org/gitops/pulls/${waiting.pullRequest!.number}/merge`, {});
  if (merged.status !== 200) throw new Error(`merge answered ${merged.status}`);
  const done = await ferry.waitForPromotion(id, { timeoutMs: 60_000 });
  if (done.phase !== 'Succeeded') throw new Error(`pull-request promotion ended ${done.phase}: ${done.error}`);
  return id;
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
