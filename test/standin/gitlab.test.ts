// The GitLab stand-in answers as GitLab's REST API v4 does, on a real repository: project ids as encoded paths
// (nested groups), merge request create and its 400/409s, pagination headers, approvals (not by the author), a
// merge that is a real merge commit on the target (a squash too), refused on conflicts, close, notes, the throttle's
// 429, and Merge Request Hook / Push Hook deliveries with X-Gitlab-Token.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gitLabTokenMatches } from '../../api/webhooks';
import { git } from '../helpers/git';
import { bareRepository, pushBranch, startHookReceiver, type HookReceiver } from '../helpers/git-host';
import { startGitLabStandIn, type GitLabApiCaller, type GitLabStandIn } from './gitlab/server';

const BOT = 'glpat-standin-bot-0001';
const ALICE = 'glpat-standin-alice-0002';
const HOOK_TOKEN = 'gitlab-hook-secret-token';
const PROJECT = 'group/sub/gitops';
const ID = encodeURIComponent(PROJECT);

describe('GitLab merge requests stand-in', () => {
  let dir: string;
  let repoPath: string;
  let gitlab: GitLabStandIn;
  let bot: GitLabApiCaller;
  let alice: GitLabApiCaller;
  let receiver: HookReceiver;
  let remote: string;
  const bare = (...args: string[]) => git(dir, '--git-dir', repoPath, ...args);
  const push = (branch: string, files: Record<string, string>) =>
    pushBranch({ url: remote, token: BOT, user: 'oauth2', branch, files });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-gitlab-'));
    repoPath = bareRepository(join(dir, 'gitops.git'), { 'app/config.yaml': 'replicas: 1\n', 'README.md': 'x\n' });
    gitlab = await startGitLabStandIn({ token: BOT, projects: { [PROJECT]: repoPath }, users: { alice: ALICE } });
    bot = gitlab.as('ferry-bot');
    alice = gitlab.as('alice');
    remote = `${gitlab.url}/${PROJECT}.git`;
    receiver = await startHookReceiver();
  });
  after(async () => {
    await gitlab?.close();
    await receiver?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finds the project by its encoded path or its id; 404 Project Not Found otherwise; 401 without a token', async () => {
    const byPath = await bot('GET', `/projects/${ID}`);
    assert.deepEqual([byPath.status, byPath.body.path_with_namespace], [200, PROJECT]);
    assert.equal((await bot('GET', `/projects/${byPath.body.id}`)).body.path_with_namespace, PROJECT);
    const missing = await bot('GET', `/projects/${encodeURIComponent('group/other')}/merge_requests`);
    assert.deepEqual([missing.status, missing.body], [404, { message: '404 Project Not Found' }]);
    const res = await fetch(`${gitlab.api}/projects/${ID}/merge_requests`, { headers: { 'PRIVATE-TOKEN': 'nope' } });
    assert.deepEqual([res.status, await res.json()], [401, { message: '401 Unauthorized' }]);
    const bearer = await fetch(`${gitlab.api}/projects/${ID}`, { headers: { Authorization: `Bearer ${BOT}` } });
    assert.equal(bearer.status, 200);
  });

  it('creates a project hook (201)', async () => {
    const hook = await bot('POST', `/projects/${ID}/hooks`, {
      url: receiver.url,
      token: HOOK_TOKEN,
      merge_requests_events: true,
      push_events: true,
    });
    assert.equal(hook.status, 201);
    assert.equal(hook.body.merge_requests_events, true);
    assert.equal('token' in hook.body, false);
  });

  let mr: any;

  it('opens a merge request (201, GitLab’s fields); the same source and target again is 409 naming the open one', async () => {
    const head = await push('ferry/dev', { 'app/config.yaml': 'replicas: 2\n' });
    const res = await bot('POST', `/projects/${ID}/merge_requests`, {
      source_branch: 'ferry/dev',
      target_branch: 'main',
      title: 'Promote to dev',
      description: 'Ferry',
      labels: 'ferry,dev',
    });
    assert.equal(res.status, 201);
    for (const field of [
      'id',
      'iid',
      'project_id',
      'state',
      'sha',
      'merge_commit_sha',
      'squash_commit_sha',
      'web_url',
      'references',
      'detailed_merge_status',
    ])
      assert.ok(field in res.body, field);
    assert.deepEqual(
      [
        res.body.iid,
        res.body.state,
        res.body.sha,
        res.body.merge_commit_sha,
        res.body.labels,
        res.body.author.username,
      ],
      [1, 'opened', head, null, ['ferry', 'dev'], 'ferry-bot'],
    );
    assert.equal(res.body.web_url, `${gitlab.url}/${PROJECT}/-/merge_requests/1`);
    mr = res.body;
    const again = await bot('POST', `/projects/${ID}/merge_requests`, {
      source_branch: 'ferry/dev',
      target_branch: 'main',
      title: 'x',
    });
    assert.deepEqual(
      [again.status, again.body],
      [409, { message: ['Another open merge request already exists for this source branch: !1'] }],
    );
  });

  it('refuses a missing title (400 error) and a source branch that does not exist (400 message by field)', async () => {
    const noTitle = await bot('POST', `/projects/${ID}/merge_requests`, {
      source_branch: 'ferry/dev',
      target_branch: 'main',
    });
    assert.deepEqual([noTitle.status, noTitle.body], [400, { error: 'title is missing' }]);
    const noBranch = await bot('POST', `/projects/${ID}/merge_requests`, {
      source_branch: 'nope',
      target_branch: 'main',
      title: 't',
    });
    assert.deepEqual([noBranch.status, noBranch.body], [400, { message: { source_branch: ['does not exist'] } }]);
  });

  it('lists with source_branch, target_branch and state filters, and paginates with X-Next-Page and Link', async () => {
    for (const branch of ['p1', 'p2', 'p3']) {
      await push(branch, { [`${branch}.txt`]: branch });
      await bot('POST', `/projects/${ID}/merge_requests`, {
        source_branch: branch,
        target_branch: 'main',
        title: branch,
      });
    }
    const filtered = await bot(
      'GET',
      `/projects/${ID}/merge_requests?source_branch=ferry/dev&target_branch=main&state=opened`,
    );
    assert.deepEqual(
      filtered.body.map((m: any) => m.iid),
      [1],
    );
    const page1 = await bot('GET', `/projects/${ID}/merge_requests?state=opened&per_page=3`);
    assert.deepEqual(
      page1.body.map((m: any) => m.iid),
      [4, 3, 2],
    );
    assert.deepEqual(
      ['x-page', 'x-per-page', 'x-next-page', 'x-total', 'x-total-pages'].map((h) => page1.headers.get(h)),
      ['1', '3', '2', '4', '2'],
    );
    assert.match(page1.headers.get('link')!, /page=2[^>]*>; rel="next"/);
    const page2 = await bot('GET', `/projects/${ID}/merge_requests?state=opened&per_page=3&page=2`);
    assert.deepEqual([page2.body.map((m: any) => m.iid), page2.headers.get('x-next-page')], [[1], '']);
  });

  it('approves: not by the author (401), by alice (201, approved_by), and not twice (401)', async () => {
    assert.deepEqual(await bot('POST', `/projects/${ID}/merge_requests/1/approve`).then((r) => [r.status, r.body]), [
      401,
      { message: '401 Unauthorized' },
    ]);
    const approved = await alice('POST', `/projects/${ID}/merge_requests/1/approve`);
    assert.equal(approved.status, 201);
    assert.deepEqual(
      approved.body.approved_by.map((a: any) => a.user.username),
      ['alice'],
    );
    assert.equal(approved.body.approved, true);
    assert.equal((await alice('POST', `/projects/${ID}/merge_requests/1/approve`)).status, 401);
    const read = await bot('GET', `/projects/${ID}/merge_requests/1/approvals`);
    assert.deepEqual(
      read.body.approved_by.map((a: any) => a.user.username),
      ['alice'],
    );
  });

  it('merges: 409 on a stale sha, then a real merge commit on main reported as merge_commit_sha; 405 again', async () => {
    const stale = await alice('PUT', `/projects/${ID}/merge_requests/1/merge`, { sha: 'f'.repeat(40) });
    assert.deepEqual([stale.status, stale.body.message], [409, `SHA does not match HEAD of source branch: ${mr.sha}`]);
    const mainBefore = bare('rev-parse', 'main');
    const merged = await alice('PUT', `/projects/${ID}/merge_requests/1/merge`, { sha: mr.sha });
    assert.equal(merged.status, 200);
    assert.equal(merged.body.state, 'merged');
    assert.equal(merged.body.merged_by.username, 'alice');
    assert.equal(bare('rev-parse', 'main'), merged.body.merge_commit_sha);
    assert.equal(bare('rev-parse', `${merged.body.merge_commit_sha}^1`), mainBefore);
    assert.equal(bare('rev-parse', `${merged.body.merge_commit_sha}^2`), mr.sha);
    assert.match(
      bare('log', '-1', '--format=%B', merged.body.merge_commit_sha),
      /^Merge branch 'ferry\/dev' into 'main'/,
    );
    assert.deepEqual(await alice('PUT', `/projects/${ID}/merge_requests/1/merge`).then((r) => [r.status, r.body]), [
      405,
      { message: '405 Method Not Allowed' },
    ]);

    await gitlab.deliveriesSettled();
    const hooks = receiver.received.map((d) => ({ headers: d.headers, body: JSON.parse(d.body) }));
    const merge = hooks.find(
      (d) => d.headers['x-gitlab-event'] === 'Merge Request Hook' && d.body.object_attributes.action === 'merge',
    );
    assert.ok(merge, 'a Merge Request Hook with action merge');
    assert.ok(gitLabTokenMatches(HOOK_TOKEN, String(merge.headers['x-gitlab-token'])));
    assert.deepEqual(
      [
        merge.body.object_kind,
        merge.body.project.path_with_namespace,
        merge.body.object_attributes.iid,
        merge.body.object_attributes.merge_commit_sha,
      ],
      ['merge_request', PROJECT, 1, merged.body.merge_commit_sha],
    );
    const pushed = hooks.find(
      (d) => d.headers['x-gitlab-event'] === 'Push Hook' && d.body.after === merged.body.merge_commit_sha,
    );
    assert.equal(pushed?.body.ref, 'refs/heads/main');
  });

  it('squashes when asked: squash_commit_sha is the squash commit, merge_commit_sha the merge of it', async () => {
    const merged = await alice('PUT', `/projects/${ID}/merge_requests/2/merge`, { squash: true });
    assert.equal(merged.status, 200);
    const { squash_commit_sha: squash, merge_commit_sha: merge } = merged.body;
    assert.match(squash, /^[0-9a-f]{40}$/);
    assert.equal(bare('rev-parse', `${merge}^2`), squash);
    assert.equal(bare('rev-parse', 'main'), merge);
  });

  it('refuses to merge a conflicting merge request (422 Branch cannot be merged) and leaves main alone', async () => {
    await push('left', { 'README.md': 'left\n' });
    await push('right', { 'README.md': 'right\n' });
    const left = (
      await bot('POST', `/projects/${ID}/merge_requests`, { source_branch: 'left', target_branch: 'main', title: 'l' })
    ).body;
    const right = (
      await bot('POST', `/projects/${ID}/merge_requests`, { source_branch: 'right', target_branch: 'main', title: 'r' })
    ).body;
    assert.equal((await alice('PUT', `/projects/${ID}/merge_requests/${left.iid}/merge`)).status, 200);
    const main = bare('rev-parse', 'main');
    const conflicting = (await bot('GET', `/projects/${ID}/merge_requests/${right.iid}`)).body;
    assert.deepEqual([conflicting.has_conflicts, conflicting.detailed_merge_status], [true, 'conflict']);
    const refused = await alice('PUT', `/projects/${ID}/merge_requests/${right.iid}/merge`);
    assert.deepEqual([refused.status, refused.body], [422, { message: 'Branch cannot be merged' }]);
    assert.equal(bare('rev-parse', 'main'), main);
  });

  it('closes with state_event close and takes notes; a close of a merged merge request changes nothing', async () => {
    const note = await bot('POST', `/projects/${ID}/merge_requests/3/notes`, { body: 'Aborted by alice in Ferry' });
    assert.deepEqual([note.status, note.body.system, note.body.noteable_iid], [201, false, 3]);
    const closed = await bot('PUT', `/projects/${ID}/merge_requests/3`, { state_event: 'close' });
    assert.deepEqual([closed.status, closed.body.state, closed.body.merge_commit_sha], [200, 'closed', null]);
    const notes = (await bot('GET', `/projects/${ID}/merge_requests/3/notes?sort=asc`)).body;
    assert.deepEqual(
      notes.map((n: any) => [n.body, n.system]),
      [
        ['Aborted by alice in Ferry', false],
        ['closed', true],
      ],
    );
    const merged = await bot('PUT', `/projects/${ID}/merge_requests/1`, { state_event: 'close' });
    assert.equal(merged.body.state, 'merged');
  });

  it('throttles like GitLab: 429, text "Retry later", Retry-After and RateLimit-* headers', async () => {
    gitlab.rateLimitNext(1, 4);
    const limited = await bot('GET', `/projects/${ID}/merge_requests/1`);
    assert.deepEqual(
      [limited.status, limited.body, limited.headers.get('retry-after'), limited.headers.get('ratelimit-remaining')],
      [429, 'Retry later\n', '4', '0'],
    );
    assert.equal((await bot('GET', `/projects/${ID}/merge_requests/1`)).status, 200);
  });
});
