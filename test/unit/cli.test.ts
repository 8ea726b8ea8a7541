// The `ferry` CLI against the real HTTP API app, backed by an in-memory FerryApi. Most tests call the CLI's entry
// (run(argv, io)) in this process; a few spawn bin/ferry.js, where the process is the point (exit codes, stdout of
// ID=$(ferry ...)). The output checked here is what scripts and the README rely on.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { createTokenStore } from '../../client/auth';
import { startApiServer } from '../../api/server';
import { silentLogger } from '../../client/log';
import { defaultApiUrl } from '../../cli/api';
import type { Io } from '../../cli/io';
import type { FerryApi } from '../../client/types';
import { run } from '../../cli/run';
import { freightId } from '../../pipeline/freight';
import { WAIT_EXIT_CODES } from '../../cli/commands/promote';
import type {
  GateStatus,
  PipelineStatus,
  PromotionPhase,
  PromotionStatus,
  PromotionStep,
} from '../../workflows/messages';
import { FIVE_MISTAKES_YAML, guestbookYaml } from '../helpers/fixtures';
import { createMemoryFerry, type MemoryFerry } from '../helpers/memory-ferry';

const ROOT = path.resolve(__dirname, '..', '..');
const TOKEN = 'cli-test-token-0123456789';

/**
 * Promotions in the in-memory FerryApi move one phase further each time they are read, following a script per stage,
 * so `promote --wait` sees phase changes and an end.
 */
const PHASES: Record<string, PromotionPhase[]> = {
  dev: ['Pending', 'Rendering', 'Succeeded'],
  broken: ['Pending', 'Rendering', 'Failed'],
  prod: ['AwaitingApproval'],
};
const FAILURE = 'render: apps/guestbook/overlays/broken does not exist on main';

const PIPELINE_YAML = guestbookYaml(`
    - name: dev
      render: { strategy: branch, from: apps/guestbook/overlays/dev, to: env/dev }
    - name: broken
      render: { strategy: branch, from: apps/guestbook/overlays/broken, to: env/broken }
    - name: prod
      after: [dev]
      render: { strategy: branch, from: apps/guestbook/overlays/prod, to: env/prod }
      approval: { approvers: [alice] }
`);

/**
 * The in-memory FerryApi, except that reading a promotion gives the next entry of `script` laid over it (the last
 * entry stays): a promotion that moves through steps, approvals and gates as the test says.
 */
function scriptedReads(script: Array<Partial<PromotionStatus>>): (ferry: MemoryFerry) => FerryApi {
  return (ferry) => {
    const reads = [...script];
    const api = Object.create(ferry) as FerryApi;
    api.getPromotion = async (id) => {
      const next = reads.length > 1 ? (reads.shift() as (typeof reads)[number]) : reads[0];
      return { ...(await ferry.getPromotion(id)), ...next };
    };
    return api;
  };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface World {
  ferry: MemoryFerry;
  /**
   * Starts `ferry ARGS` in this process without waiting for it: its stdout lines so far, a promise of the first
   * line matching a pattern, and the run's end.
   */
  start(args: string[]): { lines: string[]; printed(pattern: RegExp): Promise<string>; done: Promise<Run> };
  /**
   * Runs `ferry ARGS` in the test's directory; FERRY_HOME is left to its default (.ferry in that directory). In this
   * process through run(argv, io), or as a child process with `spawn`.
   */
  cli(args: string[], env?: Record<string, string>, options?: { spawn?: boolean }): Promise<Run>;
  serverUrl: string;
  work: string;
  applied(): Promise<void>;
  addedFreight(): Promise<string>;
}

/**
 * Each test has its own API server, fake and directory, so the CLI runs (child processes) can overlap. `wrap` puts a
 * FerryApi of the test's own in front of the in-memory one (to script what a promotion reads as).
 */
async function world(t: TestContext, wrap?: (ferry: MemoryFerry) => FerryApi): Promise<World> {
  const ferry = createMemoryFerry({ phases: PHASES, failure: FAILURE });
  const tokens = createTokenStore({ file: null, env: {}, tokens: { [TOKEN]: 'alice' } });
  // alice applies pipelines: an admin (FERRY_ADMINS), as npm start's local user is.
  const server = await startApiServer({
    ferry: wrap ? wrap(ferry) : ferry,
    tokens,
    admins: ['alice'],
    port: 0,
    logger: silentLogger,
  });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-cli-'));
  t.after(async () => {
    await server.close();
    fs.rmSync(work, { recursive: true, force: true });
  });
  // The CLI finds its token in $FERRY_HOME/token, as `npm start` leaves it.
  fs.mkdirSync(path.join(work, '.ferry'));
  fs.writeFileSync(path.join(work, '.ferry', 'token'), `${TOKEN}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(work, 'pipeline.yaml'), PIPELINE_YAML);
  fs.writeFileSync(path.join(work, 'broken.yaml'), FIVE_MISTAKES_YAML);

  const cli = async (
    args: string[],
    env: Record<string, string> = {},
    options: { spawn?: boolean } = {},
  ): Promise<Run> => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, FERRY_URL: server.url, ...env };
    if (!('FERRY_TOKEN' in env)) delete childEnv.FERRY_TOKEN;
    delete childEnv.FERRY_HOME;
    for (const name of ['FERRY_URL', 'FERRY_HOST', 'FERRY_PORT']) if (env[name] === '') delete childEnv[name];
    if (!options.spawn) {
      let stdout = '';
      let stderr = '';
      const io: Io = {
        out: (line = '') => void (stdout += `${line}\n`),
        err: (line) => void (stderr += `${line}\n`),
        env: childEnv,
        cwd: work,
        readStdin: () => '',
      };
      const code = await run(args, io);
      return { code, stdout, stderr };
    }
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [path.join(ROOT, 'bin', 'ferry.js'), ...args],
        { cwd: work, env: childEnv },
        (error, stdout, stderr) => {
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
        },
      );
    });
  };
  const start: World['start'] = (args) => {
    const lines: string[] = [];
    const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
    let stderr = '';
    const env: NodeJS.ProcessEnv = { ...process.env, FERRY_URL: server.url };
    delete env.FERRY_TOKEN;
    delete env.FERRY_HOME;
    const io: Io = {
      out: (line = '') => {
        lines.push(line);
        for (const w of waiters.filter((w) => w.pattern.test(line))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      },
      err: (line) => void (stderr += `${line}\n`),
      env,
      cwd: work,
      readStdin: () => '',
    };
    const done = run(args, io).then((code) => ({ code, stdout: lines.map((l) => `${l}\n`).join(''), stderr }));
    const printed = (pattern: RegExp): Promise<string> => {
      const line = lines.find((l) => pattern.test(l));
      if (line !== undefined) return Promise.resolve(line);
      return new Promise((resolve, reject) => {
        waiters.push({ pattern, resolve });
        void done.then((r) =>
          reject(
            new Error(`ferry ${args.join(' ')} ended (${r.code}) before printing ${pattern}:\n${r.stdout}${r.stderr}`),
          ),
        );
      });
    };
    return { lines, printed, done };
  };
  return {
    ferry,
    cli,
    start,
    work,
    serverUrl: server.url,
    async applied() {
      const run = await cli(['apply', '-f', 'pipeline.yaml']);
      assert.equal(run.code, 0, run.stderr);
    },
    async addedFreight() {
      const run = await cli(['freight', 'add', 'guestbook', 'guestbook=1.4.2']);
      assert.equal(run.code, 0, run.stderr);
      return run.stdout.trim();
    },
  };
}

describe('ferry CLI', { concurrency: true }, () => {
  test('apply sends the file with the token from $FERRY_HOME/token and says what it applied', async (t) => {
    const { ferry, cli } = await world(t);
    const run = await cli(['apply', '-f', 'pipeline.yaml']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'pipeline guestbook applied (stages: dev, broken, prod)\n');
    assert.equal(ferry.applied.length, 1);
  });

  test('apply of a file with mistakes prints every one as "path: message" and exits 1', async (t) => {
    const { ferry, cli } = await world(t);
    const run = await cli(['apply', '-f', 'broken.yaml']);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    const lines = run.stderr.trimEnd().split('\n');
    assert.equal(lines[0], 'error: pipeline "guestbook" is invalid: 5 errors');
    assert.deepEqual(
      lines
        .slice(1)
        .map((line) => line.slice(0, line.indexOf(': ')))
        .sort(),
      [
        'apiVersion',
        'spec.artifacts[0].image',
        'spec.repo.url',
        'spec.stages[0].render.strategy',
        'spec.stages[1].after[0]',
      ],
    );
    assert.ok(
      lines.slice(1).every((line) => /^\S+: \S/.test(line)),
      run.stderr,
    );
    assert.equal(ferry.applied.length, 0);
  });

  test('apply of a file without metadata.name reports the mistakes without calling the API', async (t) => {
    const { ferry, cli, work } = await world(t);
    fs.writeFileSync(path.join(work, 'nameless.yaml'), 'apiVersion: ferry.dev/v1alpha1\nkind: Pipeline\n');
    const run = await cli(['apply', '-f', 'nameless.yaml']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: nameless.yaml is not a valid pipeline\n/);
    assert.match(run.stderr, /^metadata: /m);
    assert.equal(ferry.applied.length, 0);
  });

  test('freight add prints only the freight id', async (t) => {
    const { cli, applied } = await world(t);
    await applied();
    const run = await cli(['freight', 'add', 'guestbook', 'guestbook=1.4.2']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${freightId({ guestbook: '1.4.2' })}\n`);

    const json = await cli(['freight', 'add', 'guestbook', 'guestbook=1.4.2', '--json']);
    assert.deepEqual(JSON.parse(json.stdout), { id: freightId({ guestbook: '1.4.2' }), created: false });
  });

  test('freight add with an unknown artifact prints the field error and exits 1', async (t) => {
    const { cli, applied } = await world(t);
    await applied();
    const run = await cli(['freight', 'add', 'guestbook', 'redis=7.2', 'guestbook=1.4.2']);
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /^error: freight does not match the artifacts of pipeline "guestbook"\nartifacts.redis: unknown artifact "redis"/,
    );
  });

  test('promote prints only the promotion id, so ID=$(ferry promote ...) works', async (t) => {
    const { cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    const run = await cli(['promote', 'guestbook', 'prod', freight], {}, { spawn: true });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `promotion/guestbook/prod/${freight}\n`);
  });

  test('promote --wait prints phase changes and exits 0 when the promotion succeeds', async (t) => {
    const { cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    const run = await cli(['promote', 'guestbook', 'dev', freight, '--wait']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout,
      [`promotion/guestbook/dev/${freight}`, 'phase: Pending', 'phase: Rendering', 'phase: Succeeded', ''].join('\n'),
    );
  });

  test('promote --wait exits 3 with the error when the promotion fails', async (t) => {
    const { cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    const run = await cli(['promote', 'guestbook', 'broken', freight, '--wait'], {}, { spawn: true });
    assert.equal(run.code, WAIT_EXIT_CODES.Failed);
    assert.equal(run.code, 3);
    assert.match(run.stdout, /phase: Failed\n$/);
    assert.equal(
      run.stderr,
      `error: promotion promotion/guestbook/broken/${freight} ended Failed: render: apps/guestbook/overlays/broken does not exist on main\n`,
    );
  });

  test('promote --wait follows the promotion live: a line per phase, step, approval and gate change', async (t) => {
    const at = (s: number): string => `2025-01-01T00:00:${String(s).padStart(2, '0')}.000Z`;
    const approval: PromotionStep = { name: 'approval', status: 'Running', startedAt: at(2) };
    const approved: PromotionStep = {
      ...approval,
      status: 'Succeeded',
      finishedAt: at(3),
      message: 'approved by alice',
    };
    const queued: PromotionStep = { name: 'queue', status: 'Succeeded', message: 'stage prod is ours' };
    const render: PromotionStep = { name: 'render', status: 'Running', message: 'rendering into env/prod' };
    const pushed: PromotionStep = { ...render, status: 'Succeeded', message: 'pushed 763675ee0083 to env/prod' };
    const health: PromotionStep = { name: 'health', status: 'Running', message: 'Argo CD: Synced, Progressing' };
    const gate: GateStatus = { name: 'e2e', type: 'callback', phase: 'Waiting', deadline: at(59) };
    const script: Array<Partial<PromotionStatus>> = [
      { phase: 'AwaitingApproval', steps: [approval, { name: 'queue', status: 'Pending' }] },
      { phase: 'AwaitingApproval', steps: [approval] },
      { phase: 'Queued', approvals: [{ user: 'alice', at: at(3), comment: 'ship it' }], steps: [approved] },
      {
        phase: 'Rendering',
        approvals: [{ user: 'alice', at: at(3), comment: 'ship it' }],
        steps: [approved, queued, { ...render, attempt: 2, lastError: 'git fetch: network error' }],
      },
      { phase: 'WaitingHealthy', steps: [approved, queued, pushed, health] },
      {
        phase: 'WaitingHealthy',
        steps: [approved, queued, pushed, { ...health, message: 'Argo CD: Synced, Healthy at 763675ee0083' }],
        gates: [gate],
      },
      {
        phase: 'Succeeded',
        steps: [approved, queued, pushed, { ...health, status: 'Succeeded', message: 'Argo CD: Synced, Healthy' }],
        gates: [{ ...gate, phase: 'Passed', message: 'suite green', decidedBy: 'callback by ci' }],
      },
    ];
    const { cli, applied, addedFreight } = await world(t, scriptedReads(script));
    await applied();
    const freight = await addedFreight();
    const id = `promotion/guestbook/prod/${freight}`;
    const run = await cli(['promote', 'guestbook', 'prod', freight, '--wait']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout,
      [
        id,
        'step approval: Running',
        'phase: AwaitingApproval',
        `waiting for 1 more approval (0 of 1) from: alice; ferry approve ${id}`,
        'approved by alice "ship it" (1 of 1)',
        'step approval: Succeeded: approved by alice',
        'phase: Queued',
        'step queue: Succeeded: stage prod is ours',
        'step render: Running (attempt 2, last error: git fetch: network error): rendering into env/prod',
        'phase: Rendering',
        'step render: Succeeded: pushed 763675ee0083 to env/prod',
        'step health: Running: Argo CD: Synced, Progressing',
        'phase: WaitingHealthy',
        'step health: Running: Argo CD: Synced, Healthy at 763675ee0083',
        `gate e2e (callback): Waiting (until ${at(59)})`,
        'step health: Succeeded: Argo CD: Synced, Healthy',
        'gate e2e (callback): Passed: suite green (by callback by ci)',
        'phase: Succeeded',
        '',
      ].join('\n'),
    );
  });

  test('promote --wait exits 0 once an approver approves, and 4 when one rejects', async (t) => {
    // After the approval the promotion runs to the end: reads go Queued, then Succeeded.
    const { cli, start, applied, addedFreight } = await world(t, (ferry) => {
      const api = Object.create(ferry) as FerryApi;
      api.getPromotion = async (id) => {
        const status = await ferry.getPromotion(id);
        if (status.phase === 'Queued') status.phase = 'Succeeded';
        return structuredClone(status);
      };
      return api;
    });
    await applied();
    const freight = await addedFreight();
    const id = `promotion/guestbook/prod/${freight}`;

    const approvedRun = start(['promote', 'guestbook', 'prod', freight, '--wait']);
    await approvedRun.printed(/^waiting for 1 more approval/);
    assert.equal((await cli(['approve', id, '-m', 'ship it'])).code, 0);
    const approved = await approvedRun.done;
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, /^approved by alice "ship it" \(1 of 1\)$/m);
    assert.match(approved.stdout, /phase: Succeeded\n$/);

    const rejectedRun = start(['promote', 'guestbook', 'prod', freight, '--wait', '--force']);
    await rejectedRun.printed(/^waiting for 1 more approval/);
    assert.equal((await cli(['reject', id, '-m', 'not today'])).code, 0);
    const rejected = await rejectedRun.done;
    assert.equal(rejected.code, WAIT_EXIT_CODES.Rejected);
    assert.equal(rejected.code, 4);
    assert.match(rejected.stdout, /\nrejected by alice "not today"\nphase: Rejected\n$/);
    assert.equal(rejected.stderr, `error: promotion ${id} ended Rejected: rejected by alice ("not today")\n`);
  });

  test('promote --wait exits 5 when the promotion is aborted', async (t) => {
    const { cli, start, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    const id = `promotion/guestbook/prod/${freight}`;
    const waiting = start(['promote', 'guestbook', 'prod', freight, '--wait']);
    await waiting.printed(/^waiting for/);
    assert.equal((await cli(['abort', id])).code, 0);
    const run = await waiting.done;
    assert.equal(run.code, WAIT_EXIT_CODES.Aborted);
    assert.equal(run.code, 5);
    assert.match(run.stdout, /^aborted by alice$/m);
    assert.equal(run.stderr, `error: promotion ${id} ended Aborted: aborted by alice\n`);
  });

  test('promote --wait --timeout exits 6 when the promotion is still going, and leaves it running', async (t) => {
    const { ferry, cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    const id = `promotion/guestbook/prod/${freight}`;
    const run = await cli(
      ['promote', 'guestbook', 'prod', freight, '--wait', '--timeout', '300ms'],
      {},
      { spawn: true },
    );
    assert.equal(run.code, 6, run.stderr);
    assert.equal(run.code, WAIT_EXIT_CODES.TimedOut);
    assert.match(run.stdout, /^phase: AwaitingApproval$/m);
    assert.equal(
      run.stderr,
      `error: promotion ${id} is still AwaitingApproval after --timeout 300ms; it goes on without this command ` +
        `(ferry get ${id}, ferry abort ${id})\n`,
    );
    assert.equal(ferry.promotions.get(id)?.phase, 'AwaitingApproval');
    assert.deepEqual(ferry.decisions, []);
  });

  test('promote --wait keeps the other exit codes: 2 for a wrong --timeout, 1 for what the API refuses', async (t) => {
    const { cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    for (const args of [
      ['promote', 'guestbook', 'dev', freight, '--timeout', '10m'],
      ['promote', 'guestbook', 'dev', freight, '--wait', '--timeout', '10'],
      ['promote', 'guestbook', 'dev', freight, '--wait', '--timeout', '0s'],
      ['promote', 'guestbook', 'dev', freight, '--wait', '--timeout'],
      ['status', 'guestbook', '--timeout', '1m'],
    ]) {
      const run = await cli(args);
      assert.equal(run.code, 2, `ferry ${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /^error: .*(--timeout|timeout)/);
    }
    const unknown = await cli(['promote', 'guestbook', 'qa', freight, '--wait']);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr, 'error: pipeline "guestbook" has no stage "qa"\n');
    const refused = await cli(['promote', 'guestbook', 'dev', freight, '--wait'], { FERRY_TOKEN: 'wrong-token' });
    assert.equal(refused.code, 1);
  });

  test('promote --help lists the exit codes of --wait', async (t) => {
    const { cli } = await world(t);
    const run = await cli(['promote', '--help']);
    assert.equal(run.code, 0);
    assert.match(
      run.stdout,
      /^usage: ferry promote PIPELINE STAGE FREIGHT \[--wait \[--timeout DURATION\]\] \[--force\]$/m,
    );
    for (const [code, what] of [
      [0, 'succeeded'],
      [3, 'failed'],
      [4, 'rejected'],
      [5, 'aborted'],
      [6, '--timeout'],
    ] as const) {
      assert.match(run.stdout, new RegExp(`^ +${code} +.*${what}`, 'm'));
    }
  });

  test('approve records the token user and the comment; get shows the promotion', async (t) => {
    const { ferry, cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    const id = `promotion/guestbook/prod/${freight}`;
    await cli(['promote', 'guestbook', 'prod', freight]);
    const run = await cli(['approve', id, '-m', 'ship it']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `approved ${id}: phase Queued, 1 of 1 approvals\n`);
    assert.deepEqual(
      ferry.decisions.map(({ action, decision }) => ({ action, user: decision.user, comment: decision.comment })),
      [{ action: 'approve', user: 'alice', comment: 'ship it' }],
    );

    const get = await cli(['get', id]);
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /^promotion: +promotion\/guestbook\/prod\/\w+$/m);
    assert.match(get.stdout, /^phase: +Queued$/m);
    assert.match(
      get.stdout,
      /^approvals: +1 of 1 \(approvers: alice\)\n +alice at 2025-01-01T00:00:03.000Z "ship it"$/m,
    );
  });

  test('status prints a table of stages and the freight', async (t) => {
    const { cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    await cli(['promote', 'guestbook', 'prod', freight]);
    const run = await cli(['status', 'guestbook']);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.split('\n');
    assert.equal(lines[0], 'pipeline guestbook (applied 2025-01-01T00:00:00.000Z)');
    assert.match(lines[2], /^STAGE +CURRENT +RUNNING +QUEUED +WAITING$/);
    assert.match(lines[5], new RegExp(`^prod +- +- +- +${freight}$`));
    assert.ok(
      lines.some((line) => new RegExp(`^${freight} +guestbook=1.4.2 +- +2025-01-01T00:00:01.000Z$`).test(line)),
      run.stdout,
    );

    const json = await cli(['status', 'guestbook', '--json']);
    assert.equal((JSON.parse(json.stdout) as PipelineStatus).name, 'guestbook');
  });

  test('a refused token prints the error and a hint, and exits 1', async (t) => {
    const { cli } = await world(t);
    const run = await cli(['status', 'guestbook'], { FERRY_TOKEN: 'wrong-token' });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: the bearer token is not valid\nhint: the token from FERRY_TOKEN was refused/);
    assert.ok(!run.stderr.includes('wrong-token'));
  });

  test('an unknown pipeline is reported as the API says, exit 1', async (t) => {
    const { cli } = await world(t);
    const run = await cli(['status', 'nope']);
    assert.equal(run.code, 1);
    assert.equal(run.stderr, 'error: pipeline "nope" not found\n');
  });

  test('an unreachable API is reported with where it was looked for, exit 1', async (t) => {
    const { cli } = await world(t);
    const run = await cli(['get', 'promotion/a/b/c'], { FERRY_URL: 'http://127.0.0.1:9' }, { spawn: true });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: cannot reach the Ferry API at http:\/\/127.0.0.1:9 /);
  });

  test('a FERRY_URL with a password is refused without printing the password, exit 1', async (t) => {
    const { cli } = await world(t);
    const run = await cli(['status', 'guestbook'], { FERRY_URL: 'http://ci:s3cret-pw@127.0.0.1:9' });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: FERRY_URL must not contain a user name or password\nhint: .*FERRY_TOKEN/);
    assert.ok(!run.stderr.includes('s3cret-pw'), run.stderr);
  });

  test('usage errors exit 2: unknown command, missing arguments, unknown option, a bad NAME=VERSION', async (t) => {
    const { cli } = await world(t);
    for (const args of [
      ['deploy'],
      ['promote', 'guestbook', 'dev'],
      ['status', 'guestbook', '--force'],
      ['freight', 'add', 'guestbook', 'guestbook'],
      [],
    ]) {
      const run = await cli(args, {}, { spawn: true });
      assert.equal(run.code, 2, `ferry ${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /^error: /);
      assert.match(run.stderr, /usage: ferry/);
      assert.equal(run.stdout, '');
    }
  });

  test('help and --help print the usage and exit 0', async (t) => {
    const { cli } = await world(t);
    for (const args of [['help'], ['--help'], ['promote', '--help']]) {
      const run = await cli(args, {}, { spawn: true });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /ferry promote PIPELINE STAGE FREIGHT \[--wait/);
    }
  });

  test('without FERRY_URL the CLI finds the API by FERRY_HOST and FERRY_PORT, as npm start prints', async (t) => {
    const { cli, applied, serverUrl } = await world(t);
    await applied();
    const port = new URL(serverUrl).port;
    const run = await cli(['status', 'guestbook'], { FERRY_URL: '', FERRY_HOST: '127.0.0.1', FERRY_PORT: port });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^pipeline guestbook /);
    const portOnly = await cli(['status', 'guestbook'], { FERRY_URL: '', FERRY_HOST: '', FERRY_PORT: port });
    assert.equal(portOnly.code, 0, portOnly.stderr);
    assert.equal(defaultApiUrl({}), 'http://127.0.0.1:8234');
    assert.equal(defaultApiUrl({ FERRY_HOST: '0.0.0.0', FERRY_PORT: '9000' }), 'http://127.0.0.1:9000');
    assert.equal(defaultApiUrl({ FERRY_HOST: '::1' }), 'http://[::1]:8234');
  });

  test('promote --force asks for a new run; without it an existing promotion is returned with a note', async (t) => {
    const { ferry, cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    const first = await cli(['promote', 'guestbook', 'prod', freight]);
    assert.equal(first.code, 0, first.stderr);
    const again = await cli(['promote', 'guestbook', 'prod', freight]);
    assert.equal(again.stdout, `promotion/guestbook/prod/${freight}\n`);
    assert.match(again.stderr, /^note: \w+ is already current in prod or being promoted there; this is that promotion/);
    const forced = await cli(['promote', 'guestbook', 'prod', freight, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(
      ferry.promoteCalls.map((c) => c.force),
      [undefined, undefined, true],
    );
    const wrong = await cli(['status', 'guestbook', '--force']);
    assert.equal(wrong.code, 2);
  });
});
