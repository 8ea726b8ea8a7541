// The README, taken literally: `npm start` in one process, then the walkthrough's shell lines, verbatim, in bash.
// If the README and the product drift apart, this test fails.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../../dev/temporal';
import { freePort, spawnProcess, stopGroup, until, type Spawned } from '../helpers/processes';

/** The shell lines of the README's walkthrough block. */
export function walkthroughLines(readme: string): string[] {
  const block = /<!-- walkthrough:start[^>]*-->\s*```bash\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(readme);
  if (!block)
    throw new Error(
      'README.md has no walkthrough block between <!-- walkthrough:start --> and <!-- walkthrough:end -->',
    );
  return block[1].split('\n').filter((l) => l.trim() !== '');
}

describe('README walkthrough against `npm start`', () => {
  let dir: string;
  let stack: Spawned;
  const env: NodeJS.ProcessEnv = { ...process.env };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-walkthrough-'));
    const [temporalPort, uiPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    Object.assign(env, {
      FERRY_HOME: join(dir, '.ferry'),
      TEMPORAL_PORT: String(temporalPort),
      TEMPORAL_UI_PORT: String(uiPort),
      FERRY_PORT: String(apiPort),
      FERRY_URL: `http://127.0.0.1:${apiPort}`,
    });
    delete env.FERRY_TOKEN;
    delete env.FERRY_TOKENS;
    stack = spawnProcess('npm', ['start', '--silent'], { cwd: PROJECT_ROOT, env });
    await stack.waitFor(/Press Ctrl-C to stop\./, 180_000);
  });

  after(async () => {
    if (stack) await stopGroup(stack, 'SIGINT');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('prints the API URL, the Temporal UI URL and a CLI token', () => {
    const out = stack.output();
    assert.match(out, new RegExp(`HTTP API +${env.FERRY_URL}`));
    assert.match(out, new RegExp(`Temporal UI +http://127\\.0\\.0\\.1:${env.TEMPORAL_UI_PORT}`));
    const token = readFileSync(join(dir, '.ferry', 'token'), 'utf8').trim();
    assert.ok(token.length >= 32);
    assert.ok(out.includes(`CLI token    ${token}`));
  });

  it('runs every walkthrough line as written and ends with the freight in prod', async () => {
    const lines = walkthroughLines(readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8'));
    assert.ok(lines.length >= 8);
    // `npx ferry` resolves the project's bin; the walkthrough runs in a directory whose `.ferry` is FERRY_HOME,
    // just as a user's terminal in the checkout would.
    const script = [
      'set -euo pipefail',
      `npx() { if [ "$1" = ferry ]; then shift; node ${JSON.stringify(join(PROJECT_ROOT, 'bin', 'ferry.js'))} "$@"; else command npx "$@"; fi; }`,
      ...lines.map((l) => `echo "+ ${l.replace(/(["`$\\])/g, '\\$1')}"; ${l}`),
    ].join('\n');
    const { FERRY_HOME: _home, ...shellEnv } = env;
    const run = spawnSync('bash', ['-c', script], { cwd: dir, env: shellEnv, encoding: 'utf8', timeout: 240_000 });
    const transcript = `${run.stdout}\n${run.stderr}`;
    assert.equal(run.status, 0, transcript);

    assert.match(transcript, /Succeeded/);
    assert.match(transcript, /AwaitingApproval/);
    const log = run.stdout.trim().split('\n').pop() ?? '';
    assert.match(log, /^[0-9a-f]{7,} ferry: promote [0-9a-f]{12} to prod$/);
  });

  it('lists the promotions in the Temporal UI with their search attributes', async () => {
    const query = encodeURIComponent('FerryPipeline = "guestbook" AND FerryStage = "prod"');
    type Listing = {
      executions: Array<{
        execution: { workflowId: string };
        searchAttributes: { indexedFields: Record<string, { data: string }> };
      }>;
    };
    // Visibility trails the workflow by a moment: poll briefly.
    const prod = await until(
      'the UI to list the prod promotion',
      async () => {
        const res = await fetch(
          `http://127.0.0.1:${env.TEMPORAL_UI_PORT}/api/v1/namespaces/default/workflows?query=${query}`,
        );
        assert.equal(res.status, 200);
        const body = (await res.json()) as Listing;
        return body.executions.find((e) => e.execution.workflowId.startsWith('promotion/guestbook/prod/'));
      },
      10_000,
    );
    const value = (name: string): unknown =>
      JSON.parse(Buffer.from(prod.searchAttributes.indexedFields[name].data, 'base64').toString());
    assert.equal(value('FerryStage'), 'prod');
    assert.equal(value('FerryPhase'), 'Succeeded');
    assert.equal(value('FerryFreight'), prod.execution.workflowId.split('/').pop());
  });

  it('survives a restart: the dev server state (SQLite) keeps the pipeline and its history', async () => {
    await stopGroup(stack, 'SIGINT');
    assert.match(stack.output(), /Stopping Ferry/);
    stack = spawnProcess('npm', ['start', '--silent'], { cwd: PROJECT_ROOT, env });
    await stack.waitFor(/Press Ctrl-C to stop\./, 180_000);
    const token = readFileSync(join(dir, '.ferry', 'token'), 'utf8').trim();
    const res = await fetch(`${env.FERRY_URL}/api/v1/pipelines/guestbook`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { stages: Array<{ name: string; current?: { freight: string } }> };
    assert.ok(body.stages.find((s) => s.name === 'prod')?.current?.freight, JSON.stringify(body));
  });
});
