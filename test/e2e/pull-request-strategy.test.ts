// The pull-request strategy end to end on the real Temporal dev server, through the HTTP API: Ferry pushes its
// promotion branch over git's smart HTTP to the host (the GitHub and GitLab stand-ins, which serve real bare
// repositories and follow the hosts' REST wire formats), opens the pull request, and waits; a person reviews and
// merges it on the host; the host's webhook wakes the promotion (or Ferry's polling finds the merge), and the
// stage's commit is the merge commit. A pull request closed without merging fails the promotion; an aborted
// promotion closes its pull request with a comment; with approvalOnHost the reviews are the stage's approval.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { staticWebhookSecrets } from '../../api/webhooks';
import { exampleSources } from '../../dev/example';
import type { PipelineInput } from '../../pipeline/schema';
import type { PromotionStatus } from '../../workflows/messages';
import { git } from '../helpers/git';
import { bareRepository } from '../helpers/git-host';
import { until } from '../helpers/processes';
import { startStack, type Stack } from '../helpers/stack';
import { startGitHubStandIn, type GitHubStandIn } from '../standin/github/server';
import { startGitLabStandIn, type GitLabStandIn } from '../standin/gitlab/server';

const ALICE = 'tok-alice-pull-requests-0123456789';
const GITHUB_TOKEN = 'ghs_ferry_bot_pull_request_strategy';
const GITLAB_TOKEN = 'glpat-ferry-bot-pull-request-strategy';
const GITHUB_HOOK_SECRET = 'github-hook-secret-pull-request-strategy';

describe('the pull-request strategy end to end (GitHub and GitLab stand-ins, real git, real Temporal)', () => {
  let stack: Stack;
  let github: GitHubStandIn;
  let gitlab: GitLabStandIn;
  let githubRepo: string;
  let gitlabRepo: string;

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${stack.api.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ALICE}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const promotion = async (id: string): Promise<PromotionStatus> =>
    (await api('GET', `/api/v1/promotions/${encodeURIComponent(id)}`)).body as PromotionStatus;
  const reaches = (id: string, phases: string[], what = phases.join(' or ')): Promise<PromotionStatus> =>
    until(
      `${id} to be ${what}`,
      async () => {
        const status = await promotion(id);
        return phases.includes(status.phase) ? status : undefined;
      },
      120_000,
    );
  const apply = async (pipeline: PipelineInput) => {
    const applied = await api('PUT', `/api/v1/pipelines/${pipeline.metadata.name}`, pipeline);
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
  };
  /** Registers freight and asks for the stage; returns the promotion id. */
  const promote = async (pipeline: string, stage: string, version: string): Promise<string> => {
    const freight = await api('POST', `/api/v1/pipelines/${pipeline}/freight`, { artifacts: { guestbook: version } });
    assert.equal(freight.status, 201, JSON.stringify(freight.body));
    const requested = await api('POST', `/api/v1/pipelines/${pipeline}/stages/${stage}/promotions`, {
      freight: freight.body.id,
    });
    assert.equal(requested.status, 201, JSON.stringify(requested.body));
    return requested.body.id as string;
  };

  before(async () => {
    stack = await startStack({
      name: 'pull-request-strategy',
      tokens: { [ALICE]: 'alice' },
      secrets: { github: GITHUB_TOKEN, gitlab: GITLAB_TOKEN },
      api: {
        admins: ['alice'],
        webhooks: { secrets: staticWebhookSecrets({ 'github-webhook': GITHUB_HOOK_SECRET }) },
      },
    });
    githubRepo = bareRepository(join(stack.dir, 'github.git'), exampleSources());
    const kustomization = 'images:\n  - name: registry.example.com/team/guestbook\n    newTag: 0.0.0\n';
    gitlabRepo = bareRepository(join(stack.dir, 'gitlab.git'), {
      'envs/prod/kustomization.yaml': kustomization,
      'envs/qa/kustomization.yaml': kustomization,
    });
    github = await startGitHubStandIn({
      token: GITHUB_TOKEN,
      repositories: [],
      git: { 'org/gitops': githubRepo },
      users: { alice: 'ghp_alice_token', bob: 'ghp_bob_token' },
    });
    gitlab = await startGitLabStandIn({
      token: GITLAB_TOKEN,
      projects: { 'group/gitops': gitlabRepo },
      users: { alice: 'glpat-alice', bob: 'glpat-bob' },
    });
    const hook = await github.as('ferry-bot')('POST', '/repos/org/gitops/hooks', {
      name: 'web',
      events: ['pull_request'],
      config: { url: `${stack.api.url}/webhooks/github`, content_type: 'json', secret: GITHUB_HOOK_SECRET },
    });
    assert.equal(hook.status, 201);
  });

  after(async () => {
    await github?.close();
    await gitlab?.close();
    await stack?.close();
  });

  const githubPipeline = (name: string, pollInterval: string): PipelineInput => ({
    apiVersion: 'ferry.dev/v1alpha1',
    kind: 'Pipeline',
    metadata: { name },
    spec: {
      repo: { url: `${github.url}/org/gitops.git`, branch: 'main', credentials: 'github' },
      artifacts: [{ name: 'guestbook', image: 'registry.example.com/team/guestbook' }],
      stages: [
        {
          name: 'prod',
          render: {
            strategy: 'pull-request',
            from: 'apps/guestbook/overlays/prod',
            to: `env/${name}`,
            pullRequest: { provider: 'github', api: github.url, pollInterval, labels: ['release'] },
          },
        },
      ],
      triggers: { github: [{ repository: 'org/gitops', secret: 'github-webhook', events: ['pull_request'] }] },
    },
  });

  it('GitHub: opens the pull request, the merge webhook wakes the promotion, and the stage deploys the merge commit', async () => {
    // Polling once an hour: only the host's webhook can wake this promotion in time.
    await apply(githubPipeline('shop', '1h'));
    const id = await promote('shop', 'prod', '1.4.2');
    const waiting = await reaches(id, ['AwaitingMerge']);
    const pr = waiting.pullRequest!;
    assert.equal(pr.provider, 'github');
    assert.equal(pr.state, 'open');
    assert.equal(pr.head, `ferry/shop/prod/${waiting.freight.id}`);
    assert.equal(pr.base, 'env/shop');
    const opened = github.pulls.find((p) => p.number === pr.number)!;
    assert.match(opened.title, /^Promote [0-9a-f]+ to shop\/prod$/);
    assert.deepEqual(opened.labels, ['release']);
    assert.equal(git(githubRepo, 'ls-tree', '--name-only', 'env/shop'), '', 'the stage branch is untouched (empty)');
    assert.match(git(githubRepo, 'show', `${pr.head}:deployment.yaml`), /guestbook:1\.4\.2/);

    const merged = await github.as('alice')('PUT', `/repos/org/gitops/pulls/${pr.number}/merge`, {});
    assert.equal(merged.status, 200, JSON.stringify(merged.body));
    const done = await reaches(id, ['Succeeded', 'Failed', 'Aborted']);
    assert.equal(done.phase, 'Succeeded', done.error);
    assert.equal(done.commit, merged.body.sha);
    assert.equal(git(githubRepo, 'rev-parse', 'env/shop'), merged.body.sha);
    assert.equal(done.pullRequest?.state, 'merged');
    assert.equal(done.pullRequest?.mergeCommit, merged.body.sha);
    assert.deepEqual(
      done.steps.map((s) => [s.name, s.status]),
      [
        ['queue', 'Succeeded'],
        ['preflight', 'Succeeded'],
        ['render', 'Succeeded'],
        ['pull-request', 'Succeeded'],
        ['merge', 'Succeeded'],
      ],
    );
    await github.deliveriesSettled();
    assert.ok(
      github.deliveries.some(
        (d) => d.event === 'pull_request' && /"signalled":\["promotion\/shop\/prod\//.test(d.response ?? ''),
      ),
      'the merge delivery signalled the promotion',
    );
  });

  it('GitHub: a pull request closed without merging fails the promotion with PullRequestClosed (found by polling)', async () => {
    await apply(githubPipeline('closed', '1s'));
    const id = await promote('closed', 'prod', '2.0.0');
    const waiting = await reaches(id, ['AwaitingMerge']);
    const closed = await github.as('alice')('PATCH', `/repos/org/gitops/pulls/${waiting.pullRequest!.number}`, {
      state: 'closed',
    });
    assert.equal(closed.status, 200);
    const done = await reaches(id, ['Succeeded', 'Failed']);
    assert.equal(done.phase, 'Failed');
    assert.equal(done.reason, 'PullRequestClosed');
    assert.match(done.error ?? '', /was closed without being merged/);
    assert.equal(done.pullRequest?.state, 'closed');
    assert.equal(git(githubRepo, 'ls-tree', '--name-only', 'env/closed'), '', 'nothing reached the stage branch');
  });

  it('GitHub: aborting a promotion that waits for its merge closes the pull request with a comment', async () => {
    await apply(githubPipeline('aborted', '1h'));
    const id = await promote('aborted', 'prod', '3.0.0');
    const waiting = await reaches(id, ['AwaitingMerge']);
    const aborted = await api('POST', `/api/v1/promotions/${encodeURIComponent(id)}/abort`, { comment: 'wrong build' });
    assert.equal(aborted.status, 200, JSON.stringify(aborted.body));
    const done = await reaches(id, ['Aborted']);
    assert.equal(done.pullRequest?.state, 'closed');
    const onHost = github.pulls.find((p) => p.number === waiting.pullRequest!.number)!;
    assert.equal(onHost.state, 'closed');
    const comments = await github.as('alice')('GET', `/repos/org/gitops/issues/${onHost.number}/comments`);
    assert.deepEqual(
      comments.body.map((c: { body: string }) => c.body),
      ['Aborted by alice in Ferry: wrong build.'],
    );
  });

  const gitlabPipeline = (name: string, dir: string): PipelineInput => ({
    apiVersion: 'ferry.dev/v1alpha1',
    kind: 'Pipeline',
    metadata: { name },
    spec: {
      repo: { url: `${gitlab.url}/group/gitops.git`, branch: 'main', credentials: 'gitlab' },
      artifacts: [{ name: 'guestbook', image: 'registry.example.com/team/guestbook' }],
      stages: [
        {
          name: 'prod',
          approval: { required: 1, approvers: ['alice', 'bob'] },
          render: {
            strategy: 'pull-request',
            to: dir,
            pullRequest: {
              provider: 'gitlab',
              api: gitlab.api,
              target: 'directory',
              pollInterval: '1s',
              approvalOnHost: true,
            },
          },
        },
      ],
    },
  });

  it('GitLab, into a directory on main, approvals on the host: an approving review by an approver is the stage’s approval', async () => {
    await apply(gitlabPipeline('trunk', 'envs/prod'));
    const id = await promote('trunk', 'prod', '4.0.0');
    // No Ferry approval first: the merge request opens at once.
    const waiting = await reaches(id, ['AwaitingMerge']);
    assert.deepEqual(
      waiting.steps.map((s) => s.name),
      ['queue', 'preflight', 'render', 'pull-request', 'merge'],
    );
    const iid = waiting.pullRequest!.number;
    const project = encodeURIComponent('group/gitops');
    assert.equal((await gitlab.as('bob')('POST', `/projects/${project}/merge_requests/${iid}/approve`)).status, 201);
    const merged = await gitlab.as('alice')('PUT', `/projects/${project}/merge_requests/${iid}/merge`, {});
    assert.equal(merged.status, 200, JSON.stringify(merged.body));
    const done = await reaches(id, ['Succeeded', 'Failed']);
    assert.equal(done.phase, 'Succeeded', done.error);
    assert.deepEqual(
      done.approvals.map((a) => a.user),
      ['bob'],
    );
    assert.equal(done.commit, git(gitlabRepo, 'rev-parse', 'main'));
    assert.match(git(gitlabRepo, 'show', 'main:envs/prod/kustomization.yaml'), /newTag: 4\.0\.0/);
  });

  it('GitLab: merged without an approving review by an approver fails with PullRequestNotApproved', async () => {
    await apply(gitlabPipeline('unreviewed', 'envs/qa'));
    const id = await promote('unreviewed', 'prod', '5.0.0');
    const waiting = await reaches(id, ['AwaitingMerge']);
    const project = encodeURIComponent('group/gitops');
    const merged = await gitlab.as('alice')(
      'PUT',
      `/projects/${project}/merge_requests/${waiting.pullRequest!.number}/merge`,
      {},
    );
    assert.equal(merged.status, 200, JSON.stringify(merged.body));
    const done = await reaches(id, ['Succeeded', 'Failed']);
    assert.equal(done.phase, 'Failed');
    assert.equal(done.reason, 'PullRequestNotApproved');
    assert.match(done.error ?? '', /merged with 0 of the 1 approval the stage needs from alice, bob/);
  });
});
