// renderAndPush against real git repositories: a bare "remote" on disk (and one served over HTTP by
// `git http-backend` for credentials), a developer clone that pushes sources, and Ferry's cached workspace.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createGitActivities, RENDERED_STATE_PATH } from '../../activities/render-and-push';
import type { GitActivitiesOptions } from '../../activities/render-and-push';
import { createSecretResolver } from '../../activities/secrets';
import type { RenderAndPushInput, RenderAndPushResult } from '../../activities/types';
import { git } from '../helpers/git';

// Hermetic: no global or system git configuration (credential helpers, hooks, signing) of whoever runs the tests.
process.env.GIT_CONFIG_GLOBAL = '/dev/null';
process.env.GIT_CONFIG_NOSYSTEM = '1';

const IMAGE = 'registry.example.com/team/guestbook';
const FROM = 'apps/guestbook/dev';

function write(root: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
}

const deployment = (tag: string) =>
  [
    '# guestbook web',
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata: {name: guestbook}',
    'spec:',
    '  template:',
    '    spec:',
    '      containers:',
    '        - name: web',
    `          image: ${IMAGE}:${tag}   # managed by ferry`,
    '',
  ].join('\n');

const SOURCES: Record<string, string> = {
  [`${FROM}/deployment.yaml`]: deployment('0.0.0'),
  [`${FROM}/service.yaml`]: 'apiVersion: v1\nkind: Service\nmetadata: {name: guestbook}\n',
  [`${FROM}/config/settings.json`]: '{"color": "blue"}\n',
  'apps/guestbook/prod/deployment.yaml': deployment('0.0.0'),
  'README.md': '# gitops\n',
};

interface Fixture {
  dir: string;
  remote: string;
  /** A developer's clone of the remote, on main. */
  dev: string;
  workspaceRoot: string;
  /** Commits a change to the sources on main and pushes it; returns the new head. */
  pushSources(files: Record<string, string>, remove?: string[]): string;
  /** Commits to another branch from a fresh clone, as someone else would. */
  pushToBranch(branch: string, files: Record<string, string>): string;
  /** `git` in the remote. */
  remoteGit(...args: string[]): string;
}

function createFixture(t: { after: (fn: () => void) => void }): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-git-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const remote = join(dir, 'gitops.git');
  git(dir, 'init', '--bare', '--quiet', '--initial-branch=main', remote);
  const dev = join(dir, 'dev');
  git(dir, 'clone', '--quiet', remote, dev);
  git(dev, 'checkout', '--quiet', '-b', 'main');
  write(dev, SOURCES);
  git(dev, 'add', '.');
  git(dev, 'commit', '--quiet', '-m', 'sources');
  git(dev, 'push', '--quiet', 'origin', 'main');
  let clones = 0;
  return {
    dir,
    remote,
    dev,
    workspaceRoot: join(dir, 'workspaces'),
    pushSources(files, remove = []) {
      write(dev, files);
      for (const path of remove) git(dev, 'rm', '--quiet', path);
      git(dev, 'add', '.');
      git(dev, 'commit', '--quiet', '-m', 'change sources');
      git(dev, 'push', '--quiet', 'origin', 'main');
      return git(dev, 'rev-parse', 'HEAD');
    },
    pushToBranch(branch, files) {
      const clone = join(dir, `someone-${++clones}`);
      git(dir, 'clone', '--quiet', '--branch', branch, remote, clone);
      write(clone, files);
      git(clone, 'add', '.');
      git(clone, 'commit', '--quiet', '-m', `someone else's change to ${branch}`);
      git(clone, 'push', '--quiet', 'origin', branch);
      return git(clone, 'rev-parse', 'HEAD');
    },
    remoteGit: (...args) => git(remote, ...args),
  };
}

function promotion(
  fx: { remote: string },
  overrides: Partial<RenderAndPushInput> & { version?: string } = {},
): RenderAndPushInput {
  const { version = '1.0.0', ...rest } = overrides;
  return {
    pipeline: 'guestbook',
    stage: 'dev',
    promotionId: `promotion/guestbook/dev/f-${version}`,
    runId: `run-${version}`,
    repo: { url: `file://${fx.remote}`, branch: 'main' },
    render: { strategy: 'branch', engine: 'plain', from: FROM, to: 'env/dev' },
    artifacts: [{ name: 'guestbook', image: IMAGE }],
    freight: { id: `f-${version}`, artifacts: { guestbook: version } },
    ...rest,
  };
}

/** An activity context whose heartbeats the test observes (and may act on, or throw from: a crash). */
function activityEnvironment(attempt = 1): MockActivityEnvironment {
  return new MockActivityEnvironment({ attempt }, { logger: new DefaultLogger('ERROR') });
}

function runAsActivity(
  env: MockActivityEnvironment,
  ferry: ReturnType<typeof activities>,
  input: RenderAndPushInput,
): Promise<RenderAndPushResult> {
  return env.run<[RenderAndPushInput], RenderAndPushResult, typeof ferry.renderAndPush>(ferry.renderAndPush, input);
}

function activities(fx: Fixture, options: Partial<GitActivitiesOptions> = {}) {
  return createGitActivities({
    workspaceRoot: fx.workspaceRoot,
    secrets: createSecretResolver({ env: {} }),
    allowFileRepos: true,
    ...options,
  });
}

/** Files on a branch of the remote, path -> content. */
function filesAt(fx: Fixture, ref: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const path of fx.remoteGit('ls-tree', '-r', '--name-only', ref).split('\n').filter(Boolean)) {
    files[path] = fx.remoteGit('show', `${ref}:${path}`);
  }
  return files;
}

function ferryCommits(fx: Fixture, ref: string): string[] {
  return fx.remoteGit('log', '--format=%H', '--grep=^ferry: promote', ref).split('\n').filter(Boolean);
}

async function assertFailure(
  promise: Promise<unknown>,
  expected: { type: string; nonRetryable: boolean; message: RegExp[] },
): Promise<ApplicationFailure> {
  let failure: ApplicationFailure | undefined;
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    assert.equal(err.type, expected.type, err.message);
    assert.equal(err.nonRetryable, expected.nonRetryable, err.message);
    for (const pattern of expected.message) assert.match(err.message, pattern);
    failure = err;
    return true;
  });
  return failure!;
}

describe('renderAndPush: writing the stage branch', () => {
  it('creates the stage branch on the first promotion, with the rendered files, the record and the trailers', async (t) => {
    const fx = createFixture(t);
    const input = promotion(fx, { version: '1.4.2' });
    const result = await activities(fx).renderAndPush(input);

    const sourceHead = git(fx.dev, 'rev-parse', 'HEAD');
    assert.deepEqual(result, {
      commit: fx.remoteGit('rev-parse', 'env/dev'),
      sourceCommit: sourceHead,
      created: true,
      files: 3,
    });
    assert.equal(
      fx.remoteGit('rev-list', '--parents', '-n1', 'env/dev'),
      result.commit,
      'the first commit is an orphan',
    );

    const files = filesAt(fx, 'env/dev');
    assert.deepEqual(Object.keys(files).sort(), [
      '.ferry/rendered.json',
      'config/settings.json',
      'deployment.yaml',
      'service.yaml',
    ]);
    assert.equal(files['deployment.yaml'], deployment('1.4.2').trimEnd());
    assert.equal(files['config/settings.json'], SOURCES[`${FROM}/config/settings.json`]!.trimEnd());
    assert.deepEqual(JSON.parse(files[RENDERED_STATE_PATH]!), {
      pipeline: 'guestbook',
      stage: 'dev',
      freight: 'f-1.4.2',
      sourceCommit: sourceHead,
      from: FROM,
      files: ['config/settings.json', 'deployment.yaml', 'service.yaml'],
    });

    assert.equal(fx.remoteGit('log', '-1', '--format=%s', 'env/dev'), 'ferry: promote f-1.4.2 to dev');
    assert.match(fx.remoteGit('log', '-1', '--format=%b', 'env/dev'), new RegExp(`- guestbook: ${IMAGE}:1\\.4\\.2`));
    assert.equal(
      fx.remoteGit('log', '-1', '--format=%(trailers:only,unfold)', 'env/dev'),
      [
        'Ferry-Pipeline: guestbook',
        'Ferry-Stage: dev',
        'Ferry-Freight: f-1.4.2',
        'Ferry-Promotion: promotion/guestbook/dev/f-1.4.2',
        'Ferry-Run: run-1.4.2',
        `Ferry-Source: ${sourceHead}`,
      ].join('\n'),
    );
    assert.equal(fx.remoteGit('log', '-1', '--format=%an <%ae>', 'env/dev'), 'Ferry <ferry@localhost>');
    assert.equal(fx.remoteGit('rev-parse', 'main'), sourceHead, 'the source branch is not written');
  });

  it('on the next freight replaces only its own files: a README someone committed stays, a file no longer rendered goes', async (t) => {
    const fx = createFixture(t);
    const ferry = activities(fx, { author: { name: 'Ferry Bot', email: 'bot@example.com' } });
    await ferry.renderAndPush(promotion(fx, { version: '1.0.0' }));
    fx.pushToBranch('env/dev', {
      'README.md': '# dev environment, rendered by Ferry\n',
      '.github/CODEOWNERS': '* @ops\n',
    });
    fx.pushSources({}, [`${FROM}/service.yaml`]);

    const result = await ferry.renderAndPush(promotion(fx, { version: '1.1.0' }));

    assert.equal(result.created, true);
    assert.equal(result.files, 2);
    const files = filesAt(fx, 'env/dev');
    assert.deepEqual(Object.keys(files).sort(), [
      '.ferry/rendered.json',
      '.github/CODEOWNERS',
      'README.md',
      'config/settings.json',
      'deployment.yaml',
    ]);
    assert.equal(files['README.md'], '# dev environment, rendered by Ferry');
    assert.equal(files['deployment.yaml'], deployment('1.1.0').trimEnd());
    assert.deepEqual(JSON.parse(files[RENDERED_STATE_PATH]!).files, ['config/settings.json', 'deployment.yaml']);
    assert.equal(fx.remoteGit('log', '-1', '--format=%an <%ae>', 'env/dev'), 'Ferry Bot <bot@example.com>');
    assert.equal(
      fx.remoteGit('rev-list', '--count', 'env/dev'),
      '3',
      'first render, the README commit, the second render',
    );
  });

  it('makes no commit when the render would not change the branch', async (t) => {
    const fx = createFixture(t);
    const ferry = activities(fx);
    const first = await ferry.renderAndPush(promotion(fx, { version: '1.0.0' }));
    // A change on main outside `from` and a new promotion of the same versions: nothing to write.
    fx.pushSources({ 'apps/guestbook/prod/deployment.yaml': deployment('9.9.9') });

    const again = await ferry.renderAndPush({
      ...promotion(fx, { version: '1.0.0' }),
      promotionId: 'promotion/guestbook/dev/again',
      runId: 'run-again',
    });

    assert.deepEqual(again, {
      commit: first.commit,
      sourceCommit: git(fx.dev, 'rev-parse', 'HEAD'),
      created: false,
      files: 3,
    });
    assert.equal(fx.remoteGit('rev-parse', 'env/dev'), first.commit);
  });

  it('accepts `from` written as ./dir/ and keeps file modes such as the executable bit', async (t) => {
    const fx = createFixture(t);
    write(fx.dev, { [`${FROM}/hooks/run.sh`]: '#!/bin/sh\necho hi\n' });
    git(fx.dev, 'add', '.');
    git(fx.dev, 'update-index', '--chmod=+x', `${FROM}/hooks/run.sh`);
    git(fx.dev, 'commit', '--quiet', '-m', 'script');
    git(fx.dev, 'push', '--quiet', 'origin', 'main');

    await activities(fx).renderAndPush(
      promotion(fx, { render: { strategy: 'branch', engine: 'plain', from: `./${FROM}/`, to: 'env/dev' } }),
    );

    assert.match(fx.remoteGit('ls-tree', 'env/dev', 'hooks/run.sh'), /^100755 blob /);
  });
});

describe('renderAndPush: retries, crashes and races', () => {
  it('makes exactly one commit when called twice for the same promotion run, even after the branch moved on', async (t) => {
    const fx = createFixture(t);
    const ferry = activities(fx);
    const input = promotion(fx, { version: '2.0.0' });
    const first = await ferry.renderAndPush(input);
    // Since then: someone committed to the stage branch, and the sources changed so the render would differ.
    const theirs = fx.pushToBranch('env/dev', { 'README.md': '# dev\n' });
    fx.pushSources({ [`${FROM}/service.yaml`]: 'apiVersion: v1\nkind: Service\nmetadata: {name: renamed}\n' });

    const second = await ferry.renderAndPush(input);

    assert.equal(first.created, true);
    assert.deepEqual(second, { ...first, created: false });
    assert.deepEqual(ferryCommits(fx, 'env/dev'), [first.commit]);
    assert.equal(fx.remoteGit('rev-parse', 'env/dev'), theirs);
  });

  it('returns the commit it already pushed when retried after dying between the push and the result', async (t) => {
    const fx = createFixture(t);
    const ferry = activities(fx);
    const input = promotion(fx, { version: '2.0.0' });
    const crashing = activityEnvironment(1);
    crashing.on('heartbeat', (details: { step?: string }) => {
      if (details.step === 'pushed') throw new Error('worker killed');
    });
    await assert.rejects(runAsActivity(crashing, ferry, input), /worker killed/);
    const pushed = fx.remoteGit('rev-parse', 'env/dev');
    // Before the retry, the sources change in a way that would render differently: still no second commit.
    fx.pushSources({ [`${FROM}/service.yaml`]: 'apiVersion: v1\nkind: Service\nmetadata: {name: guestbook-v2}\n' });

    const retried = await runAsActivity(activityEnvironment(2), ferry, input);

    assert.equal(retried.commit, pushed);
    assert.equal(retried.created, false);
    assert.equal(retried.files, 3);
    assert.equal(
      retried.sourceCommit,
      fx.remoteGit('log', '-1', '--format=%(trailers:key=Ferry-Source,valueonly)', pushed),
    );
    assert.deepEqual(ferryCommits(fx, 'env/dev'), [pushed]);
  });

  it('honours a cancellation that arrives between git commands: nothing is pushed after it', async (t) => {
    const fx = createFixture(t);
    const env = activityEnvironment();
    env.on('heartbeat', (details: { step?: string }) => {
      // The render has finished and no git process is running: the abort event has nobody to stop.
      if (details.step === 'rendered') env.cancel();
    });

    await assert.rejects(
      runAsActivity(env, activities(fx), promotion(fx)),
      (err: unknown) => !(err instanceof ApplicationFailure),
    );

    assert.equal(fx.remoteGit('branch', '--list', 'env/dev'), '', 'the stage branch was not written');
  });

  it('fetches the cached workspace instead of cloning again, and sees new upstream commits', async (t) => {
    const fx = createFixture(t);
    const ferry = activities(fx);
    await ferry.renderAndPush(promotion(fx, { version: '1.0.0' }));
    const [workspace, ...others] = readdirSync(fx.workspaceRoot);
    assert.ok(workspace?.startsWith('gitops-') && workspace.endsWith('.git'), workspace);
    assert.deepEqual(others, []);
    const dir = join(fx.workspaceRoot, workspace);
    const inode = statSync(dir).ino;
    const record = readFileSync(join(dir, 'ferry-workspace.json'), 'utf8');
    writeFileSync(join(dir, 'marker'), 'still here');
    const changed = fx.pushSources({ [`${FROM}/config/settings.json`]: '{"color": "green"}\n' });

    // A second activities instance (a restarted worker) reuses the directory as well.
    const result = await activities(fx).renderAndPush(promotion(fx, { version: '1.1.0' }));

    assert.equal(result.sourceCommit, changed);
    assert.equal(filesAt(fx, 'env/dev')['config/settings.json'], '{"color": "green"}');
    assert.deepEqual(readdirSync(fx.workspaceRoot), [workspace]);
    assert.equal(statSync(dir).ino, inode);
    assert.equal(readFileSync(join(dir, 'ferry-workspace.json'), 'utf8'), record);
    assert.equal(readFileSync(join(dir, 'marker'), 'utf8'), 'still here');
    assert.equal(git(dir, 'config', 'remote.origin.url'), `file://${fx.remote}`);
  });

  it('redoes the render on the new head when someone pushes to the stage branch between fetch and push', async (t) => {
    const fx = createFixture(t);
    const ferry = activities(fx);
    await ferry.renderAndPush(promotion(fx, { version: '1.0.0' }));
    const env = activityEnvironment();
    const steps: string[] = [];
    let theirs = '';
    env.on('heartbeat', (details: { step: string; attempt: number }) => {
      steps.push(`${details.step}#${details.attempt}`);
      if (details.step === 'pushing' && details.attempt === 1)
        theirs = fx.pushToBranch('env/dev', { 'NOTES.md': 'hotfix notes\n' });
    });

    const result = await runAsActivity(env, ferry, promotion(fx, { version: '1.1.0' }));

    assert.equal(result.created, true);
    assert.equal(fx.remoteGit('rev-parse', 'env/dev'), result.commit);
    assert.equal(fx.remoteGit('rev-parse', `${result.commit}^`), theirs, 'our commit sits on top of theirs');
    const files = filesAt(fx, 'env/dev');
    assert.equal(files['NOTES.md'], 'hotfix notes');
    assert.equal(files['deployment.yaml'], deployment('1.1.0').trimEnd());
    assert.deepEqual(steps, [
      'fetched#1',
      'rendered#1',
      'pushing#1',
      'branch-moved#1',
      'fetched#2',
      'pushing#2',
      'pushed#2',
    ]);
  });

  it('gives up with a retryable failure when the branch keeps moving', async (t) => {
    const fx = createFixture(t);
    const ferry = activities(fx, { maxPushAttempts: 2 });
    await ferry.renderAndPush(promotion(fx, { version: '1.0.0' }));
    const env = activityEnvironment();
    let n = 0;
    env.on('heartbeat', (details: { step: string }) => {
      if (details.step === 'pushing') fx.pushToBranch('env/dev', { [`notes-${++n}.md`]: 'busy\n' });
    });

    await assertFailure(runAsActivity(env, ferry, promotion(fx, { version: '1.1.0' })), {
      type: 'PushConflict',
      nonRetryable: false,
      message: [/env\/dev kept moving/, /2 attempts/],
    });
    assert.equal(ferryCommits(fx, 'env/dev').length, 1);
  });

  it('serializes concurrent promotions of one repository in one worker: different stages and the same stage', async (t) => {
    const fx = createFixture(t);
    const ferry = activities(fx);
    const prod = { strategy: 'branch' as const, engine: 'plain' as const, from: 'apps/guestbook/prod', to: 'env/prod' };
    const results = await Promise.all([
      ferry.renderAndPush(promotion(fx, { version: '1.0.0' })),
      ferry.renderAndPush({
        ...promotion(fx, { version: '1.0.0' }),
        stage: 'prod',
        promotionId: 'p-prod',
        render: prod,
      }),
      ferry.renderAndPush(promotion(fx, { version: '1.0.1' })),
    ]);

    assert.ok(results.every((r) => r.created));
    assert.equal(ferryCommits(fx, 'env/dev').length, 2);
    assert.equal(ferryCommits(fx, 'env/prod').length, 1);
    assert.equal(filesAt(fx, 'env/prod')['deployment.yaml'], deployment('1.0.0').trimEnd());
    const devHead = fx.remoteGit('rev-parse', 'env/dev');
    assert.ok([results[0]!.commit, results[2]!.commit].includes(devHead));
  });
});

describe('renderAndPush: many stages of one repository at once', () => {
  /** Runs `fn` with a `git` on PATH that records every subcommand before running the real git. */
  async function countingGit<T>(dir: string, fn: (calls: () => string[]) => Promise<T>): Promise<T> {
    const bin = join(dir, 'bin');
    const log = join(dir, 'git-calls.log');
    mkdirSync(bin, { recursive: true });
    const real = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
    writeFileSync(
      join(bin, 'git'),
      `#!/bin/sh\nfor a in "$@"; do case "$a" in -*|*/*) ;; *) echo "$a" >> '${log}'; break;; esac; done\nexec '${real}' "$@"\n`,
      { mode: 0o755 },
    );
    writeFileSync(log, '');
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      return await fn(() => readFileSync(log, 'utf8').split('\n').filter(Boolean));
    } finally {
      process.env.PATH = path;
    }
  }

  /** Promotes into stage `stage` (branch env/<stage>) of the fixture's repository. */
  const promoteStage = (
    ferry: ReturnType<typeof activities>,
    fx: Fixture,
    stage: string,
    overrides: Partial<RenderAndPushInput> = {},
  ): Promise<RenderAndPushResult> =>
    ferry.renderAndPush(
      promotion(fx, {
        stage,
        promotionId: `promotion/guestbook/${stage}/f-1.0.0`,
        render: { strategy: 'branch', engine: 'plain', from: FROM, to: `env/${stage}` },
        ...overrides,
      }),
    );

  it('lands 24 stages at once with fewer fetches and pushes than promotions: waiting ones join into one', async (t) => {
    const fx = createFixture(t);
    const ferry = activities(fx);
    await ferry.renderAndPush(promotion(fx, { version: '0.9.0' })); // the first clone, outside the count
    const stages = Array.from({ length: 24 }, (_, i) => `s${i + 1}`);
    const counts = await countingGit(fx.dir, async (calls) => {
      const results = await Promise.all(stages.map((stage) => promoteStage(ferry, fx, stage)));
      assert.ok(results.every((r) => r.created));
      return {
        fetches: calls().filter((c) => c === 'fetch').length,
        pushes: calls().filter((c) => c === 'push').length,
      };
    });
    for (const stage of stages) assert.equal(ferryCommits(fx, `env/${stage}`).length, 1, stage);
    assert.ok(counts.fetches < stages.length, `${counts.fetches} fetches for ${stages.length} promotions`);
    assert.ok(counts.pushes < stages.length, `${counts.pushes} pushes for ${stages.length} promotions`);
  });

  it('a hook refusing one branch of a joined push fails that promotion only', async (t) => {
    const fx = createFixture(t);
    const ferry = activities(fx);
    await ferry.renderAndPush(promotion(fx, { version: '0.9.0' }));
    // pre-receive sees the whole push and can only refuse all of it: the others must land on their own.
    const hook = join(fx.remote, 'hooks', 'pre-receive');
    writeFileSync(
      hook,
      '#!/bin/sh\nwhile read old new ref; do [ "$ref" = refs/heads/env/locked ] && { echo "env/locked is frozen" >&2; exit 1; }; done\nexit 0\n',
      { mode: 0o755 },
    );
    const stages = ['a1', 'a2', 'a3', 'locked', 'a4', 'a5'];
    const results = await Promise.allSettled(stages.map((stage) => promoteStage(ferry, fx, stage)));
    stages.forEach((stage, i) => {
      if (stage === 'locked') {
        assert.equal(results[i].status, 'rejected');
        const failure = (results[i] as PromiseRejectedResult).reason as ApplicationFailure;
        assert.equal(failure.type, 'PushRejected');
        assert.match(failure.message, /env\/locked is frozen/);
      } else {
        assert.equal(results[i].status, 'fulfilled', stage);
        assert.equal(ferryCommits(fx, `env/${stage}`).length, 1, stage);
      }
    });
  });

  it('fails only the promotion whose source branch is missing when fetches were joined', async (t) => {
    const fx = createFixture(t);
    const ferry = activities(fx);
    await ferry.renderAndPush(promotion(fx, { version: '0.9.0' }));
    const good = Array.from({ length: 6 }, (_, i) => promoteStage(ferry, fx, `g${i}`));
    const bad = promoteStage(ferry, fx, 'bad', { repo: { url: `file://${fx.remote}`, branch: 'no-such-branch' } });
    const [goodResults, badResult] = await Promise.all([Promise.allSettled(good), Promise.allSettled([bad])]);
    assert.deepEqual(
      goodResults.map((r) => r.status),
      good.map(() => 'fulfilled'),
    );
    assert.equal(badResult[0].status, 'rejected');
    const failure = (badResult[0] as PromiseRejectedResult).reason as ApplicationFailure;
    assert.equal(failure.type, 'SourceBranchNotFound');
    assert.match(failure.message, /no-such-branch/);
  });
});

describe('renderAndPush: failures', () => {
  /** Installs a pre-receive hook in the remote that records every push it sees and declines with `decline`. */
  function receiveHook(fx: Fixture, decline?: string): () => number {
    const log = join(fx.dir, 'pushes.log');
    const hook = join(fx.remote, 'hooks', 'pre-receive');
    mkdirSync(dirname(hook), { recursive: true });
    writeFileSync(
      hook,
      `#!/bin/sh\necho push >> '${log}'\n${decline ? `echo '${decline}' >&2\nexit 1\n` : 'exit 0\n'}`,
      { mode: 0o755 },
    );
    return () => (readdirSync(fx.dir).includes('pushes.log') ? readFileSync(log, 'utf8').split('\n').length - 1 : 0);
  }

  it("a push a hook or protected branch declines fails at once, non-retryable, with the remote's reason", async (t) => {
    const fx = createFixture(t);
    const pushes = receiveHook(fx, 'GL-HOOK-ERR: env/dev is a protected branch');
    const started = Date.now();
    await assertFailure(activities(fx).renderAndPush(promotion(fx)), {
      type: 'PushRejected',
      nonRetryable: true,
      message: [/refused the push to branch env\/dev: pre-receive hook declined/, /env\/dev is a protected branch/],
    });
    assert.equal(pushes(), 1, 'pushed once, not retried');
    assert.ok(Date.now() - started < 10_000);
    assert.equal(fx.remoteGit('branch', '--list', 'env/dev'), '');
  });

  it("a branch inside an existing branch's name (env/dev/sub beside env/dev) fails at once with git's reason", async (t) => {
    const fx = createFixture(t);
    await activities(fx).renderAndPush(promotion(fx));
    const pushes = receiveHook(fx);
    await assertFailure(
      activities(fx).renderAndPush(
        promotion(fx, { render: { strategy: 'branch', engine: 'plain', from: FROM, to: 'env/dev/sub' } }),
      ),
      {
        type: 'PushRejected',
        nonRetryable: true,
        message: [/push to branch env\/dev\/sub/, /'refs\/heads\/env\/dev' exists/, /retrying cannot help/],
      },
    );
    assert.equal(pushes(), 1, 'pushed once, not retried');
  });

  it('a branch name too long for the remote (one the pipeline schema would refuse) fails at once', async (t) => {
    const fx = createFixture(t);
    const pushes = receiveHook(fx);
    const to = `env/${'x'.repeat(300)}`;
    await assertFailure(
      activities(fx).renderAndPush(promotion(fx, { render: { strategy: 'branch', engine: 'plain', from: FROM, to } })),
      { type: 'PushRejected', nonRetryable: true, message: [/File name too long/] },
    );
    assert.equal(pushes(), 1, 'pushed once, not retried');
  });

  it('fails for good, naming repository, branch and path, when `from` does not exist', async (t) => {
    const fx = createFixture(t);
    await assertFailure(
      activities(fx).renderAndPush(
        promotion(fx, { render: { strategy: 'branch', engine: 'plain', from: 'apps/nope', to: 'env/dev' } }),
      ),
      {
        type: 'SourcePathNotFound',
        nonRetryable: true,
        message: [/"apps\/nope" does not exist/, new RegExp(`file://${fx.remote}`), /branch main at [0-9a-f]{12}/],
      },
    );
    await assertFailure(
      activities(fx).renderAndPush(
        promotion(fx, { render: { strategy: 'branch', engine: 'plain', from: 'README.md', to: 'env/dev' } }),
      ),
      { type: 'SourcePathNotFound', nonRetryable: true, message: [/is a file, not a directory/] },
    );
  });

  it('fails for good on invalid YAML, naming the file and line, and writes nothing', async (t) => {
    const fx = createFixture(t);
    fx.pushSources({ [`${FROM}/broken.yaml`]: 'kind: ConfigMap\ndata:\n  a: [1, 2\n' });
    await assertFailure(activities(fx).renderAndPush(promotion(fx)), {
      type: 'InvalidManifest',
      nonRetryable: true,
      message: [
        new RegExp(`${FROM}/broken\\.yaml:\\d+:\\d+: invalid YAML`),
        new RegExp(`file://${fx.remote} branch main`),
      ],
    });
    assert.equal(fx.remoteGit('branch', '--list', 'env/dev'), '');
  });

  it('fails for good when the source branch or the repository does not exist', async (t) => {
    const fx = createFixture(t);
    await assertFailure(
      activities(fx).renderAndPush({ ...promotion(fx), repo: { url: `file://${fx.remote}`, branch: 'trunk' } }),
      {
        type: 'SourceBranchNotFound',
        nonRetryable: true,
        message: [/branch trunk does not exist/],
      },
    );
    await assertFailure(
      activities(fx).renderAndPush({ ...promotion(fx), repo: { url: `file://${fx.dir}/missing.git`, branch: 'main' } }),
      {
        type: 'GitRepositoryNotFound',
        nonRetryable: true,
        message: [/missing\.git/],
      },
    );
  });

  it('refuses to guess when .ferry/rendered.json on the branch is not its record', async (t) => {
    const fx = createFixture(t);
    await activities(fx).renderAndPush(promotion(fx));
    fx.pushToBranch('env/dev', { [RENDERED_STATE_PATH]: '{"files": "everything"}' });
    await assertFailure(activities(fx).renderAndPush(promotion(fx, { version: '1.0.1' })), {
      type: 'InvalidRenderedState',
      nonRetryable: true,
      message: [/env\/dev/, /restore or delete it/, /\bfiles: /],
    });
  });
});

// A git smart-HTTP server: `git http-backend` behind a Basic-auth check, recording the Authorization headers.
async function startGitHttpServer(projectRoot: string, expectedAuthorization: string) {
  const seen: (string | undefined)[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers.authorization);
    if (req.headers.authorization !== expectedAuthorization) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="gitops"' }).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const header = (name: string) => String(req.headers[name] ?? '');
    const backend = spawn('git', ['http-backend'], {
      env: {
        ...process.env,
        GIT_PROJECT_ROOT: projectRoot,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: header('content-type'),
        ...(req.headers['content-length'] ? { CONTENT_LENGTH: header('content-length') } : {}),
        HTTP_CONTENT_ENCODING: header('content-encoding'),
        GIT_PROTOCOL: header('git-protocol'),
        REMOTE_USER: 'ferry',
        REMOTE_ADDR: '127.0.0.1',
      },
    });
    req.pipe(backend.stdin);
    const out: Buffer[] = [];
    backend.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    backend.on('close', () => {
      const response = Buffer.concat(out);
      const end = response.indexOf('\r\n\r\n');
      const headers: Record<string, string> = {};
      let status = 200;
      for (const line of response.subarray(0, end).toString('latin1').split('\r\n')) {
        const [name = '', ...value] = line.split(':');
        if (name.toLowerCase() === 'status') status = Number.parseInt(value.join(':').trim(), 10);
        else if (name) headers[name] = value.join(':').trim();
      }
      res.writeHead(status, headers).end(response.subarray(end + 4));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/gitops.git`,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('renderAndPush: file:// repositories', () => {
  it('are refused unless the worker allows them, naming the setting, before any git command', async (t) => {
    const fx = createFixture(t);
    await assertFailure(activities(fx, { allowFileRepos: false }).renderAndPush(promotion(fx)), {
      type: 'FileRepoNotAllowed',
      nonRetryable: true,
      message: [/file:\/\/ repositories are not allowed on this worker/, /FERRY_ALLOW_FILE_REPOS=1/],
    });
    assert.equal(fx.remoteGit('branch', '--list', 'env/dev'), '');
    assert.ok(!readdirSync(fx.dir).includes('workspaces'), 'no workspace was created');
  });
});

describe('renderAndPush: a remote that does not answer', () => {
  it('stops git after the network timeout with a retryable failure, and does not wedge the repository', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-git-'));
    const hanging = createServer(() => undefined); // accepts requests, never answers
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    t.after(async () => {
      hanging.closeAllConnections();
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    });
    const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/gitops.git`;
    const ferry = createGitActivities({
      workspaceRoot: join(dir, 'workspaces'),
      secrets: createSecretResolver({ env: {} }),
      networkTimeoutMs: 300,
    });
    const input = { ...promotion({ remote: '' }), repo: { url, branch: 'main' } };

    for (let i = 0; i < 2; i++) {
      await assertFailure(ferry.renderAndPush(input), {
        type: 'GitNetworkError',
        nonRetryable: false,
        message: [/no answer within 0s/, /127\.0\.0\.1/],
      });
    }
  });
});

describe('crashes leave nothing behind', () => {
  /** Processes by pid: [parent pid, process group, command name], read from /proc. */
  function processes(): Map<number, { ppid: number; pgrp: number; comm: string }> {
    const all = new Map<number, { ppid: number; pgrp: number; comm: string }>();
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // exited meanwhile
      }
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const [, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      all.set(Number(entry), { ppid: Number(ppid), pgrp: Number(pgrp), comm });
    }
    return all;
  }

  async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('git started by a worker dies with it when the worker is SIGKILLed in the middle of a fetch (its ls-remote)', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-git-'));
    const hanging = createServer(() => undefined); // accepts requests, never answers: git waits for ever
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    t.after(async () => {
      hanging.closeAllConnections();
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    });
    const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/gitops.git`;
    const script = join(dir, 'worker.ts');
    writeFileSync(
      script,
      [
        `import { createGitWorkspaces } from ${JSON.stringify(join(__dirname, '..', '..', 'activities', 'git'))};`,
        `import { createSecretResolver } from ${JSON.stringify(join(__dirname, '..', '..', 'activities', 'secrets'))};`,
        'const workspaces = createGitWorkspaces({',
        `  workspaceRoot: ${JSON.stringify(join(dir, 'workspaces'))},`,
        '  secrets: createSecretResolver({ env: {} }),',
        '});',
        `void workspaces.open({ url: ${JSON.stringify(url)}, branch: 'main' }).then((w) => w.fetch('main', 'env/dev'));`,
        '',
      ].join('\n'),
    );
    const worker = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: join(__dirname, '..', '..'),
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    t.after(() => worker.kill('SIGKILL'));

    const gitGroup = await until('the worker to start git fetch', () => {
      const all = processes();
      for (const [pid, p] of all) {
        if (p.ppid !== worker.pid || p.comm !== 'git') continue;
        let argv: string[] = [];
        try {
          argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        } catch {
          // exited meanwhile
        }
        // A fetch starts with an ls-remote (which branches moved), then fetches: either hangs on this server.
        if (argv.includes('fetch') || argv.includes('ls-remote')) return pid;
      }
      return undefined;
    });
    // The fetch's helper (git-remote-http) is in git's group too; wait for it to be connected.
    await until('git-remote-http', () =>
      [...processes().values()].some((p) => p.pgrp === gitGroup && p.comm.startsWith('git-remote')) ? true : undefined,
    );

    worker.kill('SIGKILL');
    await exited;
    await until(
      'git and its helpers to die with the worker',
      () => ([...processes().values()].some((p) => p.pgrp === gitGroup) ? undefined : true),
      5_000,
    );
  });

  it('a new worker removes what a killed one left: half-built workspaces and temporary indexes', async (t) => {
    const fx = createFixture(t);
    await activities(fx).renderAndPush(promotion(fx));
    const root = fx.workspaceRoot;
    const [workspace] = readdirSync(root);
    assert.ok(workspace?.endsWith('.git'));

    // A pid that no longer runs: a process that has exited.
    const dead = spawn('true');
    await new Promise((resolve) => dead.once('exit', resolve));
    const deadTag = `${dead.pid}.0a1b2c3d`;
    const uuid = '5f0c6a8e-3b1d-4c2e-9f7a-0d1e2f3a4b5c';
    // A live pid of another process: maybe another worker sharing the root, so its recent work stays.
    const live = spawn('sleep', ['30']);
    t.after(() => live.kill('SIGKILL'));
    const liveTag = `${live.pid}.0a1b2c3d`;

    const halfBuiltByDead = join(root, `other-0123456789abcdef.git.init-${deadTag}.${uuid}`);
    const halfBuiltByLive = join(root, `third-0123456789abcdef.git.init-${liveTag}.${uuid}`);
    const indexByDead = join(root, workspace!, `ferry-index-${deadTag}.${uuid}`);
    const indexByLive = join(root, workspace!, `ferry-index-${liveTag}.${uuid}`);
    for (const d of [halfBuiltByDead, halfBuiltByLive]) mkdirSync(join(d, 'objects'), { recursive: true });
    for (const f of [indexByDead, indexByLive]) writeFileSync(f, 'DIRC');

    // The first open in a new process (here: a new set of activities over a root not swept yet in this process
    // stands in for it only for the indexes; the root sweep is once per process, so it is checked directly below).
    await activities(fx).renderAndPush(promotion(fx, { version: '1.0.1' }));
    assert.ok(!readdirSync(join(root, workspace!)).includes(`ferry-index-${deadTag}.${uuid}`), 'dead index removed');
    assert.ok(readdirSync(join(root, workspace!)).includes(`ferry-index-${liveTag}.${uuid}`), 'live index kept');

    const script = join(fx.dir, 'open.ts');
    writeFileSync(
      script,
      [
        `import { createGitWorkspaces } from ${JSON.stringify(join(__dirname, '..', '..', 'activities', 'git'))};`,
        `import { createSecretResolver } from ${JSON.stringify(join(__dirname, '..', '..', 'activities', 'secrets'))};`,
        `const workspaces = createGitWorkspaces({ workspaceRoot: ${JSON.stringify(root)}, secrets: createSecretResolver({ env: {} }), allowFileRepos: true });`,
        `void workspaces.open({ url: ${JSON.stringify(`file://${fx.remote}`)}, branch: 'main' });`,
        '',
      ].join('\n'),
    );
    execFileSync(process.execPath, ['--import', 'tsx', script], { cwd: join(__dirname, '..', '..'), stdio: 'pipe' });
    const left = readdirSync(root);
    assert.ok(!left.includes(basename(halfBuiltByDead)), 'the half-built workspace of a dead worker is removed');
    assert.ok(left.includes(basename(halfBuiltByLive)), 'a recent one of a live process is kept');
    assert.ok(left.includes(workspace!), 'the workspace itself stays');
  });
});

describe('renderAndPush: credentials', () => {
  const token = 'ghp_s3cr3t-token-value';
  const basic = Buffer.from(`x-access-token:${token}`).toString('base64');
  let fx: Fixture;
  let server: Awaited<ReturnType<typeof startGitHttpServer>>;
  const cleanups: (() => void)[] = [];
  before(async () => {
    fx = createFixture({ after: (fn) => cleanups.push(fn) });
    server = await startGitHttpServer(fx.dir, `Basic ${basic}`);
  });
  after(async () => {
    await server.close();
    for (const cleanup of cleanups) cleanup();
  });

  const withSecret = (secret: string) => createSecretResolver({ env: { FERRY_SECRET_GITOPS_TOKEN: secret } });
  const overHttp = (overrides: Partial<RenderAndPushInput> = {}) => ({
    ...promotion(fx),
    repo: { url: server.url, branch: 'main', credentials: 'gitops' },
    ...overrides,
  });

  /** Every file of the workspace that git could read configuration or remote URLs from. */
  function workspaceText(): string {
    const [workspace] = readdirSync(fx.workspaceRoot);
    const dir = join(fx.workspaceRoot, workspace!);
    return ['config', 'ferry-workspace.json', 'packed-refs']
      .map((name) => {
        try {
          return readFileSync(join(dir, name), 'utf8');
        } catch {
          return '';
        }
      })
      .join('\n');
  }

  it('sends the resolved credential as an Authorization header and stores it nowhere', async () => {
    const result = await createGitActivities({
      workspaceRoot: fx.workspaceRoot,
      secrets: withSecret(token),
    }).renderAndPush(overHttp());

    assert.equal(result.created, true);
    assert.ok(seen().length >= 2, 'fetch and push went through the server');
    assert.ok(
      seen().every((h) => h === `Basic ${basic}`),
      'every request carried the credential',
    );
    assert.equal(fx.remoteGit('rev-parse', 'env/dev'), result.commit);
    const config = workspaceText();
    assert.match(config, new RegExp(`url = ${server.url.replace(/\./g, '\\.')}`));
    for (const secret of [token, basic]) {
      assert.ok(!config.includes(secret), 'not in the workspace configuration');
      assert.ok(!fx.remoteGit('log', '--format=%B', 'env/dev').includes(secret), 'not in the commit message');
      assert.ok(!JSON.stringify(filesAt(fx, 'env/dev')).includes(secret), 'not in the written files');
    }
  });

  it('fails for good on a wrong credential, naming the remote and the credential but not the secret', async () => {
    const wrong = 'ghp_wrong-token-value';
    const failure = await assertFailure(
      createGitActivities({ workspaceRoot: fx.workspaceRoot, secrets: withSecret(wrong) }).renderAndPush(
        overHttp({ promotionId: 'p-wrong' }),
      ),
      {
        type: 'GitAuthFailed',
        nonRetryable: true,
        message: [new RegExp(server.url.replace(/\./g, '\\.')), /credential "gitops"/, /branch main/],
      },
    );
    const everything = `${failure.message}\n${failure.stack ?? ''}\n${JSON.stringify(failure.details ?? [])}`;
    assert.ok(!everything.includes(wrong));
    assert.ok(!everything.includes(Buffer.from(`x-access-token:${wrong}`).toString('base64')));
    assert.ok(!workspaceText().includes(wrong));
  });

  it('fails for good, with a hint, when the repository needs a credential and none is named', async () => {
    await assertFailure(
      createGitActivities({ workspaceRoot: fx.workspaceRoot, secrets: withSecret(token) }).renderAndPush(
        overHttp({ repo: { url: server.url, branch: 'main' } }),
      ),
      { type: 'GitAuthFailed', nonRetryable: true, message: [/name one in spec\.repo\.credentials/] },
    );
  });

  function seen() {
    return server.seen;
  }
});
