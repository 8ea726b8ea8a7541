// How long Ferry's git step takes per promotion, against the floor: the same work (render a stage's manifests with
// a new image tag into its branch, commit, push) done with plain git porcelain in the same run, on the same repo.
//
//   npm run bench -- git [--promotions 20] [--files 200] [--history 50]
//
// Rows: Ferry's renderAndPush (cached bare workspace + plumbing); "clone per promotion" (git clone, edit, commit,
// push: what a stateless job does); "kept clone" (one clone, then fetch + checkout + edit + commit + push per
// promotion: the best a work-tree approach can do). The rows run interleaved, one promotion of each in turn. The
// remote is a bare repository on local disk, so the numbers are git's own cost without network latency; over a
// network the clone row grows with the repository's size.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createGitActivities } from '../activities/render-and-push';
import { createSecretResolver } from '../activities/secrets';
import { formatMs, formatRatio, formatSample, intOption, loadLine, median, quantile, table } from './stats';

process.env.GIT_CONFIG_GLOBAL = '/dev/null';
process.env.GIT_CONFIG_NOSYSTEM = '1';

const IMAGE = 'registry.example.com/team/guestbook';
const FROM = 'apps/guestbook/dev';

const env = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Bench',
  GIT_AUTHOR_EMAIL: 'bench@example.com',
  GIT_COMMITTER_NAME: 'Bench',
  GIT_COMMITTER_EMAIL: 'bench@example.com',
};
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, { cwd, env, stdio: 'pipe', encoding: 'utf8' }).trim();

function manifest(i: number, tag: string): string {
  if (i % 4 === 0) {
    return [
      `# service ${i}`,
      'apiVersion: v1',
      'kind: Service',
      `metadata: {name: svc-${i}}`,
      'spec:',
      `  ports: [{port: 80, targetPort: ${8000 + i}}]`,
      '',
    ].join('\n');
  }
  return [
    `# workload ${i}`,
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    `  name: app-${i}`,
    '  labels: {team: guestbook}',
    'spec:',
    '  replicas: 2',
    '  template:',
    '    spec:',
    '      containers:',
    '        - name: web',
    `          image: ${IMAGE}:${tag}   # managed by ferry`,
    '          resources: {requests: {cpu: 100m, memory: 128Mi}}',
    '        - name: proxy',
    '          image: docker.io/library/envoy:v1.30',
    '',
  ].join('\n');
}

function setUp(dir: string, files: number, history: number): string {
  const remote = join(dir, 'gitops.git');
  git(dir, 'init', '--bare', '--quiet', '--initial-branch=main', remote);
  const dev = join(dir, 'dev');
  git(dir, 'init', '--quiet', '--initial-branch=main', dev);
  for (let i = 0; i < files; i++) {
    const path = join(dev, FROM, `m${String(i).padStart(3, '0')}.yaml`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, manifest(i, '0.0.0'));
  }
  // Some history, and other apps, so cloning costs what it costs in a real GitOps repository.
  for (let c = 0; c < history; c++) {
    const path = join(dev, 'apps', `other-${c % 10}`, `config-${c}.yaml`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `kind: ConfigMap\nmetadata: {name: c${c}}\ndata: {rev: "${c}"}\n`);
    git(dev, 'add', '.');
    git(dev, 'commit', '--quiet', '-m', `change ${c}`);
  }
  git(dev, 'push', '--quiet', remote, 'main');
  return remote;
}

/** The floor's render: the same files, with the tag swapped by a regex (cheaper than Ferry's YAML edit). */
function renderByRegex(work: string, tag: string): void {
  const source = join(work, FROM);
  for (const name of readdirSync(source)) {
    const text = readFileSync(join(source, name), 'utf8');
    writeFileSync(
      join(work, '..', 'out', name),
      text.replace(new RegExp(`(image: ${IMAGE.replace(/\./g, '\\.')}):[^\\s]+`, 'g'), `$1:${tag}`),
    );
  }
}

/** Writes rendered files into a work tree on `branch` (created as an orphan the first time), commits, pushes. */
function commitRendered(work: string, branch: string, exists: boolean, tag: string): void {
  const out = join(work, '..', 'out');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out);
  renderByRegex(work, tag);
  if (exists) git(work, 'checkout', '--quiet', '-B', branch, `origin/${branch}`);
  else {
    git(work, 'checkout', '--quiet', '--orphan', branch);
    git(work, 'rm', '-r', '--quiet', '--cached', '.');
    git(work, 'clean', '-fdq');
  }
  for (const name of readdirSync(out)) writeFileSync(join(work, name), readFileSync(join(out, name)));
  git(work, 'add', '-A');
  git(work, 'commit', '--quiet', '-m', `promote ${tag}`);
  git(work, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
}

interface Row {
  name: string;
  timings: number[];
}

async function time(fn: () => unknown): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

export async function run(argv: readonly string[]): Promise<void> {
  const promotions = intOption(argv, 'promotions', 20);
  const files = intOption(argv, 'files', 200);
  const history = intOption(argv, 'history', 50);
  const loadBefore = loadLine();
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
  try {
    const remote = setUp(dir, files, history);
    const url = `file://${remote}`;

    const ferry = createGitActivities({
      workspaceRoot: join(dir, 'workspaces'),
      secrets: createSecretResolver({ env: {} }),
      // The remote is a file:// repository: opt in, as the operator of a local repository must. Spread in, so
      // git activities that do not know the option still compile.
      ...{ allowFileRepos: true },
    });
    const ferryRow: Row = { name: 'ferry renderAndPush', timings: [] };
    const cloneRow: Row = { name: 'floor: clone per promotion', timings: [] };
    const keptRow: Row = { name: 'floor: kept clone, fetch each time', timings: [] };
    const kept = join(dir, 'kept', 'repo');
    mkdirSync(dirname(kept), { recursive: true });

    // Interleaved (Ferry, clone, kept, Ferry, …) so that a change in the machine's load hits every row alike.
    for (let i = 1; i <= promotions; i++) {
      const version = `1.0.${i}`;
      ferryRow.timings.push(
        await time(async () => {
          const result = await ferry.renderAndPush({
            pipeline: 'guestbook',
            stage: 'dev',
            promotionId: `promotion/guestbook/dev/${version}`,
            runId: `run-${i}`,
            repo: { url, branch: 'main' },
            render: { strategy: 'branch', engine: 'plain', from: FROM, to: 'env/ferry' },
            artifacts: [{ name: 'guestbook', image: IMAGE }],
            freight: { id: `f-${version}`, artifacts: { guestbook: version } },
          });
          if (!result.created) throw new Error('expected a commit per promotion');
        }),
      );

      const work = join(dir, `clone-${i}`, 'repo');
      mkdirSync(dirname(work), { recursive: true });
      cloneRow.timings.push(
        await time(() => {
          git(dir, 'clone', '--quiet', '--no-tags', url, work);
          commitRendered(work, 'env/clone', i > 1, version);
        }),
      );
      rmSync(dirname(work), { recursive: true, force: true });

      keptRow.timings.push(
        await time(() => {
          if (i === 1) git(dir, 'clone', '--quiet', '--no-tags', url, kept);
          else {
            git(kept, 'fetch', '--quiet', '--prune', 'origin');
            git(kept, 'checkout', '--quiet', '-B', 'main', 'origin/main');
          }
          commitRendered(kept, 'env/kept', i > 1, version);
        }),
      );
    }

    process.stdout.write(
      `git promotion: ${promotions} promotions per row, interleaved (Ferry, clone, kept, Ferry, …); ${files} manifests ` +
        `under ${FROM}, ${history} commits of history; node ${process.version}, ${git(tmpdir(), '--version')}\n` +
        `before: ${loadBefore}\nafter:  ${loadLine()}\n` +
        `"first" includes the initial clone; the median and its range (min–max) are over promotions 2..${promotions}.\n\n` +
        `${report([ferryRow, cloneRow, keptRow])}\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(rows: Row[]): string {
  const steady = (r: Row) => (r.timings.length > 1 ? r.timings.slice(1) : r.timings);
  const ferryMedian = median(steady(rows[0]!));
  return table(
    ['', 'first', 'median (min–max)', 'IQR', 'vs ferry'],
    rows.map((r) => {
      const xs = steady(r);
      return [
        r.name,
        formatMs(r.timings[0]!),
        formatSample(xs),
        `${formatMs(quantile(xs, 0.25)).replace(/ ms$/, '')}–${formatMs(quantile(xs, 0.75))}`,
        formatRatio(median(xs), ferryMedian),
      ];
    }),
  );
}
