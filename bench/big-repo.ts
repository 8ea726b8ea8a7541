// A large GitOps repository for the git benchmark: `files` manifests (apps/<team>/<app>/…) and `commits` commits of
// history on main, made with `git fast-import` in seconds rather than with one `git commit` per commit. It is
// built once per set of parameters and kept in a cache directory (FERRY_BENCH_CACHE, else <tmpdir>/ferry-bench-cache);
// every run copies it, since promotions push to it. Packed with a bitmap, as a hosted repository is served.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The stage directories a benchmark promotes into: `envs/<name>/deployment.yaml`, each on main. */
export const BIG_REPO_STAGE_DIRS = ['envs/bench', 'envs/cold', 'envs/warm'] as const;

export interface BigRepoParams {
  commits: number;
  files: number;
  /** The image every stage directory's deployment starts at (`<image>:0.0.0`). */
  image: string;
}

/** Bumped when the generated content changes, so an old cache entry is not reused. */
const LAYOUT_VERSION = 1;

function cacheDir(): string {
  return process.env.FERRY_BENCH_CACHE ?? join(tmpdir(), 'ferry-bench-cache');
}

function appPath(i: number): string {
  return `apps/team-${String(i % 40).padStart(2, '0')}/app-${String(Math.floor(i / 10)).padStart(4, '0')}/config-${i % 10}.yaml`;
}

function appManifest(i: number, rev: number): string {
  return (
    `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-${i}\n  labels: {team: team-${i % 40}}\n` +
    `data:\n  revision: "${rev}"\n  replicas: "${1 + (i % 3)}"\n  owner: team-${i % 40}@example.com\n`
  );
}

export function stageDeployment(dir: string, image: string, tag: string): string {
  const name = dir.split('/').pop()!;
  return (
    `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: guestbook-${name}\nspec:\n  replicas: 2\n` +
    `  selector:\n    matchLabels: {app: guestbook-${name}}\n  template:\n    metadata:\n      labels: {app: guestbook-${name}}\n` +
    `    spec:\n      containers:\n        - name: guestbook\n          image: ${image}:${tag}\n` +
    `          ports:\n            - containerPort: 8080\n`
  );
}

/** The fast-import stream: the first commit adds every file, each later one changes one app's manifest. */
function* fastImportStream(params: BigRepoParams): Generator<string> {
  const data = (text: string) => `data ${Buffer.byteLength(text)}\n${text}\n`;
  const commit = (n: number, message: string) =>
    `commit refs/heads/main\nmark :${n}\ncommitter Bench <bench@example.com> ${1_600_000_000 + n * 60} +0000\n${data(message)}`;
  let first = commit(1, 'Initial layout');
  for (const dir of BIG_REPO_STAGE_DIRS) {
    first += `M 100644 inline ${dir}/deployment.yaml\n${data(stageDeployment(dir, params.image, '0.0.0'))}`;
  }
  yield first;
  let chunk = '';
  for (let i = 0; i < params.files; i++) {
    chunk += `M 100644 inline ${appPath(i)}\n${data(appManifest(i, 0))}`;
    if (chunk.length > 1 << 20) {
      yield chunk;
      chunk = '';
    }
  }
  yield `${chunk}\n`;
  // A spread of changes across the tree (a multiplicative step, so consecutive commits touch distant files).
  for (let n = 2; n <= params.commits; n++) {
    const i = (n * 7919) % params.files;
    yield `${commit(n, `app-${i}: revision ${n}`)}from :${n - 1}\nM 100644 inline ${appPath(i)}\n${data(appManifest(i, n))}\n`;
  }
}

function run(args: string[], options: { cwd?: string; input?: Iterable<string> } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'git',
      args,
      {
        cwd: options.cwd,
        env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
        maxBuffer: 64 << 20,
      },
      (err, _stdout, stderr) =>
        err ? reject(new Error(`git ${args[0]}: ${stderr.trim() || err.message}`)) : resolve(),
    );
    if (options.input) {
      const stdin = child.stdin!;
      const it = options.input[Symbol.iterator]();
      const pump = () => {
        for (let next = it.next(); !next.done; next = it.next()) {
          if (!stdin.write(next.value)) return void stdin.once('drain', pump);
        }
        stdin.end();
      };
      stdin.on('error', () => undefined); // the exit status says what went wrong
      pump();
    }
  });
}

/**
 * A fresh copy at `into` of the cached repository for `params`, building the cache entry first when missing.
 * Returns whether the cache was built by this call (so the report can say where the set-up time went).
 */
export async function copyBigRepo(params: BigRepoParams, into: string): Promise<{ built: boolean; cached: string }> {
  const key = `big-c${params.commits}-f${params.files}-v${LAYOUT_VERSION}.git`;
  const cached = join(cacheDir(), key);
  let built = false;
  if (!existsSync(join(cached, 'ferry-bench-complete'))) {
    mkdirSync(cacheDir(), { recursive: true });
    const building = `${cached}.building-${process.pid}`;
    rmSync(building, { recursive: true, force: true });
    await run(['init', '--quiet', '--bare', '--initial-branch=main', building]);
    await run(['--git-dir', building, 'fast-import', '--quiet', '--depth=50'], { input: fastImportStream(params) });
    // Packed as a host serves it: one pack with a reachability bitmap.
    await run(['--git-dir', building, 'repack', '-a', '-d', '-b', '-q']);
    writeFileSync(join(building, 'ferry-bench-complete'), `${JSON.stringify(params)}\n`);
    rmSync(cached, { recursive: true, force: true });
    renameSync(building, cached);
    built = true;
  }
  cpSync(cached, into, { recursive: true });
  // What a git host allows: partial clones (--filter) and fetching any reachable commit.
  await run(['--git-dir', into, 'config', 'uploadpack.allowFilter', 'true']);
  await run(['--git-dir', into, 'config', 'uploadpack.allowAnySHA1InWant', 'true']);
  return { built, cached };
}
