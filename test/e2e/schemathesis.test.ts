// Fuzzes the running API from its own OpenAPI document with schemathesis (PyPI, pinned, installed into .tools/ by
// dev/schemathesis.ts): a real Temporal dev server, the worker, the HTTP API on 127.0.0.1, a pipeline applied over a
// real git repository and freight promoted into dev, so the routes have something to find. Bounded (a few examples
// per operation, one worker). Fails on any 5xx and on any answer the document does not describe (status, content
// type, body schema), and prints how many requests were sent, server errors and mismatches. SCHEMATHESIS_PATH picks an
// installed schemathesis of the pinned version; FERRY_SCHEMATHESIS_REPORT=FILE keeps the NDJSON report, and
// FERRY_SCHEMATHESIS_EXAMPLES=N fuzzes with N examples per operation instead of 10.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ApiServer } from '../../api/server';
import { examplePipelineYaml } from '../../dev/example';
import { ensureSchemathesis } from '../../dev/schemathesis';
import { parsePipelineText } from '../../pipeline/load';
import { until } from '../helpers/processes';
import { startStack, type Stack } from '../helpers/stack';

const ADMIN_TOKEN = 'tok-schemathesis-admin-0123456789abcdef';
const CHECKS = [
  'not_a_server_error',
  'status_code_conformance',
  'content_type_conformance',
  'response_schema_conformance',
];
/**
 * Per operation; with the examples and coverage phases about 1,700 requests, under a minute here.
 * FERRY_SCHEMATHESIS_EXAMPLES asks for a deeper run.
 */
const MAX_EXAMPLES = Number(process.env.FERRY_SCHEMATHESIS_EXAMPLES) || 10;

interface Outcome {
  requests: number;
  /** Answers with a 5xx status. */
  serverErrors: number;
  /** Failed conformance checks: an undocumented status or content type, or a body the schema does not describe. */
  mismatches: number;
  failures: string[];
}

interface Recorder {
  label: string;
  checks?: Record<string, Array<{ name: string; status: string; failure_info?: unknown }>>;
  interactions?: Record<string, { request: { method: string; uri: string }; response?: { status_code: number } }>;
}

/** Reads the run's NDJSON report: each finished scenario records its requests, responses and check results. */
function readReport(file: string): Outcome {
  const outcome: Outcome = { requests: 0, serverErrors: 0, mismatches: 0, failures: [] };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const event = JSON.parse(line) as { ScenarioFinished?: { recorder: Recorder } };
    const recorder = event.ScenarioFinished?.recorder;
    if (!recorder) continue;
    for (const [id, interaction] of Object.entries(recorder.interactions ?? {})) {
      outcome.requests++;
      const status = interaction.response?.status_code;
      if (status !== undefined && status >= 500) {
        outcome.serverErrors++;
        outcome.failures.push(`${status}: ${interaction.request.method} ${interaction.request.uri} (case ${id})`);
      }
      for (const check of recorder.checks?.[id] ?? []) {
        if (check.status === 'success' || check.name === 'not_a_server_error') continue;
        outcome.mismatches++;
        outcome.failures.push(
          `${check.name} ${check.status}: ${interaction.request.method} ${interaction.request.uri} → ${status}: ` +
            JSON.stringify(check.failure_info ?? {}).slice(0, 500),
        );
      }
    }
  }
  return outcome;
}

describe('schemathesis fuzzes the running API from its OpenAPI document', () => {
  let dir: string;
  let stack: Stack;
  let api: ApiServer;
  let schemathesis: string;

  before(async () => {
    schemathesis = ensureSchemathesis();
    // Configured as `npm start` configures it: callback gates have their key (without one their routes answer 503).
    stack = await startStack({
      name: 'schemathesis',
      tokens: { [ADMIN_TOKEN]: 'alice' },
      api: { admins: ['alice'], callbackKey: randomBytes(32) },
    });
    ({ api, dir } = stack);
    const { ferry, repo } = stack;

    // The walkthrough's pipeline and freight: the document's examples (guestbook, dev, its promotion) exist.
    const loaded = parsePipelineText(examplePipelineYaml(repo.url, ['alice', 'bob']), { source: 'example' });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    await ferry.applyPipeline(loaded.pipeline);
    const { id: freight } = await ferry.addFreight('guestbook', { guestbook: '1.4.2' });
    await until(
      'the example freight to reach dev',
      async () =>
        (await ferry.getPipeline('guestbook')).stages.find((s) => s.name === 'dev')?.current?.freight === freight
          ? true
          : undefined,
      120_000,
    );
    await ferry.promote('guestbook', 'staging', freight, 'alice');
  });

  after(async () => {
    await stack?.close();
  });

  it('sends its requests and finds no server error and no answer the document does not describe', async () => {
    const report = process.env.FERRY_SCHEMATHESIS_REPORT ?? join(dir, 'report.ndjson');
    const args = [
      'run',
      `${api.url}/api/v1/openapi.json`,
      '--url',
      api.url,
      '--header',
      `Authorization: Bearer ${ADMIN_TOKEN}`,
      '--checks',
      CHECKS.join(','),
      '--phases',
      'examples,coverage,fuzzing',
      '--max-examples',
      String(MAX_EXAMPLES),
      '--seed',
      '20261128',
      '--workers',
      '1',
      '--request-timeout',
      '60',
      '--no-color',
      '--report',
      'ndjson',
      '--report-ndjson-path',
      report,
    ];
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        schemathesis,
        args,
        { cwd: dir, env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 64 * 1024 * 1024 },
        (error, out, err) => resolve({ code: error ? Number(error.code ?? -1) : 0, stdout: out, stderr: err }),
      );
    });
    const outcome = readReport(report);
    const summary =
      `schemathesis: ${outcome.requests} requests, ${outcome.serverErrors} server errors, ` +
      `${outcome.mismatches} schema mismatches (exit ${code})`;
    process.stdout.write(`${summary}\n`);
    const detail = `${summary}\n${outcome.failures.slice(0, 20).join('\n')}\n${stdout.slice(-6000)}\n${stderr.slice(-2000)}`;
    assert.equal(outcome.serverErrors, 0, detail);
    assert.equal(outcome.mismatches, 0, detail);
    assert.equal(code, 0, detail);
    assert.ok(outcome.requests > 50, detail);
  });
});
