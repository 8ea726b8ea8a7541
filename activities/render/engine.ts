// The render-engine contract: an engine turns a stage's source files plus freight into the files Ferry writes to
// the stage's branch. Engines do no git and no network: the git activity hands them the source files of `from` and
// a reader for other directories of the same commit (kustomize bases, helm `file://` dependencies), and owns where
// the output goes. `plain` is pure; `kustomize` and `helm` run their binary on a private temporary copy of the
// sources, so each is tested against what that binary produces alone.
import { ApplicationFailure } from '@temporalio/common';
import type { Artifact, RenderSpec } from '../../pipeline/schema';
import { createHelmEngine } from './helm';
import { createKustomizeEngine } from './kustomize';
import { plainEngine } from './plain';

/** A file under a source directory; `path` is relative to that directory, with forward slashes. */
export interface SourceFile {
  path: string;
  content: Buffer;
}

/** A file to write on the stage's branch; `path` is relative to the branch root. */
export interface RenderedFile {
  path: string;
  content: Buffer;
}

/** Reads directories of the commit being rendered, for sources outside `from`. */
export interface SourceReader {
  /**
   * Files under `dir` (relative to the repository root, '' for the root) at the commit being rendered, with paths
   * relative to `dir`; 'missing' when nothing is there and 'not-a-directory' when it is a file.
   */
  list(dir: string): Promise<SourceFile[] | 'missing' | 'not-a-directory'>;
}

export interface RenderInput {
  /** The pipeline's name (the default helm release name). */
  pipeline: string;
  /** `render.from` relative to the repository root ('' for the root); `files` are under it. */
  from: string;
  files: readonly SourceFile[];
  /** Other directories of the same commit. */
  source: SourceReader;
  /** The stage's render settings: `set`, `helm`, `output`. */
  render: RenderSpec;
  /** The pipeline's artifacts: which image repositories Ferry manages. */
  artifacts: readonly Artifact[];
  /** Artifact name -> version from the freight: an image tag (`1.4.2`), a digest (`sha256:…`) or a commit id. */
  versions: Readonly<Record<string, string>>;
}

export type RenderEngineName = RenderSpec['engine'];

export interface RenderEngine {
  readonly name: RenderEngineName;
  /**
   * Renders the files. Throws an `ApplicationFailure` (non-retryable, type `InvalidManifest`, `InvalidVersion` or
   * `RenderFailed`) naming the file (by its repository path) and line, or the tool's own message, when the input
   * cannot be rendered: retrying will not help. A missing binary is type `RenderToolMissing`; a binary that runs
   * out of time is stopped and fails retryable, type `RenderTimedOut`.
   */
  render(input: RenderInput): Promise<RenderedFile[]>;
}

/** Paths of the render binaries on this worker; an engine whose binary is not given is unavailable. */
export interface RenderTools {
  kustomize?: string;
  helm?: string;
  /** How long one run of a binary may take before it is stopped, as a retryable failure (default 60 s). */
  timeoutMs?: number;
}

/** The engines this worker can run: plain always, kustomize and helm when their binary is given. */
export function createRenderEngines(tools: RenderTools = {}): Partial<Record<RenderEngineName, RenderEngine>> {
  const options = tools.timeoutMs !== undefined ? { timeoutMs: tools.timeoutMs } : {};
  return {
    plain: plainEngine,
    ...(tools.kustomize ? { kustomize: createKustomizeEngine(tools.kustomize, options) } : {}),
    ...(tools.helm ? { helm: createHelmEngine(tools.helm, options) } : {}),
  };
}

/**
 * Runs `engine` for a stage, and says which stage and which commit a failure concerns: the engine's own message
 * (which names files by their repository paths) keeps its type and retryability, with `stage X:` in front and
 * `(<doing> <where>)` behind.
 */
export async function renderForStage(
  engine: RenderEngine,
  input: RenderInput,
  context: { stage: string; doing: 'rendering' | 'editing'; where: string },
): Promise<RenderedFile[]> {
  try {
    return await engine.render(input);
  } catch (err) {
    if (err instanceof ApplicationFailure) {
      throw ApplicationFailure.create({
        message: `stage ${context.stage}: ${err.message} (${context.doing} ${context.where})`,
        type: err.type ?? 'InvalidManifest',
        nonRetryable: err.nonRetryable ?? true,
        details: err.details ? [...err.details] : [],
      });
    }
    throw err;
  }
}
