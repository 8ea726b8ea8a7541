// The cached workspace on a remote that serves partial clones (as GitHub does): exact refspecs, shallow and
// blob-less fetches with the stage's files read on demand, deepening where idempotency or a pinned commit needs
// history, damaged workspaces re-created, concurrent promotions on one workspace. Real git remotes on disk.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { workspaceDamage } from '../../activities/git';
import { createGitActivities } from '../../activities/render-and-push';
import { createSecretResolver } from '../../activities/secrets';
import type { RenderAndPushInput } from '../../activities/types';
import { git } from '../helpers/git';

process.env.GIT_CONFIG_GLOBAL = '/dev/null';
process.env.GIT_CONFIG_NOSYSTEM = '1';

const IMAGE = 'registry.example.com/team/guestbook';
const FROM = 'apps/guestbook/dev';
const deployment = (tag: string) =>
  `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: guestbook}\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: ${IMAGE}:${tag}\n`;

interface Remote {
  dir: string;
  remote: string;
  url: string;
  workspaceRoot: string;
  remoteGit(...args: string[]): string;
  /** Commits `files` on top of `branch` (created from main when missing) with fast-import; returns the commit. */
  commit(branch: string, files: Record<string, string>, message?: string): string;
}

/**
 * A bare remote that allows filters (uploadpack.allowFilter, as GitHub does), with `history` commits on main and
 * `others` files outside render.from.
 */
function createRemote(t: { after: (fn: () => void) => void }, history = 20, others = 200): Remote {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-gitws-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const remote = join(dir, 'gitops.git');
  git(dir, 'init', '--bare', '--quiet', '--initial-branch=main', remote);
  git(remote, 'config', 'uploadpack.allowFilter', 'true');
  const remoteGit = (...args: string[]) => git(remote, ...args);
  let stamp = 1_700_000_000;
  const commit = (branch: string, files: Record<string, string>, message = 'change') => {
    const exists = remoteGit('for-each-ref', `refs/heads/${branch}`) !== '';
    const lines = [`commit refs/heads/${branch}`, `committer Dev <dev@example.com> ${stamp++} +0000`];
    const msg = Buffer.from(message);
    const body: Buffer[] = [Buffer.from(`${lines.join('\n')}\ndata ${msg.length}\n`), msg, Buffer.from('\n')];
    const from = exists ? branch : remoteGit('for-each-ref', 'refs/heads/main') ? 'main' : undefined;
    if (from) body.push(Buffer.from(`from refs/heads/${from}^0\n`));
    for (const [path, content] of Object.entries(files)) {
      const data = Buffer.from(content);
      body.push(Buffer.from(`M 100644 inline ${path}\ndata ${data.length}\n`), data, Buffer.from('\n'));
    }
    execFileSync('git', ['fast-import', '--quiet'], {
      cwd: remote,
      input: Buffer.concat([...body, Buffer.from('\n')]),
    });
    return remoteGit('rev-parse', `refs/heads/${branch}`);
  };
  const initial: Record<string, string> = {
    'README.md': '# gitops\n',
    [`${FROM}/deployment.yaml`]: deployment('0.0.0'),
    [`${FROM}/service.yaml`]: 'apiVersion: v1\nkind: Service\nmetadata: {name: guestbook}\n',
    'apps/guestbook/notes.txt': 'a file beside the stage directory\n',
  };
  for (let i = 0; i < others; i++) initial[`other/d${i % 20}/f${i}.yaml`] = `file ${i}\n`;
  commit('main', initial, 'sources');
  for (let i = 1; i < history; i++) commit('main', { [`other/d${i % 20}/f${i}.yaml`]: `file ${i} v${i}\n` });
  return { dir, remote, url: `file://${remote}`, workspaceRoot: join(dir, 'workspaces'), remoteGit, commit };
}

function promotion(r: Remote, overrides: Partial<RenderAndPushInput> & { version?: string } = {}): RenderAndPushInput {
  const { version = '1.0.0', ...rest } = overrides;
  return {
    pipeline: 'guestbook',
    stage: 'dev',
    promotionId: `promotion/guestbook/dev/f-${version}`,
    runId: `run-${version}`,
    repo: { url: r.url, branch: 'main' },
    render: { strategy: 'branch', engine: 'plain', from: FROM, to: 'env/dev' },
    artifacts: [{ name: 'guestbook', image: IMAGE }],
    freight: { id: `f-${version}`, artifacts: { guestbook: version } },
    ...rest,
  };
}

function activities(r: Remote) {
  return createGitActivities({
    workspaceRoot: r.workspaceRoot,
    secrets: createSecretResolver({ env: {} }),
    allowFileRepos: true,
  });
}

function workspaceDir(r: Remote): string {
  const [name] = readdirSync(r.workspaceRoot).filter((n) => n.endsWith('.git'));
  assert.ok(name, 'a workspace exists');
  return join(r.workspaceRoot, name);
}

/** git in the workspace as Ferry's local commands see it: no promisor remote, so nothing is fetched on demand. */
function wsGit(r: Remote, ...args: string[]): string {
  return git(workspaceDir(r), ...args);
}

function catCheck(dir: string, id: string): boolean {
  const out = execFileSync('git', ['--git-dir', dir, 'cat-file', '--batch-check'], { input: `${id}\n` }).toString();
  return !out.trim().endsWith('missing');
}

describe('git workspace: exact refspecs', () => {
  it('promoting into s1 fetches s1 only, never s10 or s11 that share its prefix', async (t) => {
    const r = createRemote(t, 3, 10);
    const s10 = r.commit('s10', { 'only-on-s10.txt': 'x\n' }, 'on s10');
    r.commit('s11', { 'only-on-s11.txt': 'y\n' }, 'on s11');
    const ferry = activities(r);
    await ferry.renderAndPush(promotion(r, { render: { strategy: 'branch', engine: 'plain', from: FROM, to: 's1' } }));
    await ferry.renderAndPush(
      promotion(r, { version: '1.1.0', render: { strategy: 'branch', engine: 'plain', from: FROM, to: 's1' } }),
    );
    assert.deepEqual(wsGit(r, 'for-each-ref', '--format=%(refname)', 'refs/remotes').split('\n'), [
      'refs/remotes/origin/main',
      'refs/remotes/origin/s1',
    ]);
    assert.equal(catCheck(workspaceDir(r), s10), false, "s10's commit never reached the workspace");
    assert.match(r.remoteGit('show', 's1:deployment.yaml'), /guestbook:1\.1\.0/);
  });

  it('forgets a stage branch deleted on the remote and creates it again', async (t) => {
    const r = createRemote(t, 3, 10);
    const ferry = activities(r);
    await ferry.renderAndPush(promotion(r));
    r.remoteGit('update-ref', '-d', 'refs/heads/env/dev');
    const again = await ferry.renderAndPush(promotion(r, { version: '2.0.0' }));
    assert.equal(again.created, true);
    assert.equal(r.remoteGit('rev-list', '--count', 'env/dev'), '1', 'a new branch, not on top of the deleted one');
  });
});

describe('git workspace: shallow and partial fetches', () => {
  it('a cold promotion fetches one commit without the blobs outside render.from, and writes a complete branch', async (t) => {
    const r = createRemote(t, 80, 300);
    const result = await activities(r).renderAndPush(promotion(r));
    const ws = workspaceDir(r);
    assert.ok(existsSync(join(ws, 'shallow')), 'the workspace is shallow');
    // The tip with its trees; below it commits only, as far as idempotency looks (50), for the trailers.
    assert.equal(git(ws, 'rev-list', '--count', 'refs/remotes/origin/main'), '50', '50 commits of main, not 80');
    assert.equal(catCheck(ws, r.remoteGit('rev-parse', 'main~1^{tree}')), false, 'no trees below the tip');
    const outside = r.remoteGit('rev-parse', 'main:other/d3/f3.yaml');
    const inside = r.remoteGit('rev-parse', `main:${FROM}/service.yaml`);
    assert.equal(catCheck(ws, outside), false, 'a blob outside render.from was not fetched');
    assert.equal(catCheck(ws, inside), true);
    assert.equal(r.remoteGit('rev-parse', 'env/dev'), result.commit);
    r.remoteGit('fsck', '--no-dangling'); // throws if the push left the remote incomplete
  });

  it('keeps foreign files it never read across repeated promotions, and stays correct as sources change', async (t) => {
    const r = createRemote(t, 10, 100);
    const ferry = activities(r);
    await ferry.renderAndPush(promotion(r, { version: '1.0.0' }));
    // Someone adds files to the stage branch beside Ferry's: their blobs never reach the workspace.
    r.commit('env/dev', { 'README.md': 'stage readme\n', 'ci/config.yaml': 'ci: true\n' }, 'docs on env/dev');
    for (const [i, version] of ['1.1.0', '1.2.0', '1.3.0'].entries()) {
      r.commit('main', { [`${FROM}/extra-${i}.yaml`]: `kind: ConfigMap\nmetadata: {name: extra-${i}}\n` });
      const result = await ferry.renderAndPush(promotion(r, { version }));
      assert.equal(result.created, true);
      assert.equal(r.remoteGit('rev-parse', 'env/dev'), result.commit);
      assert.match(
        r.remoteGit('show', 'env/dev:deployment.yaml'),
        new RegExp(`guestbook:${version.replace(/\./g, '\\.')}`),
      );
      assert.equal(r.remoteGit('show', `env/dev:extra-${i}.yaml`).includes(`extra-${i}`), true);
      assert.equal(r.remoteGit('show', 'env/dev:README.md'), 'stage readme');
      assert.equal(r.remoteGit('show', 'env/dev:ci/config.yaml'), 'ci: true');
    }
    assert.equal(catCheck(workspaceDir(r), r.remoteGit('rev-parse', 'env/dev:ci/config.yaml')), false);
    r.remoteGit('fsck', '--no-dangling');
  });

  it('finds its own commit below the shallow tip after a restart with a fresh workspace: no second commit', async (t) => {
    const r = createRemote(t, 5, 20);
    const first = await activities(r).renderAndPush(promotion(r));
    r.commit('env/dev', { 'a.txt': 'a\n' }, 'theirs 1');
    r.commit('env/dev', { 'b.txt': 'b\n' }, 'theirs 2');
    rmSync(r.workspaceRoot, { recursive: true, force: true }); // the worker restarts on another machine
    const again = await activities(r).renderAndPush(promotion(r));
    assert.equal(again.commit, first.commit);
    assert.equal(again.created, false);
    assert.equal(again.files, first.files, "read from that commit's record, whose trees the deepening left out");
    assert.equal(r.remoteGit('rev-list', '--count', '--grep=^ferry: promote', 'env/dev'), '1');
  });

  it('renders a pinned commit older than the shallow tip, and still refuses a commit that is not on the branch', async (t) => {
    const r = createRemote(t, 3, 20);
    const pinned = r.commit('main', { [`${FROM}/pinned.yaml`]: 'kind: ConfigMap\nmetadata: {name: pinned}\n' });
    for (let i = 0; i < 5; i++)
      r.commit('main', { [`${FROM}/later-${i}.yaml`]: `kind: ConfigMap\nmetadata: {name: l${i}}\n` });
    const elsewhere = r.commit('feature', { 'feature.txt': 'f\n' });
    const input = (version: string, commit: string): RenderAndPushInput =>
      promotion(r, {
        version,
        artifacts: [
          { name: 'guestbook', image: IMAGE },
          { name: 'config', git: { url: r.url, branch: 'main' } },
        ],
        freight: { id: `f-${version}`, artifacts: { guestbook: version, config: commit } },
      });
    const result = await activities(r).renderAndPush(input('1.0.0', pinned));
    assert.equal(result.sourceCommit, pinned);
    assert.equal(r.remoteGit('ls-tree', '--name-only', 'env/dev', 'later-0.yaml'), '', 'rendered at the pinned commit');
    assert.ok(r.remoteGit('ls-tree', '--name-only', 'env/dev', 'pinned.yaml'));
    rmSync(r.workspaceRoot, { recursive: true, force: true });
    await assert.rejects(activities(r).renderAndPush(input('1.1.0', elsewhere)), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, 'SourceCommitNotOnBranch', err.message);
      return true;
    });
  });

  it('edits a directory of a trunk with the directory strategy, keeping the files beside it it never read', async (t) => {
    const r = createRemote(t, 10, 100);
    r.commit('main', { 'envs/prod/values.yaml': 'image:\n  tag: 0.0.0\n', 'envs/README.md': 'envs\n' });
    const input = promotion(r, {
      stage: 'prod',
      render: {
        strategy: 'directory',
        engine: 'plain',
        to: 'envs/prod',
        set: [{ file: 'values.yaml', key: 'image.tag', artifact: 'guestbook', value: 'tag' }],
      },
    });
    const result = await activities(r).renderAndPush(input);
    assert.equal(result.created, true);
    assert.equal(r.remoteGit('rev-parse', 'main'), result.commit);
    assert.match(r.remoteGit('show', 'main:envs/prod/values.yaml'), /tag: 1\.0\.0/);
    assert.equal(r.remoteGit('show', 'main:envs/README.md'), 'envs');
    assert.equal(catCheck(workspaceDir(r), r.remoteGit('rev-parse', 'main:envs/README.md')), false);
    r.remoteGit('fsck', '--no-dangling');

    // Retried after a restart, with others' commits on top: the same commit, found in deepened history.
    r.commit('main', { 'other/late-1.txt': '1\n' });
    r.commit('main', { 'other/late-2.txt': '2\n' });
    rmSync(r.workspaceRoot, { recursive: true, force: true });
    const again = await activities(r).renderAndPush(input);
    assert.deepEqual(again, { ...result, created: false });
  });
});

describe('git workspace: damage and concurrency', () => {
  const damages: Array<[string, (ws: string) => void]> = [
    [
      'a truncated pack',
      (ws) => {
        const packs = readdirSync(join(ws, 'objects', 'pack')).filter((n) => n.endsWith('.pack'));
        assert.ok(packs.length > 0);
        for (const pack of packs) {
          const path = join(ws, 'objects', 'pack', pack);
          truncateSync(path, Math.floor(statSync(path).size / 2));
        }
      },
    ],
    ['a broken HEAD', (ws) => writeFileSync(join(ws, 'HEAD'), 'garbage\n')],
    ['no HEAD', (ws) => rmSync(join(ws, 'HEAD'))],
    ['a missing objects directory', (ws) => rmSync(join(ws, 'objects'), { recursive: true, force: true })],
  ];
  for (const [what, damage] of damages) {
    it(`a workspace with ${what} is detected on the next worker's first promotion, re-created, and the promotion succeeds`, async (t) => {
      const r = createRemote(t, 5, 20);
      await activities(r).renderAndPush(promotion(r));
      const ws = workspaceDir(r);
      const created = JSON.parse(readFileSync(join(ws, 'ferry-workspace.json'), 'utf8')).createdAt as string;
      damage(ws);
      assert.ok(await workspaceDamage(ws), 'the damage is recognised');
      await new Promise((resolve) => setTimeout(resolve, 5)); // a later createdAt
      const result = await activities(r).renderAndPush(promotion(r, { version: '2.0.0' }));
      assert.equal(result.created, true);
      assert.match(r.remoteGit('show', 'env/dev:deployment.yaml'), /guestbook:2\.0\.0/);
      const now = JSON.parse(readFileSync(join(workspaceDir(r), 'ferry-workspace.json'), 'utf8')).createdAt as string;
      assert.notEqual(now, created, 're-created');
      assert.equal(await workspaceDamage(workspaceDir(r)), undefined);
      assert.deepEqual(
        readdirSync(r.workspaceRoot).filter((n) => n.includes('.damaged-')),
        [],
        'the damaged copy is gone',
      );
    });
  }

  it('a sound workspace is not re-created by a restart', async (t) => {
    const r = createRemote(t, 5, 20);
    await activities(r).renderAndPush(promotion(r));
    const created = readFileSync(join(workspaceDir(r), 'ferry-workspace.json'), 'utf8');
    assert.equal(await workspaceDamage(workspaceDir(r)), undefined);
    await activities(r).renderAndPush(promotion(r, { version: '2.0.0' }));
    assert.equal(readFileSync(join(workspaceDir(r), 'ferry-workspace.json'), 'utf8'), created);
  });

  it('concurrent promotions on one cold partial workspace: different stages and the same stage all land, once each', async (t) => {
    const r = createRemote(t, 10, 100);
    const ferry = activities(r);
    const other = activities(r); // a second activity instance of the same worker
    const stages = ['dev', 'qa', 'staging', 'prod'];
    const results = await Promise.all([
      ...stages.map((stage, i) =>
        (i % 2 ? other : ferry).renderAndPush(
          promotion(r, {
            stage,
            version: `1.${i}.0`,
            render: { strategy: 'branch', engine: 'plain', from: FROM, to: `env/${stage}` },
          }),
        ),
      ),
      other.renderAndPush(promotion(r, { version: '1.0.0' })), // the same promotion as dev's, run twice
    ]);
    stages.forEach((stage, i) => {
      assert.equal(r.remoteGit('rev-parse', `env/${stage}`), results[i]!.commit);
      assert.match(r.remoteGit('show', `env/${stage}:deployment.yaml`), new RegExp(`guestbook:1\\.${i}\\.0`));
    });
    assert.equal(results[4]!.commit, results[0]!.commit);
    assert.equal(r.remoteGit('rev-list', '--count', 'env/dev'), '1');
    assert.equal(await workspaceDamage(workspaceDir(r)), undefined);
    r.remoteGit('fsck', '--no-dangling');
  });
});
