// Which render binaries this worker really has, found by running them: the worker logs it at start, and the
// `renderToolVersions` activity answers it for `checkRenderTools` (client/render-tools.ts), so that applying a
// pipeline whose stages need kustomize or helm fails at once when the workers lack them, instead of a promotion
// failing later. The API may run on another machine than the workers, hence an activity rather than a local look.
import type { RenderTools } from './engine';
import { runRenderTool, withRenderDir, type RenderToolName } from './tool-process';

/** The version each available binary reports; a binary that is not given or does not run is absent. */
export interface RenderToolVersions {
  kustomize?: string;
  helm?: string;
}

const VERSION_ARGS: Readonly<Record<RenderToolName, readonly string[]>> = {
  kustomize: ['version'],
  helm: ['version', '--template', '{{.Version}}'],
};

const PROBE_TIMEOUT_MS = 15_000;

/** Runs each given binary's version command; never throws. */
export async function probeRenderTools(tools: RenderTools): Promise<RenderToolVersions> {
  const versions: RenderToolVersions = {};
  for (const tool of ['kustomize', 'helm'] as const) {
    const binary = tools[tool];
    if (!binary) continue;
    try {
      const out = await withRenderDir((dir) =>
        runRenderTool({
          tool,
          binary,
          args: VERSION_ARGS[tool],
          cwd: dir.root,
          dir,
          timeoutMs: PROBE_TIMEOUT_MS,
          what: `${tool} ${VERSION_ARGS[tool].join(' ')}`,
        }),
      );
      const version = out.toString('utf8').trim();
      if (version) versions[tool] = version;
    } catch {
      // Not runnable here: the engine is unavailable, which is what the answer says.
    }
  }
  return versions;
}

const probes = new Map<string, Promise<RenderToolVersions>>();

/** The versions of these binaries, probed once per process (the worker's start log and the activity share it). */
export function renderToolVersionsOf(tools: RenderTools): Promise<RenderToolVersions> {
  const key = `${tools.kustomize ?? ''}\0${tools.helm ?? ''}`;
  let probed = probes.get(key);
  if (!probed) {
    probed = probeRenderTools(tools);
    probes.set(key, probed);
  }
  return probed;
}

export function createRenderToolActivities(tools: RenderTools) {
  return {
    /** The render binaries of this worker and their versions. */
    async renderToolVersions(): Promise<RenderToolVersions> {
      return renderToolVersionsOf(tools);
    },
  };
}
