// Inbound webhooks over a real HTTP server on 127.0.0.1, backed by the in-memory FerryApi: signing and
// verification, and every way a delivery is refused (each refusal changes nothing). The same routes against a
// real Temporal server and worker are in test/e2e/webhooks.test.ts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { startApiServer, type ApiServer } from '../../api/server';
import {
  createWebhookSecrets,
  gitLabTokenMatches,
  parseSignature,
  signGenericDelivery,
  signGitHubDelivery,
  signGiteaDelivery,
  staticWebhookSecrets,
  verifyGenericDelivery,
  verifyGitHubDelivery,
} from '../../api/webhooks';
import { createDeliveryMemory } from '../../api/webhooks/deliveries';
import { createTokenStore } from '../../client/auth';
import { createLogger } from '../../client/log';
import type { FerryApi } from '../../client/types';
import { apiEnvironment } from '../../dev/environment';
import { freightId } from '../../pipeline/freight';
import { validatePipeline } from '../../pipeline/load';
import type { Pipeline } from '../../pipeline/schema';
import { createMemoryFerry, type MemoryFerry } from '../helpers/memory-ferry';

const CI_SECRET = 'ci-webhook-s3cret-value-0001';
const GITHUB_SECRET = 'github-webhook-s3cret-value-0002';
const GITLAB_SECRET = 'gitlab-webhook-s3cret-value-0003';
const OTHER_SECRET = 'another-team-s3cret-value-0004';
const GITEA_SECRET = 'gitea-webhook-s3cret-value-0005';
const SOURCES_URL = 'https://github.com/org/gitops.git';
const COMMIT = 'a'.repeat(40);

function pipeline(name: string, triggers: unknown, extraArtifacts: unknown[] = []): Pipeline {
  const result = validatePipeline({
    apiVersion: 'ferry.dev/v1alpha1',
    kind: 'Pipeline',
    metadata: { name },
    spec: {
      repo: { url: SOURCES_URL },
      artifacts: [
        { name: 'guestbook', image: 'ghcr.io/org/guestbook' },
        { name: 'worker', image: 'ghcr.io/org/worker' },
        ...extraArtifacts,
      ],
      stages: [{ name: 'dev', render: { strategy: 'branch', from: 'apps/dev', to: 'env/dev' } }],
      triggers,
    },
  });
  assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
  return result.pipeline;
}

let ferry: MemoryFerry;
let server: ApiServer;
let clock = Date.parse('2026-11-28T06:00:00Z');
let logLines: string[] = [];

before(async () => {
  ferry = createMemoryFerry();
  const tokens = createTokenStore({ file: null, env: {}, tokens: {} });
  const logger = createLogger({ write: (line) => logLines.push(line), level: 'debug' });
  const current: FerryApi = new Proxy({} as FerryApi, {
    get: (_target, prop) => {
      const value = (ferry as unknown as Record<string | symbol, unknown>)[prop];
      return typeof value === 'function' ? value.bind(ferry) : value;
    },
  });
  server = await startApiServer({
    ferry: current,
    tokens,
    port: 0,
    logger,
    webhooks: {
      secrets: staticWebhookSecrets({
        'ci-webhook': CI_SECRET,
        'github-webhook': GITHUB_SECRET,
        'gitlab-webhook': GITLAB_SECRET,
        'gitea-webhook': GITEA_SECRET,
        'other-team': OTHER_SECRET,
      }),
      now: () => clock,
      maxBodyBytes: 64 * 1024,
    },
  });
});

after(async () => {
  await server.close();
});

beforeEach(async () => {
  ferry = createMemoryFerry();
  logLines = [];
  clock += 3_600_000; // a new hour: deliveries remembered by an earlier test are past the window
  await ferry.applyPipeline(
    pipeline(
      'guestbook',
      {
        generic: { secret: 'ci-webhook' },
        github: [{ repository: 'org/gitops', secret: 'github-webhook' }],
        gitlab: [{ project: 'group/gitops', secret: 'gitlab-webhook' }],
        gitea: [{ repository: 'org/gitops', secret: 'gitea-webhook' }],
      },
      [{ name: 'sources', git: { url: SOURCES_URL, branch: 'main' } }],
    ),
  );
  await ferry.applyPipeline(pipeline('no-triggers', undefined));
  await ferry.applyPipeline(
    pipeline('other-team', {
      generic: { secret: 'other-team' },
      github: [{ repository: 'org/gitops', secret: 'other-team', events: ['push'] }],
    }),
  );
});

interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

async function post(url: string, body: string | Buffer, headers: Record<string, string>): Promise<Answer> {
  const res = await fetch(`${server.url}${url}`, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

const seconds = (): string => String(Math.floor(clock / 1000));

function generic(
  name: string,
  body: unknown,
  options: { secret?: string; timestamp?: string; signature?: string } = {},
): Promise<Answer> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const timestamp = options.timestamp ?? seconds();
  const signature = options.signature ?? signGenericDelivery(options.secret ?? CI_SECRET, timestamp, text);
  return post(`/webhooks/generic/${name}`, text, {
    'content-type': 'application/json',
    'x-ferry-timestamp': timestamp,
    'x-ferry-signature': signature,
  });
}

let deliveryCounter = 0;
function github(
  event: string,
  payload: unknown,
  options: { secret?: string; delivery?: string; signature?: string | null } = {},
): Promise<Answer> {
  const text = JSON.stringify(payload);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-event': event,
    'x-github-delivery': options.delivery ?? `d-${++deliveryCounter}-0000-4000-8000-000000000000`,
    'user-agent': 'GitHub-Hookshot/abc123',
  };
  if (options.signature !== null) {
    headers['x-hub-signature-256'] = options.signature ?? signGitHubDelivery(options.secret ?? GITHUB_SECRET, text);
  }
  return post('/webhooks/github', text, headers);
}

function gitlab(event: string, payload: unknown, options: { token?: string; uuid?: string } = {}): Promise<Answer> {
  return post('/webhooks/gitlab', JSON.stringify(payload), {
    'content-type': 'application/json',
    'x-gitlab-event': event,
    'x-gitlab-token': options.token ?? GITLAB_SECRET,
    'x-gitlab-event-uuid': options.uuid ?? `u-${++deliveryCounter}`,
  });
}

function gitea(
  event: string,
  payload: unknown,
  options: { secret?: string; delivery?: string; signature?: string | null; forgejo?: boolean } = {},
): Promise<Answer> {
  const text = JSON.stringify(payload);
  const signature =
    options.signature === null
      ? undefined
      : (options.signature ?? signGiteaDelivery(options.secret ?? GITEA_SECRET, text));
  const delivery = options.delivery ?? `g-${++deliveryCounter}-0000-4000-8000-000000000000`;
  // Forgejo sends its own X-Forgejo-* headers; Gitea's are what Ferry reads first.
  const prefix = options.forgejo ? 'x-forgejo' : 'x-gitea';
  return post('/webhooks/gitea', text, {
    'content-type': 'application/json',
    [`${prefix}-event`]: event,
    [`${prefix}-delivery`]: delivery,
    ...(signature !== undefined ? { [`${prefix}-signature`]: signature } : {}),
  });
}

const freightOf = async (name: string) => (await ferry.getPipeline(name)).freight;
const FULL = { guestbook: '1.4.2', worker: '2.0.0', sources: COMMIT };

const registryPackage = (tag: string, image = 'ghcr.io/org/guestbook') => ({
  action: 'published',
  registry_package: {
    name: image.split('/').pop(),
    namespace: 'org',
    ecosystem: 'CONTAINER',
    package_type: 'CONTAINER',
    package_version: {
      version: `sha256:${'b'.repeat(64)}`,
      package_url: `${image}:${tag}`,
      container_metadata: { tag: { name: tag, digest: `sha256:${'b'.repeat(64)}` } },
    },
  },
  repository: { full_name: 'org/gitops', clone_url: SOURCES_URL },
});

// ---------------------------------------------------------------------------------------------------------------

describe('webhook signatures', () => {
  test("GitHub's documented test vector verifies", () => {
    // From GitHub's "Validating webhook deliveries": secret, payload and the signature it gives.
    const signature = signGitHubDelivery("It's a Secret to Everybody", 'Hello, World!');
    assert.equal(signature, 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17');
    assert.ok(
      verifyGitHubDelivery("It's a Secret to Everybody", Buffer.from('Hello, World!'), parseSignature(signature)!),
    );
    assert.ok(!verifyGitHubDelivery('another secret', Buffer.from('Hello, World!'), parseSignature(signature)!));
  });

  test('the generic signature is what the documented openssl line computes over "<timestamp>.<body>"', () => {
    const body = '{"artifacts":{"guestbook":"1.4.2"}}';
    const openssl = execFileSync(
      'sh',
      ['-c', `printf '%s.%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -r`],
      {
        env: { ...process.env, TS: '1764309600', BODY: body, SECRET: CI_SECRET },
        encoding: 'utf8',
      },
    ).split(' ')[0];
    assert.equal(signGenericDelivery(CI_SECRET, '1764309600', body), `sha256=${openssl}`);
    const signature = parseSignature(`sha256=${openssl}`)!;
    assert.ok(verifyGenericDelivery(CI_SECRET, '1764309600', Buffer.from(body), signature));
    assert.ok(!verifyGenericDelivery(CI_SECRET, '1764309601', Buffer.from(body), signature), 'timestamp is covered');
    assert.ok(!verifyGenericDelivery(CI_SECRET, '1764309600', Buffer.from(`${body} `), signature), 'body is covered');
  });

  test('malformed signature headers are not signatures', () => {
    for (const header of [undefined, '', 'sha256=', 'sha1=abc', `sha256=${'z'.repeat(64)}`, `sha256=${'a'.repeat(63)}`])
      assert.equal(parseSignature(header), undefined, String(header));
  });

  test('GitLab tokens compare exactly, whatever their length', () => {
    assert.ok(gitLabTokenMatches(GITLAB_SECRET, GITLAB_SECRET));
    assert.ok(!gitLabTokenMatches(GITLAB_SECRET, `${GITLAB_SECRET}x`));
    assert.ok(!gitLabTokenMatches(GITLAB_SECRET, ''));
  });

  test('the delivery memory acts once per key within its window, forgets failures, and stays bounded', async () => {
    let now = 0;
    const memory = createDeliveryMemory({ ttlMs: 1000, maxEntries: 3, now: () => now });
    let acted = 0;
    const act = async (): Promise<number> => ++acted;
    assert.deepEqual(await memory.once('a', act), { duplicate: false, result: 1 });
    assert.deepEqual(await memory.once('a', act), { duplicate: true });
    await assert.rejects(memory.once('b', () => Promise.reject(new Error('boom'))));
    assert.deepEqual(await memory.once('b', act), { duplicate: false, result: 2 }, 'a failed delivery is retried');
    const [first, second] = await Promise.all([memory.once('c', act), memory.once('c', act)]);
    assert.deepEqual([first, second], [{ duplicate: false, result: 3 }, { duplicate: true }], 'concurrent copies');
    await memory.once('d', act);
    await memory.once('e', act);
    assert.ok(memory.size() <= 3);
    now = 1001;
    assert.deepEqual(await memory.once('e', act), { duplicate: false, result: 6 }, 'past the window');
  });
});

describe('POST /webhooks/generic/{pipeline}', () => {
  test('a signed delivery registers freight (201), the same versions again are the same freight (200)', async () => {
    const res = await generic('guestbook', { artifacts: FULL });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body, { pipeline: 'guestbook', id: freightId(FULL), created: true, artifacts: FULL });
    assert.deepEqual(
      (await freightOf('guestbook')).map((f) => f.id),
      [freightId(FULL)],
    );

    clock += 1000; // a new delivery (new timestamp, new signature) of the same versions
    const again = await generic('guestbook', { artifacts: FULL });
    assert.equal(again.status, 200);
    assert.equal(again.body.created, false);
    assert.equal((await freightOf('guestbook')).length, 1);
  });

  test('a partial set takes the other artifacts from the newest freight', async () => {
    await generic('guestbook', { artifacts: FULL });
    clock += 1000;
    const res = await generic('guestbook', { artifacts: { worker: '2.1.0' } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body.artifacts, { ...FULL, worker: '2.1.0' });
    assert.equal((await freightOf('guestbook'))[0].id, freightId({ ...FULL, worker: '2.1.0' }));
  });

  test('a partial set with no freight to take the rest from is a 400 naming each missing artifact', async () => {
    const res = await generic('guestbook', { artifacts: { worker: '2.1.0' } });
    assert.equal(res.status, 400);
    assert.deepEqual(
      res.body.error.errors.map((e: { path: string }) => e.path),
      ['artifacts.guestbook', 'artifacts.sources'],
    );
    assert.match(res.body.error.errors[0].message, /no freight yet to take it from/);
    assert.deepEqual(await freightOf('guestbook'), []);
  });

  test('a replayed delivery is acknowledged as a duplicate and registers nothing twice', async () => {
    const body = JSON.stringify({ artifacts: FULL });
    const timestamp = seconds();
    const signature = signGenericDelivery(CI_SECRET, timestamp, body);
    const first = await generic('guestbook', body, { timestamp, signature });
    assert.equal(first.status, 201);
    let added = 0;
    const addFreight = ferry.addFreight.bind(ferry);
    ferry.addFreight = async (...args) => {
      added++;
      return addFreight(...args);
    };
    clock += 60_000;
    const replay = await generic('guestbook', body, { timestamp, signature });
    assert.equal(replay.status, 200);
    assert.deepEqual(replay.body, { duplicate: true });
    assert.equal(added, 0);
    assert.equal((await freightOf('guestbook')).length, 1);
  });

  const refusals: Array<{
    what: string;
    status: number;
    send: () => Promise<Answer>;
    message: RegExp;
    paths?: string[];
  }> = [
    {
      what: 'a signature made with another secret',
      status: 401,
      send: () => generic('guestbook', { artifacts: FULL }, { secret: OTHER_SECRET }),
      message: /X-Ferry-Signature does not verify for pipeline "guestbook"/,
    },
    {
      what: 'a body changed after signing',
      status: 401,
      send: () =>
        generic('guestbook', JSON.stringify({ artifacts: { ...FULL, guestbook: '6.6.6' } }), {
          signature: signGenericDelivery(CI_SECRET, seconds(), JSON.stringify({ artifacts: FULL })),
        }),
      message: /does not verify/,
    },
    {
      what: 'no signature',
      status: 401,
      send: () =>
        post('/webhooks/generic/guestbook', JSON.stringify({ artifacts: FULL }), { 'x-ferry-timestamp': seconds() }),
      message: /missing or malformed X-Ferry-Signature/,
    },
    {
      what: 'no timestamp',
      status: 401,
      send: () =>
        post('/webhooks/generic/guestbook', JSON.stringify({ artifacts: FULL }), {
          'x-ferry-signature': signGenericDelivery(CI_SECRET, '', JSON.stringify({ artifacts: FULL })),
        }),
      message: /missing or malformed X-Ferry-Timestamp/,
    },
    {
      what: 'a delivery signed six minutes ago',
      status: 401,
      send: () => generic('guestbook', { artifacts: FULL }, { timestamp: String(Math.floor(clock / 1000) - 360) }),
      message: /X-Ferry-Timestamp is 360 s in the past; deliveries are accepted within 300 s/,
    },
    {
      what: 'a delivery stamped six minutes ahead',
      status: 401,
      send: () => generic('guestbook', { artifacts: FULL }, { timestamp: String(Math.floor(clock / 1000) + 360) }),
      message: /360 s in the future/,
    },
    {
      what: 'malformed JSON',
      status: 400,
      send: () => generic('guestbook', '{"artifacts": {"guestbook": "1.4.2"'),
      message: /request body is not valid JSON/,
    },
    {
      what: 'artifacts that are not an object',
      status: 400,
      send: () => generic('guestbook', { artifacts: ['1.4.2'] }),
      message: /request body is invalid/,
      paths: ['artifacts'],
    },
    {
      what: 'a version that is not a string, and a field that does not exist',
      status: 400,
      send: () => generic('guestbook', { artifacts: { guestbook: 142 }, pipeline: 'prod' }),
      message: /request body is invalid/,
      paths: ['artifacts.guestbook', 'pipeline'],
    },
    {
      what: 'an unknown artifact and a bad commit id',
      status: 400,
      send: () => generic('guestbook', { artifacts: { ...FULL, frontend: '1.0.0', sources: 'main' } }),
      message: /freight does not match the artifacts of pipeline "guestbook"/,
      paths: ['artifacts.sources', 'artifacts.frontend'],
    },
  ];
  for (const refusal of refusals) {
    test(`${refusal.what}: ${refusal.status}, and the pipeline's freight is unchanged`, async () => {
      await generic('guestbook', { artifacts: FULL });
      const before = await freightOf('guestbook');
      clock += 1000;
      const res = await refusal.send();
      assert.equal(res.status, refusal.status, JSON.stringify(res.body));
      assert.match(res.body.error.message, refusal.message);
      if (refusal.paths)
        assert.deepEqual(
          res.body.error.errors.map((e: { path: string }) => e.path),
          refusal.paths,
        );
      assert.equal(res.headers.get('www-authenticate'), null, 'no bearer-token challenge on webhooks');
      assert.deepEqual(await freightOf('guestbook'), before);
    });
  }

  test('an unknown pipeline, or one without a generic trigger, answers like a wrong signature', async () => {
    const unknown = await generic('nope', { artifacts: FULL });
    const untriggered = await generic('no-triggers', { artifacts: FULL });
    for (const [res, name] of [
      [unknown, 'nope'],
      [untriggered, 'no-triggers'],
    ] as const) {
      assert.equal(res.status, 401);
      assert.equal(
        res.body.error.message,
        (await generic('guestbook', { artifacts: FULL }, { secret: 'x' })).body.error.message.replace(
          'guestbook',
          name,
        ),
      );
    }
    assert.deepEqual(await freightOf('no-triggers'), []);
  });

  test("one pipeline's secret does not sign for another", async () => {
    const res = await generic('guestbook', { artifacts: FULL }, { secret: OTHER_SECRET });
    assert.equal(res.status, 401);
    const own = await generic(
      'other-team',
      { artifacts: { guestbook: '1.0.0', worker: '1.0.0' } },
      { secret: OTHER_SECRET },
    );
    assert.equal(own.status, 201);
  });

  test('a body over the limit is refused with 413 before it is read', async () => {
    const declared = 10 * 1024 * 1024;
    const answer = await new Promise<{ status: number; body: string; sent: number }>((resolve, reject) => {
      let sent = 0;
      const req = http.request(`${server.url}/webhooks/generic/guestbook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': declared },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sent }));
      });
      req.on('error', reject);
      // Only the first 16 KiB are ever sent; the answer comes without the rest.
      sent += 16 * 1024;
      req.write(Buffer.alloc(16 * 1024, 'x'));
    });
    assert.equal(answer.status, 413);
    assert.match(JSON.parse(answer.body).error.message, /larger than 65536 bytes/);
    assert.ok(answer.sent < declared);
    assert.deepEqual(await freightOf('guestbook'), []);
  });

  test('a body over the limit without Content-Length is refused with 413 once it passes the limit', async () => {
    const answer = await new Promise<{ status: number }>((resolve, reject) => {
      const req = http.request(`${server.url}/webhooks/generic/guestbook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0 });
      });
      req.on('error', reject);
      req.write(Buffer.alloc(100 * 1024, ' '));
    });
    assert.equal(answer.status, 413);
    assert.deepEqual(await freightOf('guestbook'), []);
  });

  test('a secret the API does not have is logged by name, never by value, and the delivery is a 401', async () => {
    await ferry.applyPipeline(pipeline('unconfigured', { generic: { secret: 'missing-secret' } }));
    const res = await generic('unconfigured', { artifacts: { guestbook: '1.0.0', worker: '1.0.0' } });
    assert.equal(res.status, 401);
    const warning = logLines.map((l) => JSON.parse(l)).find((l) => l.msg?.includes('webhook secret is not configured'));
    assert.ok(warning, logLines.join('\n'));
    assert.equal(warning.secret, 'missing-secret');
  });

  test('the log carries neither secrets nor signatures', async () => {
    const body = JSON.stringify({ artifacts: FULL });
    const signature = signGenericDelivery(CI_SECRET, seconds(), body);
    await generic('guestbook', body, { signature });
    await generic('guestbook', body, { signature });
    await github('registry_package', registryPackage('1.5.0'));
    const log = logLines.join('\n');
    assert.ok(logLines.length > 0);
    for (const secret of [CI_SECRET, GITHUB_SECRET, signature.slice('sha256='.length)])
      assert.ok(!log.includes(secret));
  });
});

describe('POST /webhooks/github', () => {
  test('ping answers 200 once the signature verifies', async () => {
    const payload = { zen: 'Design for failure.', hook_id: 1, repository: { full_name: 'org/gitops' } };
    const res = await github('ping', payload);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(
      res.body.pipelines.map((p: { pipeline: string }) => p.pipeline),
      ['guestbook'],
      "only the pipelines whose secret signed it (not other-team's)",
    );
    assert.equal((await github('ping', payload, { secret: 'wrong' })).status, 401);
    assert.equal((await github('ping', payload, { signature: null })).status, 401);
  });

  test('a published container image registers freight for the artifact with that image', async () => {
    await generic('guestbook', { artifacts: FULL });
    const res = await github('registry_package', registryPackage('1.5.0'));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const expected = { ...FULL, guestbook: '1.5.0' };
    assert.deepEqual(res.body.pipelines, [
      { pipeline: 'guestbook', freight: { id: freightId(expected), created: true, artifacts: expected } },
    ]);
    assert.equal((await freightOf('guestbook'))[0].id, freightId(expected));

    // `package` events carry the same under "package".
    const { registry_package: pkg, ...rest } = registryPackage('1.6.0');
    const viaPackage = await github('package', { ...rest, package: pkg });
    assert.equal(viaPackage.body.pipelines[0].freight.artifacts.guestbook, '1.6.0');
  });

  test('an image no artifact has, or a package that is not a container, is acknowledged and ignored', async () => {
    await generic('guestbook', { artifacts: FULL });
    const before = await freightOf('guestbook');
    const other = await github('registry_package', registryPackage('1.0.0', 'ghcr.io/org/unrelated'));
    assert.equal(other.status, 200);
    assert.match(other.body.pipelines[0].ignored, /no artifact has image ghcr\.io\/org\/unrelated/);
    const npm = registryPackage('1.0.0');
    npm.registry_package.package_type = 'npm';
    npm.registry_package.ecosystem = 'npm';
    assert.match((await github('registry_package', npm)).body.pipelines[0].ignored, /not a container image/);
    assert.deepEqual(await freightOf('guestbook'), before);
  });

  test('a push to the branch of a git artifact registers freight with the pushed commit', async () => {
    await generic('guestbook', { artifacts: FULL });
    const after = 'c'.repeat(40);
    const push = (ref: string) => ({
      ref,
      before: COMMIT,
      after,
      deleted: false,
      repository: { full_name: 'org/gitops', clone_url: SOURCES_URL, ssh_url: 'git@github.com:org/gitops.git' },
    });
    const res = await github('push', push('refs/heads/main'));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.pipelines[0].freight.artifacts.sources, after);
    assert.equal((await freightOf('guestbook'))[0].artifacts.sources, after);
    // other-team watches org/gitops for pushes with its own secret: GitHub's secret did not sign for it.
    assert.deepEqual(await freightOf('other-team'), []);

    const elsewhere = await github('push', push('refs/heads/feature'));
    assert.match(elsewhere.body.pipelines[0].ignored, /no git artifact follows org\/gitops branch feature/);
    const tag = await github('push', push('refs/tags/v1'));
    assert.match(tag.body.pipelines[0].ignored, /is not a branch/);
  });

  test('a redelivered delivery id is a duplicate', async () => {
    await generic('guestbook', { artifacts: FULL });
    const first = await github('registry_package', registryPackage('1.7.0'), { delivery: 'same-id' });
    assert.equal(first.status, 200);
    const count = (await freightOf('guestbook')).length;
    const again = await github('registry_package', registryPackage('1.7.0'), { delivery: 'same-id' });
    assert.deepEqual([again.status, again.body], [200, { duplicate: true }]);
    assert.equal((await freightOf('guestbook')).length, count);
  });

  test('a merged pull request is passed on; a closed one that was not merged is not', async () => {
    const pr = (merged: boolean) => ({
      action: 'closed',
      number: 12,
      pull_request: { number: 12, merged, merge_commit_sha: merged ? 'd'.repeat(40) : null },
      repository: { full_name: 'org/gitops' },
    });
    const res = await github('pull_request', pr(true));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(ferry.pullRequestMerges, [
      { provider: 'github', repository: 'org/gitops', number: 12, mergeCommit: 'd'.repeat(40) },
    ]);
    const closed = await github('pull_request', pr(false));
    assert.match(closed.body.pipelines[0].ignored, /#12 was closed without merging/);
    assert.equal(ferry.pullRequestMerges.length, 1);
  });

  test('an event the trigger does not list is ignored', async () => {
    await ferry.applyPipeline(
      pipeline('pushes-only', { github: [{ repository: 'org/app', secret: 'github-webhook', events: ['push'] }] }),
    );
    const res = await github('registry_package', { ...registryPackage('1.0.0'), repository: { full_name: 'org/app' } });
    assert.equal(res.status, 200);
    assert.match(res.body.pipelines[0].ignored, /"registry_package" is not among spec.triggers.github events \(push\)/);
  });

  test('refusals change nothing: forged 401, missing headers 400, malformed 400, unwatched repository 401', async () => {
    await generic('guestbook', { artifacts: FULL });
    const before = await freightOf('guestbook');
    const forged = await github('registry_package', registryPackage('6.6.6'), {
      signature: signGitHubDelivery(GITHUB_SECRET, '{}'),
    });
    assert.equal(forged.status, 401);
    assert.match(forged.body.error.message, /X-Hub-Signature-256 does not verify .* org\/gitops/);
    const noEvent = await post('/webhooks/github', JSON.stringify(registryPackage('6.6.6')), {
      'x-hub-signature-256': signGitHubDelivery(GITHUB_SECRET, JSON.stringify(registryPackage('6.6.6'))),
      'x-github-delivery': 'x',
    });
    assert.deepEqual([noEvent.status, noEvent.body.error.message], [400, 'missing X-GitHub-Event header']);
    const malformed = '{"repository": ';
    const bad = await post('/webhooks/github', malformed, {
      'x-hub-signature-256': signGitHubDelivery(GITHUB_SECRET, malformed),
      'x-github-event': 'push',
      'x-github-delivery': 'y',
    });
    assert.equal(bad.status, 400);
    const noRepository = await github('push', { ref: 'refs/heads/main', after: COMMIT });
    assert.deepEqual([noRepository.status, noRepository.body.error.errors[0].path], [400, 'repository']);
    const unwatched = await github('registry_package', {
      ...registryPackage('6.6.6'),
      repository: { full_name: 'org/x' },
    });
    assert.equal(unwatched.status, 401);
    assert.deepEqual(await freightOf('guestbook'), before);
  });
});

describe('POST /webhooks/gitlab', () => {
  const push = {
    object_kind: 'push',
    ref: 'refs/heads/main',
    before: COMMIT,
    after: 'e'.repeat(40),
    project: { path_with_namespace: 'group/gitops', git_http_url: SOURCES_URL },
  };

  test('a Push Hook with the secret token registers freight; a wrong or missing token is a 401', async () => {
    await generic('guestbook', { artifacts: FULL });
    assert.equal((await gitlab('Push Hook', push, { token: 'wrong' })).status, 401);
    const missing = await post('/webhooks/gitlab', JSON.stringify(push), { 'x-gitlab-event': 'Push Hook' });
    assert.deepEqual(
      [missing.status, missing.body.error.message],
      [401, 'missing X-Gitlab-Token: give the GitLab webhook a secret token'],
    );
    assert.equal((await freightOf('guestbook')).length, 1);

    const res = await gitlab('Push Hook', push, { uuid: 'event-1' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.pipelines[0].freight.artifacts.sources, 'e'.repeat(40));
    assert.deepEqual((await gitlab('Push Hook', push, { uuid: 'event-1' })).body, { duplicate: true });
    assert.equal((await freightOf('guestbook')).length, 2);
  });

  test('a Merge Request Hook with action merge is passed on; other actions are not', async () => {
    const mr = (action: string) => ({
      object_kind: 'merge_request',
      project: { path_with_namespace: 'group/gitops' },
      object_attributes: {
        iid: 7,
        action,
        state: action === 'merge' ? 'merged' : 'opened',
        merge_commit_sha: 'f'.repeat(40),
      },
    });
    assert.equal((await gitlab('Merge Request Hook', mr('open'))).status, 200);
    assert.deepEqual(ferry.pullRequestMerges, []);
    const res = await gitlab('Merge Request Hook', mr('merge'));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(ferry.pullRequestMerges, [
      { provider: 'gitlab', repository: 'group/gitops', number: 7, mergeCommit: 'f'.repeat(40) },
    ]);
  });
});

describe('POST /webhooks/gitea', () => {
  const push = (ref = 'refs/heads/main') => ({
    ref,
    before: COMMIT,
    after: '9'.repeat(40),
    repository: { full_name: 'org/gitops', clone_url: SOURCES_URL, ssh_url: 'ssh://git@github.com/org/gitops.git' },
  });
  const pr = (action: string, merged: boolean) => ({
    action,
    number: 3,
    pull_request: {
      number: 3,
      state: action === 'closed' ? 'closed' : 'open',
      merged,
      merge_commit_sha: merged ? '8'.repeat(40) : null,
    },
    repository: { full_name: 'Org/GitOps' },
  });

  test('a signed push registers freight for the git artifact; the same delivery again is a duplicate', async () => {
    await generic('guestbook', { artifacts: FULL });
    const res = await gitea('push', push(), { delivery: 'gitea-delivery-1' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.pipelines[0].freight.artifacts.sources, '9'.repeat(40));
    assert.equal((await freightOf('guestbook'))[0].artifacts.sources, '9'.repeat(40));
    assert.deepEqual((await gitea('push', push(), { delivery: 'gitea-delivery-1' })).body, { duplicate: true });
    const tag = await gitea('push', push('refs/tags/v1'));
    assert.match(tag.body.pipelines[0].ignored, /is not a branch/);
  });

  test('a merged pull request is passed on with provider gitea; one closed without merging is not', async () => {
    const opened = await gitea('pull_request', pr('opened', false));
    assert.match(opened.body.pipelines[0].ignored, /#3 was opened/);
    const closed = await gitea('pull_request', pr('closed', false));
    assert.match(closed.body.pipelines[0].ignored, /#3 was closed without merging/);
    assert.deepEqual(ferry.pullRequestMerges, []);
    const merged = await gitea('pull_request', pr('closed', true));
    assert.equal(merged.status, 200, JSON.stringify(merged.body));
    assert.deepEqual(ferry.pullRequestMerges, [
      { provider: 'gitea', repository: 'Org/GitOps', number: 3, mergeCommit: '8'.repeat(40) },
    ]);
  });

  test("Forgejo's own headers are taken too", async () => {
    const res = await gitea('pull_request', pr('closed', true), { forgejo: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(ferry.pullRequestMerges.length, 1);
  });

  test('refusals change nothing: forged or missing signature 401, unwatched repository 401, events not listed ignored', async () => {
    await generic('guestbook', { artifacts: FULL });
    const before = await freightOf('guestbook');
    const forged = await gitea('push', push(), { secret: 'guessed' });
    assert.equal(forged.status, 401);
    assert.match(
      forged.body.error.message,
      /X-Gitea-Signature does not verify .* org\/gitops \(spec\.triggers\.gitea\)/,
    );
    const prefixed = await gitea('push', push(), {
      signature: `sha256=${signGiteaDelivery(GITEA_SECRET, JSON.stringify(push()))}`,
    });
    assert.equal(prefixed.status, 401, 'Gitea signs without a sha256= prefix');
    const unsigned = await gitea('push', push(), { signature: null });
    assert.deepEqual(
      [unsigned.status, unsigned.body.error.message],
      [
        401,
        'missing or malformed X-Gitea-Signature: give the Gitea webhook a secret (Ferry takes no unsigned deliveries)',
      ],
    );
    const unwatched = await gitea('push', { ...push(), repository: { full_name: 'org/other' } });
    assert.equal(unwatched.status, 401);
    assert.equal((await gitea('pull_request', pr('closed', true), { secret: 'guessed' })).status, 401);
    assert.deepEqual(ferry.pullRequestMerges, []);
    assert.deepEqual(await freightOf('guestbook'), before);

    await ferry.applyPipeline(
      pipeline('pushes-only', { gitea: [{ repository: 'org/app', secret: 'gitea-webhook', events: ['push'] }] }),
    );
    const notListed = await gitea('pull_request', { ...pr('closed', true), repository: { full_name: 'org/app' } });
    assert.match(
      notListed.body.pipelines[0].ignored,
      /"pull_request" is not among spec.triggers.gitea events \(push\)/,
    );
    const other = await gitea('issues', { action: 'opened', repository: { full_name: 'org/app' } });
    assert.match(other.body.pipelines[0].ignored, /event "issues" is not acted on/);
    assert.deepEqual(ferry.pullRequestMerges, []);
  });
});

describe('webhook secrets on the API', () => {
  test('only listed names resolve from the environment; the directory holds the rest', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-webhook-secrets-'));
    try {
      fs.writeFileSync(path.join(dir, 'from-dir'), 'dir-secret\n');
      const secrets = createWebhookSecrets({
        FERRY_WEBHOOK_SECRETS: 'ci-webhook, github-webhook',
        FERRY_SECRET_CI_WEBHOOK_TOKEN: 'env-secret',
        FERRY_SECRET_GITOPS_TOKEN: 'git-token',
        FERRY_SECRET_GITOPS_PASSWORD: 'git-password',
        FERRY_WEBHOOK_SECRETS_DIR: dir,
        FERRY_SECRETS_DIR: dir,
      });
      assert.equal(secrets.resolve('ci-webhook'), 'env-secret');
      assert.equal(secrets.resolve('github-webhook'), undefined);
      assert.equal(secrets.resolve('gitops'), undefined, "the worker's git credential is not a webhook secret");
      assert.equal(secrets.resolve('from-dir'), 'dir-secret');
      assert.equal(secrets.resolve('../etc'), undefined);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("npm start hands the API only the listed webhook secrets' variables", () => {
    const env = apiEnvironment({
      PATH: '/bin',
      FERRY_WEBHOOK_SECRETS: 'ci-webhook',
      FERRY_WEBHOOK_SECRETS_DIR: '/run/secrets/webhooks',
      FERRY_SECRET_CI_WEBHOOK_TOKEN: 'env-secret',
      FERRY_SECRET_CI_WEBHOOK_PASSWORD: 'not-this',
      FERRY_SECRET_GITOPS_TOKEN: 'git-token',
      FERRY_SECRETS_DIR: '/run/secrets/worker',
    });
    assert.deepEqual(env, {
      PATH: '/bin',
      FERRY_WEBHOOK_SECRETS: 'ci-webhook',
      FERRY_WEBHOOK_SECRETS_DIR: '/run/secrets/webhooks',
      FERRY_SECRET_CI_WEBHOOK_TOKEN: 'env-secret',
    });
  });
});
