// Cached git workspaces: one bare repository per remote under `workspaceRoot`, cloned once and fetched on every
// promotion. Everything after the fetch is plumbing against object ids (ls-tree, cat-file, a temporary index,
// commit-tree), so nothing depends on a checked-out work tree and promotions to different branches of the same
// repository never step on each other. Only fetch and push touch refs; they run one at a time per repository.
//
// Credentials reach git only through the environment of the fetch/push process (git-transport.ts: configuration
// set with GIT_CONFIG_COUNT/KEY/VALUE, and GIT_SSH_COMMAND): never in the remote URL, the workspace's config, process arguments or
// error messages. git runs through child_process rather than simple-git because the plumbing here is fed on stdin
// and simple-git's safety plugin refuses the env-based configuration this relies on.
//
// A push the remote refuses is retried only when the remote branch really moved (checked with ls-remote); any
// other refusal fails at once with git's reason. git processes die with the worker (see the reaper below), and a
// new worker removes the temporary files and half-built workspaces a killed one left.
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
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

/** Half-built workspaces (`*.git.init-*`) of workers killed during their first clone of a repository. */
async function sweepRoot(root: string): Promise<void> {
  const names = await readdir(root).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.includes(`.git${INIT_MARK}`)) continue;
    const path = join(root, name);
    const info = await stat(path).catch(() => undefined);
    if (info && leftBehind(tagOf(name, INIT_MARK), info.mtimeMs, STALE_INIT_MS)) {
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
      // Checked on every open (a stat): an operator may delete a workspace to reset it while the worker runs.
      if (!checked.has(dir) || !existsSync(join(dir, 'HEAD'))) {
        await withRepoLock(dir, () => initWorkspace(root, dir, repo.url));
        checked.add(dir);
      }
      return new GitWorkspace(repo.url, dir, options.secrets, repo.credentials, timeoutMs, allowFileRepos);
    },
  };
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
    const config = (key: string, value: string) =>
      runGit(['--git-dir', building, 'config', key, value], { env: baseEnv() });
    await config('remote.origin.url', url);
    await config('remote.origin.fetch', '+refs/heads/*:refs/remotes/origin/*');
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
  ) {}

  /** The remote URL as it may appear in messages. */
  get displayUrl(): string {
    return remoteDisplayUrl(this.url, this.secrets);
  }

  /**
   * Brings `origin/<source>` and `origin/<target>` up to date. The target may not exist yet: it is fetched with a
   * pattern (`<target>*`), which matches nothing rather than failing, and `--prune` forgets it when it was deleted.
   */
  async fetch(source: string, target: string): Promise<void> {
    const refspecs = [
      `+refs/heads/${source}:${REMOTE_TRACKING}${source}`,
      `+refs/heads/${target}*:${REMOTE_TRACKING}${target}*`,
    ];
    // Promotions into many stages of one repository fetch at the same moment; the fetches waiting for the workspace
    // join into one `git fetch` with all their refspecs instead of queueing one network round trip each.
    const key = `${this.dir}\0${this.credentials ?? ''}`;
    let batch = pendingFetches.get(key);
    if (!batch) {
      const created: FetchBatch = { refspecs: new Set(), members: 0, done: Promise.resolve() };
      created.done = withRepoLock(this.dir, async () => {
        pendingFetches.delete(key); // from here on, newcomers start the next batch
        await this.runFetch([...created.refspecs], source);
      });
      pendingFetches.set(key, created);
      batch = created;
    }
    for (const refspec of refspecs) batch.refspecs.add(refspec);
    batch.members++;
    try {
      await batch.done;
    } catch (err) {
      // One member's refspec can fail the whole batch (its source branch is gone): each member then fetches on its
      // own, so the failure is reported to the promotion it concerns and to no other.
      if (batch.members === 1) throw err;
      await withRepoLock(this.dir, () => this.runFetch(refspecs, source));
    }
  }

  private async runFetch(refspecs: readonly string[], source: string): Promise<void> {
    await this.network(
      'fetch',
      ['fetch', '--prune', '--no-tags', '--no-write-fetch-head', '--quiet', 'origin', ...refspecs],
      { branch: source },
    );
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
   * commit (not fetched, or not in the repository at all).
   */
  async isAncestor(commit: string, head: string): Promise<'yes' | 'no' | 'unknown'> {
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

  /** Contents of objects named by id or `<commit>:<path>`, in order; undefined for those that don't exist. */
  async readObjects(names: readonly string[]): Promise<(Buffer | undefined)[]> {
    if (names.length === 0) return [];
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

  /** The last `limit` commits reachable from `commit`, newest first, with their trailers. */
  async recentCommits(commit: string, limit: number): Promise<CommitSummary[]> {
    const out = await this.git(['log', `-n${limit}`, '--format=%H%x1f%T%x1f%(trailers:only,unfold)%x1e', commit, '--']);
    return out
      .toString('utf8')
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

  private async lsRemote(branches: readonly string[]): Promise<(string | undefined)[]> {
    const refs = branches.map((b) => `refs/heads/${b}`);
    const out = await this.network('ls-remote', ['ls-remote', '--refs', 'origin', ...refs], {
      branch: branches.join(', '),
    });
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
      if (err instanceof GitCommandError) {
        throw ApplicationFailure.retryable(
          `git ${args[0]} failed in the workspace of ${this.displayUrl}: ${this.secrets.redact(summarize(err.stderr))}`,
          'GitError',
        );
      }
      throw err;
    }
  }

  /** Runs fetch or push with the repository's credentials in the environment; one retry over a stale ref lock. */
  private async network(action: NetworkAction, args: readonly string[], context: { branch: string }): Promise<string> {
    // git itself refuses other transports too (ext::, fd::, a file:// redirect or submodule), not only the schema.
    const env = {
      ...baseEnv(),
      ...this.credentialEnv(),
      GIT_ALLOW_PROTOCOL: this.allowFileRepos ? 'https:http:ssh:file' : 'https:http:ssh',
    };
    for (let attempt = 1; ; attempt++) {
      try {
        const { stdout } = await runGit(['--git-dir', this.dir, ...args], { env, timeoutMs: this.networkTimeoutMs });
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
    return { ...gitConfigEnv(transport.config), ...transport.env };
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
    return (await this.run(['write-tree'])).toString('utf8').trim();
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
function runGit(
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
  refspecs: Set<string>;
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
