// Identities and roles over the real HTTP API (127.0.0.1, port 0) backed by the in-memory FerryApi: OIDC tokens from
// a local issuer that serves a real JWKS and signs real RS256 tokens, static tokens, and the roles of a server
// configuration. (An OIDC token promoting through real Temporal: test/e2e/oidc-promotion.test.ts.)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { createOidcVerifier } from '../../api/identity/oidc';
import { createRoleBook, globMatches } from '../../api/roles';
import { loadServerConfig, parseServerConfig, roleBindingsOf, type ServerConfig } from '../../api/server-config';
import { startApiServer, type ApiServer } from '../../api/server';
import { createTokenStore, tokenDigest } from '../../client/auth';
import { run } from '../../cli/run';
import { silentLogger } from '../../client/log';
import { freightId } from '../../pipeline/freight';
import { guestbookYaml } from '../helpers/fixtures';
import { createMemoryFerry, type MemoryFerry, delegateTo } from '../helpers/memory-ferry';
import {
  GITHUB_ACTIONS_CLAIMS,
  serverConfigTrusting,
  startLocalOidcIssuer,
  type LocalOidcIssuer,
} from '../helpers/oidc-issuer';

const AUDIENCE = 'https://ferry.example.com';
const ADMIN = 'tok-admin-00000000000000000000';
const VIEWER = 'tok-viewer-0000000000000000000';
const STAGING_PROMOTER = 'tok-stager-0000000000000000000';
const PROD_APPROVER = 'tok-approver-000000000000000000';

const PIPELINE_YAML = guestbookYaml(`
    - name: dev
      render: { strategy: branch, from: apps/guestbook/overlays/dev, to: env/dev }
    - name: staging
      after: [dev]
      render: { strategy: branch, from: apps/guestbook/overlays/staging, to: env/staging }
    - name: prod
      after: [staging]
      render: { strategy: branch, from: apps/guestbook/overlays/prod, to: env/prod }
      approval: { required: 1, approvers: [rita, root] }
`);

function serverConfigYaml(issuerUrl: string, extra = ''): string {
  return `
roles:
  - users: [root]
    role: admin
  - users: [vera]
    role: viewer
  - users: [sam]
    role: promoter
    pipelines: [guestbook]
    stages: [staging]
  - users: [rita]
    role: approver
    pipelines: [guestbook]
    stages: [prod]
  - users: ["github:acme/*@refs/heads/main"]
    role: viewer
oidc:
  issuers:
    - issuer: ${issuerUrl}
      audience: ${AUDIENCE}
      jwksCooldown: 0s
      rules:
        - match: { repository: acme/guestbook, ref: [refs/heads/main, "refs/tags/v*"], workflow: build }
          user: "github:{repository}@{ref}"
          roles:
            - role: promoter
              pipelines: [guestbook]
              stages: [dev]
        - match: { repository_owner: acme, ref_protected: true }
          user: "gitlab:{project_path}"
${extra}`;
}

let issuer: LocalOidcIssuer;
let otherIssuer: LocalOidcIssuer;
let ferry: MemoryFerry;
let server: ApiServer;
let config: ServerConfig;

before(async () => {
  ferry = createMemoryFerry();
  issuer = await startLocalOidcIssuer();
  otherIssuer = await startLocalOidcIssuer();
  config = parseServerConfig(serverConfigYaml(issuer.url), 'test');
  const roles = createRoleBook({ bindings: roleBindingsOf(config), admins: [] });
  const tokens = createTokenStore({
    file: null,
    env: {},
    tokens: { [ADMIN]: 'root', [VIEWER]: 'vera', [STAGING_PROMOTER]: 'sam', [PROD_APPROVER]: 'rita' },
  });
  const oidc = createOidcVerifier(config.oidc?.issuers ?? [], { roles, logger: silentLogger });
  server = await startApiServer({
    ferry: delegateTo(() => ferry),
    tokens,
    roles,
    oidc,
    port: 0,
    logger: silentLogger,
  });
});

after(async () => {
  await server?.close();
  await issuer?.close();
  await otherIssuer?.close();
});

beforeEach(() => {
  ferry = createMemoryFerry();
});

interface Reply {
  status: number;
  headers: Headers;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
}

async function call(method: string, urlPath: string, token: string, body?: unknown): Promise<Reply> {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  const isPipeline = typeof body === 'string';
  if (body !== undefined) headers['Content-Type'] = isPipeline ? 'application/yaml' : 'application/json';
  const response = await fetch(server.url + urlPath, {
    method,
    headers,
    body: body === undefined ? undefined : isPipeline ? body : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Reply['body'] };
}

async function setUp(): Promise<string> {
  assert.equal((await call('PUT', '/api/v1/pipelines/guestbook', ADMIN, PIPELINE_YAML)).status, 200);
  const added = await call('POST', '/api/v1/pipelines/guestbook/freight', ADMIN, { artifacts: { guestbook: '1.0.0' } });
  assert.equal(added.status, 201);
  return added.body.id as string;
}

const ciToken = (options: Parameters<LocalOidcIssuer['sign']>[1] = {}, claims: object = GITHUB_ACTIONS_CLAIMS) =>
  issuer.sign({ ...claims }, { audience: AUDIENCE, ...options });

describe('OIDC identities', () => {
  test('a CI token from the configured issuer registers freight and promotes into dev as its rule names it', async () => {
    const freight = await setUp();
    const token = await ciToken();
    const promoted = await call('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', token, { freight });
    assert.equal(promoted.status, 201, JSON.stringify(promoted.body));
    assert.equal(ferry.promoteCalls[0].requestedBy, 'github:acme/guestbook@refs/heads/main');
    const added = await call('POST', '/api/v1/pipelines/guestbook/freight', token, {
      artifacts: { guestbook: '1.0.1' },
    });
    assert.equal(added.status, 201, 'a promoter of one stage registers the pipeline’s freight');
  });

  test('the rule grants promoter on dev only: staging is 403 naming the role and scope', async () => {
    const freight = await setUp();
    const reply = await call('POST', '/api/v1/pipelines/guestbook/stages/staging/promotions', await ciToken(), {
      freight,
    });
    assert.equal(reply.status, 403);
    assert.deepEqual(reply.body.error, {
      code: 'Forbidden',
      message: 'user "github:acme/guestbook@refs/heads/main" needs role promoter on guestbook/staging',
    });
  });

  const refusals: Array<[string, () => Promise<string>, RegExp]> = [
    ['expired', () => ciToken({ expiresIn: -120 }), /has expired/],
    ['not valid yet (nbf in the future)', () => ciToken({ notBefore: 600 }), /not valid yet/],
    ['for another audience', () => ciToken({ audience: 'https://other.example.com' }), /"aud" must be/],
    [
      'from an issuer the configuration does not trust',
      () => otherIssuer.sign({ ...GITHUB_ACTIONS_CLAIMS }, { audience: AUDIENCE }),
      /issuer "http:\/\/127\.0\.0\.1:\d+" is not one the server configuration trusts/,
    ],
    ['signed by a key not in the JWKS', () => ciToken({ key: 'foreign' }), /not signed by a key of the issuer's JWKS/],
    [
      'naming the trusted issuer but signed by another issuer',
      () => otherIssuer.sign({ ...GITHUB_ACTIONS_CLAIMS }, { audience: AUDIENCE, issuer: issuer.url }),
      /not signed by a key of the issuer's JWKS/,
    ],
    [
      'unsigned (alg: none)',
      async () => issuer.unsigned({ ...GITHUB_ACTIONS_CLAIMS }, AUDIENCE),
      /not signed with an allowed algorithm/,
    ],
    [
      'tampered (claims changed after signing)',
      async () => {
        const [header, , signature] = (await ciToken()).split('.');
        const payload = Buffer.from(
          JSON.stringify({
            ...GITHUB_ACTIONS_CLAIMS,
            repository: 'acme/guestbook',
            ref: 'refs/heads/main',
            iss: issuer.url,
            aud: AUDIENCE,
            exp: Math.floor(Date.now() / 1000) + 3600,
            workflow: 'build',
            actor: 'mallory',
          }),
        ).toString('base64url');
        return `${header}.${payload}.${signature}`;
      },
      /not signed by a key of the issuer's JWKS/,
    ],
    ['not decodable', async () => 'eyJub3QiOiJqc29uIg.eyJhIjoxfQ.c2ln', /cannot be decoded/],
  ];
  for (const [what, token, message] of refusals) {
    test(`a token ${what} is 401 and starts nothing`, async () => {
      const freight = await setUp();
      const reply = await call('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', await token(), {
        freight,
      });
      assert.equal(reply.status, 401, JSON.stringify(reply.body));
      assert.equal(reply.body.error?.code, 'Unauthenticated');
      assert.match(reply.body.error?.message ?? '', message);
      assert.match(reply.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      assert.equal(ferry.promoteCalls.length, 0);
    });
  }

  test('a valid token that no rule matches is 403 saying so, and starts nothing', async () => {
    const freight = await setUp();
    const token = await ciToken({}, { ...GITHUB_ACTIONS_CLAIMS, repository: 'evil/fork', sub: 'repo:evil/fork:ref:x' });
    const reply = await call('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', token, { freight });
    assert.equal(reply.status, 403);
    assert.match(reply.body.error?.message ?? '', /sub "repo:evil\/fork:ref:x"\) is valid, but no rule of that issuer/);
    assert.equal(ferry.promoteCalls.length, 0);
  });

  test('rules match globs and lists; boolean claims match true; a user template takes claims', async () => {
    await setUp();
    const tag = await ciToken({}, { ...GITHUB_ACTIONS_CLAIMS, ref: 'refs/tags/v1.2.0' });
    assert.equal((await call('GET', '/api/v1/pipelines/guestbook', tag)).status, 200, 'viewer via its binding');
    const branch = await ciToken({}, { ...GITHUB_ACTIONS_CLAIMS, ref: 'refs/heads/feature' });
    assert.equal((await call('GET', '/api/v1/pipelines/guestbook', branch)).status, 403, 'no rule: 403');
    const gitlab = await ciToken({}, { repository_owner: 'acme', ref_protected: true, project_path: 'acme/app' });
    const reply = await call('GET', '/api/v1/pipelines/guestbook', gitlab);
    assert.equal(reply.status, 403, 'the rule names a user that holds no role');
    assert.equal(reply.body.error?.message, 'user "gitlab:acme/app" needs role viewer on guestbook (any stage)');
  });

  test('a rotated key is fetched on first sight of its kid, without restarting the API', async () => {
    const freight = await setUp();
    assert.equal(
      (await call('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', await ciToken(), { freight })).status,
      201,
    );
    const before = issuer.jwksFetches();
    await issuer.rotate();
    const fresh = await ciToken();
    const reply = await call('GET', '/api/v1/pipelines/guestbook', fresh);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(issuer.jwksFetches(), before + 1, 'one JWKS fetch for the new kid');
    assert.equal((await call('GET', '/api/v1/pipelines/guestbook', fresh)).status, 200);
    assert.equal(issuer.jwksFetches(), before + 1, 'and then cached');
  });

  test('tokens with unknown key ids refetch the JWKS at most once per cooldown', async () => {
    const issuers = parseServerConfig(
      `oidc: { issuers: [{ issuer: "${issuer.url}", audience: "${AUDIENCE}", jwksCooldown: 1h, ` +
        `rules: [{ match: { repository: acme/guestbook }, user: "{repository}" }] }] }`,
      'test',
    ).oidc?.issuers;
    const verifier = createOidcVerifier(issuers ?? [], { roles: createRoleBook({ bindings: [] }) });
    const start = issuer.jwksFetches();
    assert.equal((await verifier.verify(await ciToken())).user, 'acme/guestbook');
    assert.equal(issuer.jwksFetches(), start + 1);
    for (let i = 0; i < 3; i++) {
      await assert.rejects(verifier.verify(await ciToken({ key: 'foreign' })), /not signed by a key of the issuer/);
    }
    assert.equal(issuer.jwksFetches(), start + 1, 'garbage key ids do not make Ferry hammer the issuer');
  });

  test("the issuer answers GitHub Actions' token request with {value}, and Ferry accepts that token", async () => {
    await setUp();
    const { requestUrl, requestToken } = issuer.actions;
    const refused = await fetch(`${requestUrl}&audience=${encodeURIComponent(AUDIENCE)}`);
    assert.equal(refused.status, 401);
    const response = await fetch(`${requestUrl}&audience=${encodeURIComponent(AUDIENCE)}`, {
      headers: { Authorization: `bearer ${requestToken}` },
    });
    assert.equal(response.status, 200);
    const { value } = (await response.json()) as { value: string };
    assert.equal((await call('GET', '/api/v1/pipelines/guestbook', value)).status, 200);
  });
});

describe('roles on every route', () => {
  test('a viewer reads but cannot promote, register freight, apply or decide: 403 naming the missing role', async () => {
    const freight = await setUp();
    assert.equal((await call('GET', '/api/v1/pipelines/guestbook', VIEWER)).status, 200);
    assert.deepEqual((await call('GET', '/api/v1/pipelines', VIEWER)).body, {
      pipelines: [{ name: 'guestbook', stages: ['dev', 'staging', 'prod'], status: 'Running' }],
    });
    const cases: Array<[string, string, unknown, string]> = [
      ['POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', { freight }, 'promoter on guestbook/dev'],
      [
        'POST',
        '/api/v1/pipelines/guestbook/freight',
        { artifacts: { guestbook: '2.0.0' } },
        'promoter on guestbook (any stage)',
      ],
      ['PUT', '/api/v1/pipelines/guestbook', PIPELINE_YAML, 'admin on guestbook/*'],
      [
        'POST',
        `/api/v1/promotions/promotion/guestbook/prod/${freight}/approve`,
        undefined,
        'approver on guestbook/prod',
      ],
      [
        'POST',
        `/api/v1/promotions/promotion/guestbook/prod/${freight}/reject`,
        undefined,
        'approver on guestbook/prod',
      ],
      [
        'POST',
        `/api/v1/promotions/promotion/guestbook/prod/${freight}/abort`,
        undefined,
        'promoter or approver on guestbook/prod',
      ],
    ];
    for (const [method, url, body, needs] of cases) {
      const reply = await call(method, url, VIEWER, body);
      assert.equal(reply.status, 403, `${method} ${url}`);
      assert.deepEqual(reply.body.error, { code: 'Forbidden', message: `user "vera" needs role ${needs}` });
    }
    assert.equal(ferry.promoteCalls.length, 0);
    assert.equal(ferry.decisions.length, 0);
    assert.equal(ferry.applied.length, 1, 'only the admin’s apply');
  });

  test('a user with no role on a pipeline does not see it in the list', async () => {
    await setUp();
    const gitlab = await ciToken({}, { repository_owner: 'acme', ref_protected: true, project_path: 'acme/app' });
    assert.deepEqual((await call('GET', '/api/v1/pipelines', gitlab)).body, { pipelines: [] });
  });

  test('stage-scoped roles: a staging promoter promotes staging only; a prod approver approves prod', async () => {
    const freight = await setUp();
    ferry.promotions.clear();
    const staging = await call('POST', '/api/v1/pipelines/guestbook/stages/staging/promotions', STAGING_PROMOTER, {
      freight,
    });
    assert.equal(staging.status, 201, JSON.stringify(staging.body));
    const dev = await call('POST', '/api/v1/pipelines/guestbook/stages/dev/promotions', STAGING_PROMOTER, {
      freight,
    });
    assert.equal(dev.body.error?.message, 'user "sam" needs role promoter on guestbook/dev');

    const prod = await call('POST', '/api/v1/pipelines/guestbook/stages/prod/promotions', ADMIN, { freight });
    const id = prod.body.id as string;
    assert.equal((await call('GET', `/api/v1/promotions/${id}`, STAGING_PROMOTER)).status, 403);
    const approved = await call('POST', `/api/v1/promotions/${id}/approve`, PROD_APPROVER, { comment: 'ok' });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.deepEqual(ferry.decisions.at(-1)?.decision, {
      user: 'rita',
      comment: 'ok',
      roles: ['viewer', 'approver'],
    });
    assert.equal(freightId({ guestbook: '1.0.0' }), freight);
  });

  test('a promotion id that names no pipeline and stage is 404 before any role check', async () => {
    const reply = await call('GET', '/api/v1/promotions/not-a-promotion', VIEWER);
    assert.equal(reply.status, 404);
  });
});

describe('server configuration', () => {
  test('every mistake comes back by path', () => {
    assert.throws(
      () =>
        parseServerConfig(
          `
roles:
  - users: [alice]
    role: superuser
  - role: viewer
oidc:
  issuers:
    - issuer: not a url
      rules:
        - match: {}
          user: "x{"
      extra: 1
`,
          'server.yaml',
        ),
      (err: Error) => {
        for (const line of [
          'roles[0].role: must be one of viewer, promoter, approver, admin',
          'roles[1].users: must be a list of user names or globs',
          'oidc.issuers[0].issuer: must be the issuer URL',
          'oidc.issuers[0].audience: is required',
          'oidc.issuers[0].rules[0].match: must name at least one claim',
          'oidc.issuers[0].rules[0].user: every "{" must start a {claim} placeholder',
          'oidc.issuers[0]: unknown field extra',
        ]) {
          assert.ok(err.message.includes(line), `missing "${line}" in:\n${err.message}`);
        }
        return /^server configuration server\.yaml is invalid:/.test(err.message);
      },
    );
  });

  test('algorithms are asymmetric only: HS256 and none cannot be allowed', () => {
    for (const alg of ['HS256', 'none']) {
      assert.throws(
        () =>
          parseServerConfig(
            `oidc: { issuers: [{ issuer: "https://x.example", audience: a, algorithms: [${alg}], rules: [{ match: { a: b }, user: u }] }] }`,
            's',
          ),
        /oidc\.issuers\[0\]\.algorithms\[0\]: must be one of RS256/,
      );
    }
  });

  test("the local issuer's helper writes a valid configuration that trusts it", () => {
    const parsed = parseServerConfig(serverConfigTrusting(issuer, { audience: AUDIENCE, admins: ['root'] }), 't');
    assert.equal(parsed.oidc?.issuers[0].issuer, issuer.url);
    assert.deepEqual(parsed.roles, [{ users: ['root'], role: 'admin' }]);
  });

  test('FERRY_CONFIG names the file; the default <FERRY_HOME>/server.yaml may be absent', () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-config-'));
    try {
      assert.deepEqual(loadServerConfig({ FERRY_HOME: home }), { config: {} });
      assert.throws(() => loadServerConfig({ FERRY_CONFIG: path.join(home, 'nope.yaml') }), /does not exist/);
      fs.writeFileSync(path.join(home, 'server.yaml'), 'roles: [{ users: [a], role: admin }]\n');
      assert.deepEqual(loadServerConfig({ FERRY_HOME: home }).config.roles, [{ users: ['a'], role: 'admin' }]);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  test('globs: * is any run of characters, / included; no * means exact', () => {
    assert.ok(globMatches('acme/*', 'acme/guestbook'));
    assert.ok(globMatches('refs/tags/v*', 'refs/tags/v1.2.0'));
    assert.ok(globMatches('*-prod', 'eu-prod'));
    assert.ok(globMatches('a*b*c', 'a-b-b-c'));
    assert.ok(!globMatches('acme/*', 'acme2/x'));
    assert.ok(!globMatches('dev', 'dev2'));
    assert.ok(!globMatches('a*b', 'ab-'));
    assert.ok(globMatches('*', '*') && !globMatches('dev', '*'), 'only * covers a whole pipeline');
  });

  test('without roles configured: token users promote and approve, OIDC users get only their rules, admins all', () => {
    const book = createRoleBook({ admins: ['root'] });
    assert.equal(book.configured, false);
    assert.deepEqual(book.grantsFor('alice', 'token'), [{ role: 'promoter' }, { role: 'approver' }]);
    assert.deepEqual(book.grantsFor('github:acme/x@main', 'oidc'), []);
    assert.deepEqual(book.grantsFor('root', 'token')[0], { role: 'admin' });
  });
});

describe('ferry token create', () => {
  test('adds a token for a user to the tokens file, stores only its digest, and prints it once', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-token-'));
    try {
      const out: string[] = [];
      const err: string[] = [];
      const io = {
        out: (line = '') => out.push(line),
        err: (line: string) => err.push(line),
        env: { FERRY_HOME: home },
        cwd: home,
        readStdin: () => '',
      };
      const store = createTokenStore({ env: { FERRY_HOME: home }, logger: silentLogger });
      assert.equal(await run(['token', 'create', 'ci-bot'], io), 0, err.join('\n'));
      assert.equal(out.length, 1);
      const created = out[0];
      assert.match(created, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(store.userForToken(created), 'ci-bot', 'the running store accepts it without a restart');
      const stored = fs.readFileSync(path.join(home, 'tokens.json'), 'utf8');
      assert.ok(!stored.includes(created));
      assert.deepEqual(JSON.parse(stored), { tokens: [{ sha256: tokenDigest(created), user: 'ci-bot' }] });
      assert.match(err.join('\n'), /added a token for "ci-bot" to .*tokens\.json \(only its sha256 is stored\)/);

      assert.equal(await run(['token', 'create', 'bad user'], io), 2);
      assert.equal(await run(['token', 'list'], io), 2);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
