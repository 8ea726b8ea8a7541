// What Ferry's orchestration costs on top of git, end to end: each scenario runs through the HTTP API (in process)
// against a real Temporal dev server and an in-process worker, over a bare repository on local disk, and is
// compared with the floor (the same git work done by a plain script, or one plain HTTP round trip) in the same run,
// interleaved: Ferry, floor, Ferry, floor, …
//
//   npm run bench -- orchestration [--quick] [--runs N] [--concurrent-runs N] [--concurrency N]
//                                  [--floor-concurrency N] [--timeout S]
//
// Scenarios (docs/performance.md explains each and holds the numbers):
//   one         POST a promotion → its commit is on the remote branch;  floor: bench/plain-promotion.sh once
//   chain       POST freight into dev → staging → prod, all `promotion: auto` → the prod commit is on the remote;
//               floor: the script three times back to back
//   concurrent  N promotions (N stages of one pipeline, each its own branch) requested at once → all N commits on
//               the remote; floor: N scripts, --floor-concurrency at a time
//   trunk       N promotions into N directory stages on ONE trunk branch (the directory strategy) requested at
//               once → N commits on the trunk; floor: N scripts (clone, edit, commit, push, rebase and push again
//               when another pushed first), --floor-concurrency at a time
//   evicted     GET a pipeline that saw every concurrent promotion, after it was evicted from the worker's cache;
//               floor: one GET to a trivial HTTP server on loopback
//
// Completion is observed from the outside (the remote's refs, then the promotion's status), never from Ferry's
// internals, so the benchmark measures whatever the workflows do. Every wait is bounded; a promotion that fails or
// does not land in time is counted and reported, and the run goes on.
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
import { createExampleRepo, EXAMPLE_IMAGE } from '../dev/example';
import { ensureTemporalCli, startDevServer, type DevServer } from '../dev/temporal';
import { createFerryWorker } from '../worker/create-worker';
import { formatMs, formatRatio, formatSample, intOption, loadLine, median, table } from './stats';

const FLOOR_SCRIPT = join(__dirname, 'plain-promotion.sh');
const TRUNK_FLOOR_SCRIPT = join(__dirname, 'plain-trunk-promotion.sh');
const SOURCE_DIR = 'apps/guestbook/overlays/dev';
const SOURCE_FILE = `${SOURCE_DIR}/deployment.yaml`;
const TERMINAL = ['Succeeded', 'Failed', 'Rejected', 'Aborted'];
const POLL_MS = 5;
/**
 * The remote is a file:// repository, which a worker takes only when its operator opts in (as `npm start` does for
 * the local example). Spread in, so the option reaches workers that know it and is ignored by older ones.
 */
const FILE_REPOS_OPT_IN = { allowFileRepos: true };
/** How long the concurrent scenario waits for its commits: far past the goal (25 s), short of a stuck run. */
const CONCURRENT_WAIT_MS = 150_000;

interface Options {
  runs: number;
  concurrentRuns: number;
  concurrency: number;
  floorConcurrency: number;
  timeoutMs: number;
}

function options(argv: readonly string[]): Options {
  const quick = argv.includes('--quick');
  return {
    runs: intOption(argv, 'runs', quick ? 3 : 5),
    concurrentRuns: intOption(argv, 'concurrent-runs', quick ? 1 : 2),
    concurrency: intOption(argv, 'concurrency', 200),
    floorConcurrency: intOption(argv, 'floor-concurrency', 4),
    timeoutMs: intOption(argv, 'timeout', 900) * 1000,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Results

interface Comparison {
  name: string;
  ferry: number[];
  floor: number[];
  floorName: string;
  /** Shown after the times, e.g. how many of the promotions landed. */
  ferryExtra?: string;
  /** False when Ferry's times are not of the whole work (some promotions never landed): no ratio then. */
  complete?: () => boolean;
  goal: string;
  /** PASS/MISS from the medians (and the extra counts a scenario keeps). */
  verdict(ferry: number, floor: number): boolean;
  notes: string[];
}

function comparisonRow(c: Comparison): string[] {
  const f = median(c.ferry);
  const b = median(c.floor);
  const ok = c.ferry.length > 0 && c.floor.length > 0 && c.verdict(f, b);
  return [
    c.name,
    `${formatSample(c.ferry)}${c.ferryExtra ? `, ${c.ferryExtra}` : ''}`,
    `${formatSample(c.floor)} ${c.floorName}`,
    c.complete && !c.complete() ? 'none: not all landed' : formatRatio(f, b),
    `${c.goal}: ${ok ? 'PASS' : 'MISS'}`,
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// The remote, observed from the outside

function gitEnv(tmp: string): NodeJS.ProcessEnv {
  return { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1', TMPDIR: tmp };
}

function exec(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env, timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${file} ${args.join(' ')}: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
  });
}

/**
 * The commit a branch of the bare repository points at, read from its ref files (a loose ref, else packed-refs):
 * cheap enough to poll every few milliseconds without taking CPU from what is measured.
 */
function readRef(bare: string, branch: string): string | undefined {
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until every branch has moved away from its `before` commit, or the deadline; returns when each moved. */
async function waitForRefs(
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

function snapshot(bare: string, branches: string[]): Map<string, string | undefined> {
  return new Map(branches.map((b) => [b, readRef(bare, b)]));
}

/** Runs `tasks` with at most `limit` at a time. */
async function pool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]!);
  });
  await Promise.all(lanes);
}

// ---------------------------------------------------------------------------------------------------------------
// The HTTP API, as a CI job would call it

class Api {
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

function stage(name: string, to: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, ...extra, render: { strategy: 'branch', from: SOURCE_DIR, to } };
}

function pipeline(name: string, repoUrl: string, stages: Record<string, unknown>[]): Record<string, unknown> {
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
// The benchmark

export async function run(argv: readonly string[]): Promise<void> {
  const opts = options(argv);
  const started = Date.now();
  const hardDeadline = started + opts.timeoutMs;
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-orch-'));
  const env = gitEnv(dir);
  const out = (line = '') => process.stdout.write(`${line}\n`);
  const progress = (line: string) => process.stderr.write(`  … ${line}\n`);
  const workerLog: string[] = [];

  let server: DevServer | undefined;
  let connection: NativeConnection | undefined;
  let ferry: FerryClient | undefined;
  let api: ApiServer | undefined;
  let floorServer: http.Server | undefined;
  let worker: { worker: Worker; running: Promise<void> } | undefined;

  const stopWorker = async (): Promise<void> => {
    if (!worker) return;
    const w = worker;
    worker = undefined;
    w.worker.shutdown();
    await Promise.race([w.running.catch(() => undefined), sleep(20_000)]);
  };
  const cleanUp = async (): Promise<void> => {
    await Promise.race([api?.close().catch(() => undefined), sleep(10_000)]);
    floorServer?.close();
    floorServer?.closeAllConnections();
    await stopWorker();
    await Promise.race([ferry?.close().catch(() => undefined), sleep(10_000)]);
    await Promise.race([connection?.close().catch(() => undefined), sleep(10_000)]);
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  const loadBefore = loadLine();
  const failures: string[] = [];
  const comparisons: Comparison[] = [];
  let gitVersion = 'git';
  const printReport = (stoppedBy?: string): void => {
    if (stoppedBy) out(`STOPPED: ${stoppedBy}; the table holds the runs finished by then.`);
    out(
      `orchestration: Ferry through the HTTP API (in process) on a Temporal dev server and an in-process worker, ` +
        `against the floor, interleaved (Ferry, floor, Ferry, …); remote: a bare repository on local disk`,
    );
    out(
      `runs: ${opts.runs} per scenario after 1 warm-up (concurrent: ${opts.concurrentRuns}, no warm-up); ` +
        `node ${process.version}; ${gitVersion}; ${Math.round((Date.now() - started) / 1000)} s in all`,
    );
    out(`before: ${loadBefore}`);
    out(`after:  ${loadLine()}`);
    out('Times are medians with their range (min–max); the ratio is of the medians.');
    out();
    out(table(['', 'Ferry', 'floor', 'ratio', 'goal'], comparisons.map(comparisonRow)));
    out();
    for (const c of comparisons) for (const note of c.notes) out(`${c.name}: ${note}`);
    if (failures.length > 0) {
      out();
      out(`${failures.length} failures (first 10):`);
      for (const f of failures.slice(0, 10)) out(`  ${f.slice(0, 400)}`);
    }
    const warnings = workerLog.filter((l) => /WARN|ERROR|"level":"(warn|error)"/.test(l));
    if (warnings.length > 0)
      out(`worker and API log: ${warnings.length} warnings or errors; first: ${warnings[0]!.slice(0, 300)}`);
  };
  const pastDeadline = () => Date.now() > hardDeadline;

  // The run stops by itself: past --timeout no scenario starts another run (waits end there too), and should
  // anything still hang two minutes later, the watchdog prints what was measured, stops the dev server and exits.
  const watchdog = setTimeout(() => {
    printReport(`gave up ${opts.timeoutMs / 1000 + 120} s after the start (--timeout ${opts.timeoutMs / 1000})`);
    server?.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    process.exit(3);
  }, opts.timeoutMs + 120_000);
  const onSignal = (signal: NodeJS.Signals) => {
    server?.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    // --- the stack: Temporal dev server, worker, typed client, HTTP API; the remote; the floor's HTTP server
    progress('starting the Temporal dev server, the worker and the API');
    const port = await freePort();
    server = await startDevServer({
      cli: ensureTemporalCli(),
      dbFile: join(dir, 'temporal.db'),
      port,
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
    const workspaceRoot = join(dir, 'workspaces');
    const startWorker = async (tuning: Parameters<typeof createFerryWorker>[0]['tuning'] = {}) => {
      const w = await createFerryWorker({ connection: connection!, workspaceRoot, tuning, ...FILE_REPOS_OPT_IN });
      worker = { worker: w, running: w.run() };
    };
    await startWorker();
    ferry = await FerryClient.connect({ address: server.address });
    const token = randomBytes(16).toString('hex');
    const tokens = createTokenStore({ file: null, env: {}, tokens: { [token]: 'bench' } });
    const silent = createLogger({ level: 'error', write: (line) => workerLog.length < 1000 && workerLog.push(line) });
    // The bench user applies its pipelines: an admin.
    api = await startApiServer({ ferry, tokens, admins: ['bench'], port: 0, logger: silent });
    const client = new Api(api.url, token);

    floorServer = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    });
    await new Promise<void>((resolve) => floorServer!.listen(0, '127.0.0.1', resolve));
    const floorUrl = `http://127.0.0.1:${(floorServer.address() as AddressInfo).port}/`;

    gitVersion = (await exec('git', ['--version'], env)).trim();
    const bare = join(dir, 'gitops.git');
    createExampleRepo(bare);
    const repoUrl = pathToFileURL(bare).href;
    const manyStages = Array.from({ length: opts.concurrency }, (_, i) => `s${String(i).padStart(3, '0')}`);
    const floorBranches = [
      'floor/one',
      'floor/chain-dev',
      'floor/chain-staging',
      'floor/chain-prod',
      ...manyStages.map((s) => `floor/many/${s}`),
    ];
    await new Promise<void>((resolve, reject) => {
      const child = execFile('git', ['--git-dir', bare, 'update-ref', '--stdin'], { env }, (err) =>
        err ? reject(err) : resolve(),
      );
      child.stdin!.end(floorBranches.map((b) => `create refs/heads/${b} refs/heads/main\n`).join(''));
    });

    await client.ok('PUT', '/api/v1/pipelines/bench-one', pipeline('bench-one', repoUrl, [stage('dev', 'env/one')]));
    await client.ok(
      'PUT',
      '/api/v1/pipelines/bench-chain',
      pipeline('bench-chain', repoUrl, [
        stage('dev', 'env/chain/dev', { promotion: 'auto' }),
        stage('staging', 'env/chain/staging', { promotion: 'auto', after: ['dev'] }),
        stage('prod', 'env/chain/prod', { promotion: 'auto', after: ['staging'] }),
      ]),
    );
    await client.ok(
      'PUT',
      '/api/v1/pipelines/bench-many',
      pipeline(
        'bench-many',
        repoUrl,
        manyStages.map((s) => stage(s, `env/many/${s}`)),
      ),
    );

    // The trunk: one directory per stage on main of a repository of its own, as a platform repository has them.
    const trunk = join(dir, 'trunk.git');
    await createTrunk(trunk, manyStages, env);
    const trunkUrl = pathToFileURL(trunk).href;
    await client.ok(
      'PUT',
      '/api/v1/pipelines/bench-trunk',
      pipeline(
        'bench-trunk',
        trunkUrl,
        manyStages.map((s) => ({ name: s, render: { strategy: 'directory', to: `envs/${s}` } })),
      ),
    );

    const floorPromotion = (branch: string, tag: string) =>
      exec(FLOOR_SCRIPT, [repoUrl, branch, SOURCE_FILE, EXAMPLE_IMAGE, tag], env);
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const t0 = performance.now();
      await fn();
      return performance.now() - t0;
    };
    const settleDeadline = () => Math.min(Date.now() + 60_000, hardDeadline);
    let version = 0;
    const nextVersion = () => `1.0.${++version}`;

    // --- one promotion: API call → commit on the remote
    const one: Comparison = {
      name: 'one promotion',
      ferry: [],
      floor: [],
      floorName: 'script',
      goal: '≤ 3× the script',
      verdict: (f, b) => f <= 3 * b,
      notes: [],
    };
    comparisons.push(one);
    progress(`one promotion: 1 warm-up + ${opts.runs} runs each`);
    for (let i = 0; i <= opts.runs && !pastDeadline(); i++) {
      const freight = await client.addFreight('bench-one', nextVersion()).catch((err: unknown) => {
        failures.push(`one promotion, registering freight: ${String(err)}`);
        return undefined;
      });
      if (!freight) continue;
      const before = snapshot(bare, ['env/one']);
      let promotionId = '';
      const t0 = performance.now();
      const landed = await client
        .promote('bench-one', 'dev', freight.id)
        .then(async (p) => {
          promotionId = p.id;
          return waitForRefs(bare, before, Math.min(Date.now() + 60_000, hardDeadline));
        })
        .catch((err: unknown) => {
          failures.push(`one promotion: ${String(err)}`);
          return new Map<string, number>();
        });
      const at = landed.get('env/one');
      if (promotionId) {
        const end = await client.settle(promotionId, settleDeadline());
        if (end.phase !== 'Succeeded') failures.push(`one promotion ${promotionId}: ${end.phase} ${end.error ?? ''}`);
        else if (at === undefined) failures.push(`one promotion ${promotionId}: Succeeded but no commit on env/one`);
      }
      const floorMs = await time(() => floorPromotion('floor/one', `1.0.${version}`)).catch((err: unknown) => {
        failures.push(`one promotion floor: ${String(err)}`);
        return undefined;
      });
      if (i === 0) continue; // warm-up: the worker's first clone, first bundle runs
      if (at !== undefined) one.ferry.push(at - t0);
      if (floorMs !== undefined) one.floor.push(floorMs);
    }

    // --- a three-stage auto chain: freight registration → prod commit on the remote
    const chain: Comparison = {
      name: 'three-stage auto chain',
      ferry: [],
      floor: [],
      floorName: '3 scripts',
      goal: '≤ 3× 3 scripts',
      verdict: (f, b) => f <= 3 * b,
      notes: [],
    };
    comparisons.push(chain);
    progress(`three-stage chain: 1 warm-up + ${opts.runs} runs each`);
    for (let i = 0; i <= opts.runs && !pastDeadline(); i++) {
      const v = nextVersion();
      const before = snapshot(bare, ['env/chain/prod']);
      let freightId = '';
      const t0 = performance.now();
      const landed = await client
        .addFreight('bench-chain', v)
        .then(async (f) => {
          freightId = f.id;
          return waitForRefs(bare, before, Math.min(Date.now() + 120_000, hardDeadline));
        })
        .catch((err: unknown) => {
          failures.push(`chain: ${String(err)}`);
          return new Map<string, number>();
        });
      const at = landed.get('env/chain/prod');
      if (freightId) {
        const id = `promotion/bench-chain/prod/${freightId}`;
        const end = await client.settle(id, settleDeadline());
        if (end.phase !== 'Succeeded') failures.push(`chain ${id}: ${end.phase} ${end.error ?? ''}`);
      }
      const floorMs = await time(async () => {
        for (const s of ['dev', 'staging', 'prod']) await floorPromotion(`floor/chain-${s}`, v);
      }).catch((err: unknown) => {
        failures.push(`chain floor: ${String(err)}`);
        return undefined;
      });
      if (i === 0) continue;
      if (at !== undefined) chain.ferry.push(at - t0);
      if (floorMs !== undefined) chain.floor.push(floorMs);
    }

    // --- N concurrent promotions into one repository: N requests at once → every commit on the remote
    const n = opts.concurrency;
    const landedCounts: string[] = [];
    const concurrent: Comparison = {
      name: `${n} concurrent promotions`,
      ferry: [],
      floor: [],
      floorName: `${n} scripts, ${opts.floorConcurrency} at a time`,
      goal: `< 25 s, ${n}/${n} landed`,
      verdict: (f) => f < 25_000 && landedCounts.every((c) => c === `${n}/${n}`),
      complete: () => landedCounts.every((c) => c === `${n}/${n}`),
      notes: [],
    };
    comparisons.push(concurrent);
    progress(`${n} concurrent promotions: ${opts.concurrentRuns} run(s) each`);
    const branchOf = (s: string) => `env/many/${s}`;
    for (let r = 0; r < opts.concurrentRuns && !pastDeadline(); r++) {
      const v = nextVersion();
      const freight = await client.addFreight('bench-many', v).catch((err: unknown) => {
        failures.push(`concurrent, registering freight: ${String(err)}`);
        return undefined;
      });
      if (!freight) continue;
      // Promotion ids are documented (promotion/<pipeline>/<stage>/<freight>): a request answered with an error
      // can still be looked up, so a promotion that started anyway is not missed.
      const idOf = (s: string) => `promotion/bench-many/${s}/${freight.id}`;
      const before = snapshot(bare, manyStages.map(branchOf));
      let refused = 0;
      let answered = false;
      const t0 = performance.now();
      const requests = Promise.all(
        manyStages.map((s) =>
          client.promote('bench-many', s, freight.id).then(
            () => undefined,
            (err: unknown) => {
              refused++;
              if (refused <= 3) failures.push(`concurrent promote ${s}: ${String(err)}`);
            },
          ),
        ),
      ).then(() => {
        answered = true;
      });

      // Wait until every branch moved; stop early once nothing more can land (every promotion whose commit is
      // missing has ended or never started), so a run of slow or refused promotions does not wait out the bound.
      const deadline = Math.min(Date.now() + CONCURRENT_WAIT_MS, hardDeadline);
      const landed = new Map<string, number>();
      let lastLanding = performance.now();
      let lastCheck = 0;
      while (landed.size < n && Date.now() < deadline) {
        for (const s of manyStages) {
          if (!landed.has(s) && readRef(bare, branchOf(s)) !== before.get(branchOf(s))) {
            landed.set(s, (lastLanding = performance.now()));
          }
        }
        const now = performance.now();
        if (answered && now - lastLanding > 3000 && now - lastCheck > 3000) {
          lastCheck = now;
          const missing = manyStages.filter((s) => !landed.has(s));
          let open = 0;
          await pool(missing, 8, async (s) => {
            const phase = await client.phase(idOf(s));
            if (phase !== 'absent' && !TERMINAL.includes(phase)) open++;
          });
          if (open === 0) break;
        }
        await sleep(POLL_MS);
      }
      await requests;
      const last = Math.max(...landed.values());

      const phases = new Map<string, number>();
      const settleBy = settleDeadline();
      await pool(manyStages, 8, async (s) => {
        const id = idOf(s);
        const end = landed.has(s) ? await client.settle(id, settleBy) : { phase: await client.phase(id) };
        phases.set(end.phase, (phases.get(end.phase) ?? 0) + 1);
        if (end.phase !== 'Succeeded' && end.phase !== 'absent' && (phases.get(end.phase) ?? 0) <= 2) {
          failures.push(`concurrent ${id}: ${end.phase} ${'error' in end ? (end.error ?? '') : ''}`);
        }
      });
      landedCounts.push(`${landed.size}/${n}`);
      const counts = [...phases].map(([phase, count]) => `${count} ${phase === 'absent' ? 'never started' : phase}`);
      concurrent.notes.push(
        `ferry run ${r + 1}: ${landed.size}/${n} commits landed in ${formatMs(last - t0)}; ` +
          `${refused} of ${n} requests refused; promotions: ${counts.join(', ')}`,
      );
      if (landed.size > 0) concurrent.ferry.push(last - t0);
      concurrent.ferryExtra = `landed ${landedCounts.join(', ')}`;

      const floorBefore = snapshot(
        bare,
        manyStages.map((s) => `floor/many/${s}`),
      );
      let floorFailed = 0;
      const floorMs = await time(() =>
        pool(manyStages, opts.floorConcurrency, async (s) =>
          pastDeadline()
            ? undefined
            : floorPromotion(`floor/many/${s}`, v).then(
                () => undefined,
                (err: unknown) => {
                  floorFailed++;
                  if (floorFailed <= 3) failures.push(`concurrent floor ${s}: ${String(err)}`);
                },
              ),
        ),
      );
      const floorLanded = [...floorBefore].filter(([b, c]) => readRef(bare, b) !== c).length;
      concurrent.notes.push(`floor run ${r + 1}: ${floorLanded}/${n} landed, ${floorFailed} failed`);
      if (floorLanded === n) concurrent.floor.push(floorMs);
    }

    // --- N concurrent promotions into directories of ONE trunk branch: N requests at once → N commits on main
    const trunkLanded: string[] = [];
    const trunkRow: Comparison = {
      name: `${n} concurrent promotions into one trunk`,
      ferry: [],
      floor: [],
      floorName: `${n} scripts, ${opts.floorConcurrency} at a time`,
      goal: `< 30 s, ${n}/${n} landed`,
      verdict: (f) => f < 30_000 && trunkLanded.every((c) => c === `${n}/${n}`),
      complete: () => trunkLanded.every((c) => c === `${n}/${n}`),
      notes: [],
    };
    comparisons.push(trunkRow);
    progress(`${n} concurrent promotions into one trunk: ${opts.concurrentRuns} run(s) each`);
    for (let r = 0; r < opts.concurrentRuns && !pastDeadline(); r++) {
      const v = nextVersion();
      const freight = await client.addFreight('bench-trunk', v).catch((err: unknown) => {
        failures.push(`trunk, registering freight: ${String(err)}`);
        return undefined;
      });
      if (!freight) continue;
      const base = readRef(trunk, 'main');
      let refused = 0;
      const t0 = performance.now();
      const requests = Promise.all(
        manyStages.map((s) =>
          client.promote('bench-trunk', s, freight.id).then(
            () => undefined,
            (err: unknown) => {
              refused++;
              if (refused <= 3) failures.push(`trunk promote ${s}: ${String(err)}`);
            },
          ),
        ),
      );
      // Landed = Ferry's commits on main since the run began (each promotion is one commit).
      const deadline = Math.min(Date.now() + CONCURRENT_WAIT_MS, hardDeadline);
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
      await pool(manyStages, 8, async (s) => {
        const id = `promotion/bench-trunk/${s}/${freight.id}`;
        const end = await client.settle(id, settleDeadline());
        phases.set(end.phase, (phases.get(end.phase) ?? 0) + 1);
        if (end.phase !== 'Succeeded' && (phases.get(end.phase) ?? 0) <= 2)
          failures.push(`trunk ${id}: ${end.phase} ${end.error ?? ''}`);
      });
      const pushes = await exec(
        'git',
        ['--git-dir', trunk, 'rev-list', '--count', '--first-parent', `${base}..main`],
        env,
      );
      trunkLanded.push(`${count}/${n}`);
      trunkRow.notes.push(
        `ferry run ${r + 1}: ${count}/${n} commits landed on main in ${formatMs(lastLanding - t0)} ` +
          `(${pushes.trim()} commits in a straight line); ${refused} of ${n} requests refused; promotions: ` +
          [...phases].map(([phase, c]) => `${c} ${phase}`).join(', '),
      );
      if (count > 0) trunkRow.ferry.push(lastLanding - t0);
      trunkRow.ferryExtra = `landed ${trunkLanded.join(', ')}`;

      const floorBase = readRef(trunk, 'main');
      let floorFailed = 0;
      const floorMs = await time(() =>
        pool(manyStages, opts.floorConcurrency, async (s) =>
          pastDeadline()
            ? undefined
            : exec(
                TRUNK_FLOOR_SCRIPT,
                [trunkUrl, 'main', `envs/${s}/deployment.yaml`, EXAMPLE_IMAGE, `${v}-floor`],
                env,
                300_000,
              ).then(
                () => undefined,
                (err: unknown) => {
                  floorFailed++;
                  if (floorFailed <= 3) failures.push(`trunk floor ${s}: ${String(err)}`);
                },
              ),
        ),
      );
      const floorLanded = await commitsSince(trunk, floorBase, env);
      trunkRow.notes.push(`floor run ${r + 1}: ${floorLanded}/${n} landed, ${floorFailed} failed`);
      if (floorLanded === n) trunkRow.floor.push(floorMs);
    }

    // --- status of an evicted pipeline: a worker that caches 2 workflows; the other two pipelines are queried
    // first, so bench-many (which saw every concurrent promotion) is not in the cache when it is asked for.
    progress(`evicted status: ${opts.runs} runs each (worker restarted with a cache of 2 workflows)`);
    await stopWorker();
    await startWorker({ maxCachedWorkflows: 2 });
    const evicted: Comparison = {
      name: 'status of an evicted pipeline',
      ferry: [],
      floor: [],
      floorName: 'plain HTTP GET',
      goal: '< 200 ms',
      verdict: (f) => f < 200,
      notes: [],
    };
    comparisons.push(evicted);
    const cached: number[] = [];
    const history = await ferry.temporal.workflow
      .getHandle('pipeline/bench-many')
      .describe()
      .then((d) => d.historyLength)
      .catch(() => undefined);
    for (let i = 0; i <= opts.runs && !pastDeadline(); i++) {
      try {
        await client.ok('GET', '/api/v1/pipelines/bench-one');
        await client.ok('GET', '/api/v1/pipelines/bench-chain');
        const ms = await time(() => client.ok('GET', '/api/v1/pipelines/bench-many'));
        const warm = await time(() => client.ok('GET', '/api/v1/pipelines/bench-many'));
        if (i > 0) {
          evicted.ferry.push(ms);
          cached.push(warm);
        }
      } catch (err) {
        failures.push(`evicted status: ${String(err)}`);
      }
      const floorMs = await time(async () => {
        const res = await fetch(floorUrl, { signal: AbortSignal.timeout(10_000) });
        await res.text();
      }).catch(() => undefined);
      if (i > 0 && floorMs !== undefined) evicted.floor.push(floorMs);
    }
    evicted.notes.push(
      `the pipeline's history: ${history ?? '?'} events in its current run; the same GET once cached: ${formatSample(cached)}`,
    );

    printReport(pastDeadline() ? `--timeout ${opts.timeoutMs / 1000} s reached` : undefined);
    if (failures.length > 0) process.exitCode = 1;
  } finally {
    clearTimeout(watchdog);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanUp();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = http.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** A trunk with one directory per stage (`envs/<stage>/deployment.yaml`) on main, in one commit. */
async function createTrunk(bare: string, stages: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
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
  await new Promise<void>((resolve, reject) => {
    const child = execFile('git', ['--git-dir', bare, 'fast-import', '--quiet'], { env }, (err) =>
      err ? reject(err) : resolve(),
    );
    child.stdin!.end(input);
  });
}

/** Commits on main of `bare` since `base`. */
async function commitsSince(bare: string, base: string | undefined, env: NodeJS.ProcessEnv): Promise<number> {
  const out = await exec('git', ['--git-dir', bare, 'rev-list', '--count', base ? `${base}..main` : 'main'], env);
  return Number(out.trim());
}
