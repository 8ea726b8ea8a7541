// Cached git workspaces: one bare repository per remote under `workspaceRoot`, created once and fetched on every
// promotion. Everything after the fetch is plumbing against object ids (ls-tree, cat-file, a temporary index,
// commit-tree), so nothing depends on a checked-out work tree and promotions to different branches of the same
// repository never step on each other. Only fetch and push touch refs; they run one at a time per repository.
//
// Large repositories: a fetch asks ls-remote where exactly the promotion's branches are and fetches only those that
// moved, with exact refspecs (never `<target>*`, which brought `s10`…`s199` along with `s1`). A branch new to the
// workspace comes shallow (depth 1) and every fetch is partial (`--filter=blob:none`): a promotion then fetches the
// blobs it reads, in one request (readObjects), so a cold promotion costs one commit's trees plus the stage's
// files. History is deepened only where it is needed: to the idempotency depth (recentCommits) and back to a
// pinned source commit (isAncestor). A workspace is checked on its first open in a process (HEAD, objects, packs
// cut short, branch commits present); a damaged one is moved aside and re-created.
//
// Credentials reach git only through the environment of the fetch/push process (git-transport.ts: configuration
// set with GIT_CONFIG_COUNT/KEY/VALUE, and GIT_SSH_COMMAND): never in the remote URL, the workspace's config, process arguments or
// error messages. The porcelain reads (ls-remote, log) run through simple-git (runPorcelain, with its explicit
// opt-in for the GIT_CONFIG_* credentials); fetch, push and the plumbing run through runGit, which gives git a
// process group the reaper can kill and feeds stdin, and is about 1 ms cheaper per call (npm run bench --
// simple-git).
//
// A push the remote refuses is retried only when the remote branch really moved (checked with ls-remote); any
// other refusal fails at once with git's reason. git processes die with the worker (see the reaper below), and a
// new worker removes the temporary files and half-built workspaces a killed one left.
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, open as openFile, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { GitError, GitPluginError, simpleGit } from 'simple-git';
import type { Repo } from '../pipeline/schema';
import { activityContext } from './context';
import { DEFAULT_SSH_COMMAND, remoteDisplayUrl, transportFor, transportFailure } from './git-transport';
import { processReaper } from './process-reaper';
import type { SecretResolver } from './secrets';

export interface GitWorkspacesOptions {
  /** Directory holding one bare repository per remote; created if missing. */
  workspaceRoot: string;
  secrets: SecretResolver;
  /** A fetch or push running longer than this is killed and fails as retryable (default 10 minutes). */
  networkTimeoutMs?: number;
  /**
   * Whether `file://` repositories may be used (default false): they let whoever applies a pipeline make the
   * worker read any repository on its disk. The worker sets it from FERRY_ALLOW_FILE_REPOS=1.
   */
  allowFileRepos?: boolean;
}

/** The worker setting that allows `file://` repositories; named in the refusal. */
export const ALLOW_FILE_REPOS_ENV = 'FERRY_ALLOW_FILE_REPOS';

/** Refuses a `file://` repository unless the operator allowed them, with a non-retryable failure naming the setting. */
export function checkRepoUrlAllowed(url: string, allowFileRepos: boolean): void {
  if (allowFileRepos || !/^file:/i.test(url)) return;
  throw ApplicationFailure.nonRetryable(
    `${url}: file:// repositories are not allowed on this worker (they would let whoever applies a pipeline read ` +
      `any repository on the worker's disk); use an https:// or ssh:// URL, or, on a machine where that is ` +
      `acceptable (a local setup), start the worker with ${ALLOW_FILE_REPOS_ENV}=1`,
    'FileRepoNotAllowed',
  );
}

export interface TreeEntry {
  /** `100644`, `100755` or `120000` (symlink). */
  mode: string;
  object: string;
  path: string;
}

export interface CommitSummary {
  sha: string;
  tree: string;
  /** Trailer key -> values (`Ferry-Promotion: …`), from the commit message's last paragraph. */
  trailers: Record<string, string[]>;
}

export interface Author {
  name: string;
  email: string;
}

/** The result of a push that git refused because the branch is no longer where the commit expects it. */
export type PushResult = 'pushed' | 'moved';

/** The git commands that talk to the remote, with the repository's credentials. */
type NetworkAction = 'fetch' | 'push' | 'ls-remote';

const REMOTE_TRACKING = 'refs/remotes/origin/';
const STALE_LOCK_MS = 60_000;
const STALE_INDEX_MS = 60 * 60_000;
const STALE_INIT_MS = 10 * 60_000;

// Temporary files and directories carry the pid and a tag of the process that made them, so that a new worker can
// tell the leftovers of a killed one (its pid is gone, or is now ours) from the work of another live worker.
const PROCESS_TAG = `${process.pid}.${randomBytes(4).toString('hex')}`;
const INIT_MARK = '.init-';
const DAMAGED_MARK = '.damaged-';
const INDEX_PREFIX = 'ferry-index-';

/** Whether a temporary entry named with `tag` (`<pid>.<hex>`, or undefined for an older name) was left behind. */
function leftBehind(tag: string | undefined, mtimeMs: number, staleMs: number): boolean {
  if (tag === PROCESS_TAG) return false;
  const pid = Number(/^(\d+)\./.exec(tag ?? '')?.[1] ?? Number.NaN);
  if (pid === process.pid) return true;
  if (Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
    }
  }
  // A live pid may be another worker on this machine, or an unrelated process that reused the pid: wait.
  return Date.now() - mtimeMs > staleMs;
}

/** `<tag>` of `<name><mark><tag>.<uuid>`, where tag is `<pid>.<hex>`. */
function tagOf(name: string, mark: string): string | undefined {
  const rest = name.slice(name.lastIndexOf(mark) + mark.length);
  return /^(\d+\.[0-9a-f]+)\.[0-9a-f-]{36}$/.exec(rest)?.[1];
}

// Workspace roots swept in this process: the first open of a root removes what killed workers left there.
const sweptRoots = new Set<string>();

/**
 * Half-built workspaces (`*.git.init-*`) of workers killed during their first clone of a repository, and damaged
 * ones (`*.git.damaged-*`) a worker was killed while deleting.
 */
async function sweepRoot(root: string): Promise<void> {
  const names = await readdir(root).catch(() => [] as string[]);
  for (const name of names) {
    const mark = [INIT_MARK, DAMAGED_MARK].find((m) => name.includes(`.git${m}`));
    if (!mark) continue;
    const path = join(root, name);
    const info = await stat(path).catch(() => undefined);
    if (info && leftBehind(tagOf(name, mark), info.mtimeMs, STALE_INIT_MS)) {
      await rm(path, { recursive: true, force: true });
    }
  }
}

/** The workspace directory for a remote URL: readable prefix, hash for uniqueness. */
export function workspaceDirName(url: string): string {
  const slug = (basename(url.replace(/\/+$/, '')).replace(/\.git$/, '') || 'repo')
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .slice(0, 40);
  return `${slug}-${createHash('sha256').update(url).digest('hex').slice(0, 16)}.git`;
}

export interface GitWorkspaces {
  /** The cached workspace for a repository, created (an empty bare repository) on first use. */
  open(repo: Repo): Promise<GitWorkspace>;
}

export function createGitWorkspaces(options: GitWorkspacesOptions): GitWorkspaces {
  const root = resolve(options.workspaceRoot);
  const timeoutMs = options.networkTimeoutMs ?? 10 * 60_000;
  const checked = new Set<string>();
  const allowFileRepos = options.allowFileRepos ?? false;
  return {
    async open(repo) {
      checkRepoUrlAllowed(repo.url, allowFileRepos);
      if (!sweptRoots.has(root)) {
        sweptRoots.add(root);
        await sweepRoot(root);
      }
      const dir = join(root, workspaceDirName(repo.url));
      // Checked on every open (a stat): an operator may delete a workspace to reset it while the worker runs. The
      // first open in a process (after a restart) and the first after a git command found it damaged look deeper.
      if (!checked.has(dir) || !existsSync(join(dir, 'HEAD'))) {
        await withRepoLock(dir, async () => {
          if (checked.has(dir) && existsSync(join(dir, 'HEAD'))) return; // another open did it while this one waited
          const damage = existsSync(dir) ? await workspaceDamage(dir) : undefined;
          if (damage) await discardWorkspace(dir);
          await initWorkspace(root, dir, repo.url);
          checked.add(dir);
        });
      }
      return new GitWorkspace(repo.url, dir, options.secrets, repo.credentials, timeoutMs, allowFileRepos, () =>
        checked.delete(dir),
      );
    },
  };
}

/**
 * What is wrong with a workspace that a killed worker, a full disk or a hand edit can leave behind, or undefined
 * when it looks sound: no HEAD or objects directory, a config git cannot read, a pack cut short (its trailing
 * checksum is not the one its index records), a ref whose commit is gone. Cheap (no object is read), so it runs
 * on the first open of a workspace in every process.
 */
export async function workspaceDamage(dir: string): Promise<string | undefined> {
  const head = await readFile(join(dir, 'HEAD'), 'utf8').catch(() => undefined);
  if (head === undefined || !/^(ref: refs\/\S+|[0-9a-f]{40,64})\s*$/.test(head)) return 'HEAD is missing or unreadable';
  for (const sub of ['objects', 'objects/pack', 'refs']) {
    if (!(await stat(join(dir, sub)).catch(() => undefined))?.isDirectory()) return `${sub}/ is missing`;
  }
  const packDir = join(dir, 'objects', 'pack');
  for (const name of await readdir(packDir)) {
    if (!name.endsWith('.pack')) continue;
    const problem = await packDamage(join(packDir, name));
    if (problem) return `objects/pack/${name}: ${problem}`;
  }
  try {
    const refs = await runGit(['--git-dir', dir, 'for-each-ref', '--format=%(objectname)'], { env: baseEnv() });
    const tips = [
      ...new Set(
        refs.stdout
          .toString('utf8')
          .split('\n')
          .filter((l) => l.length > 0),
      ),
    ];
    if (tips.length > 0) {
      const out = await runGit(['--git-dir', dir, 'cat-file', '--batch-check=%(objectname) %(objecttype)'], {
        env: baseEnv(),
        input: `${tips.join('\n')}\n`,
      });
      const missing = out.stdout
        .toString('utf8')
        .split('\n')
        .find((l) => l.endsWith(' missing'));
      if (missing) return `the commit of a branch is missing (${missing.split(' ')[0]})`;
    }
  } catch (err) {
    if (err instanceof GitCommandError) return `git cannot read it: ${summarize(err.stderr)}`;
    throw err;
  }
  return undefined;
}

/** A pack whose header, size or trailing checksum disagrees with its index (a truncated or overwritten file). */
async function packDamage(pack: string): Promise<string | undefined> {
  const idx = `${pack.slice(0, -'.pack'.length)}.idx`;
  const [packInfo, idxInfo] = await Promise.all([stat(pack).catch(() => undefined), stat(idx).catch(() => undefined)]);
  // A pack without its index is one a fetch is still writing (or died writing): git ignores it.
  if (!packInfo || !idxInfo) return undefined;
  const hashLength = idxInfo.size >= 2 * 32 + 8 && /-[0-9a-f]{64}\.pack$/.test(pack) ? 32 : 20;
  if (packInfo.size < 12 + hashLength) return 'too short';
  const read = async (file: string, at: number, length: number) => {
    const handle = await openFile(file, 'r');
    try {
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, at);
      return buffer;
    } finally {
      await handle.close();
    }
  };
  const [header, trailer, recorded] = await Promise.all([
    read(pack, 0, 4),
    read(pack, packInfo.size - hashLength, hashLength),
    read(idx, idxInfo.size - 2 * hashLength, hashLength),
  ]);
  if (header.toString('latin1') !== 'PACK') return 'not a pack file';
  if (!trailer.equals(recorded)) return 'cut short or overwritten (its checksum is not the one its index records)';
  return undefined;
}

/** Moves a damaged workspace out of the way (atomically, so no git process sees it half removed), then deletes it. */
async function discardWorkspace(dir: string): Promise<void> {
  const aside = `${dir}${DAMAGED_MARK}${PROCESS_TAG}.${randomUUID()}`;
  await rename(dir, aside);
  await rm(aside, { recursive: true, force: true });
}

async function initWorkspace(root: string, dir: string, url: string): Promise<void> {
  if (existsSync(join(dir, 'HEAD'))) {
    await removeLeftovers(dir);
    return;
  }
  await mkdir(root, { recursive: true });
  // Built beside its final place and renamed, so a crash or a second worker never sees half a workspace.
  const building = `${dir}${INIT_MARK}${PROCESS_TAG}.${randomUUID()}`;
  try {
    await runGit(['init', '--bare', '--quiet', '--template=', building], { env: baseEnv() });
    // Written directly rather than with two `git config` runs (40 ms of a cold promotion); the URL is quoted.
    const quoted = /[\\"#;\n\t]|^\s|\s$/.test(url)
      ? `"${url
          .replace(/[\\"]/g, (c) => `\\${c}`)
          .replace(/\n/g, '\\n')
          .replace(/\t/g, '\\t')}"`
      : url;
    await appendFile(
      join(building, 'config'),
      `[remote "origin"]\n\turl = ${quoted}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n`,
    );
    const written = await runGit(['--git-dir', building, 'config', '--get', 'remote.origin.url'], { env: baseEnv() });
    if (written.stdout.toString('utf8').replace(/\n$/, '') !== url) throw new Error(`could not store the URL ${url}`);
    await writeFile(
      join(building, 'ferry-workspace.json'),
      `${JSON.stringify({ url, createdAt: new Date().toISOString() }, null, 2)}\n`,
    );
    await rename(building, dir).catch((err: NodeJS.ErrnoException) => {
      if (!existsSync(join(dir, 'HEAD'))) throw err;
    });
  } finally {
    await rm(building, { recursive: true, force: true });
  }
}

/** Temporary indexes of a worker that died mid-promotion. */
async function removeLeftovers(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!name.startsWith(INDEX_PREFIX)) continue;
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    const tag = tagOf(name.replace(/\.lock$/, ''), INDEX_PREFIX);
    if (info && leftBehind(tag, info.mtimeMs, STALE_INDEX_MS)) await rm(path, { recursive: true, force: true });
  }
}

export class GitWorkspace {
  constructor(
    readonly url: string,
    /** The bare repository directory. */
    readonly dir: string,
    private readonly secrets: SecretResolver,
    /** Name of the credential fetch and push use (spec.repo.credentials). */
    private readonly credentials: string | undefined,
    private readonly networkTimeoutMs: number,
    private readonly allowFileRepos = false,
    /** Called when a git command finds the workspace damaged: the next open checks it (and re-creates it). */
    private readonly onDamage: () => void = () => undefined,
  ) {}

  /** The remote URL as it may appear in messages. */
  get displayUrl(): string {
    return remoteDisplayUrl(this.url, this.secrets);
  }

  /**
   * Brings `origin/<source>` and `origin/<target>` up to date, and forgets either when the remote no longer has it
   * (the target may not exist yet). Exactly these branches are fetched, never others that share a prefix.
   */
  async fetch(source: string, target: string): Promise<void> {
    const branches = source === target ? [source] : [source, target];
    // Promotions into many stages of one repository fetch at the same moment; the fetches waiting for the workspace
    // join into one ls-remote and one `git fetch` with all their branches instead of queueing round trips each.
    const key = `${this.dir}\0${this.credentials ?? ''}`;
    let batch = pendingFetches.get(key);
    if (!batch) {
      const created: FetchBatch = { branches: new Set(), members: 0, done: Promise.resolve() };
      created.done = withRepoLock(this.dir, async () => {
        pendingFetches.delete(key); // from here on, newcomers start the next batch
        await this.runFetch([...created.branches], source);
      });
      pendingFetches.set(key, created);
      batch = created;
    }
    for (const branch of branches) batch.branches.add(branch);
    batch.members++;
    try {
      await batch.done;
    } catch (err) {
      // A failure of a joined fetch is redone by each member on its own, so it reaches only the promotion it concerns.
      if (batch.members === 1) throw err;
      await withRepoLock(this.dir, () => this.runFetch(branches, source));
    }
  }

  /**
   * One ls-remote tells where the branches are; only those that moved are fetched, with exact refspecs. A branch
   * the workspace has not seen yet comes shallow (its tip, `--depth=1`), and every fetch leaves blobs out
   * (`--filter=blob:none`): the blobs a promotion reads are fetched when it reads them (readObjects), so a cold
   * promotion on a large repository transfers one commit's trees and the stage's files, not the whole history.
   */
  private async runFetch(branches: readonly string[], source: string): Promise<void> {
    const before = await this.heads(...branches);
    if (before.every((sha) => sha === undefined)) {
      // None of them in the workspace (a cold one): fetch straight away; ls-remote only if one is missing.
      try {
        await this.fetchBranches(branches, ['--depth=1']);
        this.deepenInBackground(branches);
        return;
      } catch (err) {
        if (!(err instanceof ApplicationFailure && err.type === 'SourceBranchNotFound')) throw err;
      }
    }
    for (let attempt = 1; ; attempt++) {
      const [remote, local] = await Promise.all([this.lsRemote(branches, source), this.heads(...branches)]);
      const deleted = branches.filter((b, i) => remote[i] === undefined && local[i] !== undefined);
      const moved = branches.flatMap((b, i) =>
        remote[i] !== undefined && remote[i] !== local[i] ? [{ branch: b, sha: remote[i], known: local[i] }] : [],
      );
      // A commit the workspace already has (it pushed it) needs no transfer: only the tracking ref moves.
      const present = await this.presentCommits(moved.map((m) => m.sha));
      const updates = [
        ...deleted.map((b) => `delete ${REMOTE_TRACKING}${b}`),
        ...moved.filter((m) => present.has(m.sha)).map((m) => `update ${REMOTE_TRACKING}${m.branch} ${m.sha}`),
      ];
      const toFetch = moved.filter((m) => !present.has(m.sha));
      try {
        // Known branches fetch what is new on them (down to what the workspace has); new ones only their tip, so a
        // --depth never cuts the history the workspace already has of a branch.
        const fresh = toFetch.filter((m) => m.known === undefined).map((m) => m.branch);
        const known = toFetch.filter((m) => m.known !== undefined).map((m) => m.branch);
        if (fresh.length > 0) await this.fetchBranches(fresh, ['--depth=1']);
        if (known.length > 0) await this.fetchBranches(known, []);
        if (fresh.length > 0) this.deepenInBackground(fresh);
      } catch (err) {
        // The branch was deleted between the ls-remote and the fetch: look again.
        if (attempt < 3 && err instanceof ApplicationFailure && err.type === 'SourceBranchNotFound') continue;
        throw err;
      }
      if (updates.length > 0) await this.git(['update-ref', '--stdin'], { input: `${updates.join('\n')}\n` });
      return;
    }
  }

  /**
   * Fetches, in the background, the commits (no trees) that idempotency will look through on branches that just
   * came shallow, while the promotion reads and renders; recentCommits waits for it. Its failure is ignored here:
   * recentCommits then deepens on its own and reports what goes wrong.
   */
  private deepenInBackground(branches: readonly string[]): void {
    const depth = historyDepths.get(this.dir) ?? DEFAULT_HISTORY_DEPTH;
    const running = withRepoLock(this.dir, async () => {
      const tips = (await this.heads(...branches)).filter((sha): sha is string => sha !== undefined);
      const shallow = await this.shallowCommits();
      if (tips.some((tip) => shallow.has(tip))) {
        await this.fetchObjects(tips, [`--deepen=${depth - 1}`, '--filter=tree:0']);
      }
    }).catch(() => undefined);
    deepening.set(this.dir, running);
    void running.finally(() => {
      if (deepening.get(this.dir) === running) deepening.delete(this.dir);
    });
  }

  private async fetchBranches(branches: readonly string[], options: readonly string[]): Promise<void> {
    await this.network(
      'fetch',
      [
        'fetch',
        '--no-tags',
        '--no-write-fetch-head',
        '--quiet',
        '--filter=blob:none',
        ...options,
        'origin',
        ...branches.map((b) => `+refs/heads/${b}:${REMOTE_TRACKING}${b}`),
      ],
      { branch: branches.join(', ') },
    );
  }

  /** Which of these commits the workspace has (without fetching anything). */
  private async presentCommits(shas: readonly string[]): Promise<Set<string>> {
    if (shas.length === 0) return new Set();
    const out = await this.git(['cat-file', '--batch-check=%(objectname) %(objecttype)'], {
      input: `${shas.join('\n')}\n`,
    });
    const found = new Set<string>();
    for (const line of out.toString('utf8').split('\n')) {
      const [sha, type] = line.split(' ');
      if (sha && type === 'commit') found.add(sha);
    }
    return found;
  }

  /**
   * Fetches objects by id (blobs a partial workspace left out, or a commit), in one request: git's own lazy fetch
   * would make one round trip per object and would run without the repository's credentials.
   */
  private async fetchObjects(ids: readonly string[], options: readonly string[] = []): Promise<void> {
    if (ids.length === 0) return;
    await this.network(
      'fetch',
      [
        '-c',
        'fetch.negotiationAlgorithm=noop',
        'fetch',
        '--no-tags',
        '--no-write-fetch-head',
        '--recurse-submodules=no',
        '--quiet',
        // One filter: two would combine (`combine:blob:none+tree:0`), which git serves five times slower.
        ...(options.some((o) => o.startsWith('--filter=')) ? [] : ['--filter=blob:none']),
        ...options,
        '--stdin',
        'origin',
      ],
      { branch: '' },
      `${ids.join('\n')}\n`,
    );
  }

  /** Whether the workspace's history is cut (a shallow fetch), and where: the commits whose parents it lacks. */
  private async shallowCommits(): Promise<Set<string>> {
    const text = await readFile(join(this.dir, 'shallow'), 'utf8').catch(() => '');
    return new Set(text.split('\n').filter((l) => l.length > 0));
  }

  /** Commit ids of the remote-tracking branches, as of the last fetch; undefined when the branch doesn't exist. */
  async heads(...branches: string[]): Promise<(string | undefined)[]> {
    const refs = branches.map((b) => REMOTE_TRACKING + b);
    const out = await this.git(['for-each-ref', '--format=%(objectname) %(refname)', ...refs]);
    const found = new Map<string, string>();
    for (const line of out.toString('utf8').split('\n')) {
      const space = line.indexOf(' ');
      if (space > 0) found.set(line.slice(space + 1), line.slice(0, space));
    }
    return refs.map((ref) => found.get(ref));
  }

  /**
   * Whether `commit` is `head` or one of its ancestors: 'yes', 'no', or 'unknown' when the workspace has no such
   * commit (not fetched, or not in the repository at all). In a shallow workspace the history between them is
   * fetched first (commits and trees since `commit`'s date), so a cut history never reads as 'no'.
   */
  async isAncestor(commit: string, head: string): Promise<'yes' | 'no' | 'unknown'> {
    const answer = await this.isAncestorLocally(commit, head);
    if (answer === 'yes' || (await this.shallowCommits()).size === 0) return answer;
    if (answer === 'unknown') {
      // Not in the workspace: fetch that one commit (a remote without it fails the fetch: not on any branch).
      if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/i.test(commit)) return 'unknown';
      try {
        await withRepoLock(this.dir, () => this.fetchObjects([commit], ['--depth=1']));
      } catch (err) {
        if (err instanceof ApplicationFailure && !err.nonRetryable && err.type === 'GitNetworkError') throw err;
        return 'unknown';
      }
    }
    const date = Number((await this.git(['log', '-1', '--format=%ct', commit, '--'])).toString('utf8').trim());
    // A day of margin for commits whose dates run backwards (rebases, skewed clocks).
    const since = Math.max(0, date - 24 * 3600);
    const sinceDate = new Date(since * 1000).toISOString();
    await withRepoLock(this.dir, () => this.fetchObjects([head], [`--shallow-since=${sinceDate}`]));
    return this.isAncestorLocally(commit, head);
  }

  private async isAncestorLocally(commit: string, head: string): Promise<'yes' | 'no' | 'unknown'> {
    try {
      await runGit(['--git-dir', this.dir, 'merge-base', '--is-ancestor', commit, head], { env: baseEnv() });
      return 'yes';
    } catch (err) {
      if (err instanceof GitCommandError && err.exitCode === 1) return 'no';
      if (err instanceof GitCommandError && err.exitCode === 128) return 'unknown';
      throw err;
    }
  }

  /**
   * Files under `path` (a directory; '' for the root) at `commit`, with paths relative to it. Returns 'missing'
   * when there is nothing at `path` and 'not-a-directory' when it is a file. Submodules are skipped.
   */
  async listFiles(commit: string, path: string): Promise<TreeEntry[] | 'missing' | 'not-a-directory'> {
    const out = await this.git(['ls-tree', '-r', '-z', '--full-tree', commit, ...(path ? ['--', path] : [])]);
    const entries: TreeEntry[] = [];
    const prefix = path ? `${path}/` : '';
    for (const record of out.toString('utf8').split('\0')) {
      if (!record) continue;
      const tab = record.indexOf('\t');
      const [mode, type, object] = record.slice(0, tab).split(' ') as [string, string, string];
      const full = record.slice(tab + 1);
      if (full === path) return 'not-a-directory';
      if (type !== 'blob' || !full.startsWith(prefix)) continue;
      entries.push({ mode, object, path: full.slice(prefix.length) });
    }
    return entries.length > 0 ? entries : 'missing';
  }

  /**
   * Contents of objects named by id or `<commit>:<path>`, in order; undefined for those that don't exist. Blobs a
   * partial fetch left out are fetched first, all in one request.
   */
  async readObjects(names: readonly string[]): Promise<(Buffer | undefined)[]> {
    if (names.length === 0) return [];
    const results = await this.catFile(names);
    const absent = names.filter((_, i) => results[i] === undefined);
    if (absent.length === 0) return results;
    const ids = await this.objectIds(absent);
    if (ids.size === 0) return results;
    await this.fetchObjects([...new Set(ids.values())]);
    const again = await this.catFile([...ids.keys()]);
    const fetched = new Map([...ids.keys()].map((name, i) => [name, again[i]] as const));
    return names.map((name, i) => results[i] ?? fetched.get(name));
  }

  private async catFile(names: readonly string[]): Promise<(Buffer | undefined)[]> {
    const out = await this.git(['cat-file', '--batch'], { input: `${names.join('\n')}\n` });
    const results: (Buffer | undefined)[] = [];
    let at = 0;
    for (const name of names) {
      const eol = out.indexOf(0x0a, at);
      const header = out.subarray(at, eol).toString('utf8');
      at = eol + 1;
      const size = /^\S+ \S+ (\d+)$/.exec(header)?.[1];
      if (size === undefined) {
        if (!header.endsWith(' missing') && !header.endsWith(' ambiguous'))
          throw new Error(`git cat-file: unexpected answer for ${name}: ${header}`);
        results.push(undefined);
        continue;
      }
      results.push(out.subarray(at, at + Number(size)));
      at += Number(size) + 1;
    }
    return results;
  }

  /**
   * The ids of the blobs among `names` that the trees name but the workspace lacks: an id stands for itself, and
   * `<commit>:<path>` is looked up in the commit's tree (present even when its blobs are not).
   */
  private async objectIds(names: readonly string[]): Promise<Map<string, string>> {
    const ids = new Map<string, string>();
    const byCommit = new Map<string, string[]>();
    for (const name of names) {
      if (/^[0-9a-f]{40}([0-9a-f]{24})?$/i.test(name)) ids.set(name, name);
      const colon = name.indexOf(':');
      if (colon > 0) byCommit.set(name.slice(0, colon), [...(byCommit.get(name.slice(0, colon)) ?? []), name]);
    }
    if (byCommit.size > 0) await this.ensureTrees([...byCommit.keys()]).catch(() => undefined);
    for (const [commit, paths] of byCommit) {
      const wanted = new Set(paths.map((p) => p.slice(commit.length + 1)));
      const out = await this.git(['ls-tree', '-z', '--full-tree', commit, '--', ...wanted]).catch(() =>
        Buffer.alloc(0),
      );
      for (const record of out.toString('utf8').split('\0')) {
        const tab = record.indexOf('\t');
        if (tab < 0) continue;
        const [, type, object] = record.slice(0, tab).split(' ') as [string, string, string];
        const path = record.slice(tab + 1);
        if (type === 'blob' && wanted.has(path)) ids.set(`${commit}:${path}`, object);
      }
    }
    return ids;
  }

  /**
   * The last `limit` commits reachable from `commit`, newest first, with their trailers. Where a shallow workspace
   * has fewer, the history is deepened (commits and trees) to `limit` first: idempotency looks this far back.
   */
  async recentCommits(commit: string, limit: number): Promise<CommitSummary[]> {
    historyDepths.set(this.dir, Math.max(limit, historyDepths.get(this.dir) ?? 0));
    await deepening.get(this.dir);
    const commits = await this.logCommits(commit, limit);
    const last = commits[commits.length - 1];
    if (commits.length >= limit || !last || !(await this.shallowCommits()).has(last.sha)) return commits;
    // Commits only (`tree:0`): trailers are all idempotency reads; ensureTrees fetches the trees of one it uses.
    await withRepoLock(this.dir, () =>
      this.fetchObjects([commit], [`--deepen=${limit - commits.length}`, '--filter=tree:0']),
    );
    return this.logCommits(commit, limit);
  }

  /**
   * Makes sure the workspace has the trees of these commits (ids or revisions such as `<commit>^`), which a deepened
   * history lacks (recentCommits fetches commits only); one fetch for all that are missing.
   */
  async ensureTrees(commits: readonly string[]): Promise<void> {
    if (commits.length === 0) return;
    // log reads the commits only (rev-parse `<commit>^{tree}` would fail on a tree the workspace lacks).
    const out = await this.git(['log', '--no-walk=unsorted', '--format=%T', ...commits, '--']);
    const trees = out
      .toString('utf8')
      .split('\n')
      .filter((l) => l.length > 0);
    const present = await this.git(['cat-file', '--batch-check=%(objectname) %(objecttype)'], {
      input: `${trees.join('\n')}\n`,
    });
    const missing = present
      .toString('utf8')
      .split('\n')
      .filter((l) => l.endsWith(' missing'))
      .map((l) => l.split(' ')[0]!);
    await this.fetchObjects(missing);
  }

  private async logCommits(commit: string, limit: number): Promise<CommitSummary[]> {
    const out = await this.porcelain([
      'log',
      `-n${limit}`,
      '--format=%H%x1f%T%x1f%(trailers:only,unfold)%x1e',
      commit,
      '--',
    ]);
    return out
      .split('\x1e')
      .map((record) => record.replace(/^\n/, ''))
      .filter((record) => record.length > 0)
      .map((record) => {
        const [sha = '', tree = '', trailerText = ''] = record.split('\x1f');
        const trailers: Record<string, string[]> = {};
        for (const line of trailerText.split('\n')) {
          const colon = line.indexOf(':');
          if (colon <= 0) continue;
          const key = line.slice(0, colon).trim();
          (trailers[key] ??= []).push(line.slice(colon + 1).trim());
        }
        return { sha, tree, trailers };
      });
  }

  /**
   * Writes blobs into the object database; returns their ids in order. fast-import writes them as one pack in one
   * process (hash-object -w writes a loose object per file, over ten times slower for a few hundred manifests).
   */
  async writeBlobs(contents: readonly Buffer[]): Promise<string[]> {
    if (contents.length === 0) return [];
    const input: Buffer[] = [];
    contents.forEach((content, i) =>
      input.push(Buffer.from(`blob\nmark :${i + 1}\ndata ${content.length}\n`), content, Buffer.from('\n')),
    );
    contents.forEach((_, i) => input.push(Buffer.from(`get-mark :${i + 1}\n`)));
    input.push(Buffer.from('done\n'));
    const out = await this.git(['-c', 'fastimport.unpackLimit=0', 'fast-import', '--quiet', '--done'], {
      input: Buffer.concat(input),
    });
    const ids = out.toString('utf8').trim().split('\n');
    if (ids.length !== contents.length)
      throw new Error(`git fast-import returned ${ids.length} ids for ${contents.length} blobs`);
    return ids;
  }

  /** Runs `fn` with a private index file, so trees are built without a work tree and without shared state. */
  async withTemporaryIndex<T>(fn: (index: TemporaryIndex) => Promise<T>): Promise<T> {
    const file = join(this.dir, `${INDEX_PREFIX}${PROCESS_TAG}.${randomUUID()}`);
    try {
      return await fn(new TemporaryIndex(this, file));
    } finally {
      await rm(file, { force: true });
      await rm(`${file}.lock`, { force: true });
    }
  }

  async commitTree(tree: string, parents: readonly string[], message: string, author: Author): Promise<string> {
    const out = await this.git(
      ['commit-tree', '--no-gpg-sign', ...parents.flatMap((p) => ['-p', p]), '-F', '-', tree],
      {
        input: message,
        env: {
          GIT_AUTHOR_NAME: author.name,
          GIT_AUTHOR_EMAIL: author.email,
          GIT_COMMITTER_NAME: author.name,
          GIT_COMMITTER_EMAIL: author.email,
        },
      },
    );
    return out.toString('utf8').trim();
  }

  /**
   * Pushes `commit` to `branch` only if the remote branch is still at `expected` (absent when undefined): a
   * compare-and-swap on the server, so a concurrent writer is never overwritten. 'moved' means the remote branch is
   * no longer at `expected`: fetch and redo. A refusal that is not about the branch having moved (a hook or a
   * protected branch declining, a name the remote cannot store such as `env/dev/x` beside `env/dev`) fails at once,
   * non-retryable, with git's reason: retrying cannot change the answer.
   */
  async push(commit: string, branch: string, expected: string | undefined): Promise<PushResult> {
    // Like fetches, pushes waiting for the workspace join into one `git push` of all their branches, each with its
    // own lease. Anything but a clean success of a joined push is sorted out branch by branch: a refusal of one
    // branch (or a pre-receive hook, which refuses the whole push) must reach only the promotion it concerns.
    const key = `${this.dir}\0${this.credentials ?? ''}`;
    let batch = pendingPushes.get(key);
    if (!batch || batch.items.some((item) => item.branch === branch)) {
      const created: PushBatch = { items: [] };
      pendingPushes.set(key, created);
      void withRepoLock(this.dir, async () => {
        if (pendingPushes.get(key) === created) pendingPushes.delete(key);
        await this.runPushBatch(created.items);
      });
      batch = created;
    }
    return new Promise<PushResult>((resolve, reject) =>
      batch.items.push({ commit, branch, expected, resolve, reject }),
    );
  }

  /** Runs a joined push under the workspace lock; every item's promise is settled when it returns. */
  private async runPushBatch(items: readonly PushItem[]): Promise<void> {
    const pushed = items.length > 1 ? await this.pushJoined(items) : new Set<string>();
    // One item, or the branches a joined push did not land: each on its own, as git answers for it.
    for (const item of items) {
      if (pushed.has(item.branch)) item.resolve('pushed');
      else await this.pushOneUnlocked(item.commit, item.branch, item.expected).then(item.resolve, item.reject);
    }
  }

  /** One `git push` of several branches, each with its lease; returns the branches git reports as updated. */
  private async pushJoined(items: readonly PushItem[]): Promise<Set<string>> {
    let porcelain: string;
    try {
      porcelain = await this.network(
        'push',
        [
          'push',
          '--porcelain',
          '--no-verify',
          ...items.map((i) => `--force-with-lease=refs/heads/${i.branch}:${i.expected ?? ''}`),
          'origin',
          ...items.map((i) => `${i.commit}:refs/heads/${i.branch}`),
        ],
        { branch: items.map((i) => i.branch).join(', ') },
      );
    } catch (err) {
      if (!(err instanceof GitCommandError)) return new Set();
      porcelain = err.stdout;
    }
    // `<flag>\t<from>:<to>\t<summary>`: "!" is a refused ref; " ", "+", "*", "=" are updated (or already there).
    const updated = new Set<string>();
    for (const line of porcelain.split('\n')) {
      const [flag, refs] = line.split('\t');
      const to = refs?.slice(refs.indexOf(':') + 1);
      if (flag !== undefined && flag.length === 1 && ' +*='.includes(flag) && to?.startsWith('refs/heads/')) {
        updated.add(to.slice('refs/heads/'.length));
      }
    }
    return updated;
  }

  private async pushOneUnlocked(commit: string, branch: string, expected: string | undefined): Promise<PushResult> {
    const args = [
      'push',
      '--porcelain',
      '--no-verify',
      `--force-with-lease=refs/heads/${branch}:${expected ?? ''}`,
      'origin',
      `${commit}:refs/heads/${branch}`,
    ];
    try {
      await this.network('push', args, { branch });
      return 'pushed';
    } catch (err) {
      if (!(err instanceof GitCommandError)) throw err;
      const rejected = err.stdout
        .split('\n')
        .find((line) => line.startsWith('!') && line.includes(`:refs/heads/${branch}\t`));
      if (!rejected) throw this.failure('push', err, { branch });
      const reason = /\(([^)]*)\)\s*$/.exec(rejected)?.[1] ?? rejected;
      const refusal = classifyPushRejection(reason, err.stderr);
      if (refusal === 'busy') return 'moved';
      // A lease refused, or the remote failing to update the ref: the branch may have moved (retry on the new
      // head), or the remote refuses this update for good (then the branch is still where we expected it).
      if (refusal === 'maybe-moved' && (await this.remoteHeadUnlocked(branch)) !== expected) return 'moved';
      const said = remoteMessages(err.stderr);
      throw ApplicationFailure.nonRetryable(
        this.secrets.redact(
          `${this.displayUrl}: the remote refused the push to branch ${branch}: ${reason}${said ? ` (${said})` : ''}` +
            (refusal === 'maybe-moved' ? '; the branch has not moved, so retrying cannot help' : ''),
        ),
        'PushRejected',
      );
    }
  }

  /** Every branch on the remote with its commit (`git ls-remote --heads`, read-only). */
  async remoteBranches(): Promise<Map<string, string>> {
    // Read-only on both sides (no ref of the workspace changes), so it needs no turn of the workspace's lock.
    const out = await this.network('ls-remote', ['ls-remote', '--heads', '--refs', 'origin'], { branch: '' });
    const branches = new Map<string, string>();
    for (const line of out.split('\n')) {
      const [sha, ref] = line.split('\t');
      if (sha && ref?.startsWith('refs/heads/')) branches.set(ref.slice('refs/heads/'.length), sha);
    }
    return branches;
  }

  private async remoteHeadUnlocked(branch: string): Promise<string | undefined> {
    return (await this.lsRemote([branch]))[0];
  }

  /** Where the remote's branches are; `about` names the branch a failure is reported for (default: all of them). */
  private async lsRemote(branches: readonly string[], about = branches.join(', ')): Promise<(string | undefined)[]> {
    const refs = branches.map((b) => `refs/heads/${b}`);
    const out = await this.network('ls-remote', ['ls-remote', '--refs', 'origin', ...refs], { branch: about });
    const found = new Map<string, string>();
    for (const line of out.split('\n')) {
      const [sha, ref] = line.split('\t');
      if (sha && ref) found.set(ref, sha);
    }
    return refs.map((ref) => found.get(ref));
  }

  /** @internal Runs a local git command in this workspace (no credentials). */
  async git(
    args: readonly string[],
    options: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {},
  ): Promise<Buffer> {
    try {
      const { stdout } = await runGit(['--git-dir', this.dir, ...args], {
        input: options.input,
        env: { ...baseEnv(), ...options.env },
      });
      return stdout;
    } catch (err) {
      throw err instanceof GitCommandError ? this.localFailure(args[0], err) : err;
    }
  }

  /** Runs a local porcelain command (log) through simple-git in this workspace (no credentials). */
  private async porcelain(args: readonly string[]): Promise<string> {
    try {
      return (await runPorcelain(this.dir, args, { env: baseEnv() })).stdout.toString('utf8');
    } catch (err) {
      throw err instanceof GitCommandError ? this.localFailure(args[0], err) : err;
    }
  }

  /** A local git command failed: retryable, with git's reason; a damaged workspace is marked for its check. */
  private localFailure(command: string | undefined, err: GitCommandError): ApplicationFailure {
    const damaged = WORKSPACE_DAMAGE.test(err.stderr);
    if (damaged) this.onDamage();
    return ApplicationFailure.retryable(
      `git ${command} failed in the workspace of ${this.displayUrl}: ${this.secrets.redact(summarize(err.stderr))}` +
        (damaged
          ? `; the workspace ${basename(this.dir)} looks damaged and is checked, and re-created if so, on the next attempt`
          : ''),
      'GitError',
    );
  }

  /** Runs fetch, push or ls-remote with the repository's credentials in the environment; one retry over a stale ref lock. */
  private async network(
    action: NetworkAction,
    args: readonly string[],
    context: { branch: string },
    input?: string,
  ): Promise<string> {
    // git itself refuses other transports too (ext::, fd::, a file:// redirect or submodule), not only the schema.
    const env = {
      ...baseEnv(),
      ...this.credentialEnv(),
      GIT_ALLOW_PROTOCOL: this.allowFileRepos ? 'https:http:ssh:file' : 'https:http:ssh',
    };
    for (let attempt = 1; ; attempt++) {
      try {
        const { stdout } =
          action === 'ls-remote'
            ? await runPorcelain(this.dir, args, { env, timeoutMs: this.networkTimeoutMs })
            : await runGit(['--git-dir', this.dir, ...args], { env, timeoutMs: this.networkTimeoutMs, input });
        return stdout.toString('utf8');
      } catch (err) {
        if (!(err instanceof GitCommandError)) throw err;
        if (action === 'push' && err.stdout.includes('\t')) throw err;
        if (attempt === 1 && (await this.removeStaleLock(err.stderr))) continue;
        throw this.failure(action, err, context);
      }
    }
  }

  /** The credential's transport (git-transport.ts): https headers and CA, or the ssh key and known hosts. */
  private credentialEnv(): NodeJS.ProcessEnv {
    const transport = transportFor({
      url: this.url,
      displayUrl: this.displayUrl,
      credentials: this.credentials,
      secrets: this.secrets,
    });
    return { ...gitConfigEnv([...PARTIAL_CLONE_CONFIG, ...transport.config]), ...transport.env };
  }

  /** A ref lock left by a git process that was killed; removed only when old, so a live git keeps its lock. */
  private async removeStaleLock(stderr: string): Promise<boolean> {
    const lock = /Unable to create '([^']+\.lock)': File exists/.exec(stderr)?.[1];
    if (!lock) return false;
    const path = resolve(this.dir, lock);
    if (relative(this.dir, path).startsWith('..')) return false;
    const info = await stat(path).catch(() => undefined);
    if (!info || Date.now() - info.mtimeMs < STALE_LOCK_MS) return false;
    await rm(path, { force: true });
    return true;
  }

  private failure(action: NetworkAction, err: GitCommandError, context: { branch: string }): ApplicationFailure {
    const detail = this.secrets.redact(summarize(err.stderr));
    const where = `git ${action} ${this.displayUrl}${context.branch ? ` (branch ${context.branch})` : ''}`;
    const text = err.stderr;
    if (err.timedOut) {
      return ApplicationFailure.retryable(
        `${where}: no answer within ${Math.round(this.networkTimeoutMs / 1000)}s; the git process was stopped`,
        'GitNetworkError',
      );
    }
    if (action === 'fetch' && /couldn't find remote ref/i.test(text)) {
      return ApplicationFailure.nonRetryable(
        `${where}: branch ${context.branch} does not exist on the remote`,
        'SourceBranchNotFound',
      );
    }
    const refused = transportFailure({
      where,
      url: this.url,
      credentials: this.credentials,
      secrets: this.secrets,
      stderr: text,
    });
    if (refused) return refused;
    if (/Repository not found|does not appear to be a git repository|returned error: 404/i.test(text)) {
      return ApplicationFailure.nonRetryable(`${where}: repository not found: ${detail}`, 'GitRepositoryNotFound');
    }
    if (
      /Could not resolve host|Connection refused|Connection timed out|Operation timed out|Connection reset|early EOF|RPC failed|remote end hung up|Failed to connect|Empty reply|unable to access|SSL|TLS/i.test(
        text,
      )
    ) {
      return ApplicationFailure.retryable(`${where}: network error: ${detail}`, 'GitNetworkError');
    }
    return ApplicationFailure.retryable(`${where} failed: ${detail}`, 'GitError');
  }
}

/** A private index (GIT_INDEX_FILE) in a bare workspace: read a tree, edit paths, write a tree. */
export class TemporaryIndex {
  constructor(
    private readonly workspace: GitWorkspace,
    private readonly file: string,
  ) {}

  /** Starts from `commit`'s tree, or from nothing. */
  async read(commit: string | undefined): Promise<void> {
    await this.run(commit ? ['read-tree', commit] : ['read-tree', '--empty']);
  }

  /** Removes `remove`, then sets `set` (a path in both ends up set). */
  async update(remove: readonly string[], set: readonly TreeEntry[]): Promise<void> {
    if (remove.length === 0 && set.length === 0) return;
    const zero = '0'.repeat(set[0]?.object.length ?? 40);
    const records = [
      ...remove.map((path) => `0 ${zero}\t${path}`),
      ...set.map((e) => `${e.mode} ${e.object}\t${e.path}`),
    ];
    await this.run(['update-index', '-z', '--index-info'], `${records.join('\0')}\0`);
  }

  async writeTree(): Promise<string> {
    // Blobs of the files a promotion keeps but never read are not in a partial workspace; the remote has them.
    return (await this.run(['write-tree', '--missing-ok'])).toString('utf8').trim();
  }

  private run(args: readonly string[], input?: string): Promise<Buffer> {
    return this.workspace.git(args, { env: { GIT_INDEX_FILE: this.file }, ...(input !== undefined ? { input } : {}) });
  }
}

function gitConfigEnv(entries: readonly (readonly [string, string])[]): NodeJS.ProcessEnv {
  const all = [...BASE_CONFIG, ...entries];
  const env: NodeJS.ProcessEnv = { GIT_CONFIG_COUNT: String(all.length) };
  all.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  return env;
}

/**
 * Makes origin a promisor remote for the network commands only: fetch accepts --filter and keeps the packs it
 * receives as promisor packs (so its auto-gc knows blobs may be missing). Local commands see no promisor, so git
 * never fetches a missing object by itself (one round trip per object, without credentials): readObjects does.
 */
const PARTIAL_CLONE_CONFIG: readonly (readonly [string, string])[] = [
  ['remote.origin.promisor', 'true'],
  ['remote.origin.partialclonefilter', 'blob:none'],
];

/** What git says when a workspace's files are damaged (not when an object is merely absent from a partial one). */
const WORKSPACE_DAMAGE =
  /not a git repository|bad object|corrupt|inflate|packfile .* cannot be accessed|unable to read (sha1 file|index|tree)|failed to read object|index file .* is too small|invalid sha1 pointer|bad index file|HEAD.*(broken|invalid)|unknown repository format|bad config/i;

/** Never run hooks from the operator's global config in Ferry's workspaces. */
const BASE_CONFIG: readonly (readonly [string, string])[] = [['core.hooksPath', '/dev/null']];

// Variables that would point git at another repository or index, inject configuration, or unmask secrets in traces.
const INHERITED_GIT_VARIABLES_TO_DROP =
  /^GIT_(DIR|WORK_TREE|INDEX_FILE|OBJECT_DIRECTORY|ALTERNATE_OBJECT_DIRECTORIES|COMMON_DIR|NAMESPACE|PREFIX|CEILING_DIRECTORIES|QUARANTINE_PATH|CONFIG_PARAMETERS|CONFIG_COUNT|CONFIG_KEY_\d+|CONFIG_VALUE_\d+|AUTHOR_\w+|COMMITTER_\w+|TRACE_REDACT)$/;

function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!INHERITED_GIT_VARIABLES_TO_DROP.test(key)) env[key] = value;
  }
  return {
    ...env,
    ...gitConfigEnv([]),
    LC_ALL: 'C',
    GIT_TERMINAL_PROMPT: '0',
    GIT_LITERAL_PATHSPECS: '1',
    GIT_SSH_COMMAND: process.env.GIT_SSH_COMMAND ?? DEFAULT_SSH_COMMAND,
  };
}

export class GitCommandError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
    readonly timedOut = false,
  ) {
    super(`git ${command} ${timedOut ? 'timed out' : `exited with ${exitCode}`}`);
    this.name = 'GitCommandError';
  }
}

/**
 * What a push rejection means. 'busy': another process holds the remote's ref lock right now (redo). 'maybe-moved':
 * the lease failed or the remote could not update the ref, which is what a concurrent writer causes, but also what
 * a permanent refusal looks like (a branch `env/dev/x` when `env/dev` exists): the caller compares the remote branch
 * with what it expected. 'refused': anything else (a hook, a protected branch): permanent.
 */
export function classifyPushRejection(reason: string, stderr: string): 'busy' | 'maybe-moved' | 'refused' {
  if (/Unable to create '[^']*\.lock': File exists/i.test(stderr)) return 'busy';
  if (
    /stale info|fetch first|non-fast-forward|incorrect old value|failed to update ref|cannot lock ref|already exists/i.test(
      reason,
    )
  )
    return 'maybe-moved';
  return 'refused';
}

/** What the remote said about a refused push (its `remote:` lines and errors), on one line. */
function remoteMessages(stderr: string): string {
  const said = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(remote|error|fatal):/.test(l) && !/failed to push some refs/.test(l))
    .map((l) => l.replace(/^remote:\s*/, '').trim())
    .filter((l) => l.length > 0)
    .slice(-4)
    .join('; ');
  // A long ref name fills the middle; git's reason is at the end.
  return said.length > 600 ? `${said.slice(0, 280)}…${said.slice(-280)}` : said;
}

/** The lines of git's stderr that explain a failure, on one line. */
function summarize(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('hint:'));
  const important = lines.filter((l) => /^(fatal|error|remote):/.test(l));
  return (important.length > 0 ? important : lines).slice(-4).join('; ').slice(0, 600) || 'no output';
}

/**
 * Spawns git; rejects with GitCommandError (stdout/stderr attached) on a non-zero exit. git runs in a process group
 * of its own, so a timeout or a cancellation stops its helpers too (git-remote-https, ssh) and not only git itself;
 * the reaper stops the group when the worker dies.
 */
export function runGit(
  args: readonly string[],
  options: { input?: string | Buffer | undefined; env: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<{ stdout: Buffer; stderr: string }> {
  // Inside an activity, cancellation (delivered with heartbeats) stops the git process.
  const signal = activityContext()?.cancellationSignal;
  return new Promise((resolvePromise, reject) => {
    // An abort event fires once: a cancellation that arrived between commands must stop the next one here.
    if (signal?.aborted) {
      reject(signal.reason instanceof Error ? signal.reason : new Error('git cancelled'));
      return;
    }
    const child = spawn('git', args, { env: options.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const group = child.pid;
    const watcher = group !== undefined ? processReaper() : undefined;
    if (group !== undefined) watcher?.watch(group);
    let timedOut = false;
    const stop = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = options.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          stop();
        }, options.timeoutMs)
      : undefined;
    signal?.addEventListener('abort', stop, { once: true });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.stdin.on('error', () => undefined); // git may exit before reading all input; the exit code tells
    child.on('close', (code) => {
      clearTimeout(timer);
      if (group !== undefined) watcher?.forget(group);
      signal?.removeEventListener('abort', stop);
      const out = Buffer.concat(stdout);
      const err = Buffer.concat(stderr).toString('utf8');
      const command = (args[0] === '--git-dir' ? args[2] : args[0]) ?? '';
      if (code === 0) resolvePromise({ stdout: out, stderr: err });
      else if (signal?.aborted)
        reject(signal.reason instanceof Error ? signal.reason : new Error(`git ${command} cancelled`));
      else reject(new GitCommandError(command, code, out.toString('utf8'), err, timedOut));
    });
    child.stdin.end(options.input ?? '');
  });
}

interface FetchBatch {
  branches: Set<string>;
  members: number;
  done: Promise<void>;
}

interface PushItem {
  commit: string;
  branch: string;
  expected: string | undefined;
  resolve: (result: PushResult) => void;
  reject: (err: unknown) => void;
}

interface PushBatch {
  items: PushItem[];
}

/** Per workspace, how far back idempotency has looked (the depth a background deepen fetches). */
const historyDepths = new Map<string, number>();
const DEFAULT_HISTORY_DEPTH = 50;

/** Per workspace, the background deepen in flight (GitWorkspace.deepenInBackground). */
const deepening = new Map<string, Promise<void>>();

/** Per workspace (and credential), the push that has not started yet and still takes more branches. */
const pendingPushes = new Map<string, PushBatch>();

/** Per workspace (and credential), the fetch that has not started yet and still takes more refspecs. */
const pendingFetches = new Map<string, FetchBatch>();

// One fetch or push at a time per workspace in this process: concurrent ref updates in one repository fail on
// git's ref locks, and serializing them is cheaper than retrying.
const repoLocks = new Map<string, Promise<void>>();

async function withRepoLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = repoLocks.get(key) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const tail = previous.then(() => mine);
  repoLocks.set(key, tail);
  await previous;
  try {
    return await fn();
  } finally {
    release();
    if (repoLocks.get(key) === tail) repoLocks.delete(key);
  }
}

/**
 * Runs a porcelain command (ls-remote, log) through simple-git, in the workspace `dir` (a bare repository: git finds
 * it from the working directory). simple-git's guards refuse `GIT_*` variables and configuration keys it does not
 * know unless named: the credential configuration Ferry passes through GIT_CONFIG_COUNT/KEY/VALUE is allowed with
 * `unsafe.allowUnsafeConfigEnvCount`, its keys with `allowConfig` and the variables with `allowEnvironment`, each
 * derived from the environment of this one call, so nothing else slips through. Failures come back as the
 * GitCommandError the runner above throws, so classification and redaction are the same for both.
 *
 * fetch, push and the plumbing stay on runGit: they need a process group of their own (killed on cancellation and
 * by the reaper when the worker dies; simple-git kills only git, not its transport helpers) and stdin; and
 * simple-git adds about a millisecond per call, which the plumbing makes dozens of times per promotion
 * (docs/performance.md, "simple-git and the plumbing runner").
 */
export async function runPorcelain(
  dir: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<{ stdout: Buffer; stderr: string }> {
  const signal = activityContext()?.cancellationSignal;
  const command = args[0] ?? '';
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(`git ${command} cancelled`);
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.env)) if (value !== undefined) env[key] = value;
  const allowConfig = Object.entries(env)
    .filter(([key]) => /^GIT_CONFIG_KEY_\d+$/.test(key))
    .map(([, value]) => value);
  const git = simpleGit({
    baseDir: dir,
    binary: 'git',
    maxConcurrentProcesses: 1,
    trimmed: false,
    unsafe: { allowUnsafeConfigEnvCount: true },
    allowConfig,
    allowEnvironment: Object.keys(env).filter((key) => /^GIT_/i.test(key) || /^(EDITOR|PAGER|SSH_ASKPASS)$/i.test(key)),
    ...(signal ? { abort: signal } : {}),
    ...(options.timeoutMs ? { timeout: { block: options.timeoutMs } } : {}),
  }).env(env);
  try {
    const stdout = await git.raw([...args]);
    return { stdout: Buffer.from(stdout, 'utf8'), stderr: '' };
  } catch (err) {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(`git ${command} cancelled`);
    if (err instanceof GitPluginError && err.plugin === 'timeout') {
      throw new GitCommandError(command, null, '', '', true);
    }
    if (err instanceof GitError) throw new GitCommandError(command, 1, '', err.message);
    throw err;
  }
}
