// The CI recipes of docs/ci/, run step by step as GitHub Actions and GitLab CI would run them, against a real stack:
// the HTTP API (trusting a local OIDC issuer that serves a real JWKS), the Temporal dev server, the worker and a
// real git repository. Each job gets its token from the issuer the way its CI system hands it out (GitHub's
// token-request endpoint, GitLab's `id_tokens:` variable), registers freight, follows dev and promotes to staging
// with `ferry promote … --wait`. Nothing is stored for CI: the job's token is its identity.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createOidcVerifier } from '../../api/identity/oidc';
import { createRoleBook } from '../../api/roles';
import { parseServerConfig, roleBindingsOf } from '../../api/server-config';
import type { ApiServer } from '../../api/server';
import { silentLogger } from '../../client/log';
import { examplePipelineYaml } from '../../dev/example';
import { freightId } from '../../pipeline/freight';
import { PROJECT_ROOT } from '../../dev/temporal';
import { runGithubWorkflow, runGitlabPipeline } from '../helpers/ci-runner';
import { startLocalOidcIssuer, type LocalOidcIssuer } from '../helpers/oidc-issuer';
import { startStack, type Stack } from '../helpers/stack';

const ADMIN_TOKEN = 'tok-admin-0123456789abcdef0123456789';

/** GitLab's claims for a pipeline of acme/guestbook on main, as its issuer puts them in an `id_tokens:` token. */
const GITLAB_CLAIMS = {
  sub: 'project_path:acme/guestbook:ref_type:branch:ref:main',
  namespace_path: 'acme',
  project_path: 'acme/guestbook',
  ref: 'main',
  ref_type: 'branch',
  ref_protected: 'true',
  pipeline_source: 'push',
  user_login: 'octocat',
};

describe('CI recipes in docs/ci, run as their CI systems run them', () => {
  let stack: Stack;
  let api: ApiServer;
  let issuer: LocalOidcIssuer;
  let dir: string;
  let binDir: string;

  before(async () => {
    issuer = await startLocalOidcIssuer();
    // The server configuration an operator writes for these recipes: both CI systems' tokens for acme/guestbook,
    // from its default branch only, may register freight and promote; nothing else.
    const config = parseServerConfig(
      `
roles:
  - { users: [admin], role: admin }
oidc:
  issuers:
    - issuer: ${issuer.url}
      audience: ferry
      rules:
        - match: { repository: acme/guestbook, ref: refs/heads/main }
          user: "github:{repository}@{ref}"
          roles: [{ role: promoter, pipelines: [guestbook] }]
        - match: { project_path: acme/guestbook, ref: main, ref_protected: "true" }
          user: "gitlab:{project_path}@{ref}"
          roles: [{ role: promoter, pipelines: [guestbook] }]
`,
      'ci-recipes test',
    );
    const roles = createRoleBook({ bindings: roleBindingsOf(config) });
    stack = await startStack({
      name: 'ci-recipes',
      tokens: { [ADMIN_TOKEN]: 'admin' },
      api: { roles, oidc: createOidcVerifier(config.oidc?.issuers ?? [], { roles, logger: silentLogger }) },
    });
    ({ api, dir } = stack);
    const applied = await fetch(`${api.url}/api/v1/pipelines/guestbook`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/yaml' },
      body: examplePipelineYaml(stack.repo.url, ['alice']),
    });
    assert.equal(applied.status, 200, await applied.text());

    // The runner image's `ferry`: the checkout's CLI.
    binDir = join(dir, 'bin');
    mkdirSync(binDir);
    writeFileSync(
      join(binDir, 'ferry'),
      `#!/bin/sh\nexec node ${JSON.stringify(join(PROJECT_ROOT, 'bin', 'ferry.js'))} "$@"\n`,
    );
    chmodSync(join(binDir, 'ferry'), 0o755);
  });

  after(async () => {
    await stack?.close();
    await issuer?.close();
  });

  /** The runner's environment: no Ferry token or home of the machine's own, `ferry` on PATH. */
  const runnerEnv = (): NodeJS.ProcessEnv => {
    const { FERRY_TOKEN: _t, FERRY_HOME: _h, FERRY_URL: _u, ...rest } = process.env;
    return { ...rest, PATH: `${binDir}:${process.env.PATH}`, HOME: dir };
  };

  /** Where staging stands, read as an admin. */
  const stagingFreight = async (): Promise<string | undefined> => {
    const reply = await fetch(`${api.url}/api/v1/pipelines/guestbook`, {
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const body = (await reply.json()) as { stages: Array<{ name: string; current?: { freight: string } }> };
    return body.stages.find((s) => s.name === 'staging')?.current?.freight;
  };

  it('GitHub Actions: the job gets its OIDC token, registers freight, follows dev and lands staging', async () => {
    const run = await runGithubWorkflow(join(PROJECT_ROOT, 'docs', 'ci', 'github-actions.yml'), {
      cwd: dir,
      env: runnerEnv(),
      vars: { FERRY_URL: api.url },
      github: { sha: 'a'.repeat(40), repository: 'acme/guestbook', ref: 'refs/heads/main', runNumber: 7 },
      idTokenRequest: { url: issuer.actions.requestUrl, token: issuer.actions.requestToken },
      provided: ['install-ferry'],
    });
    assert.equal(run.failed, undefined, run.transcript);
    assert.deepEqual(
      run.steps.map((s) => s.name),
      [
        'Build and push the image',
        "Get a Ferry token from GitHub's OIDC issuer",
        'Register the build as freight',
        'Wait for dev',
        'Promote to staging and wait for the result',
      ],
    );
    const staging = run.steps.at(-1)!.output;
    assert.match(staging, /Succeeded/, run.transcript);
    // The freight of the version the build step made (1.0.<run number>) is staging's now.
    assert.equal(await stagingFreight(), freightId({ guestbook: '1.0.7' }));
    // The token never reaches the job's output.
    assert.doesNotMatch(run.transcript, /eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/);
  });

  it("GitHub Actions: a job from another repository is refused by Ferry's rules, and the job fails", async () => {
    const foreign = await tokenEndpointWith(issuer, {
      repository: 'mallory/fork',
      sub: 'repo:mallory/fork:ref:refs/heads/main',
    });
    const run = await runGithubWorkflow(join(PROJECT_ROOT, 'docs', 'ci', 'github-actions.yml'), {
      cwd: dir,
      env: runnerEnv(),
      vars: { FERRY_URL: api.url },
      github: { sha: 'b'.repeat(40), repository: 'mallory/fork', ref: 'refs/heads/main', runNumber: 8 },
      idTokenRequest: foreign,
      provided: ['install-ferry'],
    }).finally(foreign.close);
    assert.equal(run.failed?.name, 'Register the build as freight', run.transcript);
    assert.match(run.failed.output, /403|no rule|not allowed|Forbidden/i, run.transcript);
  });

  it('GitLab CI: the job uses its id_tokens token, registers freight, follows dev and lands staging', async () => {
    const run = await runGitlabPipeline(join(PROJECT_ROOT, 'docs', 'ci', 'gitlab-ci.yml'), {
      cwd: dir,
      env: runnerEnv(),
      variables: { FERRY_URL: api.url },
      predefined: {
        CI_COMMIT_SHA: 'c'.repeat(40),
        CI_PIPELINE_IID: '31',
        CI_PROJECT_PATH: 'acme/guestbook',
        CI_COMMIT_BRANCH: 'main',
      },
      idToken: (audience) => issuer.sign({ ...GITLAB_CLAIMS }, { audience }),
    });
    assert.equal(run.failed, undefined, run.transcript);
    assert.deepEqual(
      run.steps.map((s) => s.name),
      ['build', 'release'],
    );
    assert.match(run.steps[1].output, /Succeeded/, run.transcript);
    assert.equal(await stagingFreight(), freightId({ guestbook: '1.0.31' }));
  });
});

/**
 * The GitHub token-request endpoint of `issuer`, but handing out tokens with other claims: a job of another
 * repository asking the same (trusted) issuer.
 */
async function tokenEndpointWith(
  issuer: LocalOidcIssuer,
  claims: Record<string, string>,
): Promise<{ url: string; token: string; close: () => Promise<void> }> {
  const token = 'request-token-of-another-job';
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.headers.authorization !== `bearer ${token}`) {
      res.writeHead(401).end();
      return;
    }
    void issuer
      .sign({ ...issuer.actionsClaims, ...claims }, { audience: url.searchParams.get('audience') ?? '' })
      .then((value) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/token?api-version=2.0`,
    token,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
