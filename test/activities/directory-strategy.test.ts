// The directory strategy against real git: a trunk (`main`) holding one directory per app and stage, Ferry editing
// versions in place and committing to main. Many promotions at once, from two workers (two workspace roots, as two
// worker machines would have), all land with no lost update; someone else's edit of the same lines fails only the
// promotion it collides with.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createGitActivities } from '../../activities/render-and-push';
import { createSecretResolver } from '../../activities/secrets';
import type { RenderAndPushInput } from '../../activities/types';
import { git } from '../helpers/git';
import { startGitHttpServer } from '../helpers/git-http-server';

process.env.GIT_CONFIG_GLOBAL = '/dev/null';
process.env.GIT_CONFIG_NOSYSTEM = '1';

const image = (app: string) => `registry.example.com/team/${app}`;

const kustomization = (app: string) =>
  [
    '# the stage of one app; Ferry keeps this comment',
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    'resources: [deployment.yaml]',
    'images:',
    `  - name: ${image(app)}`,
    "    newTag: '0.0.0' # set by ferry",
    '',
  ].join('\n');

const deployment = (app: string, tag = '0.0.0', replicas = 2) =>
  [
    'apiVersion: apps/v1',
    'kind: Deployment',
    `metadata: {name: ${app}}`,
    'spec:',
    `  replicas: ${replicas}`,
    '  template:',
    '    spec:',
    '      containers:',
    '        - name: web',
    `          image: ${image(app)}:${tag}`,
    '',
  ].join('\n');

const values = (app: string) =>
  [`# values of ${app}`, 'image:', `  repository: ${image(app)}`, '  tag: "0.0.0"', ''].join('\n');

interface Trunk {
  dir: string;
  remote: string;
  remoteGit(...args: string[]): string;
  /** A person's commit on main from a fresh clone. */
  commitAsSomeone(files: Record<string, string>): string;
}

function createTrunk(t: { after: (fn: () => void) => void }, apps: string[]): Trunk {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-trunk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const remote = join(dir, 'trunk.git');
  git(dir, 'init', '--bare', '--quiet', '--initial-branch=main', remote);
  const work = join(dir, 'work');
  git(dir, 'clone', '--quiet', remote, work);
  git(work, 'checkout', '--quiet', '-b', 'main');
  const write = (root: string, files: Record<string, string>) => {
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), content);
    }
  };
  const files: Record<string, string> = { 'README.md': '# trunk\n' };
  for (const app of apps) {
    files[`envs/${app}/kustomization.yaml`] = kustomization(app);
    files[`envs/${app}/deployment.yaml`] = deployment(app);
    files[`envs/${app}/values.yaml`] = values(app);
  }
  write(work, files);
  git(work, 'add', '.');
  git(work, 'commit', '--quiet', '-m', 'apps');
  git(work, 'push', '--quiet', 'origin', 'main');
  let clones = 0;
  return {
    dir,
    remote,
    remoteGit: (...args) => git(remote, ...args),
    commitAsSomeone(changes) {
      const clone = join(dir, `someone-${++clones}`);
      git(dir, 'clone', '--quiet', '--branch', 'main', remote, clone);
      write(clone, changes);
      git(clone, 'add', '.');
      git(clone, 'commit', '--quiet', '-m', 'someone else');
      git(clone, 'push', '--quiet', 'origin', 'main');
      return git(clone, 'rev-parse', 'HEAD');
    },
  };
}

function promotion(
  trunk: Trunk,
  app: string,
  version: string,
  extra: Partial<RenderAndPushInput> = {},
): RenderAndPushInput {
  return {
    pipeline: 'trunk',
    stage: app,
    promotionId: `promotion/trunk/${app}/f-${version}`,
    runId: `run-${app}-${version}`,
    repo: { url: `file://${trunk.remote}`, branch: 'main' },
    render: {
      strategy: 'directory',
      engine: 'plain',
      to: `envs/${app}`,
      set: [{ file: 'values.yaml', key: 'image.tag', artifact: app, value: 'tag' }],
    },
    artifacts: [{ name: app, image: image(app) }],
    freight: { id: `f-${version}`, artifacts: { [app]: version } },
    ...extra,
  };
}

function worker(trunk: Trunk, name: string) {
  return createGitActivities({
    workspaceRoot: join(trunk.dir, `workspaces-${name}`),
    secrets: createSecretResolver({ env: {} }),
    allowFileRepos: true,
  });
}

describe('renderAndPush: the directory strategy', () => {
  it('edits the versions in the stage directory in place and commits to main, changing nothing else', async (t) => {
    const trunk = createTrunk(t, ['web', 'api']);
    const before = trunk.remoteGit('rev-parse', 'main');
    const result = await worker(trunk, 'a').renderAndPush(promotion(trunk, 'web', '1.4.2'));

    assert.equal(result.created, true);
    assert.equal(result.sourceCommit, before);
    assert.equal(trunk.remoteGit('rev-parse', 'main'), result.commit);
    assert.equal(trunk.remoteGit('rev-parse', `${result.commit}^`), before, 'one commit on top of the old head');
    assert.deepEqual(trunk.remoteGit('diff', '--name-only', before, result.commit).split('\n'), [
      'envs/web/deployment.yaml',
      'envs/web/kustomization.yaml',
      'envs/web/values.yaml',
    ]);
    assert.equal(
      trunk.remoteGit('show', 'main:envs/web/values.yaml'),
      values('web').replace('tag: "0.0.0"', 'tag: "1.4.2"').trimEnd(),
    );
    assert.equal(
      trunk.remoteGit('show', 'main:envs/web/kustomization.yaml'),
      kustomization('web').replace("newTag: '0.0.0'", "newTag: '1.4.2'").trimEnd(),
    );
    assert.equal(trunk.remoteGit('show', 'main:envs/web/deployment.yaml'), deployment('web', '1.4.2').trimEnd());
    const message = trunk.remoteGit('log', '-1', '--format=%B', 'main');
    assert.match(
      message,
      /^ferry: promote f-1\.4\.2 to web\n\nEdited envs\/web on main with:\n- web: registry\.example\.com\/team\/web:1\.4\.2/,
    );
    assert.match(
      message,
      /Ferry-Promotion: promotion\/trunk\/web\/f-1\.4\.2\nFerry-Run: run-web-1\.4\.2\nFerry-Source: [0-9a-f]{40}/,
    );
  });

  it('is idempotent: the same promotion run again finds its commit, and versions already there make no commit', async (t) => {
    const trunk = createTrunk(t, ['web']);
    const ferry = worker(trunk, 'a');
    const first = await ferry.renderAndPush(promotion(trunk, 'web', '2.0.0'));
    trunk.commitAsSomeone({ 'README.md': '# trunk, later\n' });
    const again = await worker(trunk, 'b').renderAndPush(promotion(trunk, 'web', '2.0.0'));
    assert.deepEqual({ ...again, created: false }, { ...first, created: false, files: again.files });
    assert.equal(again.commit, first.commit);
    assert.equal(again.created, false);
    const head = trunk.remoteGit('rev-parse', 'main');
    const sameVersions = await ferry.renderAndPush({ ...promotion(trunk, 'web', '2.0.0'), runId: 'another-run' });
    assert.deepEqual(sameVersions, { commit: head, sourceCommit: head, created: false, files: 0 });
    assert.equal(trunk.remoteGit('rev-parse', 'main'), head);
  });

  it('fails with a clear reason when the stage directory is not there, and pushes nothing', async (t) => {
    const trunk = createTrunk(t, ['web']);
    const head = trunk.remoteGit('rev-parse', 'main');
    await assert.rejects(worker(trunk, 'a').renderAndPush(promotion(trunk, 'gone', '1.0.0')), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, 'StageDirectoryNotFound');
      assert.equal(err.nonRetryable, true);
      assert.match(err.message, /render\.to "envs\/gone" does not exist in .*trunk\.git branch main at [0-9a-f]{12}/);
      return true;
    });
    assert.equal(trunk.remoteGit('rev-parse', 'main'), head);
  });

  it('lands 200 promotions into one trunk at once from two workers: 200 commits, every app at its version', async (t) => {
    const apps = Array.from({ length: 200 }, (_, i) => `app-${i}`);
    const trunk = createTrunk(t, apps);
    const base = trunk.remoteGit('rev-parse', 'main');
    const workers = [worker(trunk, 'a'), worker(trunk, 'b')];
    const results = await Promise.all(
      apps.map((app, i) => workers[i % 2]!.renderAndPush(promotion(trunk, app, `1.${i}.0`))),
    );
    assert.equal(results.filter((r) => r.created).length, 200);
    const landed = trunk.remoteGit('rev-list', '--count', `${base}..main`);
    assert.equal(landed, '200', 'one commit per promotion, none lost, none doubled');
    assert.equal(trunk.remoteGit('rev-list', '--merges', '--count', 'main'), '0', 'a straight history');
    const heads = new Set(results.map((r) => r.commit));
    assert.equal(heads.size, 200);
    for (const [i, app] of apps.entries()) {
      assert.equal(
        trunk.remoteGit('show', `main:envs/${app}/deployment.yaml`),
        deployment(app, `1.${i}.0`).trimEnd(),
        `${app} has its version`,
      );
      assert.equal(trunk.remoteGit('merge-base', '--is-ancestor', results[i]!.commit, 'main'), '');
    }
    // Far fewer pushes than promotions: each worker pushed the promotions waiting for it in one push.
    const pushes = trunk.remoteGit('reflog', 'show', '--format=%H', 'main');
    assert.ok(pushes.split('\n').length < 100, `${pushes.split('\n').length} ref updates for 200 promotions`);
  });

  it('fails only the promotion whose lines someone else changed meanwhile, naming the paths; the others land', async (t) => {
    const trunk = createTrunk(t, ['web', 'api', 'db']);
    const head = trunk.remoteGit('rev-parse', 'main');
    // Someone's commit on the current head, pushed to a side branch: it changes the very line Ferry changes in
    // web, and another line (replicas) of api's deployment.
    const clone = join(trunk.dir, 'rival');
    git(trunk.dir, 'clone', '--quiet', '--branch', 'main', trunk.remote, clone);
    writeFileSync(join(clone, 'envs/web/deployment.yaml'), deployment('web', '9.9.9'));
    writeFileSync(join(clone, 'envs/api/deployment.yaml'), deployment('api', '0.0.0', 5));
    git(clone, 'commit', '--quiet', '-am', 'a hotfix by hand');
    git(clone, 'push', '--quiet', 'origin', 'HEAD:refs/heads/rival');
    const rival = git(clone, 'rev-parse', 'HEAD');
    // The rival lands on main just before Ferry's first push lands (a hook moves main once), as a faster writer's.
    const hook = join(trunk.remote, 'hooks', 'pre-receive');
    writeFileSync(
      hook,
      [
        '#!/bin/sh',
        `if [ ! -e "${trunk.dir}/raced" ]; then`,
        `  touch "${trunk.dir}/raced"`,
        `  env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main ${rival} ${head}`,
        'fi',
        'cat >/dev/null',
        '',
      ].join('\n'),
    );
    chmodSync(hook, 0o755);
    // Served over smart HTTP, as by a git host, so the remote's hooks run. The writer's first fetch is held until
    // all three promotions wait for it: they make one turn, rendered on the old head.
    let releaseFetch: () => void = () => undefined;
    const fetchHeld = new Promise<void>((resolve) => (releaseFetch = resolve));
    const server = await startGitHttpServer(trunk.dir, {
      beforeRequest: (req) =>
        req.url?.includes('git-upload-pack') && req.method === 'POST' ? fetchHeld : Promise.resolve(),
    });
    t.after(() => server.close());

    const ferry = worker(trunk, 'a');
    const queued = new Set<string>();
    const promote = (app: string) => {
      const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
      env.on('heartbeat', (details: { step?: string }) => {
        if (details?.step === 'queued') queued.add(app);
      });
      const input = promotion(trunk, app, '1.0.0');
      return env.run(ferry.renderAndPush, { ...input, repo: { ...input.repo, url: server.url('trunk.git') } });
    };
    const running = ['web', 'api', 'db'].map(promote);
    while (queued.size < 3) await new Promise((r) => setTimeout(r, 10));
    releaseFetch();
    const [web, api, db] = await Promise.allSettled(running);

    assert.equal(web.status, 'rejected');
    const failure = (web as PromiseRejectedResult).reason;
    assert.ok(failure instanceof ApplicationFailure);
    assert.equal(failure.type, 'ConflictingEdit');
    assert.equal(failure.nonRetryable, true);
    assert.match(
      failure.message,
      /^stage web: envs\/web\/deployment\.yaml changed on .* branch main \([0-9a-f]{12} → [0-9a-f]{12}\) at the lines this promotion changes/,
    );
    assert.deepEqual(failure.details, [{ paths: ['envs/web/deployment.yaml'] }]);
    assert.equal(api.status, 'fulfilled', String((api as PromiseRejectedResult).reason));
    assert.equal(db.status, 'fulfilled', String((db as PromiseRejectedResult).reason));
    // The rival's changes stay: web keeps the hotfix, api has its new image and the rival's replicas.
    assert.equal(trunk.remoteGit('show', 'main:envs/web/deployment.yaml'), deployment('web', '9.9.9').trimEnd());
    assert.equal(trunk.remoteGit('show', 'main:envs/api/deployment.yaml'), deployment('api', '1.0.0', 5).trimEnd());
    assert.equal(trunk.remoteGit('show', 'main:envs/db/deployment.yaml'), deployment('db', '1.0.0').trimEnd());
    assert.equal(trunk.remoteGit('merge-base', '--is-ancestor', rival, 'main'), '');
    assert.equal(trunk.remoteGit('rev-list', '--count', `${rival}..main`), '2', 'api and db, nothing for web');
  });
});
