// preflightPromotion against a real git remote on disk and the Argo CD stand-in over real HTTP: every check a
// promotion makes before its first write. Each failure is reported with nothing written: the remote's refs are the
// same before and after.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { createPreflightActivities, type PreflightOptions } from '../../activities/preflight';
import { createSecretResolver } from '../../activities/secrets';
import type { PreflightInput } from '../../activities/types';
import type { ArgoCdSpec } from '../../pipeline/schema';
import { argoCdStandInForFile } from '../helpers/argocd-standin';
import { makeToken, type AppSeed, type ArgoCdStandIn } from '../standin/argocd/server';
import { git } from '../helpers/git';

process.env.GIT_CONFIG_GLOBAL = '/dev/null';
process.env.GIT_CONFIG_NOSYSTEM = '1';

const token = makeToken('ferry');
let standIn: ArgoCdStandIn;
let dir: string;
let remote: string;
let repoUrl: string;

/** Every ref of the remote with its commit: compared before and after to show nothing was written. */
const remoteRefs = (): string => git(remote, 'for-each-ref', '--format=%(objectname) %(refname)');

function preflight(options: Partial<PreflightOptions> = {}, env: NodeJS.ProcessEnv = {}) {
  return createPreflightActivities({
    workspaceRoot: join(dir, 'workspaces'),
    secrets: createSecretResolver({ env: { FERRY_SECRET_ARGOCD_TOKEN: token, ...env } }),
    allowFileRepos: true,
    argoRequestTimeoutMs: 2000,
    ...options,
  }).preflightPromotion;
}

function input(argocd: Partial<ArgoCdSpec> | null = {}, overrides: Partial<PreflightInput> = {}): PreflightInput {
  return {
    pipeline: 'guestbook',
    stage: 'dev',
    repo: { url: repoUrl, branch: 'main' },
    render: { strategy: 'branch', engine: 'plain', from: 'apps/dev', to: 'env/dev' },
    ...(argocd === null
      ? {}
      : {
          argocd: {
            server: standIn.url,
            app: 'guestbook-dev',
            project: 'default',
            credentials: 'argocd',
            timeout: '10m',
            degradedGrace: '30s',
            unhealthyGrace: '60s',
            ...argocd,
          },
        }),
    ...overrides,
  };
}

async function addApp(seed: Partial<AppSeed> = {}): Promise<void> {
  await standIn.control.addApp({
    name: 'guestbook-dev',
    project: 'default',
    repoURL: repoUrl,
    path: '.',
    targetRevision: 'env/dev',
    ...seed,
  });
}

/** Runs the check, expects it to fail as described, and checks that the remote did not change. */
async function fails(
  run: Promise<unknown>,
  expected: { type: string; nonRetryable?: boolean; message: RegExp[] },
): Promise<ApplicationFailure> {
  const refs = remoteRefs();
  const err = await run.then(
    () => assert.fail('expected the preflight to fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
  assert.equal(err.type, expected.type, err.message);
  assert.equal(err.nonRetryable, expected.nonRetryable ?? true, err.message);
  for (const pattern of expected.message) assert.match(err.message, pattern);
  assert.ok(!err.message.includes(token), 'no token in the message');
  assert.equal(remoteRefs(), refs, 'nothing was written to the remote');
  return err;
}

argoCdStandInForFile({ tokens: { [token]: true } }, (s) => (standIn = s));

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-preflight-'));
  remote = join(dir, 'gitops.git');
  repoUrl = `file://${remote}`;
  git(dir, 'init', '--bare', '--quiet', '--initial-branch=main', remote);
  const work = join(dir, 'work');
  git(dir, 'clone', '--quiet', remote, work);
  git(work, 'checkout', '--quiet', '-b', 'main');
  git(work, 'commit', '--quiet', '--allow-empty', '-m', 'sources');
  git(work, 'push', '--quiet', 'origin', 'main', 'main:refs/heads/env/staging', 'main:refs/heads/legacy');
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('preflightPromotion', () => {
  test('passes when credentials resolve, the remote answers with repo.branch and the app deploys the stage branch', async () => {
    await addApp();
    const refs = remoteRefs();
    const result = await preflight()(input());
    assert.equal(result.checked.length, 2);
    assert.match(result.checked[0]!, /^git: file:\/\/.* answers; main at [0-9a-f]{12}, env\/dev will be created$/);
    assert.match(result.checked[1]!, /^argocd: app "guestbook-dev" at .* is readable and deploys env\/dev$/);
    assert.equal(remoteRefs(), refs);
    // Only reads: no sync, no refresh.
    assert.deepEqual(
      standIn.control.requests({ app: 'guestbook-dev' }).map((r) => `${r.method} ${JSON.stringify(r.query)}`),
      ['GET {"project":"default"}'],
    );
  });

  test('a stage without Argo CD checks git only', async () => {
    const result = await preflight()(input(null, { render: { ...input().render, to: 'env/staging' } }));
    assert.equal(result.checked.length, 1);
    assert.match(result.checked[0]!, /env\/staging at [0-9a-f]{12}$/);
  });

  test('a wrong Argo CD token fails (401) before anything is written', async () => {
    await addApp();
    await fails(preflight({}, { FERRY_SECRET_ARGOCD_TOKEN: makeToken('nobody-known') })(input()), {
      type: 'ArgoCdUnauthorized',
      message: [/^stage dev: argocd app "guestbook-dev"/, /check the token in credential "argocd"/],
    });
  });

  test('a token without access fails (403) before anything is written', async () => {
    await addApp();
    standIn.control.setTokens({ [token]: { username: 'viewer', actions: [] } });
    await fails(preflight()(input()), { type: 'ArgoCdForbidden', message: [/permission denied|lacks access/] });
  });

  test('a missing app fails (404) before anything is written', async () => {
    await fails(preflight()(input({ app: 'guestbook-nope' })), {
      type: 'ArgoCdNotFound',
      message: [/argocd app "guestbook-nope"/, /no such app/],
    });
  });

  test('an app tracking another branch, another repository or a sub-path fails, saying what to set', async () => {
    await addApp({ targetRevision: 'env/staging' });
    await fails(preflight()(input()), {
      type: 'ArgoCdInvalid',
      message: [/targetRevision "env\/staging", not the stage branch "env\/dev"/, /set spec.source.targetRevision/],
    });
    await addApp({ repoURL: 'https://git.example.com/other/repo.git' });
    await fails(preflight()(input()), {
      type: 'ArgoCdInvalid',
      message: [/tracks https:\/\/git.example.com\/other\/repo.git@env\/dev, not file:/, /set spec.source.repoURL/],
    });
    await addApp({ path: 'apps/dev' });
    await fails(preflight()(input()), {
      type: 'ArgoCdInvalid',
      message: [/deploys path "apps\/dev"/, /set spec.source.path to "."/],
    });
  });

  test('a missing repository credential or Argo CD credential fails first, naming the field', async () => {
    await addApp();
    await fails(preflight()(input({}, { repo: { url: repoUrl, branch: 'main', credentials: 'gitops' } })), {
      type: 'CredentialNotFound',
      message: [/^stage dev: spec.repo.credentials: credential "gitops" is not configured on the worker/],
    });
    await fails(preflight()(input({ credentials: 'argocd-prod' })), {
      type: 'CredentialNotFound',
      message: [/^stage dev: argocd.credentials: credential "argocd-prod" is not configured/],
    });
    assert.deepEqual(standIn.control.requests(), [], 'Argo CD was not even asked');
  });

  test('a missing source branch, or a render.to git cannot create beside an existing branch, fails', async () => {
    await fails(preflight()(input(null, { repo: { url: repoUrl, branch: 'trunk' } })), {
      type: 'SourceBranchNotFound',
      message: [/has no branch trunk \(spec.repo.branch\)/],
    });
    await fails(preflight()(input(null, { render: { ...input().render, to: 'legacy/dev' } })), {
      type: 'BranchNameConflict',
      message: [/render.to "legacy\/dev" cannot be created/, /branch "legacy" exists/],
    });
    await fails(preflight()(input(null, { render: { ...input().render, to: 'env' } })), {
      type: 'BranchNameConflict',
      message: [/branch "env\/staging" exists/],
    });
  });

  test('a repository that does not exist fails; Argo CD answering 5xx is retryable', async () => {
    await fails(preflight()(input(null, { repo: { url: `file://${dir}/missing.git`, branch: 'main' } })), {
      type: 'GitRepositoryNotFound',
      message: [/missing\.git/],
    });
    await addApp();
    await standIn.control.inject({ kind: 'serverError', status: 503, app: 'guestbook-dev', times: 1 });
    await fails(preflight()(input()), { type: 'ArgoCdUnavailable', nonRetryable: false, message: [/HTTP 503/] });
  });

  test('file:// repositories are refused unless the worker allows them, naming the setting', async () => {
    await fails(preflight({ allowFileRepos: false })(input(null)), {
      type: 'FileRepoNotAllowed',
      message: [/file:\/\/ repositories are not allowed on this worker/, /FERRY_ALLOW_FILE_REPOS=1/],
    });
  });

  test('a directory stage checks that its Argo CD app deploys the directory; a pull-request stage needs its API token', async () => {
    await addApp();
    await addApp({ name: 'trunk-prod', path: 'envs/prod', targetRevision: 'main' });
    const directory = { strategy: 'directory', engine: 'plain', to: 'envs/prod' } as const;
    const checked = await preflight()(input({ app: 'trunk-prod' }, { render: directory }));
    assert.match(checked.checked.join('\n'), /deploys envs\/prod on main/);
    await fails(preflight()(input({ app: 'guestbook-dev' }, { render: directory })), {
      type: 'ArgoCdInvalid',
      message: [/not the stage branch "main"|tracks .* at targetRevision "env\/dev"/],
    });
    await standIn.control.removeApp('trunk-prod');
    await addApp({ name: 'trunk-prod', path: 'envs', targetRevision: 'main' });
    await fails(preflight()(input({ app: 'trunk-prod' }, { render: directory })), {
      type: 'ArgoCdInvalid',
      message: [
        /deploys path "envs" of branch "main", but the stage is the directory "envs\/prod": set spec\.source\.path to "envs\/prod"/,
      ],
    });

    const pullRequest = {
      ...input().render,
      strategy: 'pull-request',
      pullRequest: { provider: 'github', target: 'branch', pollInterval: '30s', timeout: '1h', approvalOnHost: false },
    } as const;
    await fails(preflight()(input(null, { render: pullRequest })), {
      type: 'PullRequestInvalidConfig',
      message: [/pull requests on github need an API token/],
    });
    await fails(
      preflight()(
        input(null, {
          render: { ...pullRequest, pullRequest: { ...pullRequest.pullRequest, credentials: 'github-api' } },
        }),
      ),
      {
        type: 'CredentialNotFound',
        message: [/render\.pullRequest\.credentials: credential "github-api" is not configured on the worker/],
      },
    );
  });
});
