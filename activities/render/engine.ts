// The render-engine contract: an engine turns a stage's source files plus freight into the files Ferry writes to
// the stage's branch. Engines do no git and no network: the git activity hands them the source files of `from` and
// a reader for other directories of the same commit (kustomize bases, helm `file://` dependencies), and owns where
// the output goes. `plain` is pure; `kustomize` and `helm` run their binary on a private temporary copy of the
// sources, so each is tested against what that binary produces alone.
import type { Artifact, RenderSpec } from '../../pipeline/schema';
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
   * `RenderFailed`) naming the file and line, or the tool's own message, when the input cannot be rendered:
   * retrying will not help. A missing binary is type `RenderToolMissing`.
   */
  render(input: RenderInput): Promise<RenderedFile[]>;
}

/** Paths of the render binaries on this worker; an engine whose binary is not given is unavailable. */
export interface RenderTools {
  kustomize?: string;
  helm?: string;
}

/** The engines this worker can run. */
export function createRenderEngines(_tools: RenderTools = {}): Partial<Record<RenderEngineName, RenderEngine>> {
  return { plain: plainEngine };
}
