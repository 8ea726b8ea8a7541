// The git step of a promotion, end to end, against the floor: the same commit made and pushed by a plain git script
// in the same run, interleaved (Ferry, floor, Ferry, floor, …).
//
//   npm run bench -- git [--quick] [--runs N] [--cold-runs N] [--trunk-runs N] [--render-runs N]
//                        [--concurrency N] [--floor-concurrency N] [--commits N] [--files N] [--timeout S]
//
// Every Ferry measurement starts with `POST …/stages/<stage>/promotions` to the HTTP API (in this process, on a real
// Temporal dev server and a Ferry worker) and ends when the commit is on the remote, read from the remote's ref
// files. The stages have no `argocd:`: a promotion ends with its push, so Argo CD is out of the loop. Rows
// (docs/performance.md explains each and holds the numbers):
//   warm        a promotion into a small repository the worker has cloned before (branch strategy);
//               floor: bench/plain-promotion.sh (`git clone --depth 1`, edit, commit, push)
//   large cold  a promotion into a directory of a repository of --commits commits and --files files (directory
//               strategy) by a worker started with an empty workspace root; floor: bench/plain-sparse-promotion.sh
//               (`git clone --depth 1 --filter=blob:none --sparse`, sparse-checkout of the stage directory, edit,
//               commit, push)
//   large warm  the same by the worker that made the previous promotion; the same floor
//   trunk       N promotions into N directories of one trunk branch requested at once → N commits on the trunk;
//               floor: N scripts (clone, edit, commit, push, rebase and push again), --floor-concurrency at a time
//   renders     Ferry's kustomize and helm engines against the binaries run alone (bench/render.ts)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createExampleRepo, EXAMPLE_IMAGE } from '../dev/example';
import { findRenderTools } from '../worker/render-tools';
import { BIG_REPO_STAGE_DIRS, copyBigRepo } from './big-repo';
import { renderComparisons } from './render';
import {
  comparisonReport,
  exec,
  pipelineDocument,
  printFailures,
  promotionRuns,
  reportHeader,
  trunkScenario,
  withStack,
  type Comparison,
  type RunContext,
} from './stack';
import { intOption, loadLine } from './stats';

const FLOOR_SCRIPT = join(__dirname, 'plain-promotion.sh');
const SPARSE_FLOOR_SCRIPT = join(__dirname, 'plain-sparse-promotion.sh');
const SOURCE_DIR = 'apps/guestbook/overlays/dev';
const BIG_STAGE_DIR = BIG_REPO_STAGE_DIRS[0];

interface Options {
  runs: number;
  coldRuns: number;
  trunkRuns: number;
  renderRuns: number;
  concurrency: number;
  floorConcurrency: number;
  commits: number;
  files: number;
  timeoutMs: number;
}

function options(argv: readonly string[]): Options {
  const quick = argv.includes('--quick');
  return {
    runs: intOption(argv, 'runs', quick ? 3 : 7),
    coldRuns: intOption(argv, 'cold-runs', quick ? 2 : 5),
    trunkRuns: intOption(argv, 'trunk-runs', quick ? 1 : 2),
    renderRuns: intOption(argv, 'render-runs', quick ? 5 : 15),
    concurrency: intOption(argv, 'concurrency', 200),
    floorConcurrency: intOption(argv, 'floor-concurrency', 4),
    commits: intOption(argv, 'commits', 50_000),
    files: intOption(argv, 'files', 20_000),
    timeoutMs: intOption(argv, 'timeout', 900) * 1000,
  };
}

/** Disk used under `path` (du), for the notes: what a cold worker keeps of the large repository. */
function diskUsage(path: string): string {
  if (!existsSync(path)) return 'nothing';
  const out = spawnSync('du', ['-sk', path], { encoding: 'utf8' }).stdout.split('\t')[0];
  const kib = Number(out);
  return Number.isFinite(kib) ? `${(kib / 1024).toFixed(1)} MiB` : 'unknown';
}

export async function run(argv: readonly string[]): Promise<void> {
  const opts = options(argv);
  const started = Date.now();
  const loadBefore = loadLine();
  const setUpNotes: string[] = [];
  const out = (line = '') => process.stdout.write(`${line}\n`);
  const report = (ctx: RunContext | undefined, stoppedBy?: string): void => {
    if (stoppedBy) out(`STOPPED: ${stoppedBy}; the table holds the runs finished by then.`);
    out(
      reportHeader(
        'git: Ferry through the HTTP API (in process) on a Temporal dev server and an in-process worker, from the ' +
          'API call to the commit on the remote (no Argo CD), against plain git scripts, interleaved (Ferry, floor, ' +
          `…); remotes: bare repositories on local disk (file://)\nruns: warm ${opts.runs} after 1 warm-up; large ` +
          `repository (${opts.commits} commits, ${opts.files} files) cold ${opts.coldRuns}, warm ${opts.runs}; ` +
          `trunk ${opts.trunkRuns} of ${opts.concurrency} at once; renders ${opts.renderRuns} after 1 warm-up`,
        ctx,
        loadBefore,
        started,
      ),
    );
    for (const note of setUpNotes) out(note);
    out();
    out(comparisonReport(ctx?.comparisons ?? []));
    printFailures(ctx, out);
  };

  await withStack({ prefix: 'ferry-bench-git-', timeoutMs: opts.timeoutMs, report }, async (ctx) => {
    const { stack, comparisons, progress } = ctx;
    const { client, env, dir } = stack;

    // --- one promotion into a small repository the worker knows: API call → commit on the stage's branch
    const small = join(dir, 'gitops.git');
    createExampleRepo(small);
    const smallUrl = pathToFileURL(small).href;
    await exec('git', ['--git-dir', small, 'branch', 'floor/one', 'main'], env);
    await client.ok(
      'PUT',
      '/api/v1/pipelines/bench-one',
      pipelineDocument('bench-one', smallUrl, [
        { name: 'dev', render: { strategy: 'branch', from: SOURCE_DIR, to: 'env/one' } },
      ]),
    );
    const warm: Comparison = {
      name: 'one promotion, warm repository',
      ferry: [],
      floor: [],
      floorName: 'clone --depth 1 script',
      goal: '≤ 1.0× the script',
      verdict: (f, b) => f <= b,
      notes: [],
    };
    comparisons.push(warm);
    progress(`one promotion, warm: 1 warm-up + ${opts.runs} runs each`);
    await promotionRuns(ctx, warm, {
      pipeline: 'bench-one',
      stage: 'dev',
      bare: small,
      branch: 'env/one',
      runs: opts.runs,
      warmUps: 1,
      floor: (version) =>
        exec(FLOOR_SCRIPT, [smallUrl, 'floor/one', `${SOURCE_DIR}/deployment.yaml`, EXAMPLE_IMAGE, version], env),
    });

    // --- the large repository: a directory stage on main, cold (empty workspace root) and warm
    if (!ctx.pastDeadline()) {
      const big = join(dir, 'large.git');
      progress(`the large repository (${opts.commits} commits, ${opts.files} files): from the cache or made now`);
      const t0 = Date.now();
      const made = await copyBigRepo({ commits: opts.commits, files: opts.files, image: EXAMPLE_IMAGE }, big);
      setUpNotes.push(
        `large repository: ${made.built ? 'made with git fast-import' : 'copied from the cache'} in ` +
          `${((Date.now() - t0) / 1000).toFixed(1)} s (${made.cached}; ${diskUsage(big)} on disk)`,
      );
      const bigUrl = pathToFileURL(big).href;
      await client.ok(
        'PUT',
        '/api/v1/pipelines/bench-large',
        pipelineDocument('bench-large', bigUrl, [
          { name: 'bench', render: { strategy: 'directory', to: BIG_STAGE_DIR } },
        ]),
      );
      const sparseFloor = (version: string) =>
        exec(
          SPARSE_FLOOR_SCRIPT,
          // A tag of its own: the file is the one Ferry just set to `version`.
          [bigUrl, 'main', BIG_STAGE_DIR, `${BIG_STAGE_DIR}/deployment.yaml`, EXAMPLE_IMAGE, `${version}-floor`],
          env,
          300_000,
        );
      /** A row of promotions into the large repository's stage directory, against the sparse script. */
      const largeRow = async (
        name: string,
        runs: number,
        beforeEach?: (i: number) => Promise<void>,
      ): Promise<Comparison> => {
        const row: Comparison = {
          name,
          ferry: [],
          floor: [],
          floorName: 'sparse shallow script',
          goal: '≤ 1.0× the script',
          verdict: (f, b) => f <= b,
          notes: [],
        };
        comparisons.push(row);
        await promotionRuns(ctx, row, {
          pipeline: 'bench-large',
          stage: 'bench',
          bare: big,
          branch: 'main',
          runs,
          warmUps: 0,
          floor: sparseFloor,
          ...(beforeEach ? { beforeEach } : {}),
        });
        return row;
      };
      progress(`large repository, cold: ${opts.coldRuns} runs each, each on a new worker with an empty workspace root`);
      let coldRoot = '';
      // Untimed before each run: a new worker on an empty workspace root, and the pipeline read once, so the new
      // worker has replayed the pipeline workflow before the clock starts; what is timed is the cold git work.
      const cold = await largeRow('large repository, cold worker', opts.coldRuns, async (i) => {
        coldRoot = join(dir, `cold-workspaces-${i}`);
        await stack.startWorker({ workspaceRoot: coldRoot });
        await client.ok('GET', '/api/v1/pipelines/bench-large');
      });
      cold.notes.push(`what the cold worker kept after its promotion: ${diskUsage(coldRoot)} under its workspace root`);
      progress(`large repository, warm: ${opts.runs} runs each (the last cold worker, its workspace kept)`);
      const large = await largeRow('large repository, warm worker', opts.runs);
      large.notes.push(`the workspace after ${opts.runs} more promotions: ${diskUsage(coldRoot)}`);
    }

    // --- N concurrent promotions into one trunk branch
    if (!ctx.pastDeadline()) {
      const trunk = { concurrency: opts.concurrency, runs: opts.trunkRuns, floorConcurrency: opts.floorConcurrency };
      const oneRow = await trunkScenario(ctx, { ...trunk, layout: 'stages', goalMs: 30_000 });
      if (!ctx.pastDeadline()) {
        await trunkScenario(ctx, { ...trunk, layout: 'pipelines', goalMs: 30_000, floorFrom: oneRow });
      }
    }

    // --- renders: the engines against the binaries alone (no Temporal, no git)
    if (!ctx.pastDeadline()) {
      const tools = findRenderTools(process.env);
      if (!tools.kustomize || !tools.helm) {
        ctx.failures.push(
          'renders: kustomize or helm not found (set FERRY_KUSTOMIZE_PATH and FERRY_HELM_PATH, or run `npm run tools`)',
        );
      } else {
        progress(`renders: 1 warm-up + ${opts.renderRuns} runs of each engine`);
        await renderComparisons(
          { kustomize: tools.kustomize, helm: tools.helm },
          opts.renderRuns,
          comparisons,
          ctx.failures,
          ctx.nextVersion,
        );
      }
    }
  });
}
