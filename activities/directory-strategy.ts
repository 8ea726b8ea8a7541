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
import type { Author, GitWorkspace, TreeEntry } from './git';
import { commitMessage, findPromotionCommit, normalizeDir } from './promotion-commit';
import type { RenderEngine, SourceReader } from './render/engine';
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

/** What a promotion changes in its directory, as of the head it was made on. */
export interface Edit {
  /** Entries to set, with paths from the repository root. */
  set: TreeEntry[];
  /** Path -> the content this promotion gives it. */
  contents: Map<string, Buffer>;
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

      const chain: Array<{ waiting: Waiting; commit: string; files: number }> = [];
      let tip = head;
      await workspace.withTemporaryIndex(async (index) => {
        await index.read(head);
        for (const w of open) {
          let edit: Edit;
          try {
            edit = await editDirectory(workspace, options.engine, w.input, w.dir, head);
          } catch (err) {
            w.reject(err);
            continue;
          }
          w.first ??= { head, contents: edit.contents };
          if (edit.set.length === 0) {
            // The directory already has these versions: nothing to commit, the head is the stage's revision.
            w.resolve({ commit: head, sourceCommit: head, created: false, files: 0 });
            continue;
          }
          await index.update([], edit.set);
          const tree = await index.writeTree();
          const what = `Edited ${w.dir} on ${branch}`;
          tip = await workspace.commitTree(tree, [tip], commitMessage(w.input, what, head), options.author);
          chain.push({ waiting: w, commit: tip, files: edit.set.length });
        }
      });
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
    const [parent] = (await workspace.git(['rev-parse', `${commit}^`])).toString('utf8').trim().split('\n');
    const changed = (await workspace.git(['diff-tree', '--no-commit-id', '--name-only', '-r', commit, '--', dir]))
      .toString('utf8')
      .split('\n')
      .filter((l) => l.length > 0);
    return { commit, sourceCommit: parent ?? commit, created, files: changed.length };
  }

  return { write };
}

/**
 * The plain engine's edits of the files under the stage directory `dir` at `commit`, stored as blobs (also the
 * content of a pull request into a directory).
 */
export async function editDirectory(
  workspace: GitWorkspace,
  engine: RenderEngine,
  input: RenderAndPushInput,
  dir: string,
  commit: string,
): Promise<Edit> {
  const where = `${workspace.displayUrl} branch ${input.repo.branch} at ${commit.slice(0, 12)}`;
  const listed = await workspace.listFiles(commit, dir);
  if (listed === 'missing' || listed === 'not-a-directory') {
    throw ApplicationFailure.nonRetryable(
      `stage ${input.stage}: render.to "${dir}" ${listed === 'missing' ? 'does not exist' : 'is a file, not a directory'} in ${where}; the directory strategy edits an existing directory`,
      'StageDirectoryNotFound',
    );
  }
  const read = await workspace.readObjects(listed.map((e) => e.object));
  const files = listed.map((e, i) => ({ path: e.path, content: read[i]! }));
  const source: SourceReader = {
    async list(other) {
      const entries = await workspace.listFiles(commit, normalizeDir(other));
      if (typeof entries === 'string') return entries;
      const contents = await workspace.readObjects(entries.map((e) => e.object));
      return entries.map((e, i) => ({ path: e.path, content: contents[i]! }));
    },
  };
  let output;
  try {
    output = await engine.render({
      pipeline: input.pipeline,
      from: dir,
      files,
      source,
      render: input.render,
      artifacts: input.artifacts,
      versions: input.freight.artifacts,
    });
  } catch (err) {
    if (err instanceof ApplicationFailure) {
      throw ApplicationFailure.create({
        message: `stage ${input.stage}: ${dir}/${err.message} (editing ${where})`,
        type: err.type ?? 'InvalidManifest',
        nonRetryable: err.nonRetryable ?? true,
      });
    }
    throw err;
  }
  const before = new Map(files.map((f, i) => [f.path, { content: f.content, entry: listed[i]! }] as const));
  const changed = output.filter((f) => {
    const was = before.get(f.path);
    if (!was) {
      throw ApplicationFailure.nonRetryable(
        `stage ${input.stage}: editing ${dir} produced a new file "${f.path}"; the directory strategy only edits`,
        'InvalidManifest',
      );
    }
    return !was.content.equals(f.content);
  });
  const blobs = await workspace.writeBlobs(changed.map((f) => f.content));
  const set = changed.map((f, i) => ({
    mode: before.get(f.path)!.entry.mode,
    object: blobs[i]!,
    path: `${dir}/${f.path}`,
  }));
  return { set, contents: new Map(changed.map((f) => [`${dir}/${f.path}`, f.content])) };
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
