// examples/pull-request promoted end to end against a real Gitea (dev/gitea.ts builds it; test/helpers/gitea.ts runs
// it on loopback), on the real Temporal dev server, through Ferry's HTTP API. Ferry fetches and pushes over Gitea's
// smart HTTP with an API token, opens the pull request through Gitea's REST API; the test merges it through that
// API, and Gitea's own webhook delivery (pull_request, signed with the hook's secret) wakes the promotion, which
// polls only once an hour. A pull request closed without merging fails the promotion (found by polling); a wrong password fails the
// first git request at once, naming the remote, with the password in no output.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { staticWebhookSecrets } from '../../api/webhooks';
import { exampleSources } from '../../dev/example';
import type { PromotionStatus } from '../../workflows/messages';
import { examplePipelinePath } from '../helpers/example-repos';
import { startGitea, type GiteaServer } from '../helpers/gitea';
import { createPrivateCa, type PrivateCa } from '../helpers/transport-servers';
import { until } from '../helpers/processes';
import { apiCaller, startStack, type Stack } from '../helpers/stack';

const ALICE = 'tok-alice-gitea-0123456789abcdef';
const HOOK_SECRET = 'gitea-hook-secret-pull-request-0123';
const WRONG_PASSWORD = 'wr0ng-gitea-passw0rd-d0-n0t-l34k';

interface Delivery {
  event: string;
  status: number;
  response: string;
}

describe('the pull-request strategy against a real Gitea (smart HTTP, REST API, webhooks, real Temporal)', () => {
  let stack: Stack;
  let gitea: GiteaServer;
  /** A second Gitea, serving HTTPS with a certificate of a private CA. */
  let secure: GiteaServer;
  let ca: PrivateCa;
  let secureUrl: string;
  let repoUrl: string;
  let relay: Server;
  let dir: string;
  const deliveries: Delivery[] = [];
  let printed = '';
  const restore: Array<() => void> = [];

  const api = apiCaller(() => stack.api.url, ALICE);
  const promotion = async (id: string): Promise<PromotionStatus> =>
    (await api('GET', `/api/v1/promotions/${encodeURIComponent(id)}`)).body as PromotionStatus;
  const reaches = (id: string, phases: string[]): Promise<PromotionStatus> =>
    until(
      `${id} to be ${phases.join(' or ')}`,
      async () => {
        const status = await promotion(id);
        return phases.includes(status.phase) ? status : undefined;
      },
      120_000,
    );
  const pipeline = (name: string, edit?: (doc: ReturnType<typeof parseDocument>) => void): string => {
    const doc = parseDocument(readFileSync(examplePipelinePath('pull-request'), 'utf8'));
    doc.setIn(['metadata', 'name'], name);
    doc.setIn(['spec', 'repo', 'url'], repoUrl);
    doc.setIn(['spec', 'triggers', 'gitea', 0, 'repository'], `${gitea.user}/gitops`);
    edit?.(doc);
    return doc.toString();
  };
  const apply = async (name: string, yaml: string) => {
    const applied = await api('PUT', `/api/v1/pipelines/${name}`, yaml, 'application/yaml');
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
  };
  const register = async (name: string, version: string): Promise<string> => {
    const freight = await api('POST', `/api/v1/pipelines/${name}/freight`, { artifacts: { guestbook: version } });
    assert.equal(freight.status, 201, JSON.stringify(freight.body));
    return freight.body.id as string;
  };
  const requestProd = async (name: string, freight: string): Promise<string> => {
    const requested = await api('POST', `/api/v1/pipelines/${name}/stages/prod/promotions`, { freight });
    assert.equal(requested.status, 201, JSON.stringify(requested.body));
    return requested.body.id as string;
  };
  const branchHead = async (branch: string): Promise<string | undefined> => gitea.branchHead('gitops', branch);
  const fileAt = async (ref: string, path: string): Promise<string> => {
    const res = await fetch(`${gitea.url}/api/v1/repos/${gitea.user}/gitops/raw/${path}?ref=${ref}`, {
      headers: { authorization: `token ${gitea.token}` },
    });
    assert.equal(res.status, 200, `${path} at ${ref}`);
    return res.text();
  };

  before(async () => {
    // Everything this process prints (the worker's logs included) is kept, to look for secrets in it.
    for (const stream of [process.stdout, process.stderr]) {
      const write = stream.write.bind(stream);
      stream.write = ((chunk: unknown, ...rest: unknown[]) => {
        printed += String(chunk);
        return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
      }) as typeof stream.write;
      restore.push(() => (stream.write = write));
    }
    dir = mkdtempSync(join(tmpdir(), 'ferry-gitea-e2e-'));
    gitea = await startGitea(join(dir, 'gitea'));
    // The wrong password is a real user's: Gitea checks it, not just the user's existence. (Not the repository
    // owner's name: a credential's username is redacted from messages like its other fields, the remote URL too.)
    gitea.addUser('deployer', 'the-right-passw0rd-0123');
    ca = createPrivateCa(join(dir, 'ca'));
    secure = await startGitea(join(dir, 'secure'), { tls: { cert: ca.cert, key: ca.key, ca: ca.caPem } });
    secure.addUser('deployer', 'the-right-passw0rd-0123');
    stack = await startStack({
      name: 'pull-request-gitea',
      tokens: { [ALICE]: 'alice' },
      secrets: {
        gitops: gitea.ferryToken,
        wrong: { USERNAME: 'deployer', PASSWORD: WRONG_PASSWORD },
        tls: { TOKEN: secure.ferryToken, CA: ca.caPem },
        tlswrong: { USERNAME: 'deployer', PASSWORD: WRONG_PASSWORD, CA: ca.caPem },
      },
      api: { admins: ['alice'], webhooks: { secrets: staticWebhookSecrets({ 'gitea-webhook': HOOK_SECRET }) } },
    });
    repoUrl = await gitea.createRepository('gitops', exampleSources());
    secureUrl = await secure.createRepository('gitops', exampleSources());
    // Gitea's deliveries pass through a relay that forwards them unchanged to Ferry's /webhooks/gitea and records
    // Ferry's answer, so the test can tell that the webhook, not polling, woke the promotion.
    relay = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) {
          if (typeof v === 'string' && !['host', 'content-length', 'connection'].includes(k)) headers[k] = v;
        }
        void fetch(`${stack.api.url}/webhooks/gitea`, { method: 'POST', headers, body: Buffer.concat(chunks) })
          .then(async (answer) => {
            const text = await answer.text();
            deliveries.push({ event: headers['x-gitea-event'] ?? '', status: answer.status, response: text });
            res.writeHead(answer.status, { 'content-type': 'application/json' }).end(text);
          })
          .catch((err: Error) => res.writeHead(502).end(err.message));
      });
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const address = relay.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const hook = await gitea.api('POST', `/repos/${gitea.user}/gitops/hooks`, {
      type: 'gitea',
      active: true,
      events: ['pull_request'],
      config: { url: `http://127.0.0.1:${port}/`, content_type: 'json', secret: HOOK_SECRET },
    });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
  });

  after(async () => {
    for (const r of restore) r();
    await new Promise((resolve) => (relay ? relay.close(resolve) : resolve(undefined)));
    await stack?.close();
    await gitea?.stop();
    await secure?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('dev lands on env/dev; prod opens a pull request on Gitea, merged through its API; the webhook wakes the promotion, which deploys the merge commit', async () => {
    // Polling once an hour: only Gitea's webhook can wake the promotion in time.
    await apply(
      'guestbook',
      pipeline('guestbook', (doc) => doc.setIn(['spec', 'stages', 1, 'render', 'pullRequest', 'pollInterval'], '1h')),
    );
    const freight = await register('guestbook', '1.4.2');
    const dev = await reaches(`promotion/guestbook/dev/${freight}`, ['Succeeded', 'Failed']);
    assert.equal(dev.phase, 'Succeeded', dev.error);
    assert.equal(await branchHead('env/dev'), dev.commit, 'env/dev on Gitea is the promotion’s commit');
    assert.match(await fileAt('env/dev', 'deployment.yaml'), /image: registry\.example\.com\/team\/guestbook:1\.4\.2/);

    const id = await requestProd('guestbook', freight);
    const waiting = await reaches(id, ['AwaitingMerge', 'Failed']);
    assert.equal(waiting.phase, 'AwaitingMerge', waiting.error);
    const pr = waiting.pullRequest!;
    assert.equal(pr.provider, 'gitea');
    assert.equal(pr.state, 'open');
    const onGitea = await gitea.api('GET', `/repos/${gitea.user}/gitops/pulls/${pr.number}`);
    assert.equal(onGitea.status, 200);
    assert.equal(onGitea.body.state, 'open');
    assert.equal(onGitea.body.head.ref, `ferry/guestbook/prod/${freight}`);
    assert.equal(onGitea.body.base.ref, 'env/prod');
    assert.equal(onGitea.body.html_url, pr.url);
    assert.match(await fileAt(onGitea.body.head.sha, 'deployment.yaml'), /guestbook:1\.4\.2/);

    const mergeCommit = await gitea.merge('gitops', pr.number);
    assert.match(mergeCommit, /^[0-9a-f]{40}$/);
    const done = await reaches(id, ['Succeeded', 'Failed', 'Aborted']);
    assert.equal(done.phase, 'Succeeded', done.error);
    assert.equal(done.commit, mergeCommit);
    assert.equal(done.pullRequest?.state, 'merged');
    assert.equal(done.pullRequest?.mergeCommit, mergeCommit);
    assert.equal(await branchHead('env/prod'), mergeCommit);
    assert.ok(
      deliveries.some(
        (d) =>
          d.event === 'pull_request' &&
          d.status === 200 &&
          d.response.includes(`"signalled":["promotion/guestbook/prod/${freight}`),
      ),
      `Gitea's merge delivery signalled the promotion (deliveries: ${JSON.stringify(deliveries)})`,
    );
  });

  it('a pull request closed on Gitea without merging fails the promotion with PullRequestClosed (found by polling)', async () => {
    await apply(
      'closed',
      pipeline('closed', (doc) => {
        doc.setIn(['spec', 'stages', 0, 'render', 'to'], 'env/closed-dev');
        doc.setIn(['spec', 'stages', 1, 'render', 'to'], 'env/closed-prod');
        // Ferry acts only on merge deliveries; a pull request closed without merging is found by polling.
        doc.setIn(['spec', 'stages', 1, 'render', 'pullRequest', 'pollInterval'], '1s');
      }),
    );
    const freight = await register('closed', '2.0.0');
    const dev = await reaches(`promotion/closed/dev/${freight}`, ['Succeeded', 'Failed']);
    assert.equal(dev.phase, 'Succeeded', dev.error);
    const id = await requestProd('closed', freight);
    const waiting = await reaches(id, ['AwaitingMerge', 'Failed']);
    assert.equal(waiting.phase, 'AwaitingMerge', waiting.error);
    const number = waiting.pullRequest!.number;
    const head = (await gitea.api('GET', `/repos/${gitea.user}/gitops/pulls/${number}`)).body.head.sha as string;
    const closed = await gitea.api('PATCH', `/repos/${gitea.user}/gitops/pulls/${number}`, {
      state: 'closed',
    });
    assert.equal(closed.status, 201, JSON.stringify(closed.body));
    const done = await reaches(id, ['Succeeded', 'Failed']);
    assert.equal(done.phase, 'Failed');
    assert.equal(done.reason, 'PullRequestClosed');
    assert.match(done.error ?? '', /was closed without being merged/);
    assert.equal(done.pullRequest?.state, 'closed');
    assert.notEqual(await branchHead('env/closed-prod'), head, 'nothing reached the stage branch');
  });

  it('a wrong password fails the first git request at once with GitAuthFailed, naming the remote, and the password is in no output', async () => {
    await apply(
      'wrong',
      pipeline('wrong', (doc) => {
        doc.setIn(['spec', 'repo', 'credentials'], 'wrong');
        doc.setIn(['spec', 'stages', 0, 'render', 'to'], 'env/wrong-dev');
        doc.setIn(['spec', 'stages', 1, 'render', 'to'], 'env/wrong-prod');
      }),
    );
    const started = Date.now();
    const freight = await register('wrong', '3.0.0');
    const dev = await reaches(`promotion/wrong/dev/${freight}`, ['Succeeded', 'Failed']);
    assert.equal(dev.phase, 'Failed');
    assert.equal(dev.reason, 'GitAuthFailed');
    assert.ok(dev.error?.includes(repoUrl), `the remote is named: ${dev.error}`);
    assert.match(dev.error ?? '', /authentication failed \(the server refused credential "wrong"/);
    assert.ok(Date.now() - started < 60_000, 'failed at once, not after retries');
    const everything = [
      JSON.stringify(dev),
      JSON.stringify((await api('GET', '/api/v1/pipelines/wrong')).body),
      printed,
      gitea.output(),
    ].join('\n');
    assert.ok(!everything.includes(WRONG_PASSWORD), 'the wrong password is in no output');
    assert.ok(!everything.includes(gitea.ferryToken), 'the token is in no output');
  });

  const secureHead = async (branch: string): Promise<string | undefined> => secure.branchHead('gitops', branch);

  it('HTTPS: the example’s dev stage promotes over Gitea’s HTTPS with the token, trusting its private CA through the credential', async () => {
    await apply(
      'secure',
      pipeline('secure', (doc) => {
        doc.setIn(['spec', 'repo', 'url'], secureUrl);
        doc.setIn(['spec', 'repo', 'credentials'], 'tls');
      }),
    );
    const freight = await register('secure', '4.0.0');
    const dev = await reaches(`promotion/secure/dev/${freight}`, ['Succeeded', 'Failed']);
    assert.equal(dev.phase, 'Succeeded', dev.error);
    assert.match(secureUrl, /^https:\/\/127\.0\.0\.1:\d+\//);
    assert.equal(await secureHead('env/dev'), dev.commit, 'env/dev on the HTTPS Gitea is the promotion’s commit');
  });

  it('HTTPS: a wrong password fails at once with GitAuthFailed, naming the remote, and the password is in no output', async () => {
    await apply(
      'securewrong',
      pipeline('securewrong', (doc) => {
        doc.setIn(['spec', 'repo', 'url'], secureUrl);
        doc.setIn(['spec', 'repo', 'credentials'], 'tlswrong');
        doc.setIn(['spec', 'stages', 0, 'render', 'to'], 'env/wrong-dev');
        doc.setIn(['spec', 'stages', 1, 'render', 'to'], 'env/wrong-prod');
      }),
    );
    const started = Date.now();
    const freight = await register('securewrong', '5.0.0');
    const dev = await reaches(`promotion/securewrong/dev/${freight}`, ['Succeeded', 'Failed']);
    assert.equal(dev.phase, 'Failed');
    assert.equal(dev.reason, 'GitAuthFailed');
    assert.ok(dev.error?.includes(secureUrl), `the remote is named: ${dev.error}`);
    assert.match(dev.error ?? '', /authentication failed \(the server refused credential "tlswrong"/);
    assert.ok(Date.now() - started < 60_000, 'failed at once, not after retries');
    const everything = [JSON.stringify(dev), printed, secure.output()].join('\n');
    assert.ok(!everything.includes(WRONG_PASSWORD), 'the wrong password is in no output');
    assert.ok(!everything.includes(secure.ferryToken), 'the token is in no output');
  });
});
