// The GitHub stand-in's pull requests answer as GitHub does, on a real repository: git over HTTP, create and its
// 422s, filters, the test merge of an open pull, reviews and their pagination, a merge that is a real merge commit
// on the base branch (and refused on conflicts), close, labels, comments, and signed webhook deliveries.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyGitHubDelivery } from '../../api/webhooks';
import { git } from '../helpers/git';
import { bareRepository, gitWithToken, pushBranch, startHookReceiver, type HookReceiver } from '../helpers/git-host';
import { startGitHubStandIn, type ApiCaller, type GitHubStandIn } from './github/server';

const BOT = 'ghs_standin_bot_token_0001';
const ALICE = 'ghp_standin_alice_token_0002';
const BOB = 'ghp_standin_bob_token_0003';
const HOOK_SECRET = 'hook-secret-for-the-standin';

describe('GitHub pull requests stand-in', () => {
  let dir: string;
  let repoPath: string;
  let github: GitHubStandIn;
  let bot: ApiCaller;
  let alice: ApiCaller;
  let receiver: HookReceiver;
  let remote: string;
  const bare = (...args: string[]) => git(dir, '--git-dir', repoPath, ...args);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-github-pulls-'));
    repoPath = bareRepository(join(dir, 'octo', 'gitops.git'), {
      'app/config.yaml': 'replicas: 1\n',
      'README.md': 'x\n',
    });
    github = await startGitHubStandIn({
      token: BOT,
      repositories: [],
      git: { 'octo/gitops': repoPath },
      users: { alice: ALICE, bob: BOB },
    });
    bot = github.as('ferry-bot');
    alice = github.as('alice');
    remote = `${github.url}/octo/gitops.git`;
    receiver = await startHookReceiver();
  });
  after(async () => {
    await github?.close();
    await receiver?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves git over HTTP with a token as the password, and answers 401 without one', async () => {
    const work = mkdtempSync(join(dir, 'clone-'));
    await gitWithToken(work, remote, BOT, 'x-access-token', 'clone', '--quiet', remote, '.');
    assert.equal(git(work, 'rev-parse', 'HEAD'), bare('rev-parse', 'main'));
    const refused = await fetch(`${remote}/info/refs?service=git-upload-pack`, {
      headers: { authorization: `Basic ${Buffer.from('x:wrong-token').toString('base64')}` },
    });
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get('www-authenticate') ?? '', /^Basic /);
    await assert.rejects(
      gitWithToken(work, remote, 'wrong-token', 'x', 'ls-remote', remote),
      /could not read Username/,
    );
  });

  it('creates a webhook (201) and pings it, signed with the secret', async () => {
    const hook = await bot('POST', '/repos/octo/gitops/hooks', {
      name: 'web',
      active: true,
      events: ['pull_request', 'push'],
      config: { url: receiver.url, content_type: 'json', secret: HOOK_SECRET },
    });
    assert.equal(hook.status, 201);
    assert.equal(hook.body.config.secret, '********');
    await github.deliveriesSettled();
    const ping = receiver.received.at(-1)!;
    assert.equal(ping.headers['x-github-event'], 'ping');
    assert.ok(
      verifyGitHubDelivery(
        HOOK_SECRET,
        Buffer.from(ping.body),
        Buffer.from(String(ping.headers['x-hub-signature-256']).slice(7), 'hex'),
      ),
    );
  });

  let first: any;

  it('opens a pull request: 201 with GitHub’s fields; the same head and base again is a 422 that says it exists', async () => {
    const head = await pushBranch({
      url: remote,
      token: BOT,
      branch: 'ferry/dev',
      files: { 'app/config.yaml': 'replicas: 2\n' },
    });
    const res = await bot('POST', '/repos/octo/gitops/pulls', {
      title: 'Promote to dev',
      head: 'ferry/dev',
      base: 'main',
      body: 'Ferry',
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('location'), res.body.url);
    for (const field of [
      'id',
      'node_id',
      'html_url',
      'number',
      'state',
      'merged',
      'merge_commit_sha',
      'mergeable',
      'head',
      'base',
      'user',
      'labels',
    ])
      assert.ok(field in res.body, field);
    assert.deepEqual(
      [res.body.number, res.body.state, res.body.merged, res.body.head.sha, res.body.head.label, res.body.base.ref],
      [1, 'open', false, head, 'octo:ferry/dev', 'main'],
    );
    assert.equal(res.body.user.login, 'ferry-bot');
    first = res.body;

    const again = await bot('POST', '/repos/octo/gitops/pulls', {
      title: 'again',
      head: 'octo:ferry/dev',
      base: 'main',
    });
    assert.equal(again.status, 422);
    assert.equal(again.body.message, 'Validation Failed');
    assert.equal(again.body.errors[0].message, 'A pull request already exists for octo:ferry/dev.');
    assert.ok(again.body.documentation_url);
  });

  it('refuses a head that does not exist and a head with no commits over the base (422)', async () => {
    const missing = await bot('POST', '/repos/octo/gitops/pulls', { title: 't', head: 'nope', base: 'main' });
    assert.equal(missing.status, 422);
    assert.deepEqual(missing.body.errors[0], { resource: 'PullRequest', field: 'head', code: 'invalid' });
    await pushBranch({ url: remote, token: BOT, branch: 'behind', files: {}, message: 'empty' });
    bare('update-ref', 'refs/heads/behind', bare('rev-parse', 'main'));
    const nothing = await bot('POST', '/repos/octo/gitops/pulls', { title: 't', head: 'behind', base: 'main' });
    assert.equal(nothing.status, 422);
    assert.match(nothing.body.errors[0].message, /^No commits between main and behind$/);
  });

  it('lists with state, head (owner:branch) and base filters; a head without owner: is ignored, as GitHub does', async () => {
    const filtered = await bot('GET', '/repos/octo/gitops/pulls?head=octo:ferry/dev&base=main&state=open');
    assert.deepEqual(
      filtered.body.map((p: any) => p.number),
      [1],
    );
    const other = await bot('GET', '/repos/octo/gitops/pulls?head=octo:other&state=open');
    assert.deepEqual(other.body, []);
    const unscoped = await bot('GET', '/repos/octo/gitops/pulls?head=other&state=open');
    assert.deepEqual(
      unscoped.body.map((p: any) => p.number),
      [1],
    );
    assert.deepEqual((await bot('GET', '/repos/octo/gitops/pulls?state=closed')).body, []);
  });

  it('reports an open pull’s merge_commit_sha as its test merge: a real commit of base and head', async () => {
    const pull = (await bot('GET', '/repos/octo/gitops/pulls/1')).body;
    assert.equal(pull.mergeable, true);
    assert.match(pull.merge_commit_sha, /^[0-9a-f]{40}$/);
    assert.equal(bare('rev-parse', `${pull.merge_commit_sha}^1`), bare('rev-parse', 'main'));
    assert.equal(bare('rev-parse', `${pull.merge_commit_sha}^2`), first.head.sha);
    assert.equal(bare('rev-parse', 'refs/pull/1/merge'), pull.merge_commit_sha);
  });

  it('takes reviews: the author cannot approve (422), others can; the list is oldest first and paginated with Link', async () => {
    const own = await bot('POST', '/repos/octo/gitops/pulls/1/reviews', { event: 'APPROVE' });
    assert.equal(own.status, 422);
    assert.deepEqual(own.body.errors, ['Review Can not approve your own pull request']);
    const approved = await alice('POST', '/repos/octo/gitops/pulls/1/reviews', { event: 'APPROVE', body: 'ok' });
    assert.equal(approved.status, 200);
    assert.deepEqual(
      [approved.body.state, approved.body.user.login, approved.body.commit_id],
      ['APPROVED', 'alice', first.head.sha],
    );
    for (let i = 0; i < 3; i++)
      await github.as('bob')('POST', '/repos/octo/gitops/pulls/1/reviews', { event: 'COMMENT', body: `note ${i}` });

    const page1 = await bot('GET', '/repos/octo/gitops/pulls/1/reviews?per_page=2');
    assert.deepEqual(
      page1.body.map((r: any) => r.state),
      ['APPROVED', 'COMMENTED'],
    );
    const link = page1.headers.get('link')!;
    const next = /<([^>]+)>; rel="next"/.exec(link)![1];
    assert.match(next, /\/repositories\/\d+\/pulls\/1\/reviews\?per_page=2&page=2$/);
    assert.match(link, /rel="last"/);
    const page2 = await bot('GET', next.slice(github.url.length));
    assert.equal(page2.status, 200);
    assert.deepEqual(
      page2.body.map((r: any) => r.body),
      ['note 1', 'note 2'],
    );
    assert.doesNotMatch(page2.headers.get('link') ?? '', /rel="next"/);
  });

  it('merges: 409 when the head moved, then a real merge commit on main, reported as merge_commit_sha; 405 again', async () => {
    const stale = await alice('PUT', '/repos/octo/gitops/pulls/1/merge', { sha: 'f'.repeat(40) });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.message, 'Head branch was modified. Review and try the merge again.');
    const mainBefore = bare('rev-parse', 'main');
    const merged = await alice('PUT', '/repos/octo/gitops/pulls/1/merge', {
      sha: first.head.sha,
      merge_method: 'merge',
    });
    assert.equal(merged.status, 200);
    assert.deepEqual([merged.body.merged, merged.body.message], [true, 'Pull Request successfully merged']);
    assert.equal(bare('rev-parse', 'main'), merged.body.sha);
    assert.equal(bare('rev-parse', `${merged.body.sha}^1`), mainBefore);
    assert.equal(bare('rev-parse', `${merged.body.sha}^2`), first.head.sha);
    assert.equal(bare('show', `${merged.body.sha}:app/config.yaml`), 'replicas: 2');
    assert.match(bare('log', '-1', '--format=%s', merged.body.sha), /^Merge pull request #1 from octo\/ferry\/dev$/);

    const pull = (await bot('GET', '/repos/octo/gitops/pulls/1')).body;
    assert.deepEqual(
      [pull.state, pull.merged, pull.merge_commit_sha, pull.merged_by.login],
      ['closed', true, merged.body.sha, 'alice'],
    );
    const again = await alice('PUT', '/repos/octo/gitops/pulls/1/merge', {});
    assert.deepEqual([again.status, again.body.message], [405, 'Pull Request is not mergeable']);

    github.hideMergeCommit('octo/gitops', 1, 1);
    assert.equal((await bot('GET', '/repos/octo/gitops/pulls/1')).body.merge_commit_sha, null);
    assert.equal((await bot('GET', '/repos/octo/gitops/pulls/1')).body.merge_commit_sha, merged.body.sha);

    await github.deliveriesSettled();
    const closed = receiver.received.find(
      (d) => d.headers['x-github-event'] === 'pull_request' && JSON.parse(d.body).action === 'closed',
    );
    assert.ok(closed, 'a pull_request closed delivery');
    const payload = JSON.parse(closed.body);
    assert.deepEqual(
      [
        payload.number,
        payload.pull_request.merged,
        payload.pull_request.merge_commit_sha,
        payload.repository.full_name,
      ],
      [1, true, merged.body.sha, 'octo/gitops'],
    );
    assert.ok(
      verifyGitHubDelivery(
        HOOK_SECRET,
        Buffer.from(closed.body),
        Buffer.from(String(closed.headers['x-hub-signature-256']).slice(7), 'hex'),
      ),
    );
    const push = receiver.received.find(
      (d) => d.headers['x-github-event'] === 'push' && JSON.parse(d.body).after === merged.body.sha,
    );
    assert.ok(push, 'a push delivery for main');
    assert.equal(JSON.parse(push.body).ref, 'refs/heads/main');
  });

  it('refuses to merge a conflicting pull (405, mergeable false, merge_commit_sha null) and leaves main alone', async () => {
    await pushBranch({ url: remote, token: BOT, branch: 'left', files: { 'README.md': 'left\n' } });
    await pushBranch({ url: remote, token: BOT, branch: 'right', files: { 'README.md': 'right\n' } });
    const left = (await bot('POST', '/repos/octo/gitops/pulls', { title: 'left', head: 'left', base: 'main' })).body;
    const right = (await bot('POST', '/repos/octo/gitops/pulls', { title: 'right', head: 'right', base: 'main' })).body;
    assert.equal((await alice('PUT', `/repos/octo/gitops/pulls/${left.number}/merge`, {})).status, 200);
    const main = bare('rev-parse', 'main');
    const conflicting = (await bot('GET', `/repos/octo/gitops/pulls/${right.number}`)).body;
    assert.deepEqual(
      [conflicting.mergeable, conflicting.merge_commit_sha, conflicting.mergeable_state],
      [false, null, 'dirty'],
    );
    const refused = await alice('PUT', `/repos/octo/gitops/pulls/${right.number}/merge`, {});
    assert.deepEqual([refused.status, refused.body.message], [405, 'Pull Request is not mergeable']);
    assert.equal(bare('rev-parse', 'main'), main);
  });

  it('closes with PATCH, keeps labels and comments on the issue, and tells the hook', async () => {
    await pushBranch({ url: remote, token: BOT, branch: 'ferry/prod', files: { 'app/config.yaml': 'replicas: 5\n' } });
    const pull = (await bot('POST', '/repos/octo/gitops/pulls', { title: 'prod', head: 'ferry/prod', base: 'main' }))
      .body;
    const labels = await bot('POST', `/repos/octo/gitops/issues/${pull.number}/labels`, { labels: ['ferry', 'prod'] });
    assert.deepEqual([labels.status, labels.body.map((l: any) => l.name)], [200, ['ferry', 'prod']]);
    const twice = await bot('POST', `/repos/octo/gitops/issues/${pull.number}/labels`, { labels: ['ferry'] });
    assert.deepEqual(
      twice.body.map((l: any) => l.name),
      ['ferry', 'prod'],
    );
    const comment = await bot('POST', `/repos/octo/gitops/issues/${pull.number}/comments`, {
      body: 'Aborted by alice in Ferry',
    });
    assert.equal(comment.status, 201);
    assert.equal(comment.body.user.login, 'ferry-bot');
    const closed = await bot('PATCH', `/repos/octo/gitops/pulls/${pull.number}`, { state: 'closed' });
    assert.deepEqual(
      [closed.status, closed.body.state, closed.body.merged, closed.body.merge_commit_sha],
      [200, 'closed', false, null],
    );
    assert.deepEqual(
      (await bot('GET', `/repos/octo/gitops/issues/${pull.number}/comments`)).body.map((c: any) => c.body),
      ['Aborted by alice in Ferry'],
    );
    await github.deliveriesSettled();
    const delivery = receiver.received
      .filter((d) => d.headers['x-github-event'] === 'pull_request')
      .map((d) => JSON.parse(d.body))
      .find((p) => p.number === pull.number && p.action === 'closed');
    assert.equal(delivery?.pull_request.merged, false);
  });

  it('answers 401 Bad credentials, 404 for an unknown pull, and rate limits', async () => {
    const res = await fetch(`${github.url}/repos/octo/gitops/pulls/1`, {
      headers: { Accept: 'application/vnd.github+json', Authorization: 'Bearer nope' },
    });
    assert.equal(res.status, 401);
    assert.deepEqual(((await res.json()) as any).message, 'Bad credentials');
    const missing = await bot('GET', '/repos/octo/gitops/pulls/999');
    assert.deepEqual([missing.status, missing.body.message], [404, 'Not Found']);
    github.rateLimitNext('secondary', 1, 3);
    const limited = await bot('GET', '/repos/octo/gitops/pulls/1');
    assert.deepEqual([limited.status, limited.headers.get('retry-after')], [429, '3']);
    assert.equal((await bot('GET', '/repos/octo/gitops/pulls/1')).status, 200);
  });
});
