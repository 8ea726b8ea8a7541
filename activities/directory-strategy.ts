// The directory strategy: the stage is a directory on repo.branch (trunk-based, `envs/prod/…`). Ferry edits the
// versions in that directory in place (image references, kustomization `images:`, the stage's `set` values: the
// plain engine's edits, comments and formatting kept) and commits to repo.branch. Nothing outside the directory
// changes, and Ferry owns no files there: it only changes values.
//
// Many stages share one branch here, so many promotions push to it at once. In a worker, the writes to one branch
// go through one queue: each turn takes every promotion waiting, fetches the branch once, makes each promotion's
// commit on top of the one before (one temporary index for the whole chain) and pushes the chain in one
// compare-and-swap push. When another writer moved the branch meanwhile (another worker, a person), the turn is
// redone on the new head; a promotion whose files were changed there at the lines it changes fails alone with
// reason ConflictingEdit and those paths, and the branch keeps the other writer's change. No update is lost: a
// push only lands on the head it was built on.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { activityContext, outsideActivity } from './context';
import type { Author, GitWorkspace } from './git';
import { commitMessage, findPromotionCommit, normalizeDir } from './promotion-commit';
import { renderForStage, type RenderEngine, type SourceReader } from './render/engine';
import type { RenderAndPushInput, RenderAndPushResult } from './types';

export interface DirectoryWriterOptions {
  author: Author;
  /** The plain engine, whose edits the directory strategy makes. */
  engine: RenderEngine;
  /** How many times a turn is redone because the branch moved before its push (default 20). */
  maxPushAttempts?: number;
  /** How many commits of the branch to search for a promotion's commit (default 1000: a busy trunk). */
  idempotencyDepth?: number;
  /** Most promotions one push carries (default 100). */
  maxBatch?: number;
}

interface Waiting {
  input: RenderAndPushInput;
  dir: string;
  resolve(result: RenderAndPushResult): void;
  reject(err: unknown): void;
  /** The head this promotion was first made on and what it wrote there: what a later head is compared against. */
  first?: { head: string; contents: Map<string, Buffer> };
  settled: boolean;
}

interface BranchQueue {
  waiting: Waiting[];
  running: boolean;
}

/** Per workspace, credential and branch: the promotions waiting to be written. */
const queues = new Map<string, BranchQueue>();

export function createDirectoryWriter(options: DirectoryWriterOptions) {
  const maxPushAttempts = options.maxPushAttempts ?? 20;
  const idempotencyDepth = options.idempotencyDepth ?? 1000;
  const maxBatch = options.maxBatch ?? 100;

  /** Writes the promotion's edits of its directory to repo.branch; resolves when its commit is on the remote. */
  function write(workspace: GitWorkspace, input: RenderAndPushInput): Promise<RenderAndPushResult> {
    const branch = input.repo.branch;
    const key = `${workspace.dir}\0${input.repo.credentials ?? ''}\0${branch}`;
    let queue = queues.get(key);
    if (!queue) {
      queue = { waiting: [], running: false };
      queues.set(key, queue);
    }
    const q = queue;
    return new Promise<RenderAndPushResult>((resolve, reject) => {
      const waiting: Waiting = {
        input,
        dir: normalizeDir(input.render.to),
        settled: false,
        resolve: (result) => {
          if (waiting.settled) return;
          waiting.settled = true;
          resolve(result);
        },
        reject: (err) => {
          if (waiting.settled) return;
          waiting.settled = true;
          reject(err);
        },
      };
      q.waiting.push(waiting);
      // A cancelled promotion (aborted) stops waiting; one that no turn has taken yet leaves the queue, so its
      // commit is never made.
      const cancelled = activityContext()?.cancellationSignal;
      cancelled?.addEventListener(
        'abort',
        () => {
          const at = q.waiting.indexOf(waiting);
          if (at >= 0) q.waiting.splice(at, 1);
          if (!waiting.settled) waiting.reject(cancelled.reason ?? new Error('cancelled'));
        },
        { once: true },
      );
      if (!q.running) {
        q.running = true;
        // The turns serve every promotion in the queue: they run outside this one activity's context, so its
        // cancellation does not stop the others' push.
        void outsideActivity(() => drain(workspace, branch, q)).finally(() => {
          if (q.waiting.length === 0 && queues.get(key) === q) queues.delete(key);
        });
      }
    });
  }

  async function drain(workspace: GitWorkspace, branch: string, queue: BranchQueue): Promise<void> {
    try {
      while (queue.waiting.length > 0) {
        const batch: Waiting[] = [];
        try {
          await writeTurn(workspace, branch, queue, batch);
        } catch (err) {
          for (const w of batch) if (!w.settled) w.reject(err);
          // A fetch that failed before the turn took anyone fails the promotions waiting for it.
          if (batch.length === 0) for (const w of queue.waiting.splice(0)) w.reject(err);
        }
      }
    } finally {
      queue.running = false;
    }
  }

  /** The next promotions to write together: up to maxBatch, never two whose directories overlap. */
  function takeBatch(waiting: Waiting[]): Waiting[] {
    const batch: Waiting[] = [];
    for (let i = 0; i < waiting.length && batch.length < maxBatch;) {
      const w = waiting[i]!;
      if (batch.some((b) => overlaps(b.dir, w.dir))) {
        i++;
        continue;
      }
      batch.push(w);
      waiting.splice(i, 1);
    }
    return batch;
  }

  /** One turn: fetch, take the promotions waiting now (into `batch`), commit them as a chain and push it. */
  async function writeTurn(
    workspace: GitWorkspace,
    branch: string,
    queue: BranchQueue,
    batch: Waiting[],
  ): Promise<void> {
    let open = batch;
    for (let attempt = 1; attempt <= maxPushAttempts; attempt++) {
      await workspace.fetch(branch, branch);
      // Taken after the fetch: the promotions that arrived while it ran join this turn's push.
      if (attempt === 1) batch.push(...takeBatch(queue.waiting));
      const [head] = await workspace.heads(branch);
      if (!head) {
        throw ApplicationFailure.nonRetryable(
          `${workspace.displayUrl}: branch ${branch} does not exist`,
          'SourceBranchNotFound',
        );
      }
      const history = await workspace.recentCommits(head, idempotencyDepth);
      for (const w of open) {
        // An earlier attempt of this activity pushed the commit and then died: that commit is the answer.
        const earlier = findPromotionCommit(history, w.input);
        if (earlier) w.resolve(await resultOf(workspace, earlier.sha, w.dir, false));
      }
      open = open.filter((w) => !w.settled);
      for (const w of open) {
        if (w.first && w.first.head !== head) {
          const conflicts = await conflictingPaths(workspace, w.first, head);
          if (conflicts.length > 0) w.reject(conflictFailure(workspace, w, head, conflicts));
        }
      }
      open = open.filter((w) => !w.settled);
      if (open.length === 0) return;

      // Every promotion's edit is read and made on this head; their directories do not overlap.
      const trees = await readDirectories(
        workspace,
        head,
        open.map((w) => w.dir),
      );
      const links: Array<{ waiting: Waiting; files: ChangedFile[] }> = [];
      for (const w of open) {
        let files: ChangedFile[];
        try {
          files = await planEdit(options.engine, w.input, w.dir, trees.get(w.dir), whereIs(workspace, branch, head));
        } catch (err) {
          w.reject(err);
          continue;
        }
        w.first ??= { head, contents: new Map(files.map((f) => [f.path, f.content])) };
        // The directory already has these versions: nothing to commit, the head is the stage's revision.
        if (files.length === 0) w.resolve({ commit: head, sourceCommit: head, created: false, files: 0 });
        else links.push({ waiting: w, files });
      }
      const commits = await writeCommitChain(
        workspace,
        head,
        links.map((link) => ({
          message: commitMessage(link.waiting.input, `Edited ${link.waiting.dir} on ${branch}`, head),
          files: link.files,
        })),
        options.author,
        branch,
      );
      const chain = links.map((link, i) => ({ waiting: link.waiting, commit: commits[i]!, files: link.files.length }));
      const tip = commits[commits.length - 1] ?? head;
      if (chain.length === 0) return;
      if ((await workspace.push(tip, branch, head)) === 'pushed') {
        for (const link of chain)
          link.waiting.resolve({ commit: link.commit, sourceCommit: head, created: true, files: link.files });
        return;
      }
      // Someone else pushed first: redo the turn on the new head.
      open = chain.map((link) => link.waiting);
      await new Promise((r) => setTimeout(r, Math.random() * 50 * Math.min(attempt, 10)));
    }
    throw ApplicationFailure.retryable(
      `${workspace.displayUrl}: branch ${branch} kept moving while Ferry pushed (${maxPushAttempts} attempts); ` +
        'other writers are pushing to it',
      'PushConflict',
    );
  }

  /** The result for a promotion whose commit is already on the branch. */
  async function resultOf(
    workspace: GitWorkspace,
    commit: string,
    dir: string,
    created: boolean,
  ): Promise<RenderAndPushResult> {
    // A commit found in deepened history comes without its trees (GitWorkspace.recentCommits).
    await workspace.ensureTrees([commit, `${commit}^`]);
    const [parent] = (await workspace.git(['rev-parse', `${commit}^`])).toString('utf8').trim().split('\n');
    const changed = (await workspace.git(['diff-tree', '--no-commit-id', '--name-only', '-r', commit, '--', dir]))
      .toString('utf8')
      .split('\n')
      .filter((l) => l.length > 0);
    return { commit, sourceCommit: parent ?? commit, created, files: changed.length };
  }

  return { write };
}

/** A file a promotion changes: its path from the repository root, its mode and its new content. */
export interface ChangedFile {
  path: string;
  mode: string;
  content: Buffer;
}

/** The files under each directory at `commit` (one ls-tree and one cat-file for all), paths relative to it. */
export async function readDirectories(
  workspace: GitWorkspace,
  commit: string,
  dirs: readonly string[],
): Promise<Map<string, Array<{ path: string; mode: string; content: Buffer }>>> {
  const found = new Map<string, Array<{ path: string; mode: string; content: Buffer }>>();
  if (dirs.length === 0) return found;
  const out = await workspace.git(['ls-tree', '-r', '-z', '--full-tree', commit, '--', ...dirs]);
  const entries: Array<{ dir: string; path: string; mode: string; object: string }> = [];
  for (const record of out.toString('utf8').split('\0')) {
    if (!record) continue;
    const tab = record.indexOf('\t');
    const [mode, type, object] = record.slice(0, tab).split(' ') as [string, string, string];
    const full = record.slice(tab + 1);
    if (type !== 'blob') continue;
    const dir = dirs.find((d) => full.startsWith(`${d}/`));
    if (dir !== undefined) entries.push({ dir, path: full.slice(dir.length + 1), mode, object });
  }
  const contents = await workspace.readObjects(entries.map((e) => e.object));
  entries.forEach((e, i) => {
    const list = found.get(e.dir) ?? [];
    list.push({ path: e.path, mode: e.mode, content: contents[i]! });
    found.set(e.dir, list);
  });
  return found;
}

function whereIs(workspace: GitWorkspace, branch: string, commit: string): string {
  return `${workspace.displayUrl} branch ${branch} at ${commit.slice(0, 12)}`;
}

/**
 * The plain engine's edits of the stage directory `dir` (its files as read at the commit `where` names): the files
 * that change, with their new content. Nothing outside `dir` is read or written.
 */
export async function planEdit(
  engine: RenderEngine,
  input: RenderAndPushInput,
  dir: string,
  files: Array<{ path: string; mode: string; content: Buffer }> | undefined,
  where: string,
): Promise<ChangedFile[]> {
  if (!files || files.length === 0) {
    throw ApplicationFailure.nonRetryable(
      `stage ${input.stage}: render.to "${dir}" does not exist in ${where}; the directory strategy edits an existing directory`,
      'StageDirectoryNotFound',
    );
  }
  const reader: SourceReader = {
    // Only the stage directory is edited; the plain engine reads nothing else.
    list: async () => 'missing',
  };
  const output = await renderForStage(
    engine,
    {
      pipeline: input.pipeline,
      from: dir,
      files: files.map((f) => ({ path: f.path, content: f.content })),
      source: reader,
      render: input.render,
      artifacts: input.artifacts,
      versions: input.freight.artifacts,
    },
    { stage: input.stage, doing: 'editing', where },
  );
  const before = new Map(files.map((f) => [f.path, f] as const));
  return output.flatMap((f) => {
    const was = before.get(f.path);
    if (!was) {
      throw ApplicationFailure.nonRetryable(
        `stage ${input.stage}: editing ${dir} produced a new file "${f.path}"; the directory strategy only edits`,
        'InvalidManifest',
      );
    }
    return was.content.equals(f.content) ? [] : [{ path: `${dir}/${f.path}`, mode: was.mode, content: f.content }];
  });
}

/** The edit of one stage directory at `commit`, as changed files (a pull request into a directory makes it alone). */
export async function editDirectory(
  workspace: GitWorkspace,
  engine: RenderEngine,
  input: RenderAndPushInput,
  dir: string,
  commit: string,
): Promise<ChangedFile[]> {
  const files = (await readDirectories(workspace, commit, [dir])).get(dir);
  return planEdit(engine, input, dir, files, whereIs(workspace, input.repo.branch, commit));
}

/**
 * Commits, one on top of the other starting from `parent`, each changing its files, in ONE `git fast-import`
 * process: its blobs, trees and commits at once, instead of a hash-object, update-index, write-tree and
 * commit-tree per promotion. Returns the commits in order. The chain is kept under a ref of the workspace's own
 * (`refs/ferry/chains/<branch>`, replaced by the next turn) until it is pushed.
 */
export async function writeCommitChain(
  workspace: GitWorkspace,
  parent: string,
  commits: ReadonlyArray<{ message: string; files: readonly ChangedFile[] }>,
  author: Author,
  branch: string,
): Promise<string[]> {
  if (commits.length === 0) return [];
  const ref = `refs/ferry/chains/${branch}`;
  const when = `${Math.floor(Date.now() / 1000)} +0000`;
  const person = `${author.name} <${author.email}> ${when}`;
  const input: Buffer[] = [];
  let mark = 0;
  const blobMarks = commits.map((commit) =>
    commit.files.map((file) => {
      input.push(Buffer.from(`blob\nmark :${++mark}\ndata ${file.content.length}\n`), file.content, Buffer.from('\n'));
      return mark;
    }),
  );
  const commitMarks = commits.map((commit, i) => {
    const message = Buffer.from(commit.message);
    const lines = [
      `commit ${ref}`,
      `mark :${++mark}`,
      `author ${person}`,
      `committer ${person}`,
      `data ${message.length}`,
    ];
    input.push(Buffer.from(`${lines.join('\n')}\n`), message, Buffer.from('\n'));
    const body = [
      ...(i === 0 ? [`from ${parent}`] : []),
      ...commit.files.map((file, j) => `M ${file.mode} :${blobMarks[i]![j]} ${quotePath(file.path)}`),
    ];
    input.push(Buffer.from(`${body.join('\n')}\n\n`));
    return mark;
  });
  input.push(Buffer.from(`${commitMarks.map((m) => `get-mark :${m}`).join('\n')}\ndone\n`));
  const out = await workspace.git(['-c', 'fastimport.unpackLimit=0', 'fast-import', '--quiet', '--done', '--force'], {
    input: Buffer.concat(input),
  });
  const ids = out.toString('utf8').trim().split('\n');
  if (ids.length !== commits.length) {
    throw new Error(`git fast-import returned ${ids.length} commits for ${commits.length}`);
  }
  return ids;
}

/** A path as fast-import reads it: C-style quoted (octal escapes) when it has a quote, a backslash or a control character. */
function quotePath(path: string): string {
  const needsQuotes = [...path].some(
    (c) => c === '"' || c === '\\' || c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f,
  );
  if (!needsQuotes) return path;
  const escaped = [...path]
    .map((c) => {
      if (c === '"' || c === '\\') return `\\${c}`;
      const code = c.charCodeAt(0);
      return code < 0x20 || code === 0x7f ? `\\${code.toString(8).padStart(3, '0')}` : c;
    })
    .join('');
  return `"${escaped}"`;
}

/** Whether one directory is the other or inside it. */
function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}

/**
 * Paths this promotion changes whose content someone else changed between `first.head` and `head` at the lines it
 * changes: a three-way merge of (its content, the content at first.head, the content at head) with conflicts.
 */
async function conflictingPaths(
  workspace: GitWorkspace,
  first: { head: string; contents: Map<string, Buffer> },
  head: string,
): Promise<string[]> {
  const paths = [...first.contents.keys()];
  const [base, theirs] = await Promise.all([
    workspace.readObjects(paths.map((p) => `${first.head}:${p}`)),
    workspace.readObjects(paths.map((p) => `${head}:${p}`)),
  ]);
  const conflicts: string[] = [];
  for (const [i, path] of paths.entries()) {
    const was = base[i];
    const now = theirs[i];
    if (was && now && was.equals(now)) continue;
    if (!was || !now || !(await mergesCleanly(first.contents.get(path)!, was, now))) conflicts.push(path);
  }
  return conflicts;
}

/** `git merge-file`: whether ours and theirs, both changed from base, change different lines. */
async function mergesCleanly(ours: Buffer, base: Buffer, theirs: Buffer): Promise<boolean> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-merge-'));
  try {
    const files = ['ours', 'base', 'theirs'].map((name) => join(dir, name));
    await Promise.all([ours, base, theirs].map((content, i) => writeFile(files[i]!, content)));
    const code = await new Promise<number>((resolve, reject) =>
      execFile('git', ['merge-file', '-p', '--quiet', ...files], { maxBuffer: 64 * 1024 * 1024 }, (err) => {
        if (!err) resolve(0);
        else if (typeof err.code === 'number') resolve(err.code);
        else reject(err);
      }),
    );
    if (code < 0 || code > 127) throw new Error(`git merge-file failed with exit code ${code}`);
    return code === 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function conflictFailure(workspace: GitWorkspace, w: Waiting, head: string, paths: string[]): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `stage ${w.input.stage}: ${paths.join(', ')} changed on ${workspace.displayUrl} branch ${w.input.repo.branch} ` +
      `(${w.first!.head.slice(0, 12)} → ${head.slice(0, 12)}) at the lines this promotion changes; nothing was ` +
      'pushed, and the branch keeps that change. Check it and promote again.',
    'ConflictingEdit',
    { paths },
  );
}
