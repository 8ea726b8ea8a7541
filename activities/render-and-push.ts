// The render step of a promotion: render the stage's sources at the head of repo.branch (or at the commit the
// freight pins, when one of its artifacts is a commit of repo.branch) with the freight's versions and write the
// result to the stage's branch, as one commit.
//
// Ferry owns only the files it wrote on that branch: it lists them in `.ferry/rendered.json` and on the next
// render replaces exactly those (removing the ones no longer rendered), leaving everything else on the branch (a
// README, CI files) alone. The commit carries trailers naming the promotion and run; before writing, the branch's
// recent history is searched for them, so an activity retried after a crash that followed a successful push
// returns that commit instead of making a second one. Pushes are compare-and-swap; when someone else moved the
// branch in between, the render is redone on the new head.
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { formatPath } from '../pipeline/load';
import { sameRepository } from '../pipeline/repository-url';
import { activityContext, heartbeatIfActivity } from './context';
import { createGitWorkspaces } from './git';
import type { Author, GitWorkspace, TreeEntry } from './git';
import { createRenderEngines, renderForStage } from './render/engine';
import type { RenderEngine, RenderTools, SourceReader } from './render/engine';
import { createDirectoryWriter, editDirectory, writeCommitChain } from './directory-strategy';
import { promotionBranch, stageLayout } from '../pipeline/layout';
import { commitMessage, findPromotionCommit, normalizeDir, TRAILERS } from './promotion-commit';
import { renderToolMissing } from './render/tool-process';
import type { SecretResolver } from './secrets';
import type { RenderAndPushInput, RenderAndPushResult } from './types';

export interface GitActivitiesOptions {
  /** Where the cached git workspaces live, one bare repository per remote. */
  workspaceRoot: string;
  secrets: SecretResolver;
  /** Author and committer of Ferry's commits (default: Ferry <ferry@localhost>). */
  author?: Author;
  /** How many times to fetch and redo the render when the stage's branch moved before the push (default 5). */
  maxPushAttempts?: number;
  /** How many commits of the stage's branch to search for this promotion's commit (default 50). */
  idempotencyDepth?: number;
  /** A fetch or push running longer than this is stopped and fails as retryable (default 10 minutes). */
  networkTimeoutMs?: number;
  /** Whether `file://` repositories may be used (default false; see GitWorkspacesOptions.allowFileRepos). */
  allowFileRepos?: boolean;
  /** The kustomize and helm binaries of this worker (engines without one are unavailable). */
  renderTools?: RenderTools;
}

/** Where Ferry records, on a stage's branch, which files it wrote there. */
export const RENDERED_STATE_PATH = '.ferry/rendered.json';

const DEFAULT_AUTHOR: Author = { name: 'Ferry', email: 'ferry@localhost' };

const branchPath = z
  .string()
  .min(1)
  .refine(
    (p) => !p.startsWith('/') && !p.split('/').some((part) => part === '..' || part === '' || part === '.git'),
    'must be a relative path',
  );

const RenderedStateSchema = z.object({
  pipeline: z.string(),
  stage: z.string(),
  freight: z.string(),
  sourceCommit: z.string(),
  from: z.string(),
  files: z.array(branchPath),
});
export type RenderedState = z.infer<typeof RenderedStateSchema>;

export function createGitActivities(options: GitActivitiesOptions) {
  const workspaces = createGitWorkspaces({
    workspaceRoot: options.workspaceRoot,
    secrets: options.secrets,
    ...(options.networkTimeoutMs !== undefined ? { networkTimeoutMs: options.networkTimeoutMs } : {}),
    allowFileRepos: options.allowFileRepos ?? false,
  });
  const author = options.author ?? DEFAULT_AUTHOR;
  const engines = createRenderEngines(options.renderTools ?? {});
  const directories = createDirectoryWriter({ author, engine: engines.plain! });
  const maxPushAttempts = options.maxPushAttempts ?? 5;
  const idempotencyDepth = options.idempotencyDepth ?? 50;

  async function renderAndPush(input: RenderAndPushInput): Promise<RenderAndPushResult> {
    let lastProgress: Record<string, unknown> = { step: 'started' };
    const progress = (details: Record<string, unknown>) => {
      lastProgress = details;
      heartbeatIfActivity(details);
    };
    // A first clone of a large repository can take minutes: keep heartbeating while a step runs. (A heartbeat
    // only throws once the activity is done for; the step in flight reports that.)
    const ticker = activityContext()
      ? setInterval(() => {
          try {
            heartbeatIfActivity(lastProgress);
          } catch {
            // reported by the running step
          }
        }, 10_000)
      : undefined;
    try {
      return await renderAndPushOnce(input, progress);
    } finally {
      clearInterval(ticker);
    }
  }

  async function renderAndPushOnce(
    input: RenderAndPushInput,
    progress: (details: Record<string, unknown>) => void,
  ): Promise<RenderAndPushResult> {
    const { repo, render } = input;
    const from = normalizeDir(render.from ?? '');
    const engine = engines[render.engine];
    if (!engine) throw renderToolMissing(render.engine, `stage ${input.stage}: render engine "${render.engine}"`);
    if (stageLayout(render) === 'directory' && render.strategy === 'directory') {
      const workspace = await workspaces.open(repo);
      const writing = directories.write(workspace, input);
      progress({ step: 'queued', branch: repo.branch });
      const written = await writing;
      progress({ step: written.created ? 'pushed' : 'unchanged', commit: written.commit });
      return written;
    }
    if (stageLayout(render) === 'directory') return pullRequestIntoDirectory(input, progress);
    if (render.to === repo.branch) {
      throw ApplicationFailure.nonRetryable(
        `stage ${input.stage}: render.to is ${repo.branch}, the branch the sources come from; render into a branch of its own`,
        'InvalidArgument',
      );
    }
    const workspace = await workspaces.open(repo);
    // `branch` writes the stage branch; `pull-request` writes the same commit to a promotion branch, for a pull
    // request into the stage branch.
    const pr = render.strategy === 'pull-request';
    const destination = pr ? promotionBranch(input.pipeline, input.stage, input.freight.id) : render.to;
    let rendered: Rendered | undefined;

    for (let attempt = 1; attempt <= maxPushAttempts; attempt++) {
      await Promise.all([
        workspace.fetch(repo.branch, render.to),
        ...(pr ? [workspace.fetch(repo.branch, destination)] : []),
      ]);
      progress({ step: 'fetched', attempt });
      const [head, target, written] = await workspace.heads(repo.branch, render.to, destination);
      if (!head) {
        throw ApplicationFailure.nonRetryable(
          `${workspace.displayUrl}: branch ${repo.branch} does not exist`,
          'SourceBranchNotFound',
        );
      }
      if (pr && !target) {
        // A pull request needs a branch to go into: the stage branch starts as one empty commit.
        progress({ step: 'creating', branch: render.to });
        const empty = await workspace.withTemporaryIndex(async (index) => {
          await index.read(undefined);
          return workspace.commitTree(
            await index.writeTree(),
            [],
            `ferry: create ${render.to} for ${input.pipeline}/${input.stage}\n`,
            author,
          );
        });
        await workspace.push(empty, render.to, undefined);
        continue;
      }
      const source = await sourceCommit(workspace, input, head);
      const pullRequest = pr ? { pullRequest: { head: destination, base: render.to } } : {};

      const [history, previous] = target
        ? await Promise.all([
            workspace.recentCommits(pr ? (written ?? target) : target, idempotencyDepth),
            readRenderedState(workspace, target, render.to),
          ])
        : [[], undefined];
      const earlier = findPromotionCommit(history, input);
      if (earlier) {
        // This promotion's commit is already on the branch: an earlier attempt pushed it and then died.
        const state = earlier.sha === target ? previous : await readRenderedState(workspace, earlier.sha, render.to);
        return {
          commit: earlier.sha,
          sourceCommit: earlier.trailers[TRAILERS.source]?.[0] ?? source,
          created: false,
          files: state?.files.length ?? 0,
          ...pullRequest,
        };
      }

      if (rendered?.source !== source) {
        rendered = await renderFiles(workspace, input, from, source, engine);
        progress({ step: 'rendered', attempt, files: rendered.files.length });
      }
      const { files, stateBlob } = rendered;
      // The stage branch's tree, to tell an unchanged render (history is the promotion branch's for a pull request).
      const targetTree = !pr
        ? history[0]?.tree
        : target
          ? (await workspace.recentCommits(target, 1))[0]?.tree
          : undefined;

      const commit = await workspace.withTemporaryIndex(async (index) => {
        await index.read(target);
        await index.update(previous?.files ?? [], files);
        // Unchanged manifests make no commit, even though the record (freight, source commit) would differ.
        if (previous && targetTree && (await index.writeTree()) === targetTree) return undefined;
        await index.update([], [{ mode: '100644', object: stateBlob, path: RENDERED_STATE_PATH }]);
        return workspace.commitTree(
          await index.writeTree(),
          target ? [target] : [],
          commitMessage(input, `Rendered ${input.render.from} from ${input.repo.branch}`, source),
          author,
        );
      });
      // Nothing to change: the stage is already at this render, and a pull request would be empty.
      if (!commit) return { commit: target!, sourceCommit: source, created: false, files: files.length };

      progress({ step: 'pushing', attempt, commit, branch: destination });
      // The promotion branch is Ferry's alone: a new attempt replaces what an earlier run left there.
      if ((await workspace.push(commit, destination, pr ? written : target)) === 'pushed') {
        progress({ step: 'pushed', attempt, commit });
        return { commit, sourceCommit: source, created: true, files: files.length, ...pullRequest };
      }
      progress({ step: 'branch-moved', attempt });
    }
    throw ApplicationFailure.retryable(
      `${workspace.displayUrl}: branch ${destination} kept moving while Ferry pushed (${maxPushAttempts} attempts); another writer is pushing to it`,
      'PushConflict',
    );
  }

  /** `pull-request` into a directory: the directory strategy's edit, as a commit on a promotion branch. */
  async function pullRequestIntoDirectory(
    input: RenderAndPushInput,
    progress: (details: Record<string, unknown>) => void,
  ): Promise<RenderAndPushResult> {
    const { repo } = input;
    const dir = normalizeDir(input.render.to);
    const workspace = await workspaces.open(repo);
    const destination = promotionBranch(input.pipeline, input.stage, input.freight.id);
    const pullRequest = { pullRequest: { head: destination, base: repo.branch } };
    for (let attempt = 1; attempt <= maxPushAttempts; attempt++) {
      await workspace.fetch(repo.branch, destination);
      const [head, written] = await workspace.heads(repo.branch, destination);
      if (!head) {
        throw ApplicationFailure.nonRetryable(
          `${workspace.displayUrl}: branch ${repo.branch} does not exist`,
          'SourceBranchNotFound',
        );
      }
      if (written) {
        const earlier = findPromotionCommit(await workspace.recentCommits(written, 1), input);
        if (earlier) {
          const sourceCommit = earlier.trailers[TRAILERS.source]?.[0] ?? head;
          return { commit: earlier.sha, sourceCommit, created: false, files: 0, ...pullRequest };
        }
      }
      const files = await editDirectory(workspace, engines.plain!, input, dir, head);
      if (files.length === 0) return { commit: head, sourceCommit: head, created: false, files: 0 };
      const message = commitMessage(input, `Edited ${dir} on ${repo.branch}`, head);
      const [commit] = await writeCommitChain(workspace, head, [{ message, files }], author, destination);
      progress({ step: 'pushing', attempt, commit, branch: destination });
      if ((await workspace.push(commit!, destination, written)) === 'pushed') {
        return { commit: commit!, sourceCommit: head, created: true, files: files.length, ...pullRequest };
      }
    }
    throw ApplicationFailure.retryable(
      `${workspace.displayUrl}: branch ${destination} kept moving while Ferry pushed (${maxPushAttempts} attempts); another writer is pushing to it`,
      'PushConflict',
    );
  }

  return { renderAndPush };
}

/**
 * The commit of repo.branch to render from: the freight's version of a git artifact that is the pipeline's own
 * repository and branch, else the branch's head. A pinned commit must be on the branch (reachable from its head):
 * rendering a commit from elsewhere (a fork, an unmerged branch) would deploy sources nobody merged.
 */
async function sourceCommit(workspace: GitWorkspace, input: RenderAndPushInput, head: string): Promise<string> {
  const own = input.artifacts.find(
    (a) => a.git && a.git.branch === input.repo.branch && sameRepository(a.git.url, input.repo.url),
  );
  const pinned = own ? input.freight.artifacts[own.name] : undefined;
  if (!own || pinned === undefined) return head;
  // Only repo.branch is fetched, so a commit the workspace does not have is not on it either.
  if ((await workspace.isAncestor(pinned, head)) === 'yes') return pinned;
  throw ApplicationFailure.nonRetryable(
    `stage ${input.stage}: freight ${input.freight.id} pins artifact "${own.name}" to commit ${pinned}, which is not on ` +
      `${workspace.displayUrl} branch ${input.repo.branch} (not reachable from its head ${head.slice(0, 12)}); ` +
      'register freight with a commit of that branch',
    'SourceCommitNotOnBranch',
  );
}

interface Rendered {
  /** The commit of repo.branch this was rendered from. */
  source: string;
  /** Tree entries of the rendered files, their blobs already in the workspace. */
  files: TreeEntry[];
  /** Blob of the `.ferry/rendered.json` that records them. */
  stateBlob: string;
}

/** Reads `from` at `source`, renders it, and stores the result and its record as blobs. */
async function renderFiles(
  workspace: GitWorkspace,
  input: RenderAndPushInput,
  from: string,
  source: string,
  engine: RenderEngine,
): Promise<Rendered> {
  const where = `${workspace.displayUrl} branch ${input.repo.branch} at ${source.slice(0, 12)}`;
  const listed = await workspace.listFiles(source, from);
  if (listed === 'missing' || listed === 'not-a-directory') {
    throw ApplicationFailure.nonRetryable(
      `stage ${input.stage}: render.from "${from || '.'}" ${listed === 'missing' ? 'does not exist' : 'is a file, not a directory'} in ${where}`,
      'SourcePathNotFound',
    );
  }
  const contents = await workspace.readObjects(listed.map((e) => e.object));
  const sources = listed.map((entry, i) => ({ entry, content: contents[i]! }));
  const reader: SourceReader = {
    async list(dir) {
      const entries = await workspace.listFiles(source, normalizeDir(dir));
      if (typeof entries === 'string') return entries;
      const read = await workspace.readObjects(entries.map((e) => e.object));
      return entries.map((e, i) => ({ path: e.path, content: read[i]! }));
    },
  };
  const output = await renderForStage(
    engine,
    {
      pipeline: input.pipeline,
      from,
      files: sources.map(({ entry, content }) => ({ path: entry.path, content })),
      source: reader,
      render: input.render,
      artifacts: input.artifacts,
      versions: input.freight.artifacts,
    },
    { stage: input.stage, doing: 'rendering', where },
  );
  for (const file of output) checkOutputPath(file.path, input.stage);

  const state: RenderedState = {
    pipeline: input.pipeline,
    stage: input.stage,
    freight: input.freight.id,
    sourceCommit: source,
    from,
    files: output.map((f) => f.path).sort(),
  };
  // Files the engine passed through keep their blob; only edited ones (and the record) are written.
  const unchanged = new Map(sources.map(({ entry, content }) => [content, entry] as const));
  const modes = new Map(listed.map((e) => [e.path, e.mode] as const));
  const toWrite = output.filter((file) => !unchanged.has(file.content));
  const written = await workspace.writeBlobs([
    ...toWrite.map((f) => f.content),
    Buffer.from(`${JSON.stringify(state, null, 2)}\n`),
  ]);
  const ids = new Map(toWrite.map((file, i) => [file, written[i]!] as const));
  return {
    source,
    files: output.map((file) => ({
      path: file.path,
      mode: modes.get(file.path) ?? '100644',
      object: unchanged.get(file.content)?.object ?? ids.get(file)!,
    })),
    stateBlob: written[written.length - 1]!,
  };
}

function checkOutputPath(path: string, stage: string): void {
  const ok = branchPath.safeParse(path).success && path !== RENDERED_STATE_PATH && !path.startsWith('.ferry/');
  if (!ok) {
    throw ApplicationFailure.nonRetryable(
      `stage ${stage}: the render produced "${path}", which Ferry cannot write (paths must be relative and outside .ferry/)`,
      'InvalidManifest',
    );
  }
}

async function readRenderedState(
  workspace: GitWorkspace,
  commit: string,
  branch: string,
): Promise<RenderedState | undefined> {
  const [content] = await workspace.readObjects([`${commit}:${RENDERED_STATE_PATH}`]);
  if (!content) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(content.toString('utf8'));
  } catch (err) {
    parsed = err;
  }
  const result = RenderedStateSchema.safeParse(parsed);
  if (!result.success) {
    const why =
      parsed instanceof Error
        ? parsed.message
        : result.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ');
    throw ApplicationFailure.nonRetryable(
      `${workspace.displayUrl} branch ${branch}: ${RENDERED_STATE_PATH} at ${commit.slice(0, 12)} is not Ferry's record of the files it wrote (${why}); restore or delete it`,
      'InvalidRenderedState',
    );
  }
  return result.data;
}
