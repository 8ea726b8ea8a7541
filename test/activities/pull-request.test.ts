// The pull-request activities against the GitHub and GitLab stand-ins, which sit on real repositories: opening
// twice gives one pull request, its state follows what people do on the host (review, merge, close), a merge is
// reported with the real merge commit on the base branch, closing comments once, and refusals say what to check
// without the token. A rate limit is retried by Temporal after the host's Retry-After (on a real dev server).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import {
  createPullRequestActivities,
  locatePullRequests,
  PullRequestFailure,
  type PullRequestTarget,
} from '../../activities/pull-request';
import { createSecretResolver } from '../../activities/secrets';
import type { PullRequestSpec } from '../../pipeline/schema';
import { git } from '../helpers/git';
import { bareRepository, pushBranch } from '../helpers/git-host';
import type { readPullRequestStatus } from '../helpers/pull-request-status-workflow';
import { createTemporalTestEnv } from '../helpers/temporal';
import { startGitHubStandIn, type ApiCaller, type GitHubStandIn } from '../standin/github/server';
import { startGitLabStandIn, type GitLabApiCaller, type GitLabStandIn } from '../standin/gitlab/server';

const GITHUB_TOKEN = 'ghs_ferry_bot_token_for_the_provider_test';
const GITLAB_TOKEN = 'glpat-ferry-bot-token-for-the-provider-test';
const PEOPLE = ['alice', 'bob', 'carol', 'dave'];

async function failure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a failure');
}

function pullRequestSpec(
  provider: PullRequestSpec['provider'],
  fields: Partial<PullRequestSpec> = {},
): PullRequestSpec {
  return { target: 'branch', provider, pollInterval: '30s', timeout: '168h', approvalOnHost: false, ...fields };
}

describe('where pull requests go (locatePullRequests)', () => {
  it('reads owner/name, nested GitLab groups and ssh URLs, and the documented default APIs', () => {
    assert.deepEqual(locatePullRequests('github', 'https://github.com/org/gitops.git'), {
      provider: 'github',
      api: 'https://api.github.com',
      repository: 'org/gitops',
    });
    assert.deepEqual(locatePullRequests('gitlab', 'ssh://git@gitlab.com/group/sub/gitops.git'), {
      provider: 'gitlab',
      api: 'https://gitlab.com/api/v4',
      repository: 'group/sub/gitops',
    });
    assert.deepEqual(locatePullRequests('gitea', 'ssh://git@git.example.com:2222/org/gitops.git'), {
      provider: 'gitea',
      api: 'https://git.example.com/api/v1',
      repository: 'org/gitops',
    });
    assert.deepEqual(locatePullRequests('gitea', 'http://127.0.0.1:3000/org/gitops'), {
      provider: 'gitea',
      api: 'http://127.0.0.1:3000/api/v1',
      repository: 'org/gitops',
    });
    // A host under a path prefix: the API's prefix is not part of the repository.
    assert.equal(
      locatePullRequests('gitlab', 'https://example.com/gitlab/group/app.git', 'https://example.com/gitlab/api/v4/')
        .repository,
      'group/app',
    );
  });

  it('refuses a file:// URL and a path that is not owner/name, non-retryably, saying what it expected', () => {
    for (const [provider, url, expected] of [
      ['github', 'file:///srv/gitops.git', /needs the repository's URL on the host/],
      ['github', 'https://github.com/org/sub/gitops.git', /expected a github repository path owner\/name/],
      ['gitlab', 'https://gitlab.com/gitops.git', /group\/project/],
    ] as const) {
      assert.throws(
        () => locatePullRequests(provider, url),
        (err: unknown) =>
          err instanceof ApplicationFailure &&
          err.nonRetryable === true &&
          err.type === PullRequestFailure.InvalidConfig &&
          expected.test(err.message),
      );
    }
  });
});

describe('pull-request activities against the GitHub stand-in', () => {
  let dir: string;
  let repoPath: string;
  let github: GitHubStandIn;
  let as: Record<string, ApiCaller>;
  const activities = createPullRequestActivities({
    secrets: createSecretResolver({
      env: { FERRY_SECRET_GITOPS_TOKEN: GITHUB_TOKEN, FERRY_SECRET_REVOKED_TOKEN: 'ghp_revoked_token_value_0000' },
    }),
    requestTimeoutMs: 5000,
  });
  let target: PullRequestTarget;
  const main = () => git(dir, '--git-dir', repoPath, 'rev-parse', 'main');
  const promotionBranch = (branch: string, replicas: number) =>
    pushBranch({
      url: `${github.url}/org/gitops.git`,
      token: GITHUB_TOKEN,
      branch,
      files: { 'env/config.yaml': `replicas: ${replicas}\n` },
    });
  const open = (head: string) =>
    activities.openPullRequest({ ...target, head, base: 'main', title: `Promote ${head}`, body: 'By Ferry' });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-pr-github-'));
    repoPath = bareRepository(join(dir, 'gitops.git'), { 'env/config.yaml': 'replicas: 1\n' });
    github = await startGitHubStandIn({
      token: GITHUB_TOKEN,
      repositories: [],
      git: { 'org/gitops': repoPath },
      users: Object.fromEntries(PEOPLE.map((p) => [p, `ghp_${p}_token`])),
    });
    as = Object.fromEntries(['ferry-bot', ...PEOPLE].map((p) => [p, github.as(p)]));
    target = {
      pipeline: 'shop',
      stage: 'prod',
      repo: { url: `${github.url}/org/gitops.git`, branch: 'main', credentials: 'gitops' },
      pullRequest: pullRequestSpec('github', { api: github.url, labels: ['ferry', 'prod'] }),
    };
  });
  after(async () => {
    await github?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let number: number;
  let head: string;

  it('opens a pull request once: a second open finds the open one (created false), with the labels on it', async () => {
    head = await promotionBranch('ferry/prod/1', 3);
    const opened = await open('ferry/prod/1');
    assert.deepEqual(opened, {
      provider: 'github',
      repository: 'org/gitops',
      number: 1,
      url: `${github.url}/org/gitops/pull/1`,
      created: true,
    });
    const again = await open('ferry/prod/1');
    assert.deepEqual(again, { ...opened, created: false });
    assert.equal(github.pulls.length, 1);
    assert.deepEqual(github.pulls[0].labels, ['ferry', 'prod']);
    assert.equal(github.pulls[0].author, 'ferry-bot');
    number = opened.number;
  });

  it('reports it open, then approved by the reviews that stand, then merged at the real merge commit on main', async () => {
    const status = () => activities.pullRequestStatus({ ...target, number });
    assert.deepEqual(await status(), {
      state: 'open',
      headCommit: head,
      approvedBy: [],
      url: `${github.url}/org/gitops/pull/1`,
    });
    await as.alice('POST', '/repos/org/gitops/pulls/1/reviews', { event: 'APPROVE' });
    await as.bob('POST', '/repos/org/gitops/pulls/1/reviews', { event: 'APPROVE' });
    await as.bob('POST', '/repos/org/gitops/pulls/1/reviews', { event: 'REQUEST_CHANGES', body: 'wait' });
    await as.alice('POST', '/repos/org/gitops/pulls/1/reviews', { event: 'COMMENT', body: 'still fine' });
    const reviewed = await status();
    assert.deepEqual([reviewed.state, reviewed.approvedBy], ['open', ['alice']]);

    const merged = await as.alice('PUT', '/repos/org/gitops/pulls/1/merge', { sha: head });
    assert.equal(merged.status, 200);
    const done = await status();
    assert.equal(done.state, 'merged');
    assert.equal(done.mergeCommit, main());
    assert.equal(done.mergeCommit, merged.body.sha);
    assert.equal(git(dir, '--git-dir', repoPath, 'rev-parse', `${done.mergeCommit}^2`), head);
    assert.deepEqual(done.approvedBy, ['alice']);
  });

  it('reports a merged pull whose merge commit GitHub has not written yet as not merged yet, not as an error', async () => {
    github.hideMergeCommit('org/gitops', number, 1);
    const early = await activities.pullRequestStatus({ ...target, number });
    assert.deepEqual([early.state, early.mergeCommit], ['open', undefined]);
    const later = await activities.pullRequestStatus({ ...target, number });
    assert.deepEqual([later.state, later.mergeCommit], ['merged', main()]);
  });

  it('reports a pull closed on GitHub without merging as closed', async () => {
    await promotionBranch('ferry/prod/2', 4);
    const { number: second } = await open('ferry/prod/2');
    assert.equal((await as.carol('PATCH', `/repos/org/gitops/pulls/${second}`, { state: 'closed' })).status, 200);
    const closed = await activities.pullRequestStatus({ ...target, number: second });
    assert.deepEqual([closed.state, closed.mergeCommit], ['closed', undefined]);
    // And a new open from that branch makes a new pull request rather than reviving the closed one.
    const reopened = await open('ferry/prod/2');
    assert.equal(reopened.created, true);
    assert.notEqual(reopened.number, second);
  });

  it('closes with the comment once; closing again changes nothing; a merged pull is left merged', async () => {
    await promotionBranch('ferry/prod/3', 5);
    const { number: third } = await open('ferry/prod/3');
    const comment = 'Aborted by alice in Ferry';
    assert.deepEqual(await activities.closePullRequest({ ...target, number: third, comment }), { state: 'closed' });
    assert.deepEqual(await activities.closePullRequest({ ...target, number: third, comment }), { state: 'closed' });
    const pull = github.pulls.find((p) => p.number === third)!;
    assert.deepEqual(
      [pull.state, pull.merged, pull.comments.map((c) => c.body)],
      ['closed', false, ['Aborted by alice in Ferry']],
    );
    assert.deepEqual(await activities.closePullRequest({ ...target, number, comment }), { state: 'merged' });
    assert.deepEqual(
      github.pulls.find((p) => p.number === number)!.comments,
      [],
      'no comment on the merged pull request',
    );
  });

  it('reads approvals from reviews over two pages (Link rel=next to /repositories/{id}/…)', async () => {
    await promotionBranch('ferry/prod/4', 6);
    const { number: fourth } = await open('ferry/prod/4');
    const review = (who: string, event: string, body = '') =>
      as[who]('POST', `/repos/org/gitops/pulls/${fourth}/reviews`, { event, ...(body ? { body } : {}) });
    await review('alice', 'APPROVE');
    await review('dave', 'APPROVE');
    for (let i = 0; i < 100; i++) await review('bob', 'COMMENT', `comment ${i}`);
    await review('carol', 'APPROVE'); // the 103rd review: on page two
    await review('dave', 'REQUEST_CHANGES', 'no'); // withdraws dave's approval from page one
    const before = github.requests.length;
    const status = await activities.pullRequestStatus({ ...target, number: fourth });
    assert.deepEqual(status.approvedBy, ['alice', 'carol']);
    const reads = github.requests.slice(before).filter((r) => /\/reviews/.test(r.path));
    assert.deepEqual(
      reads.map((r) => r.path.replace(/\/repositories\/\d+\//, '/repositories/ID/')),
      [
        `/repos/org/gitops/pulls/${fourth}/reviews?per_page=100`,
        `/repositories/ID/pulls/${fourth}/reviews?per_page=100&page=2`,
      ],
    );
  });

  it('fails a refused token non-retryably, naming host, repository and what to check, never the token', async () => {
    const err = await failure(
      activities.pullRequestStatus({
        ...target,
        pullRequest: { ...target.pullRequest, credentials: 'revoked' },
        number,
      }),
    );
    assert.equal(err.nonRetryable, true);
    assert.equal(err.type, PullRequestFailure.Unauthorized);
    assert.match(err.message, /pipeline "shop" stage "prod": GitHub 127\.0\.0\.1:\d+ repository org\/gitops/);
    assert.match(err.message, /GET \/repos\/org\/gitops\/pulls\/1 answered 401 \(Bad credentials\)/);
    assert.match(err.message, /credential "revoked"; check that it is valid/);
    assert.match(err.message, /Pull requests: write/);
    assert.doesNotMatch(err.message, /ghp_revoked_token_value_0000/);
    assert.doesNotMatch(JSON.stringify(err), /ghp_revoked_token_value_0000/);
  });

  it('fails a repository GitHub does not know with 404, non-retryably, saying what to check', async () => {
    const err = await failure(
      activities.pullRequestStatus({
        ...target,
        repo: { ...target.repo, url: `${github.url}/org/missing.git` },
        number: 1,
      }),
    );
    assert.deepEqual([err.nonRetryable, err.type], [true, PullRequestFailure.NotFound]);
    assert.match(err.message, /repository org\/missing: GET \/repos\/org\/missing\/pulls\/1 answered 404/);
    assert.match(err.message, /check the repository \(from spec\.repo\.url\), the API URL/);
  });

  it('answers a rate limit with a retryable failure that asks Temporal to wait the Retry-After', async () => {
    github.rateLimitNext('secondary', 1, 3);
    const err = await failure(activities.pullRequestStatus({ ...target, number }));
    assert.deepEqual([err.nonRetryable, err.type, err.nextRetryDelay], [false, PullRequestFailure.RateLimited, 3000]);
    github.rateLimitNext('primary', 1, 5);
    const primary = await failure(activities.pullRequestStatus({ ...target, number }));
    assert.equal(primary.type, PullRequestFailure.RateLimited);
    assert.ok(
      Number(primary.nextRetryDelay) >= 3000 && Number(primary.nextRetryDelay) <= 6000,
      String(primary.nextRetryDelay),
    );
  });

  it('needs a credential: a stage without one fails at once, saying where to name it', async () => {
    const err = await failure(
      activities.openPullRequest({
        ...target,
        repo: { url: target.repo.url, branch: 'main' },
        head: 'x',
        base: 'main',
        title: 't',
        body: '',
      }),
    );
    assert.deepEqual([err.nonRetryable, err.type], [true, PullRequestFailure.InvalidConfig]);
    assert.match(err.message, /render\.pullRequest\.credentials \(or spec\.repo\.credentials\)/);
  });

  describe('retried by Temporal (real dev server)', () => {
    let env: TestWorkflowEnvironment;
    let worker: Worker;
    let running: Promise<void>;
    const QUEUE = 'ferry-pull-request-activities';

    before(async () => {
      env = await createTemporalTestEnv();
      worker = await Worker.create({
        connection: env.nativeConnection,
        taskQueue: QUEUE,
        workflowsPath: require.resolve('../helpers/pull-request-status-workflow'),
        activities,
      });
      running = worker.run();
    });
    after(async () => {
      worker?.shutdown();
      await running;
      await env?.teardown();
    });

    it('waits the Retry-After of a 429 before the next attempt, then reads the state', async () => {
      const RETRY_AFTER_SECONDS = 2;
      github.rateLimitNext('secondary', 1, RETRY_AFTER_SECONDS);
      const before = github.requests.length;
      const state = await env.client.workflow.execute<typeof readPullRequestStatus>('readPullRequestStatus', {
        taskQueue: QUEUE,
        workflowId: 'read-org-gitops-1',
        args: [{ ...target, number }],
      });
      assert.deepEqual([state.state, state.mergeCommit], ['merged', main()]);
      const pulls = github.requests.slice(before).filter((r) => r.path === '/repos/org/gitops/pulls/1');
      assert.deepEqual(
        pulls.map((r) => r.status),
        [429, 200],
      );
      const waited = pulls[1].at - pulls[0].at;
      // The policy's own interval is 50 ms: only the Retry-After can make the second attempt wait this long.
      assert.ok(waited >= RETRY_AFTER_SECONDS * 1000, `the retry came ${waited} ms after the 429`);
    });
  });
});

describe('pull-request activities against the GitLab stand-in', () => {
  let dir: string;
  let repoPath: string;
  let gitlab: GitLabStandIn;
  let as: Record<string, GitLabApiCaller>;
  const activities = createPullRequestActivities({
    secrets: createSecretResolver({
      env: { FERRY_SECRET_GITLAB_TOKEN: GITLAB_TOKEN, FERRY_SECRET_EXPIRED_TOKEN: 'glpat-expired-token-value' },
    }),
    requestTimeoutMs: 5000,
  });
  let target: PullRequestTarget;
  const PROJECT = 'platform/deploy/gitops';
  const main = () => git(dir, '--git-dir', repoPath, 'rev-parse', 'main');
  const promotionBranch = (branch: string, replicas: number) =>
    pushBranch({
      url: `${gitlab.url}/${PROJECT}.git`,
      token: GITLAB_TOKEN,
      user: 'oauth2',
      branch,
      files: { 'env/config.yaml': `replicas: ${replicas}\n` },
    });
  const open = (head: string) =>
    activities.openPullRequest({ ...target, head, base: 'main', title: `Promote ${head}`, body: 'By Ferry' });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-pr-gitlab-'));
    repoPath = bareRepository(join(dir, 'gitops.git'), { 'env/config.yaml': 'replicas: 1\n' });
    gitlab = await startGitLabStandIn({
      token: GITLAB_TOKEN,
      projects: { [PROJECT]: repoPath },
      users: Object.fromEntries(PEOPLE.map((p) => [p, `glpat-${p}`])),
    });
    as = Object.fromEntries(['ferry-bot', ...PEOPLE].map((p) => [p, gitlab.as(p)]));
    target = {
      pipeline: 'shop',
      stage: 'staging',
      repo: { url: `${gitlab.url}/${PROJECT}.git`, branch: 'main' },
      pullRequest: pullRequestSpec('gitlab', { api: gitlab.api, credentials: 'gitlab', labels: ['ferry'] }),
    };
  });
  after(async () => {
    await gitlab?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const ID = encodeURIComponent(PROJECT);
  let iid: number;
  let head: string;

  it('opens a merge request once in a nested group, addressed by the encoded project path', async () => {
    head = await promotionBranch('ferry/staging/1', 2);
    const opened = await open('ferry/staging/1');
    assert.deepEqual(opened, {
      provider: 'gitlab',
      repository: PROJECT,
      number: 1,
      url: `${gitlab.url}/${PROJECT}/-/merge_requests/1`,
      created: true,
    });
    assert.deepEqual(await open('ferry/staging/1'), { ...opened, created: false });
    assert.equal(gitlab.mergeRequests.length, 1);
    assert.deepEqual(gitlab.mergeRequests[0].labels, ['ferry']);
    assert.ok(gitlab.requests.some((r) => r.path.startsWith(`/api/v4/projects/${ID}/merge_requests`)));
    iid = opened.number;
  });

  it('reports open, approved by the approvals API, then merged at the real merge commit on main', async () => {
    const status = () => activities.pullRequestStatus({ ...target, number: iid });
    assert.deepEqual(await status(), {
      state: 'open',
      headCommit: head,
      approvedBy: [],
      url: `${gitlab.url}/${PROJECT}/-/merge_requests/1`,
    });
    await as.carol('POST', `/projects/${ID}/merge_requests/1/approve`);
    await as.alice('POST', `/projects/${ID}/merge_requests/1/approve`);
    assert.deepEqual((await status()).approvedBy, ['alice', 'carol']);
    const merged = await as.alice('PUT', `/projects/${ID}/merge_requests/1/merge`, { sha: head });
    assert.equal(merged.status, 200);
    const done = await status();
    assert.deepEqual([done.state, done.mergeCommit], ['merged', main()]);
    assert.equal(git(dir, '--git-dir', repoPath, 'rev-parse', `${done.mergeCommit}^2`), head);
  });

  it('reports a squashed merge at its merge commit, and a merge request closed without merging as closed', async () => {
    await promotionBranch('ferry/staging/2', 3);
    const { number: second } = await open('ferry/staging/2');
    await as.bob('PUT', `/projects/${ID}/merge_requests/${second}/merge`, { squash: true });
    const squashed = await activities.pullRequestStatus({ ...target, number: second });
    assert.deepEqual([squashed.state, squashed.mergeCommit], ['merged', main()]);

    await promotionBranch('ferry/staging/3', 4);
    const { number: third } = await open('ferry/staging/3');
    await as.bob('PUT', `/projects/${ID}/merge_requests/${third}`, { state_event: 'close' });
    const closed = await activities.pullRequestStatus({ ...target, number: third });
    assert.deepEqual([closed.state, closed.mergeCommit], ['closed', undefined]);
  });

  it('closes with a note once (GitLab’s own system notes aside); a merged merge request is left merged', async () => {
    await promotionBranch('ferry/staging/4', 5);
    const { number: fourth } = await open('ferry/staging/4');
    const comment = 'Aborted by alice in Ferry';
    assert.deepEqual(await activities.closePullRequest({ ...target, number: fourth, comment }), { state: 'closed' });
    assert.deepEqual(await activities.closePullRequest({ ...target, number: fourth, comment }), { state: 'closed' });
    const mr = gitlab.mergeRequests.find((m) => m.iid === fourth)!;
    assert.equal(mr.state, 'closed');
    assert.deepEqual(
      mr.notes.map((n) => [n.body, n.system]),
      [
        [comment, false],
        ['closed', true],
      ],
    );
    assert.deepEqual(await activities.closePullRequest({ ...target, number: iid, comment }), { state: 'merged' });
  });

  it('fails a refused token non-retryably with what to check, never the token; retries the throttle after Retry-After', async () => {
    const err = await failure(
      activities.pullRequestStatus({
        ...target,
        pullRequest: { ...target.pullRequest, credentials: 'expired' },
        number: iid,
      }),
    );
    assert.deepEqual([err.nonRetryable, err.type], [true, PullRequestFailure.Unauthorized]);
    assert.match(err.message, /GitLab 127\.0\.0\.1:\d+ repository platform\/deploy\/gitops/);
    assert.match(err.message, /answered 401 \(401 Unauthorized\)/);
    assert.match(err.message, /scope api and at least the Developer role/);
    assert.doesNotMatch(JSON.stringify(err), /glpat-expired-token-value/);

    gitlab.rateLimitNext(1, 7);
    const limited = await failure(activities.pullRequestStatus({ ...target, number: iid }));
    assert.deepEqual(
      [limited.nonRetryable, limited.type, limited.nextRetryDelay],
      [false, PullRequestFailure.RateLimited, 7000],
    );
    assert.match(limited.message, /answered 429 \(Retry later\); rate limited, retrying in 7s/);
  });
});
