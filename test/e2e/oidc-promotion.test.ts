// A CI job's OIDC token, from a local issuer that serves a real JWKS, promotes through the real stack: the HTTP API
// (in process, on 127.0.0.1) → the typed client → the real Temporal dev server → the real worker → a real git
// remote. Bad tokens start nothing; a stage that forbids self-approval refuses the requester in the workflow.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { createOidcVerifier } from '../../api/identity/oidc';
import { createRoleBook } from '../../api/roles';
import { parseServerConfig, roleBindingsOf } from '../../api/server-config';
import type { ApiServer } from '../../api/server';
import { silentLogger } from '../../client/log';
import type { PromotionStatus } from '../../workflows/messages';
import { GITHUB_ACTIONS_CLAIMS, startLocalOidcIssuer, type LocalOidcIssuer } from '../helpers/oidc-issuer';
import { until } from '../helpers/processes';
import { startStack, type Stack } from '../helpers/stack';

const AUDIENCE = 'ferry-e2e';
const ADMIN = 'tok-root-0123456789abcdef0123456789';
const APPROVER = 'tok-rita-0123456789abcdef0123456789';
const CI_USER = 'github:acme/guestbook@refs/heads/main';

const pipelineYaml = (repoUrl: string): string => `apiVersion: ferry.dev/v1alpha1
kind: Pipeline
metadata:
  name: guestbook
spec:
  repo:
    url: ${repoUrl}
  artifacts:
    - name: guestbook
      image: registry.example.com/team/guestbook
  stages:
    - name: dev
      render: { strategy: branch, from: apps/guestbook/overlays/dev, to: env/dev }
    - name: prod
      after: [dev]
      render: { strategy: branch, from: apps/guestbook/overlays/prod, to: env/prod }
      approval: { required: 1, approvers: [rita, "${CI_USER}"], allowSelfApproval: false }
`;

describe('OIDC identity through the real stack (Temporal dev server, worker, git)', () => {
  let stack: Stack;
  let api: ApiServer;
  let issuer: LocalOidcIssuer;
  let remote: string;

  before(async () => {
    issuer = await startLocalOidcIssuer();
    const config = parseServerConfig(
      `
roles:
  - { users: [root], role: admin }
  - { users: [rita], role: approver, pipelines: [guestbook], stages: [prod] }
oidc:
  issuers:
    - issuer: ${issuer.url}
      audience: ${AUDIENCE}
      rules:
        - match: { repository: acme/guestbook, ref: refs/heads/main }
          user: "github:{repository}@{ref}"
          roles:
            - { role: promoter, pipelines: [guestbook] }
            - { role: approver, pipelines: [guestbook], stages: [prod] }
`,
      'test',
    );
    const roles = createRoleBook({ bindings: roleBindingsOf(config) });
    stack = await startStack({
      name: 'oidc',
      tokens: { [ADMIN]: 'root', [APPROVER]: 'rita' },
      api: { roles, oidc: createOidcVerifier(config.oidc?.issuers ?? [], { roles, logger: silentLogger }) },
    });
    api = stack.api;
    remote = stack.repo.path;
    const applied = await call('PUT', '/api/v1/pipelines/guestbook', ADMIN, pipelineYaml(stack.repo.url));
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
  });

  after(async () => {
    await stack?.close();
    await issuer?.close();
  });

  interface Reply {
    status: number;
    body: Record<string, unknown> & { error?: { code: string; message: string } };
  }
  async function call(method: string, path: string, token: string, body?: unknown): Promise<Reply> {
    const response = await fetch(api.url + path, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        'Content-Type': typeof body === 'string' ? 'application/yaml' : 'application/json',
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Reply['body'] };
  }

  const ciToken = (options: Parameters<LocalOidcIssuer['sign']>[1] = {}): Promise<string> =>
    issuer.sign({ ...GITHUB_ACTIONS_CLAIMS }, { audience: AUDIENCE, ...options });

  const waitForEnd = (id: string, token: string): Promise<PromotionStatus> =>
    until(`${id} to end`, async () => {
      const reply = await call('GET', `/api/v1/promotions/${id}`, token);
      const status = reply.body as unknown as PromotionStatus;
      return ['Succeeded', 'Failed', 'Rejected', 'Aborted'].includes(status.phase) ? status : undefined;
    });

  it('bad tokens are 401 and start nothing; a valid one registers freight and promotes into dev', async () => {
    const freight = await call('POST', '/api/v1/pipelines/guestbook/freight', await ciToken(), {
      artifacts: { guestbook: '1.4.2' },
    });
    assert.equal(freight.status, 201, JSON.stringify(freight.body));
    const id = freight.body.id as string;

    const bad = [
      await ciToken({ expiresIn: -120 }),
      await ciToken({ audience: 'someone-else' }),
      await ciToken({ key: 'foreign' }),
      issuer.unsigned({ ...GITHUB_ACTIONS_CLAIMS }, AUDIENCE),
    ];
    for (const token of bad) {
      const reply = await call('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', token, { freight: id });
      assert.equal(reply.status, 401, JSON.stringify(reply.body));
    }
    const untouched = await call('GET', '/api/v1/pipelines/guestbook', ADMIN);
    const dev = (untouched.body.stages as Array<{ name: string; active: unknown[]; history: unknown[] }>)[0];
    assert.deepEqual([dev.name, dev.active, dev.history], ['dev', [], []], 'no promotion was started');
    assert.equal((await call('GET', `/api/v1/promotions/promotion/guestbook/dev/${id}`, ADMIN)).status, 404);

    const promoted = await call('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', await ciToken(), {
      freight: id,
    });
    assert.equal(promoted.status, 201, JSON.stringify(promoted.body));
    const done = await waitForEnd(promoted.body.id as string, await ciToken());
    assert.equal(done.phase, 'Succeeded', done.error);
    assert.equal(done.requestedBy, CI_USER);
    assert.equal(
      execFileSync('git', ['--git-dir', remote, 'rev-parse', 'env/dev'], { encoding: 'utf8' }).trim(),
      done.commit,
    );
  });

  it('with allowSelfApproval: false the workflow refuses the requester’s approval; another approver’s counts', async () => {
    const freight = (await call('GET', '/api/v1/pipelines/guestbook', ADMIN)).body.freight as Array<{ id: string }>;
    const id = freight[0].id;
    const requested = await call('POST', '/api/v1/pipelines/guestbook/stages/prod/promotions', await ciToken(), {
      freight: id,
    });
    assert.equal(requested.status, 201, JSON.stringify(requested.body));
    const promotion = requested.body.id as string;

    const own = await call('POST', `/api/v1/promotions/${promotion}/approve`, await ciToken());
    assert.equal(own.status, 403, JSON.stringify(own.body));
    assert.match(own.body.error?.message ?? '', /may not approve it: .*approval\.allowSelfApproval: false/);

    const approved = await call('POST', `/api/v1/promotions/${promotion}/approve`, APPROVER, { comment: 'ok' });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    const done = await waitForEnd(promotion, ADMIN);
    assert.equal(done.phase, 'Succeeded', done.error);
    assert.deepEqual(
      done.approvals.map((a) => a.user),
      ['rita'],
    );
  });
});
