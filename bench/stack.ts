// What the end-to-end benchmarks share: the stack they measure (a real Temporal dev server, a Ferry worker and the
// HTTP API in this process), a client that calls the API as a CI job would, the remote observed from the outside
// (its ref files, never Ferry's internals), the comparison rows they print, and the scenarios more than one of
// them runs (a promotion timed against a floor script; N concurrent promotions into one trunk).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { DefaultLogger, makeTelemetryFilterString, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { startApiServer, type ApiServer } from '../api/server';
import { createTokenStore } from '../client/auth';
import { FerryClient } from '../client/ferry-client';
import { createLogger } from '../client/log';
import { EXAMPLE_IMAGE } from '../dev/example';
import { ensureTemporalCli, startDevServer, type DevServer } from '../dev/temporal';
import { createFerryWorker } from '../worker/create-worker';
import { formatMs, formatRatio, formatSample, loadLine, median, table } from './stats';

export const TERMINAL = ['Succeeded', 'Failed', 'Rejected', 'Aborted'];
/** How often the remote's refs are read while waiting for a commit. */
export const POLL_MS = 5;
const TRUNK_FLOOR_SCRIPT = join(__dirname, 'plain-trunk-promotion.sh');
/**
 * The remotes are file:// repositories, which a worker takes only when its operator opts in (as `npm start` does
 * for the local example). Spread in, so the option reaches workers that know it and is ignored by older ones.
 */
const FILE_REPOS_OPT_IN = { allowFileRepos: true };
/** How long a scenario of N concurrent promotions waits for its commits: far past the goals, short of a stuck run. */
export const CONCURRENT_WAIT_MS = 150_000;

// ---------------------------------------------------------------------------------------------------------------
// Processes and the remote, observed from the outside

export function gitEnv(tmp: string): NodeJS.ProcessEnv {
  return { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1', TMPDIR: tmp };
}

export function exec(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 60_000,
  cwd?: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env, cwd, timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const said = stderr.trim() || stdout.trim().split('\n').slice(-3).join(' / ');
        if (err) reject(new Error(`${file} ${args.join(' ')}: ${said || err.message}`));
        else resolve(stdout);
      },
    );
  });
}

/** Runs `git <args>` with `input` on stdin. */
export function gitWithInput(args: string[], input: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const child = execFile('git', args, { env }, (err, _stdout, stderr) =>
      err ? reject(new Error(`git ${args.join(' ')}: ${String(stderr).trim() || err.message}`)) : resolve(),
    );
    child.stdin!.end(input);
  });
}

/**
 * The commit a branch of the bare repository points at, read from its ref files (a loose ref, else packed-refs):
 * cheap enough to poll every few milliseconds without taking CPU from what is measured.
 */
export function readRef(bare: string, branch: string): string | undefined {
  const loose = join(bare, 'refs', 'heads', ...branch.split('/'));
  try {
    return readFileSync(loose, 'utf8').trim();
  } catch {
    // not loose: look in packed-refs
  }
  const packed = join(bare, 'packed-refs');
  if (!existsSync(packed)) return undefined;
  const line = readFileSync(packed, 'utf8')
    .split('\n')
    .find((l) => l.endsWith(` refs/heads/${branch}`));
  return line?.split(' ')[0];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until every branch has moved away from its `before` commit, or the deadline; returns when each moved. */
export async function waitForRefs(
  bare: string,
  before: Map<string, string | undefined>,
  deadline: number,
): Promise<Map<string, number>> {
  const landed = new Map<string, number>();
  while (landed.size < before.size && Date.now() < deadline) {
    for (const [branch, commit] of before) {
      if (!landed.has(branch) && readRef(bare, branch) !== commit) landed.set(branch, performance.now());
    }
    if (landed.size < before.size) await sleep(POLL_MS);
  }
  return landed;
}

export function snapshot(bare: string, branches: string[]): Map<string, string | undefined> {
  return new Map(branches.map((b) => [b, readRef(bare, b)]));
}

/** Runs `tasks` with at most `limit` at a time. */
export async function pool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]!);
  });
  await Promise.all(lanes);
}

export async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = http.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Commits on `branch` of `bare` since `base`. */
export async function commitsSince(
  bare: string,
  base: string | undefined,
  env: NodeJS.ProcessEnv,
  branch = 'main',
): Promise<number> {
  const out = await exec('git', ['--git-dir', bare, 'rev-list', '--count', base ? `${base}..${branch}` : branch], env);
  return Number(out.trim());
}

// ---------------------------------------------------------------------------------------------------------------
// The HTTP API, as a CI job would call it

export class Api {
  constructor(
    readonly url: string,
    private readonly token: string,
  ) {}

  async call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      // keep the text: it goes into the error message
    }
    return { status: res.status, json };
  }

  async ok<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, json } = await this.call(method, path, body);
    if (status < 200 || status > 299) {
      throw new Error(`${method} ${path} answered ${status}: ${JSON.stringify(json).slice(0, 500)}`);
    }
    return json as T;
  }

  addFreight(pipeline: string, version: string): Promise<{ id: string; created: boolean }> {
    return this.ok('POST', `/api/v1/pipelines/${pipeline}/freight`, { artifacts: { guestbook: version } });
  }

  promote(pipeline: string, stage: string, freight: string): Promise<{ id: string; existing: boolean }> {
    return this.ok('POST', `/api/v1/pipelines/${pipeline}/stages/${stage}/promotions`, { freight });
  }

  /** A promotion's phase now: "absent" when it does not exist, "unknown" when the API did not answer. */
  async phase(id: string): Promise<string> {
    const { status, json } = await this.call('GET', `/api/v1/promotions/${id}`).catch(() => ({
      status: 0,
      json: undefined,
    }));
    if (status === 404) return 'absent';
    return status === 200 ? (json as { phase: string }).phase : 'unknown';
  }

  /** Polls a promotion until it ends (or the deadline); its last phase and error. */
  async settle(id: string, deadline: number): Promise<{ phase: string; error?: string }> {
    let last: { phase: string; error?: string } = { phase: 'unknown' };
    for (let first = true; first || Date.now() < deadline; first = false) {
      const { status, json } = await this.call('GET', `/api/v1/promotions/${id}`).catch((err: unknown) => ({
        status: 0,
        json: { phase: 'unknown', error: String(err) },
      }));
      if (status === 200) last = json as { phase: string; error?: string };
      if (TERMINAL.includes(last.phase)) return last;
      await sleep(50);
    }
    return { ...last, error: `${last.error ?? ''} (still ${last.phase} at the deadline)`.trim() };
  }
}

/** A pipeline document with the one `guestbook` artifact (the example's image). */
export function pipelineDocument(
  name: string,
  repoUrl: string,
  stages: Record<string, unknown>[],
): Record<string, unknown> {
  return {
    apiVersion: 'ferry.dev/v1alpha1',
    kind: 'Pipeline',
    metadata: { name },
    spec: {
      repo: { url: repoUrl, branch: 'main' },
      artifacts: [{ name: 'guestbook', image: EXAMPLE_IMAGE }],
      stages,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Results

export interface Comparison {
  name: string;
  ferry: number[];
  floor: number[];
  floorName: string;
  /** Shown after the times, e.g. how many of the promotions landed. */
  ferryExtra?: string;
  /** False when Ferry's times are not of the whole work (some promotions never landed): no ratio then. */
  complete?: () => boolean;
  goal: string;
  /** PASS/MISS from the medians (and the extra counts a scenario keeps); without one the row has no goal. */
  verdict?(ferry: number, floor: number): boolean;
  notes: string[];
}

export function comparisonRow(c: Comparison): string[] {
  const f = median(c.ferry);
  const b = median(c.floor);
  const ok = c.ferry.length > 0 && c.floor.length > 0 && c.verdict?.(f, b);
  return [
    c.name,
    `${formatSample(c.ferry)}${c.ferryExtra ? `, ${c.ferryExtra}` : ''}`,
    `${formatSample(c.floor)} ${c.floorName}`,
    c.complete && !c.complete() ? 'none: not all landed' : formatRatio(f, b),
    c.verdict ? `${c.goal}: ${ok ? 'PASS' : 'MISS'}` : c.goal,
  ];
}

/** The comparison table, then each row's notes. */
export function comparisonReport(comparisons: readonly Comparison[]): string {
  const lines = [table(['', 'Ferry', 'floor', 'ratio', 'goal'], comparisons.map(comparisonRow)), ''];
  for (const c of comparisons) for (const note of c.notes) lines.push(`${c.name}: ${note}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// The stack and a benchmark's run around it

export interface Stack {
  /** The run's temporary directory (removed at the end). */
  dir: string;
  env: NodeJS.ProcessEnv;
  client: Api;
  ferry: FerryClient;
  gitVersion: string;
  /** Starts a worker (stopping the running one first); default workspace root `<dir>/workspaces`. */
  startWorker(options?: {
    workspaceRoot?: string;
    tuning?: Parameters<typeof createFerryWorker>[0]['tuning'];
  }): Promise<void>;
  stopWorker(): Promise<void>;
}

/** What a scenario reports into and is bounded by. */
export interface RunContext {
  stack: Stack;
  comparisons: Comparison[];
  failures: string[];
  /** Past --timeout: no scenario starts another run. */
  pastDeadline(): boolean;
  hardDeadline: number;
  /** Until when a promotion's end is waited for: a minute, within the hard deadline. */
  settleDeadline(): number;
  progress(line: string): void;
  /** A new freight version, unique in the run. */
  nextVersion(): string;
}

export interface BenchmarkRun {
  /** The run's temporary directory's prefix under the system's temporary directory. */
  prefix: string;
  timeoutMs: number;
  /** Prints what was measured so far; `stoppedBy` says why the run ended early. */
  report(ctx: RunContext | undefined, stoppedBy?: string): void;
}

/**
 * Starts the stack (Temporal dev server on a free loopback port, a worker, the typed client, the HTTP API with one
 * admin token), runs `body`, and tears everything down. Past --timeout no scenario starts another run; should
 * anything still hang two minutes later, the watchdog prints what was measured, stops the dev server and exits.
 */
export async function withStack(run: BenchmarkRun, body: (ctx: RunContext) => Promise<void>): Promise<void> {
  const started = Date.now();
  const hardDeadline = started + run.timeoutMs;
  const dir = mkdtempSync(join(tmpdir(), run.prefix));
  const env = gitEnv(dir);
  const workerLog: string[] = [];
  let server: DevServer | undefined;
  let connection: NativeConnection | undefined;
  let ferry: FerryClient | undefined;
  let api: ApiServer | undefined;
  let worker: { worker: Worker; running: Promise<void> } | undefined;
  let ctx: RunContext | undefined;

  const stopWorker = async (): Promise<void> => {
    if (!worker) return;
    const w = worker;
    worker = undefined;
    w.worker.shutdown();
    await Promise.race([w.running.catch(() => undefined), sleep(20_000)]);
  };
  const watchdog = setTimeout(() => {
    run.report(ctx, `gave up ${run.timeoutMs / 1000 + 120} s after the start (--timeout ${run.timeoutMs / 1000})`);
    server?.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    process.exit(3);
  }, run.timeoutMs + 120_000);
  const onSignal = (signal: NodeJS.Signals) => {
    server?.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    process.stderr.write('  … starting the Temporal dev server, the worker and the API\n');
    server = await startDevServer({
      cli: ensureTemporalCli(),
      dbFile: join(dir, 'temporal.db'),
      port: await freePort(),
      uiPort: false,
    });
    // The worker's log (the SDK core's included) is kept, not printed: the report counts its warnings.
    Runtime.install({
      logger: new DefaultLogger('WARN', (entry) => {
        if (workerLog.length < 1000) workerLog.push(`${entry.level} ${entry.message}`);
      }),
      telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} } },
    });
    connection = await NativeConnection.connect({ address: server.address });
    const startWorker: Stack['startWorker'] = async (options = {}) => {
      await stopWorker();
      const w = await createFerryWorker({
        connection: connection!,
        workspaceRoot: options.workspaceRoot ?? join(dir, 'workspaces'),
        tuning: options.tuning ?? {},
        ...FILE_REPOS_OPT_IN,
      });
      worker = { worker: w, running: w.run() };
    };
    await startWorker();
    ferry = await FerryClient.connect({ address: server.address });
    const token = randomBytes(16).toString('hex');
    const tokens = createTokenStore({ file: null, env: {}, tokens: { [token]: 'bench' } });
    const silent = createLogger({ level: 'error', write: (line) => workerLog.length < 1000 && workerLog.push(line) });
    // The bench user applies its pipelines: an admin.
    api = await startApiServer({ ferry, tokens, admins: ['bench'], port: 0, logger: silent });
    const stack: Stack = {
      dir,
      env,
      client: new Api(api.url, token),
      ferry,
      gitVersion: (await exec('git', ['--version'], env)).trim(),
      startWorker,
      stopWorker,
    };
    let version = 0;
    ctx = {
      stack,
      comparisons: [],
      failures: [],
      pastDeadline: () => Date.now() > hardDeadline,
      hardDeadline,
      settleDeadline: () => Math.min(Date.now() + 60_000, hardDeadline),
      progress: (line) => process.stderr.write(`  … ${line}\n`),
      nextVersion: () => `1.0.${++version}`,
    };
    await body(ctx);
    run.report(ctx, ctx.pastDeadline() ? `--timeout ${run.timeoutMs / 1000} s reached` : undefined);
    const warnings = workerLog.filter((l) => /WARN|ERROR|"level":"(warn|error)"/.test(l));
    if (warnings.length > 0) {
      process.stdout.write(
        `worker and API log: ${warnings.length} warnings or errors; first: ${warnings[0]!.slice(0, 300)}\n`,
      );
    }
    if (ctx.failures.length > 0) process.exitCode = 1;
  } finally {
    clearTimeout(watchdog);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await Promise.race([api?.close().catch(() => undefined), sleep(10_000)]);
    await stopWorker();
    await Promise.race([ferry?.close().catch(() => undefined), sleep(10_000)]);
    await Promise.race([connection?.close().catch(() => undefined), sleep(10_000)]);
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The failures at a report's end (the first 10). */
export function printFailures(ctx: RunContext | undefined, out: (line?: string) => void): void {
  if (!ctx || ctx.failures.length === 0) return;
  out();
  out(`${ctx.failures.length} failures (first 10):`);
  for (const f of ctx.failures.slice(0, 10)) out(`  ${f.slice(0, 400)}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios

export interface PromotionScenario {
  pipeline: string;
  stage: string;
  /** The remote and the branch whose move means the promotion's commit landed. */
  bare: string;
  branch: string;
  runs: number;
  /** Untimed runs first (a worker's first clone, the first run of the code). */
  warmUps: number;
  /** The same work done by a plain script; gets the freight's version. */
  floor(version: string): Promise<unknown>;
  /** Before each Ferry run, untimed (a cold scenario restarts the worker here). */
  beforeEach?(run: number): Promise<void>;
}

/**
 * Alternates Ferry and the floor: registers freight (untimed), then times `POST …/promotions` until the commit is
 * on the remote branch, checks that the promotion Succeeded, then times the floor once.
 */
export async function promotionRuns(ctx: RunContext, c: Comparison, s: PromotionScenario): Promise<void> {
  const { client } = ctx.stack;
  const label = `${c.name}`;
  for (let i = 0; i < s.warmUps + s.runs && !ctx.pastDeadline(); i++) {
    const warmUp = i < s.warmUps;
    await s.beforeEach?.(i);
    const version = ctx.nextVersion();
    const freight = await client.addFreight(s.pipeline, version).catch((err: unknown) => {
      ctx.failures.push(`${label}, registering freight: ${String(err)}`);
      return undefined;
    });
    if (!freight) continue;
    const before = snapshot(s.bare, [s.branch]);
    let promotionId = '';
    const t0 = performance.now();
    const landed = await client
      .promote(s.pipeline, s.stage, freight.id)
      .then(async (p) => {
        promotionId = p.id;
        return waitForRefs(s.bare, before, Math.min(Date.now() + 120_000, ctx.hardDeadline));
      })
      .catch((err: unknown) => {
        ctx.failures.push(`${label}: ${String(err)}`);
        return new Map<string, number>();
      });
    const at = landed.get(s.branch);
    if (promotionId) {
      const end = await client.settle(promotionId, ctx.settleDeadline());
      if (end.phase !== 'Succeeded') ctx.failures.push(`${label} ${promotionId}: ${end.phase} ${end.error ?? ''}`);
      else if (at === undefined) ctx.failures.push(`${label} ${promotionId}: Succeeded but no commit on ${s.branch}`);
    }
    const floorMs = await time(() => s.floor(version)).catch((err: unknown) => {
      ctx.failures.push(`${label} floor: ${String(err)}`);
      return undefined;
    });
    if (warmUp) continue;
    if (at !== undefined) c.ferry.push(at - t0);
    if (floorMs !== undefined) c.floor.push(floorMs);
  }
}

/** A trunk with one directory per stage (`envs/<stage>/deployment.yaml`) on main, in one commit. */
export async function createTrunk(bare: string, stages: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  await exec('git', ['init', '--quiet', '--bare', '--initial-branch=main', bare], env);
  const input = [
    'commit refs/heads/main',
    'committer Bench <bench@example.com> 1700000000 +0000',
    'data 4',
    'apps',
    ...stages.flatMap((s) => {
      const content = `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ${s}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: ${EXAMPLE_IMAGE}:0.0.0\n`;
      return [`M 100644 inline envs/${s}/deployment.yaml`, `data ${Buffer.byteLength(content)}`, content];
    }),
    '',
  ].join('\n');
  await gitWithInput(['--git-dir', bare, 'fast-import', '--quiet'], input, env);
}

export interface TrunkScenario {
  /** Promotions at once: this many directories on one trunk branch. */
  concurrency: number;
  /**
   * `stages`: one pipeline with a directory stage per app (every request goes through that pipeline's workflow);
   * `pipelines`: a pipeline per app, each with one directory stage on the same trunk (how teams that give each app
   * its own pipeline lay it out). The git side, one branch taking N commits, is the same.
   */
  layout: 'stages' | 'pipelines';
  /** Reuse this row's floor runs instead of running the floor again (the floor does not depend on the layout). */
  floorFrom?: Comparison;
  runs: number;
  /** Floor scripts at a time. */
  floorConcurrency: number;
  goalMs: number;
}

/**
 * N concurrent promotions into directories of ONE trunk branch (the directory strategy): N requests at once → N
 * commits on main (wall time to the last one). Floor: N scripts (clone, edit, commit, push, rebase and push again
 * when another pushed first), --floor-concurrency at a time. Adds its row to the context's comparisons.
 */
export async function trunkScenario(ctx: RunContext, s: TrunkScenario): Promise<Comparison> {
  const { client, env, dir } = ctx.stack;
  const n = s.concurrency;
  const stages = Array.from({ length: n }, (_, i) => `s${String(i).padStart(3, '0')}`);
  const trunk = join(dir, `trunk-${s.layout}.git`);
  await createTrunk(trunk, stages, env);
  const trunkUrl = pathToFileURL(trunk).href;
  /** The pipeline that promotes stage `st`. */
  const pipelineOf = (st: string): string => (s.layout === 'stages' ? 'bench-trunk' : `bench-app-${st}`);
  if (s.layout === 'stages') {
    await client.ok(
      'PUT',
      '/api/v1/pipelines/bench-trunk',
      pipelineDocument(
        'bench-trunk',
        trunkUrl,
        stages.map((st) => ({ name: st, render: { strategy: 'directory', to: `envs/${st}` } })),
      ),
    );
  } else {
    await pool(stages, 8, (st) =>
      client.ok(
        'PUT',
        `/api/v1/pipelines/${pipelineOf(st)}`,
        pipelineDocument(pipelineOf(st), trunkUrl, [{ name: st, render: { strategy: 'directory', to: `envs/${st}` } }]),
      ),
    );
  }

  const trunkLanded: string[] = [];
  const row: Comparison = {
    name:
      s.layout === 'stages'
        ? `${n} concurrent promotions into one trunk`
        : `${n} concurrent promotions into one trunk, a pipeline per app`,
    ferry: [],
    floor: [],
    floorName: `${n} scripts, ${s.floorConcurrency} at a time`,
    goal: `< ${s.goalMs / 1000} s, ${n}/${n} landed`,
    verdict: (f) => f < s.goalMs && trunkLanded.every((c) => c === `${n}/${n}`),
    complete: () => trunkLanded.every((c) => c === `${n}/${n}`),
    notes: [],
  };
  ctx.comparisons.push(row);
  ctx.progress(`${n} concurrent promotions into one trunk: ${s.runs} run(s) each`);
  for (let r = 0; r < s.runs && !ctx.pastDeadline(); r++) {
    const v = ctx.nextVersion();
    // Registering the freight is not timed: it happens once per pipeline, before the promotions.
    const freightOf = new Map<string, string>();
    await pool(s.layout === 'stages' ? [stages[0]] : stages, 8, async (st) => {
      const freight = await client.addFreight(pipelineOf(st), v).catch((err: unknown) => {
        ctx.failures.push(`trunk, registering freight in ${pipelineOf(st)}: ${String(err)}`);
        return undefined;
      });
      if (freight) freightOf.set(pipelineOf(st), freight.id);
    });
    const freightFor = (st: string): string | undefined => freightOf.get(pipelineOf(st));
    if (stages.some((st) => freightFor(st) === undefined)) continue;
    const base = readRef(trunk, 'main');
    let refused = 0;
    const t0 = performance.now();
    const requests = Promise.all(
      stages.map((st) =>
        client.promote(pipelineOf(st), st, freightFor(st) ?? '').then(
          () => undefined,
          (err: unknown) => {
            refused++;
            if (refused <= 3) ctx.failures.push(`trunk promote ${st}: ${String(err)}`);
          },
        ),
      ),
    );
    // Landed = Ferry's commits on main since the run began (each promotion is one commit).
    const deadline = Math.min(Date.now() + CONCURRENT_WAIT_MS, ctx.hardDeadline);
    let count = 0;
    let lastLanding = t0;
    while (count < n && Date.now() < deadline) {
      const now = await commitsSince(trunk, base, env);
      if (now > count) {
        count = now;
        lastLanding = performance.now();
      }
      if (count < n) await sleep(20);
    }
    await requests;
    const phases = new Map<string, number>();
    await pool(stages, 8, async (st) => {
      const id = `promotion/${pipelineOf(st)}/${st}/${freightFor(st) ?? ''}`;
      const end = await client.settle(id, ctx.settleDeadline());
      phases.set(end.phase, (phases.get(end.phase) ?? 0) + 1);
      if (end.phase !== 'Succeeded' && (phases.get(end.phase) ?? 0) <= 2)
        ctx.failures.push(`trunk ${id}: ${end.phase} ${end.error ?? ''}`);
    });
    const pushes = await exec(
      'git',
      ['--git-dir', trunk, 'rev-list', '--count', '--first-parent', `${base}..main`],
      env,
    );
    trunkLanded.push(`${count}/${n}`);
    row.notes.push(
      `ferry run ${r + 1}: ${count}/${n} commits landed on main in ${formatMs(lastLanding - t0)} ` +
        `(${pushes.trim()} commits in a straight line); ${refused} of ${n} requests refused; promotions: ` +
        [...phases].map(([phase, c]) => `${c} ${phase}`).join(', '),
    );
    if (count > 0) row.ferry.push(lastLanding - t0);
    row.ferryExtra = `landed ${trunkLanded.join(', ')}`;

    if (s.floorFrom) continue;
    const floorBase = readRef(trunk, 'main');
    let floorFailed = 0;
    const floorMs = await time(() =>
      pool(stages, s.floorConcurrency, async (st) =>
        ctx.pastDeadline()
          ? undefined
          : exec(
              TRUNK_FLOOR_SCRIPT,
              [trunkUrl, 'main', `envs/${st}/deployment.yaml`, EXAMPLE_IMAGE, `${v}-floor`],
              env,
              300_000,
            ).then(
              () => undefined,
              (err: unknown) => {
                floorFailed++;
                if (floorFailed <= 3) ctx.failures.push(`trunk floor ${st}: ${String(err)}`);
              },
            ),
      ),
    );
    const floorLanded = await commitsSince(trunk, floorBase, env);
    row.notes.push(`floor run ${r + 1}: ${floorLanded}/${n} landed, ${floorFailed} failed`);
    if (floorLanded === n) row.floor.push(floorMs);
  }
  if (s.floorFrom) {
    row.floor = [...s.floorFrom.floor];
    row.floorName = `${s.floorFrom.floorName} (the runs above)`;
  }
  return row;
}

/** The header lines of a report: what ran, the load before and now, how times are shown. */
export function reportHeader(what: string, ctx: RunContext | undefined, loadBefore: string, started: number): string {
  return [
    what,
    `node ${process.version}; ${ctx?.stack.gitVersion ?? 'git'}; ${Math.round((Date.now() - started) / 1000)} s in all`,
    `before: ${loadBefore}`,
    `after:  ${loadLine()}`,
    'Times are medians with their range (min–max); the ratio is of the medians.',
  ].join('\n');
}
