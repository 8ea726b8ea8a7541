// The git side of the pull-request strategy against real git: the promotion's commit goes to a promotion branch
// (ferry/<pipeline>/<stage>/<freight>) on top of the branch it is meant for, and the stage branch, or the trunk,
// is left as it was until the pull request is merged on the host.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createGitActivities } from '../../activities/render-and-push';
import { createSecretResolver } from '../../activities/secrets';
import type { RenderAndPushInput } from '../../activities/types';
import { createExampleRepo, EXAMPLE_IMAGE } from '../../dev/example';
import { createRepoFromExample } from '../helpers/example-repos';
import { git } from '../helpers/git';

process.env.GIT_CONFIG_GLOBAL = '/dev/null';
process.env.GIT_CONFIG_NOSYSTEM = '1';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-pr-push-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function promotion(
  url: string,
  render: RenderAndPushInput['render'],
  version: string,
  run = 'run-1',
): RenderAndPushInput {
  return {
    pipeline: 'shop',
    stage: 'prod',
    promotionId: `promotion/shop/prod/f-${version}`,
    runId: run,
    repo: { url, branch: 'main' },
    render,
    artifacts: [{ name: 'guestbook', image: EXAMPLE_IMAGE }],
    freight: { id: `f-${version}`, artifacts: { guestbook: version } },
  };
}

const intoBranch: RenderAndPushInput['render'] = {
  strategy: 'pull-request',
  engine: 'plain',
  from: 'apps/guestbook/overlays/prod',
  to: 'env/prod',
  pullRequest: {
    target: 'branch',
    provider: 'gitea',
    pollInterval: '30s',
    timeout: '168h',
    approvalOnHost: false,
  },
};

function ferry(dir: string) {
  return createGitActivities({
    workspaceRoot: join(dir, 'workspaces'),
    secrets: createSecretResolver({ env: {} }),
    allowFileRepos: true,
  });
}

describe('renderAndPush: the pull-request strategy', () => {
  it('pushes the render to a promotion branch on top of the stage branch, which it creates empty when missing', async (t) => {
    const dir = tempDir(t);
    const repo = createExampleRepo(join(dir, 'gitops.git'));
    const result = await ferry(dir).renderAndPush(promotion(repo.url, intoBranch, '1.4.2'));

    const stageHead = git(repo.path, 'rev-parse', 'env/prod');
    assert.equal(git(repo.path, 'log', '--format=%s', 'env/prod'), 'ferry: create env/prod for shop/prod');
    assert.equal(git(repo.path, 'ls-tree', 'env/prod'), '', 'the stage branch starts empty');
    assert.deepEqual(result.pullRequest, { head: 'ferry/shop/prod/f-1.4.2', base: 'env/prod' });
    assert.equal(result.created, true);
    assert.equal(git(repo.path, 'rev-parse', 'ferry/shop/prod/f-1.4.2'), result.commit);
    assert.equal(git(repo.path, 'rev-parse', `${result.commit}^`), stageHead, 'one commit on the stage branch');
    assert.match(git(repo.path, 'show', `${result.commit}:deployment.yaml`), /guestbook:1\.4\.2/);
  });

  it('finds its own commit when retried, and a new run replaces what an earlier run pushed', async (t) => {
    const dir = tempDir(t);
    const repo = createExampleRepo(join(dir, 'gitops.git'));
    const activities = ferry(dir);
    const first = await activities.renderAndPush(promotion(repo.url, intoBranch, '1.4.2'));
    const retried = await activities.renderAndPush(promotion(repo.url, intoBranch, '1.4.2'));
    assert.deepEqual(retried, { ...first, created: false });
    const again = await activities.renderAndPush(promotion(repo.url, intoBranch, '1.4.2', 'run-2'));
    assert.notEqual(again.commit, first.commit);
    assert.equal(git(repo.path, 'rev-parse', 'ferry/shop/prod/f-1.4.2'), again.commit);
    assert.equal(git(repo.path, 'rev-parse', `${again.commit}^`), git(repo.path, 'rev-parse', 'env/prod'));
  });

  it('asks for no pull request when the stage branch already holds this render', async (t) => {
    const dir = tempDir(t);
    const repo = createExampleRepo(join(dir, 'gitops.git'));
    const activities = ferry(dir);
    const opened = await activities.renderAndPush(promotion(repo.url, intoBranch, '1.4.2'));
    // Merged on the host: the stage branch is now at the promotion's commit.
    git(repo.path, 'update-ref', 'refs/heads/env/prod', opened.commit);
    const again = await activities.renderAndPush(promotion(repo.url, intoBranch, '1.4.2', 'run-2'));
    assert.deepEqual(again, {
      commit: opened.commit,
      sourceCommit: opened.sourceCommit,
      created: false,
      files: opened.files,
    });
  });

  it('into a directory: the directory edit on top of the trunk, on a promotion branch; the trunk is untouched', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'trunk.git');
    const head = createRepoFromExample('trunk', path);
    const render: RenderAndPushInput['render'] = {
      strategy: 'pull-request',
      engine: 'plain',
      to: 'envs/prod',
      pullRequest: { ...intoBranch.pullRequest!, target: 'directory' },
    };
    const result = await ferry(dir).renderAndPush(promotion(`file://${path}`, render, '3.0.0'));
    assert.deepEqual(result.pullRequest, { head: 'ferry/shop/prod/f-3.0.0', base: 'main' });
    assert.equal(git(path, 'rev-parse', 'main'), head);
    assert.equal(git(path, 'rev-parse', `${result.commit}^`), head);
    assert.deepEqual(git(path, 'diff', '--name-only', head, result.commit).split('\n'), [
      'envs/prod/deployment.yaml',
      'envs/prod/kustomization.yaml',
    ]);
    assert.match(git(path, 'show', `${result.commit}:envs/prod/kustomization.yaml`), /newTag: 3\.0\.0 # set by Ferry/);
  });
});
