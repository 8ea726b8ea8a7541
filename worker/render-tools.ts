// Which kustomize and helm binaries the worker uses: FERRY_KUSTOMIZE_PATH and FERRY_HELM_PATH when set (`npm run
// tools` installs the pinned versions into .tools/bin, and `npm test` sets both), else `kustomize` and `helm` found
// on the worker's PATH. An engine whose binary is found nowhere is unavailable on this worker.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { RenderTools } from '../activities/render/engine';
import { RENDER_TOOL_ENV, type RenderToolName } from '../activities/render/tool-process';
import type { RenderToolVersions } from '../activities/render/tools-activity';

export function findRenderTools(env: NodeJS.ProcessEnv): RenderTools {
  const tools: RenderTools = {};
  for (const tool of ['kustomize', 'helm'] as const) {
    const path = env[RENDER_TOOL_ENV[tool]] || onPath(tool, env.PATH ?? '');
    if (path) tools[tool] = path;
  }
  return tools;
}

function onPath(name: string, path: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** One line for the worker's start: each engine with its binary and version, or why it is unavailable. */
export function describeRenderTools(tools: RenderTools, versions: RenderToolVersions): string {
  const engines = (['kustomize', 'helm'] as const).map((tool: RenderToolName) => {
    const binary = tools[tool];
    if (!binary) return `${tool} unavailable (set ${RENDER_TOOL_ENV[tool]} or put ${tool} on PATH)`;
    const version = versions[tool];
    return version ? `${tool} ${version} (${binary})` : `${tool} unavailable (${binary} does not run)`;
  });
  return `render engines: plain, ${engines.join(', ')}`;
}
