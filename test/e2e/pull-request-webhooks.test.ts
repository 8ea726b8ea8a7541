// A host's own webhook wakes the workflow waiting on a pull request, end to end: Ferry's activity opens the pull
// request on the host (the GitHub and GitLab stand-ins, on real repositories), a person merges it there, the host
// delivers its webhook to Ferry's API (real HTTP, the host's headers and payload), and the API signals the
// workflow that carries the pull request's FerryPullRequest key (a real Temporal server), with the merge commit
// that is on main.
import assert from 'node:assert/strict';
import { rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import { createPullRequestActivities, type PullRequestTarget } from '../../activities/pull-request';
import { createSecretResolver } from '../../activities/secrets';
import { staticWebhookSecrets } from '../../api/webhooks';
import { pullRequestKey, type PullRequestProvider } from '../../pipeline/ids';
import { validatePipeline } from '../../pipeline/load';
import type { PullRequestSpec } from '../../pipeline/schema';
import { git } from '../helpers/git';
import { bareRepository, pushBranch } from '../helpers/git-host';
import { until } from '../helpers/processes';
import type { waitForPullRequestMerge } from '../helpers/pull-request-waiter';
import { startStack, type Stack } from '../helpers/stack';
import { startGitHubStandIn, type GitHubStandIn } from '../standin/github/server';
import { startGitLabStandIn, type GitLabStandIn } from '../standin/gitlab/server';

const WAITER_QUEUE = 'ferry-pull-request-webhooks-waiter';
const GITHUB_TOKEN = 'ghs_bot_token_for_pull_request_webhooks';
const GITLAB_TOKEN = 'glpat-bot-token-for-pull-request-webhooks';
const GITHUB_SECRET = 'github-hook-secret-for-pull-request-webhooks';
const GITLAB_SECRET = 'gitlab-hook-secret-for-pull-request-webhooks';

const spec = (provider: PullRequestSpec['provider'], api: string): PullRequestSpec => ({
  target: 'branch',
  provider,
  api,
  pollInterval: '30s',
  timeout: '168h',
  approvalOnHost: false,
});

describe('a host webhook wakes the workflow waiting on its pull request (stand-ins, API, real Temporal)', () => {
  let stack: Stack;
  let waiter: Worker;
  let waiting: Promise<void>;
  let dir: string;
  let github: GitHubStandIn;
  let gitlab: GitLabStandIn;
  const activities = createPullRequestActivities({
    secrets: createSecretResolver({
      env: { FERRY_SECRET_GITHUB_TOKEN: GITHUB_TOKEN, FERRY_SECRET_GITLAB_TOKEN: GITLAB_TOKEN },
    }),
  });

  /** Starts a workflow waiting on the pull request and waits until Temporal's visibility finds it by its key. */
  const waitFor = async (provider: PullRequestProvider, repository: string, number: number) => {
    const key = pullRequestKey(provider, repository, number);
    const handle = await stack.env.client.workflow.start<typeof waitForPullRequestMerge>('waitForPullRequestMerge', {
      taskQueue: WAITER_QUEUE,
      workflowId: `waits-on-${key.replace(/[^a-z0-9]+/g, '-')}`,
      args: [{ pullRequest: key }],
    });
    await until(`the workflow waiting on ${key} to be visible`, async () => {
      for await (const wf of stack.env.client.workflow.list({ query: `FerryPullRequest = "${key}"` })) return wf;
      return undefined;
    });
    return handle;
  };

  before(async () => {
    stack = await startStack({
      name: 'pull-request-webhooks',
      tokens: {},
      api: {
        webhooks: {
          secrets: staticWebhookSecrets({ 'github-webhook': GITHUB_SECRET, 'gitlab-webhook': GITLAB_SECRET }),
        },
      },
    });
    waiter = await Worker.create({
      connection: stack.env.nativeConnection,
      taskQueue: WAITER_QUEUE,
      workflowsPath: require.resolve('../helpers/pull-request-waiter'),
    });
    waiting = waiter.run();
    dir = mkdtempSync(join(tmpdir(), 'ferry-pr-hosts-'));
    github = await startGitHubStandIn({
      token: GITHUB_TOKEN,
      repositories: [],
      git: { 'org/gitops': bareRepository(join(dir, 'github.git'), { 'env/config.yaml': 'replicas: 1\n' }) },
      users: { alice: 'ghp_alice' },
    });
    gitlab = await startGitLabStandIn({
      token: GITLAB_TOKEN,
      projects: { 'group/sub/gitops': bareRepository(join(dir, 'gitlab.git'), { 'env/config.yaml': 'replicas: 1\n' }) },
      users: { alice: 'glpat-alice' },
    });
    const loaded = validatePipeline({
      apiVersion: 'ferry.dev/v1alpha1',
      kind: 'Pipeline',
      metadata: { name: 'hosts' },
      spec: {
        repo: { url: stack.repo.url, branch: 'main' },
        artifacts: [{ name: 'guestbook', image: 'registry.example.com/team/guestbook' }],
        stages: [{ name: 'dev', render: { strategy: 'branch', from: 'apps/guestbook/overlays/dev', to: 'env/dev' } }],
        triggers: {
          github: [{ repository: 'org/gitops', secret: 'github-webhook', events: ['pull_request'] }],
          gitlab: [{ project: 'group/sub/gitops', secret: 'gitlab-webhook', events: ['merge_request'] }],
        },
      },
    });
    assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors));
    await stack.ferry.applyPipeline(loaded.pipeline);
    await until('the pipeline to be listed', async () =>
      (await stack.ferry.listPipelines()).some((p) => p.name === 'hosts') ? true : undefined,
    );
  });

  after(async () => {
    await github?.close();
    await gitlab?.close();
    waiter?.shutdown();
    await waiting;
    await stack?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('GitHub: the pull_request delivery of a merge signals the waiting workflow with the merge commit', async () => {
    const hook = await github.as('ferry-bot')('POST', '/repos/org/gitops/hooks', {
      name: 'web',
      events: ['pull_request'],
      config: { url: `${stack.api.url}/webhooks/github`, content_type: 'json', secret: GITHUB_SECRET },
    });
    assert.equal(hook.status, 201);
    const target: PullRequestTarget = {
      pipeline: 'hosts',
      stage: 'dev',
      repo: { url: `${github.url}/org/gitops.git`, branch: 'main', credentials: 'github' },
      pullRequest: spec('github', github.url),
    };
    const head = await pushBranch({
      url: target.repo.url,
      token: GITHUB_TOKEN,
      branch: 'ferry/dev',
      files: { 'env/config.yaml': 'replicas: 2\n' },
    });
    const opened = await activities.openPullRequest({
      ...target,
      head: 'ferry/dev',
      base: 'main',
      title: 'dev',
      body: '',
    });
    const handle = await waitFor('github', 'org/gitops', opened.number);

    const merged = await github.as('alice')('PUT', `/repos/org/gitops/pulls/${opened.number}/merge`, { sha: head });
    assert.equal(merged.status, 200);
    assert.deepEqual(await handle.result(), {
      provider: 'github',
      repository: 'org/gitops',
      number: opened.number,
      mergeCommit: merged.body.sha,
    });
    await github.deliveriesSettled();
    const answered = github.deliveries.map((d) => [d.event, d.status]);
    assert.deepEqual(answered, [
      ['ping', 200],
      ['pull_request', 200], // opened: acknowledged, nothing to do
      ['pull_request', 200], // closed and merged: signalled
    ]);
    const last = JSON.parse(github.deliveries.at(-1)!.response!);
    assert.deepEqual(last.signalled, [handle.workflowId]);
    assert.equal(merged.body.sha, git(dir, '--git-dir', join(dir, 'github.git'), 'rev-parse', 'main'));
    assert.deepEqual(
      (await activities.pullRequestStatus({ ...target, number: opened.number })).mergeCommit,
      merged.body.sha,
    );
  });

  it('GitLab: the Merge Request Hook of a merge signals the waiting workflow with the merge commit', async () => {
    const project = encodeURIComponent('group/sub/gitops');
    const hook = await gitlab.as('ferry-bot')('POST', `/projects/${project}/hooks`, {
      url: `${stack.api.url}/webhooks/gitlab`,
      token: GITLAB_SECRET,
      merge_requests_events: true,
      push_events: false,
    });
    assert.equal(hook.status, 201);
    const target: PullRequestTarget = {
      pipeline: 'hosts',
      stage: 'dev',
      repo: { url: `${gitlab.url}/group/sub/gitops.git`, branch: 'main', credentials: 'gitlab' },
      pullRequest: spec('gitlab', gitlab.api),
    };
    const head = await pushBranch({
      url: target.repo.url,
      token: GITLAB_TOKEN,
      user: 'oauth2',
      branch: 'ferry/dev',
      files: { 'env/config.yaml': 'replicas: 3\n' },
    });
    const opened = await activities.openPullRequest({
      ...target,
      head: 'ferry/dev',
      base: 'main',
      title: 'dev',
      body: '',
    });
    const handle = await waitFor('gitlab', 'group/sub/gitops', opened.number);

    const merged = await gitlab.as('alice')('PUT', `/projects/${project}/merge_requests/${opened.number}/merge`, {
      sha: head,
    });
    assert.equal(merged.status, 200);
    assert.deepEqual(await handle.result(), {
      provider: 'gitlab',
      repository: 'group/sub/gitops',
      number: opened.number,
      mergeCommit: merged.body.merge_commit_sha,
    });
    await gitlab.deliveriesSettled();
    assert.deepEqual(
      gitlab.deliveries.map((d) => [d.event, d.status]),
      [
        ['Merge Request Hook', 200],
        ['Merge Request Hook', 200],
      ],
    );
    assert.equal(merged.body.merge_commit_sha, git(dir, '--git-dir', join(dir, 'gitlab.git'), 'rev-parse', 'main'));
  });
});
