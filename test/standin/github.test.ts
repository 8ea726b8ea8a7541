// The GitHub deployments stand-in answers as GitHub does: codes, bodies, Location and rate-limit headers, and
// auto_inactive. Tests of Ferry against it are only as good as this.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startGitHubStandIn, type GitHubStandIn } from './github/server';

describe('GitHub deployments stand-in', () => {
  let github: GitHubStandIn;
  const token = 'ghs_standin_token';
  const call = (method: string, path: string, body?: unknown, auth = token) =>
    fetch(`${github.url}${path}`, {
      method,
      headers: {
        Accept: 'application/vnd.github+json',
        'X-GitHub-Api-Version': '2022-11-28',
        Authorization: `Bearer ${auth}`,
        ...(body ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });

  before(async () => {
    github = await startGitHubStandIn({ token, repositories: ['octo/app'] });
  });
  after(() => github?.close());

  it('creates a deployment: 201, Location, GitHub’s fields and rate-limit headers', async () => {
    const res = await call('POST', '/repos/octo/app/deployments', {
      ref: 'main',
      environment: 'staging',
      auto_merge: false,
      required_contexts: [],
      payload: { ferry: { promotion: 'p' } },
    });
    assert.equal(res.status, 201);
    const body: any = await res.json();
    assert.equal(res.headers.get('location'), body.url);
    assert.equal(res.headers.get('x-ratelimit-limit'), '5000');
    assert.ok(Number(res.headers.get('x-ratelimit-remaining')) < 5000);
    for (const field of ['id', 'node_id', 'sha', 'ref', 'task', 'payload', 'environment', 'statuses_url', 'creator'])
      assert.ok(field in body, field);
    assert.equal(body.task, 'deploy');
    assert.deepEqual(body.payload, { ferry: { promotion: 'p' } });
  });

  it('answers 401 for a bad token, 404 for an unknown repository or deployment, 422 for a missing ref or state', async () => {
    const unauthorized = await call('GET', '/repos/octo/app/deployments', undefined, 'wrong');
    assert.equal(unauthorized.status, 401);
    assert.equal(((await unauthorized.json()) as any).message, 'Bad credentials');
    assert.equal((await call('GET', '/repos/octo/other/deployments')).status, 404);
    assert.equal((await call('POST', '/repos/octo/app/deployments/999999/statuses', { state: 'success' })).status, 404);
    const noRef = await call('POST', '/repos/octo/app/deployments', { environment: 'dev' });
    assert.equal(noRef.status, 422);
    assert.match(((await noRef.json()) as any).message, /"ref" wasn't supplied/);
    const [deployment] = (await (await call('GET', '/repos/octo/app/deployments?environment=staging')).json()) as any[];
    const badState = await call('POST', `/repos/octo/app/deployments/${deployment.id}/statuses`, { state: 'done' });
    assert.equal(badState.status, 422);
    assert.equal(((await badState.json()) as any).errors[0].field, 'state');
  });

  it('marks earlier successful non-production deployments inactive on success, unless auto_inactive is false', async () => {
    const deploy = async (auto?: boolean) => {
      const d: any = await (
        await call('POST', '/repos/octo/app/deployments', { ref: 'main', environment: 'qa' })
      ).json();
      await call('POST', `/repos/octo/app/deployments/${d.id}/statuses`, {
        state: 'success',
        ...(auto === undefined ? {} : { auto_inactive: auto }),
      });
      return d.id as number;
    };
    const first = await deploy();
    const second = await deploy(false);
    assert.deepEqual(github.statusSequence('qa'), [`${first}:success`, `${second}:success`]);
    const third = await deploy();
    assert.deepEqual(github.statusSequence('qa'), [
      `${first}:success`,
      `${second}:success`,
      `${third}:success`,
      `${first}:inactive`,
      `${second}:inactive`,
    ]);
    const answer = await call('GET', `/repos/octo/app/deployments/${first}/statuses?per_page=1`);
    const statuses = (await answer.json()) as any[];
    assert.equal(statuses[0].state, 'inactive');
  });

  it('answers primary (403, remaining 0, reset) and secondary (429, retry-after) rate limits', async () => {
    github.rateLimitNext('primary', 1, 30);
    const primary = await call('GET', '/repos/octo/app/deployments');
    assert.equal(primary.status, 403);
    assert.equal(primary.headers.get('x-ratelimit-remaining'), '0');
    assert.ok(Number(primary.headers.get('x-ratelimit-reset')) >= Math.floor(Date.now() / 1000) + 29);
    github.rateLimitNext('secondary', 1, 5);
    const secondary = await call('GET', '/repos/octo/app/deployments');
    assert.equal(secondary.status, 429);
    assert.equal(secondary.headers.get('retry-after'), '5');
    assert.equal((await call('GET', '/repos/octo/app/deployments')).status, 200);
  });
});
