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
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { createExampleRepo, EXAMPLE_IMAGE } from '../dev/example';
import {
  comparisonReport,
  CONCURRENT_WAIT_MS,
  POLL_MS,
  exec,
  pipelineDocument as pipeline,
  pool,
  printFailures,
  promotionRuns,
  readRef,
  reportHeader,
  sleep,
  snapshot,
  TERMINAL,
  time,
  trunkScenario,
  waitForRefs,
  withStack,
  type Comparison,
  type RunContext,
} from './stack';
import { formatMs, formatSample, intOption, loadLine } from './stats';

const FLOOR_SCRIPT = join(__dirname, 'plain-promotion.sh');
const SOURCE_DIR = 'apps/guestbook/overlays/dev';
const SOURCE_FILE = `${SOURCE_DIR}/deployment.yaml`;

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

function stage(name: string, to: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, ...extra, render: { strategy: 'branch', from: SOURCE_DIR, to } };
}

export async function run(argv: readonly string[]): Promise<void> {
  const opts = options(argv);
  const started = Date.now();
  const loadBefore = loadLine();
  const out = (line = '') => process.stdout.write(`${line}\n`);
  const report = (ctx: RunContext | undefined, stoppedBy?: string): void => {
    if (stoppedBy) out(`STOPPED: ${stoppedBy}; the table holds the runs finished by then.`);
    out(
      reportHeader(
        `orchestration: Ferry through the HTTP API (in process) on a Temporal dev server and an in-process worker, ` +
          `against the floor, interleaved (Ferry, floor, Ferry, …); remote: a bare repository on local disk\n` +
          `runs: ${opts.runs} per scenario after 1 warm-up (concurrent: ${opts.concurrentRuns}, no warm-up)`,
        ctx,
        loadBefore,
        started,
      ),
    );
    out();
    out(comparisonReport(ctx?.comparisons ?? []));
    printFailures(ctx, out);
  };

  let floorServer: http.Server | undefined;
  await withStack({ prefix: 'ferry-bench-orch-', timeoutMs: opts.timeoutMs, report }, async (ctx) => {
    const { stack, failures, comparisons, pastDeadline, hardDeadline, settleDeadline, progress, nextVersion } = ctx;
    const { client, env, ferry, dir } = stack;
    try {
      floorServer = http.createServer((_req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end('{"ok":true}');
      });
      await new Promise<void>((resolve) => floorServer!.listen(0, '127.0.0.1', resolve));
      const floorUrl = `http://127.0.0.1:${(floorServer.address() as AddressInfo).port}/`;

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

      const floorPromotion = (branch: string, tag: string) =>
        exec(FLOOR_SCRIPT, [repoUrl, branch, SOURCE_FILE, EXAMPLE_IMAGE, tag], env);

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
      await promotionRuns(ctx, one, {
        pipeline: 'bench-one',
        stage: 'dev',
        bare,
        branch: 'env/one',
        runs: opts.runs,
        warmUps: 1,
        floor: (version) => floorPromotion('floor/one', version),
      });

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
      await trunkScenario(ctx, {
        concurrency: opts.concurrency,
        runs: opts.concurrentRuns,
        floorConcurrency: opts.floorConcurrency,
        goalMs: 30_000,
        layout: 'stages',
      });

      // --- status of an evicted pipeline: a worker that caches 2 workflows; the other two pipelines are queried
      // first, so bench-many (which saw every concurrent promotion) is not in the cache when it is asked for.
      progress(`evicted status: ${opts.runs} runs each (worker restarted with a cache of 2 workflows)`);
      await stack.startWorker({ tuning: { maxCachedWorkflows: 2 } });
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
    } finally {
      floorServer?.close();
      floorServer?.closeAllConnections();
    }
  });
}
