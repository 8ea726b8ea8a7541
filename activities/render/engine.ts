// The render-engine contract: an engine turns a stage's source files plus freight into the files Ferry writes to
// the stage's branch. Engines are pure (no git, no network, no disk) so each one is tested on strings, and the git
// activity owns everything about where files come from and where they go. kustomize and helm slot in here later.
import type { Artifact, RenderSpec } from '../../pipeline/schema';
import { plainEngine } from './plain';

/** A file under the stage's `from` directory; `path` is relative to `from`, with forward slashes. */
export interface SourceFile {
  path: string;
  content: Buffer;
}

/** A file to write on the stage's branch; `path` is relative to the branch root. */
export interface RenderedFile {
  path: string;
  content: Buffer;
}

export interface RenderInput {
  files: readonly SourceFile[];
  /** The pipeline's artifacts: which image repositories Ferry manages. */
  artifacts: readonly Artifact[];
  /** Artifact name -> version from the freight: an image tag (`1.4.2`) or a digest (`sha256:…`). */
  versions: Readonly<Record<string, string>>;
}

export type RenderEngineName = RenderSpec['engine'];

export interface RenderEngine {
  readonly name: RenderEngineName;
  /**
   * Renders the files. Throws an `ApplicationFailure` (non-retryable, type `InvalidManifest` or
   * `InvalidVersion`) naming the file and line when the input cannot be rendered: retrying will not help.
   */
  render(input: RenderInput): Promise<RenderedFile[]>;
}

export const renderEngines: Record<RenderEngineName, RenderEngine> = {
  plain: plainEngine,
};
