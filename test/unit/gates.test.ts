// Gates without a server: the callback token, the JSON-path subset, whether an answer passes, the schema's
// errors, and the promotion core's rules for deciding a gate.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { judgeAnswer } from '../../activities/gates/http-gate';
import {
  callbackKeyFromEnv,
  callbackToken,
  callbackUrl,
  ensureCallbackKey,
  publicBaseUrl,
  verifyCallbackToken,
  type GateRef,
} from '../../client/gate-callbacks';
import { parseJsonPath, valueAtJsonPath } from '../../pipeline/json-path';
import { parsePipelineText } from '../../pipeline/load';
import type { PromotionInput, PromotionStatus } from '../../workflows/messages';
import { decideGate, gateDecisionRefusal, newPromotionStatus, settle, stepsOf } from '../../workflows/promotion-core';
import { guestbookYaml } from '../helpers/fixtures';

const REF: GateRef = {
  promotionId: 'promotion/guestbook/prod/147e2509566b',
  runId: '01a220b9-96d9-730b-9d97-bf25361ff9db',
  gate: 'e2e',
};

describe('callback tokens', () => {
  const key = randomBytes(32);

  test('a token names its gate and run, and verifies under its key only', () => {
    const token = callbackToken(key, REF);
    assert.match(token, /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(verifyCallbackToken(key, token), REF);
    assert.equal(verifyCallbackToken(randomBytes(32), token), undefined);
    // The same gate in another run has another token.
    assert.notEqual(callbackToken(key, { ...REF, runId: 'other-run' }), token);
  });

  test('altered, truncated and malformed tokens are refused', () => {
    const token = callbackToken(key, REF);
    const [version, payload, mac] = token.split('.');
    const otherGate = Buffer.from(JSON.stringify([REF.promotionId, REF.runId, 'smoke'])).toString('base64url');
    for (const forged of [
      `${version}.${otherGate}.${mac}`,
      `${version}.${payload}.${mac.slice(0, -1)}`,
      `${version}.${payload}.${mac}A`,
      `v2.${payload}.${mac}`,
      `${version}.${payload}`,
      '',
      'x'.repeat(5000),
      `${version}.${payload}.${mac}.extra`,
      `${version}.${payload}.${'A'.repeat(43)}`,
    ]) {
      assert.equal(verifyCallbackToken(key, forged), undefined, forged.slice(0, 60));
    }
  });

  test('a payload that is signed but not a gate reference is refused', () => {
    // Signed with the real key, as only a key holder could: the shape check is the last line of defence.
    const sign = (fields: unknown): string => {
      const payload = Buffer.from(JSON.stringify(fields)).toString('base64url');
      const mac = createHmac('sha256', key).update(`ferry-gate-callback.v1.${payload}`).digest('base64url');
      return `v1.${payload}.${mac}`;
    };
    assert.deepEqual(verifyCallbackToken(key, sign([REF.promotionId, REF.runId, REF.gate])), REF);
    assert.equal(verifyCallbackToken(key, sign(['not/a/promotion', REF.runId, REF.gate])), undefined);
    assert.equal(verifyCallbackToken(key, sign([REF.promotionId, REF.runId, 'Bad Gate'])), undefined);
    assert.equal(verifyCallbackToken(key, sign({ p: REF.promotionId })), undefined);
  });

  test('the key comes from FERRY_CALLBACK_KEY and must be long enough; the error never shows it', () => {
    assert.equal(callbackKeyFromEnv({}), undefined);
    assert.throws(
      () => callbackKeyFromEnv({ FERRY_CALLBACK_KEY: 'short-secret' }),
      (err: Error) => {
        assert.match(err.message, /FERRY_CALLBACK_KEY must be at least 32 characters/);
        assert.ok(!err.message.includes('short-secret'));
        return true;
      },
    );
    const env = { FERRY_CALLBACK_KEY: 'k'.repeat(40) };
    assert.deepEqual(callbackKeyFromEnv(env), Buffer.from('k'.repeat(40)));
  });

  test('callbackUrl (the events hook) uses FERRY_PUBLIC_URL, else FERRY_HOST and FERRY_PORT', () => {
    const env = { FERRY_CALLBACK_KEY: 'k'.repeat(40) };
    const token = callbackToken(Buffer.from('k'.repeat(40)), REF);
    assert.equal(callbackUrl(REF, env), `http://127.0.0.1:8234/api/v1/callbacks/${token}`);
    assert.equal(
      callbackUrl(REF, { ...env, FERRY_PUBLIC_URL: 'https://ferry.example.com/' }),
      `https://ferry.example.com/api/v1/callbacks/${token}`,
    );
    assert.equal(publicBaseUrl({ FERRY_HOST: '0.0.0.0', FERRY_PORT: '9000' }), 'http://127.0.0.1:9000');
    assert.throws(() => callbackUrl(REF, {}), /FERRY_CALLBACK_KEY is not set/);
  });
});

test('npm start keeps one callback key in FERRY_HOME, readable by its owner only', (t) => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-key-'));
  t.after(() => fs.rmSync(home, { recursive: true, force: true }));
  const key = ensureCallbackKey(home);
  assert.ok(key.length >= 32);
  const file = path.join(home, 'callback.key');
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  fs.chmodSync(file, 0o644);
  assert.equal(ensureCallbackKey(home), key, 'the same key after a restart, so waiting gates keep their URLs');
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(callbackKeyFromEnv({ FERRY_CALLBACK_KEY: key }), Buffer.from(key));
});

describe('the JSON-path subset', () => {
  test('reads members, quoted members and indexes', () => {
    const doc = { status: 'ok', checks: [{ state: 'green' }], 'build-info': { 'git sha': 'abc' } };
    const at = (path: string): unknown => {
      const parsed = parseJsonPath(path);
      if ('problem' in parsed) throw new Error(parsed.problem);
      const found = valueAtJsonPath(doc, parsed.segments);
      return found.found ? found.value : '<none>';
    };
    assert.equal(at('$.status'), 'ok');
    assert.equal(at('$.checks[0].state'), 'green');
    assert.equal(at("$['build-info']['git sha']"), 'abc');
    assert.deepEqual(at('$.build-info'), { 'git sha': 'abc' });
    assert.equal(at('$.checks[1]'), '<none>');
    assert.equal(at('$.status.deeper'), '<none>');
    assert.deepEqual(at('$'), doc);
  });

  test('refuses what it does not support, naming where', () => {
    for (const path of ['status', '$..status', '$.checks[*]', '$[?(@.a)]', '$.', '$[01]']) {
      const parsed = parseJsonPath(path);
      assert.ok('problem' in parsed, path);
    }
    const parsed = parseJsonPath('$.checks[*]');
    assert.ok('problem' in parsed && /character 9 \("\[\*\]"\)/.test(parsed.problem));
  });
});

describe('whether an http answer passes', () => {
  const expect = { status: 200, jsonPath: '$.status', equals: 'ok' };
  test('status and value must both match; the summary says what was seen', () => {
    assert.deepEqual(judgeAnswer(expect, { status: 200, body: '{"status":"ok"}' }), {
      pass: true,
      summary: 'HTTP 200, $.status = "ok"',
    });
    assert.deepEqual(judgeAnswer(expect, { status: 200, body: '{"status":"degraded"}' }), {
      pass: false,
      summary: 'HTTP 200, $.status = "degraded" (expected "ok")',
    });
    assert.deepEqual(judgeAnswer(expect, { status: 503, body: '{"status":"ok"}' }), {
      pass: false,
      summary: 'HTTP 503 (expected 200): {"status":"ok"}',
    });
    assert.equal(
      judgeAnswer(expect, { status: 200, body: '<html>' }).summary,
      'HTTP 200, the body is not JSON: <html>',
    );
    assert.equal(judgeAnswer(expect, { status: 200, body: '{}' }).summary, 'HTTP 200, $.status is not in the body');
    assert.equal(judgeAnswer({ status: 204 }, { status: 204, body: '' }).pass, true);
    // Compared exactly: the number 1 is not the string "1".
    assert.equal(
      judgeAnswer({ status: 200, jsonPath: '$.n', equals: '1' }, { status: 200, body: '{"n":1}' }).pass,
      false,
    );
    assert.equal(
      judgeAnswer({ status: 200, jsonPath: '$.up', equals: true }, { status: 200, body: '{"up":true}' }).pass,
      true,
    );
  });
});

describe('gates in the pipeline file', () => {
  test('every mistake at once, each with its path', () => {
    const result = parsePipelineText(
      guestbookYaml(`
    - name: dev
      render: { strategy: branch, from: apps/dev, to: env/dev }
      gates:
        - name: e2e
          callback: { timeout: soon }
        - name: e2e
          http: { url: "ftp://x", expect: { jsonPath: "$.status" }, successes: 0 }
        - name: both
          callback: {}
          http: { url: "https://x.example.com" }
        - name: neither
`),
    );
    assert.equal(result.ok, false);
    assert.deepEqual(!result.ok && result.errors, [
      { path: 'spec.stages[0].gates[0].callback.timeout', message: 'must be a duration such as 90s, 10m or 1h' },
      { path: 'spec.stages[0].gates[1].name', message: 'duplicate gate name "e2e"' },
      {
        path: 'spec.stages[0].gates[1].http.url',
        message: 'must be an http:// or https:// URL without a user name or password',
      },
      { path: 'spec.stages[0].gates[1].http.expect.equals', message: 'is required with jsonPath' },
      { path: 'spec.stages[0].gates[1].http.successes', message: 'must be at least 1' },
      { path: 'spec.stages[0].gates[2]', message: 'must have only one of callback or http' },
      { path: 'spec.stages[0].gates[3]', message: 'must have one of callback or http' },
    ]);
  });

  test('defaults: a callback waits an hour; an http gate GETs every 10s for 200, once, for 5m', () => {
    const result = parsePipelineText(
      guestbookYaml(`
    - name: dev
      render: { strategy: branch, from: apps/dev, to: env/dev }
      gates:
        - { name: e2e, callback: {} }
        - { name: smoke, http: { url: "https://guestbook.example.com/healthz" } }
`),
    );
    assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
    assert.deepEqual(result.pipeline.spec.stages[0].gates, [
      { name: 'e2e', callback: { timeout: '1h' } },
      {
        name: 'smoke',
        http: {
          url: 'https://guestbook.example.com/healthz',
          method: 'GET',
          expect: { status: 200 },
          interval: '10s',
          successes: 1,
          timeout: '5m',
        },
      },
    ]);
  });
});

describe('the promotion core: gates', () => {
  const input = (gates: unknown[] | undefined): PromotionInput =>
    ({
      pipeline: 'guestbook',
      stage: { name: 'prod', after: [], promotion: 'manual', render: {}, ...(gates ? { gates } : {}) },
      repo: { url: 'https://git.example.com/gitops.git', branch: 'main' },
      artifacts: [],
      freight: { id: 'f', artifacts: {} },
      requestedBy: 'carol',
      pipelineWorkflowId: 'pipeline/guestbook',
    }) as unknown as PromotionInput;
  const withGates = (): PromotionStatus =>
    newPromotionStatus(
      input([
        { name: 'e2e', callback: { timeout: '1h' } },
        { name: 'smoke', http: { url: 'https://x.example.com' } },
      ]),
      'promotion/guestbook/prod/f',
      't0',
      true,
      true,
    );

  test('a stage with gates has a gates step last and a Pending entry per gate; old runs and stages without have none', () => {
    const status = withGates();
    assert.deepEqual(status.steps.at(-1)?.name, 'gates');
    assert.deepEqual(
      status.gates?.map((g) => [g.name, g.type, g.phase]),
      [
        ['e2e', 'callback', 'Pending'],
        ['smoke', 'http', 'Pending'],
      ],
    );
    const stage = input([{ name: 'e2e', callback: {} }]).stage;
    assert.ok(!stepsOf(stage, true, false).includes('gates'), 'a run started before gates existed');
    assert.equal(newPromotionStatus(input(undefined), 'p', 't0', true, true).gates, undefined);
  });

  test('only a waiting callback gate takes a decision, and only one', () => {
    const status = withGates();
    const notYet = gateDecisionRefusal(status, { gate: 'e2e', result: 'pass' });
    assert.deepEqual([notYet?.type, /is not waiting yet/.test(notYet?.message ?? '')], ['Conflict', true]);
    assert.equal(gateDecisionRefusal(status, { gate: 'nope', result: 'pass' })?.type, 'NotFound');
    assert.match(gateDecisionRefusal(status, { gate: 'smoke', result: 'pass' })?.message ?? '', /is an http gate/);

    status.gates![0].phase = 'Waiting';
    assert.equal(gateDecisionRefusal(status, { gate: 'e2e', result: 'pass' }), undefined);
    const gate = decideGate(status, { gate: 'e2e', result: 'fail', reason: 'red', by: 'ci' }, 't1');
    assert.deepEqual(gate, {
      name: 'e2e',
      type: 'callback',
      phase: 'Failed',
      at: 't1',
      decidedBy: 'callback by ci',
      message: 'red',
      reason: 'GateFailed',
    });
    const again = gateDecisionRefusal(status, { gate: 'e2e', result: 'pass' });
    assert.equal(again?.type, 'Conflict');
    assert.match(again?.message ?? '', /cannot be decided: it already failed \(callback by ci\) at t1: red/);
  });

  test('an abort cancels the waiting gate and skips the rest', () => {
    const status = withGates();
    status.gates![0].phase = 'Waiting';
    status.abortedBy = { user: 'root', at: 't1' };
    assert.equal(gateDecisionRefusal(status, { gate: 'e2e', result: 'pass' })?.type, 'Conflict');
    settle(status, new Error('cancelled'), true, 't2');
    assert.deepEqual(
      status.gates?.map((g) => [g.phase, g.decidedBy]),
      [
        ['Cancelled', 'aborted by root'],
        ['Skipped', undefined],
      ],
    );
  });
});
