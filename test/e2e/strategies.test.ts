// One example pipeline per strategy, promoted end to end through the HTTP API on the real Temporal dev server, over
// a real transport: the repositories are served by git's smart HTTP (`git http-backend`) behind Basic auth, as a git
// host serves them, and the Argo CD stand-in reads them the same way. The branch strategy renders the guestbook
// into env/<stage>; the directory strategy edits envs/<stage>/ on the trunk, with Argo CD deploying each directory,
// and its promotion counts Argo CD at a later trunk commit that contains its own.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { createExampleRepo } from '../../dev/example';
import type { PromotionStatus } from '../../workflows/messages';
import { startArgoCdStandIn, makeToken, type ArgoCdStandIn } from '../standin/argocd/server';
import { createRepoFromExample, examplePipelinePath } from '../helpers/example-repos';
import { git } from '../helpers/git';
import { startGitHttpServer, type GitHttpServer } from '../helpers/git-http-server';
import { until } from '../helpers/processes';
import { apiCaller, startStack, type Stack } from '../helpers/stack';

const ALICE = 'tok-alice-strategies-0123456789abcdef';
const GIT_TOKEN = 'git-token-strategies-d0-n0t-l34k';
const ARGOCD_TOKEN = makeToken('ferry-strategies');
const GIT_AUTH = `Basic ${Buffer.from(`x-access-token:${GIT_TOKEN}`).toString('base64')}`;

describe('the strategies end to end: one example pipeline each, over smart HTTP with credentials', () => {
  let stack: Stack;
  let server: GitHttpServer;
  let argocd: ArgoCdStandIn;
  let gitRoot: string;

  const api = apiCaller(() => stack.api.url, ALICE);
  const finished = (id: string): Promise<PromotionStatus> =>
    until(
      `${id} to finish`,
      async () => {
        const res = await api('GET', `/api/v1/promotions/${encodeURIComponent(id)}`);
        const status = res.body as PromotionStatus;
        return ['Succeeded', 'Failed', 'Rejected', 'Aborted'].includes(status.phase) ? status : undefined;
      },
      120_000,
    );
  /** The example's pipeline file, pointed at the served repository (and optionally edited). */
  const examplePipeline = (name: string, url: string, edit?: (doc: ReturnType<typeof parseDocument>) => void) => {
    const doc = parseDocument(readFileSync(examplePipelinePath(name), 'utf8'));
    doc.setIn(['spec', 'repo', 'url'], url);
    edit?.(doc);
    return doc.toString();
  };

  before(async () => {
    stack = await startStack({
      name: 'strategies',
      tokens: { [ALICE]: 'alice' },
      secrets: { gitops: GIT_TOKEN, argocd: ARGOCD_TOKEN },
      api: { admins: ['alice'] },
      worker: { argoPollIntervalMs: 200 },
    });
    gitRoot = join(stack.dir, 'git');
    mkdirSync(gitRoot);
    server = await startGitHttpServer(gitRoot, { authorization: GIT_AUTH });
    argocd = await startArgoCdStandIn({
      tokens: { [ARGOCD_TOKEN]: true },
      timing: { postOpReconcileDelayMs: 300, progressingMs: 600 },
    });
  });

  after(async () => {
    await argocd?.close();
    await server?.close();
    await stack?.close();
  });

  it('branch: the guestbook example renders each stage into its own branch, over authenticated smart HTTP', async () => {
    createExampleRepo(join(gitRoot, 'gitops.git'));
    const url = server.url('gitops.git');
    const applied = await api(
      'PUT',
      '/api/v1/pipelines/guestbook',
      examplePipeline('guestbook', url),
      'application/yaml',
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const freight = await api('POST', '/api/v1/pipelines/guestbook/freight', { artifacts: { guestbook: '1.4.2' } });
    assert.equal(freight.status, 201, JSON.stringify(freight.body));
    const dev = await finished(`promotion/guestbook/dev/${freight.body.id}`);
    assert.equal(dev.phase, 'Succeeded', dev.error);
    const remote = join(gitRoot, 'gitops.git');
    assert.equal(git(remote, 'rev-parse', 'env/dev'), dev.commit);
    assert.match(
      git(remote, 'show', 'env/dev:deployment.yaml'),
      /image: registry\.example\.com\/team\/guestbook:1\.4\.2/,
    );
    assert.ok(server.seen.length > 0 && server.seen.every((h) => h === GIT_AUTH), 'every request had the credential');
  });

  it('directory: the trunk example edits envs/<stage> on main, and Argo CD deploys each directory', async () => {
    const remote = join(gitRoot, 'trunk.git');
    const base = createRepoFromExample('trunk', remote);
    const url = server.url('trunk.git');
    argocd.control.setRepoCredentials(url, { username: 'x-access-token', password: GIT_TOKEN });
    for (const stage of ['dev', 'staging', 'prod']) {
      await argocd.control.addApp({
        name: `trunk-${stage}`,
        project: 'default',
        repoURL: url,
        path: `envs/${stage}`,
        targetRevision: 'main',
        deployedRevision: null,
      });
    }
    // Someone else commits to main right after each of Ferry's pushes (a post-receive hook, as a busy trunk would):
    // Argo CD then deploys that later commit, which contains Ferry's.
    const hook = join(remote, 'hooks', 'post-receive');
    writeFileSync(
      hook,
      [
        '#!/bin/sh',
        'while read old new ref; do',
        '  [ "$ref" = refs/heads/main ] || continue',
        '  git log -1 --format=%B "$new" | grep -q "^Ferry-Stage: dev$" || continue',
        '  export GIT_AUTHOR_NAME=Someone GIT_AUTHOR_EMAIL=someone@example.com',
        '  export GIT_COMMITTER_NAME=Someone GIT_COMMITTER_EMAIL=someone@example.com',
        '  later=$(git commit-tree "$new^{tree}" -p "$new" -m "someone else, right after")',
        '  git update-ref refs/heads/main "$later" "$new"',
        'done',
        '',
      ].join('\n'),
    );
    chmodSync(hook, 0o755);
    const yaml = examplePipeline('trunk', url, (doc) => {
      for (const [i, stage] of ['dev', 'staging', 'prod'].entries()) {
        doc.setIn(['spec', 'stages', i, 'argocd'], {
          server: argocd.url,
          app: `trunk-${stage}`,
          project: 'default',
          credentials: 'argocd',
          timeout: '2m',
        });
      }
    });
    const applied = await api('PUT', '/api/v1/pipelines/trunk', yaml, 'application/yaml');
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const freight = await api('POST', '/api/v1/pipelines/trunk/freight', { artifacts: { guestbook: '2.1.0' } });
    assert.equal(freight.status, 201, JSON.stringify(freight.body));
    const id = freight.body.id as string;

    const dev = await finished(`promotion/trunk/dev/${id}`);
    assert.equal(dev.phase, 'Succeeded', dev.error);
    const health = dev.steps.find((s) => s.name === 'health');
    assert.match(health?.message ?? '', /Synced and Healthy at [0-9a-f]{12}/);
    const deployed = argocd.control.getApp('trunk-dev')?.status?.sync?.revision;
    assert.notEqual(deployed, dev.commit, 'Argo CD deployed the later commit');
    assert.equal(git(remote, 'rev-parse', `${deployed}^`), dev.commit, '… which contains the promotion’s');

    const staging = await finished(`promotion/trunk/staging/${id}`);
    assert.equal(staging.phase, 'Succeeded', staging.error);
    const requested = await api('POST', '/api/v1/pipelines/trunk/stages/prod/promotions', { freight: id });
    assert.equal(requested.status, 201, JSON.stringify(requested.body));
    const prodId = requested.body.id as string;
    await until('prod to wait for approval', async () =>
      (await api('GET', `/api/v1/promotions/${encodeURIComponent(prodId)}`)).body?.phase === 'AwaitingApproval'
        ? true
        : undefined,
    );
    const approved = await api('POST', `/api/v1/promotions/${encodeURIComponent(prodId)}/approve`, { comment: 'ok' });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    const prod = await finished(prodId);
    assert.equal(prod.phase, 'Succeeded', prod.error);

    // Each promotion is one commit on main that changes only its directory.
    const ferryCommits = git(remote, 'log', '--format=%H', '--grep=^ferry: promote', `${base}..main`).split('\n');
    assert.equal(ferryCommits.length, 3);
    for (const [commit, stage] of ferryCommits.reverse().map((c, i) => [c, ['dev', 'staging', 'prod'][i]] as const)) {
      const changed = git(remote, 'diff-tree', '--no-commit-id', '--name-only', '-r', commit).split('\n');
      assert.deepEqual(changed, [`envs/${stage}/deployment.yaml`, `envs/${stage}/kustomization.yaml`]);
      assert.match(git(remote, 'show', `main:envs/${stage}/kustomization.yaml`), /newTag: 2\.1\.0 # set by Ferry/);
    }
    assert.equal(
      git(remote, 'show', 'main:README.md'),
      readFileSync(join(__dirname, '../../examples/trunk/repo/README.md'), 'utf8').trimEnd(),
    );
  });
});
