// The render engines' binaries at the versions Ferry is tested with: kustomize and helm, built with `go install`
// from the Go module proxy into the project's `.tools/bin` (gitignored) when they are not there yet. `npm test` and
// `npm start` call `ensureRenderTools()`; `npm run tools` installs everything the tests need ahead of time (these
// two, the Gitea server the pull-request tests run against, and the Temporal CLI).
//
// A worker outside this project finds its binaries through FERRY_KUSTOMIZE_PATH / FERRY_HELM_PATH or PATH
// (activities/render/tool-process.ts); this file is only how the project provides them for itself.
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { RENDER_TOOL_ENV, type RenderToolName } from '../activities/render/tool-process';
import { isExecutable, LOCAL_TOOLS_DIR } from './temporal';

export const LOCAL_BIN_DIR = join(LOCAL_TOOLS_DIR, 'bin');

interface GoTool {
  /** The package `go install` builds. */
  package: string;
  version: string;
  /** Extra `go install` arguments (helm stamps its version through the linker; a plain build reports `v3.21`). */
  buildFlags: string[];
  /** The arguments that make the binary print its version, and the output expected from this build. */
  versionArgs: string[];
  expectVersion: RegExp;
}

/**
 * Pinned versions. kustomize v5.8.3 requires Go 1.27, which these machines do not have, so v5.8.2; helm v3.22.0 is
 * served by the proxy here but not approved, so v3.21.4.
 */
export const RENDER_TOOLS: Readonly<Record<RenderToolName, GoTool>> = {
  kustomize: {
    package: 'sigs.k8s.io/kustomize/kustomize/v5',
    version: 'v5.8.2',
    buildFlags: [],
    versionArgs: ['version'],
    expectVersion: /^v5\.8\.2\s*$/,
  },
  helm: {
    package: 'helm.sh/helm/v3/cmd/helm',
    version: 'v3.21.4',
    buildFlags: ['-ldflags', '-X helm.sh/helm/v3/internal/version.version=v3.21.4'],
    versionArgs: ['version', '--template', '{{.Version}}'],
    expectVersion: /^v3\.21\.4\s*$/,
  },
};

/** Whether `path` is a binary of the pinned version (a different version in `.tools/bin` is replaced). */
function hasPinnedVersion(path: string, tool: GoTool): boolean {
  if (!isExecutable(path)) return false;
  const run = spawnSync(path, tool.versionArgs, { encoding: 'utf8', timeout: 30_000 });
  return run.status === 0 && tool.expectVersion.test(run.stdout);
}

/**
 * The path of a pinned `name` binary: `.tools/bin/<name>` when it holds the pinned version, else built there with
 * `go install` (about 15 s for kustomize and 90 s for helm on a 2-core machine with an empty Go cache). The build
 * goes to a scratch directory first, so an interrupted build never leaves a half-written binary behind.
 */
export function ensureGoTool(name: RenderToolName, log: (line: string) => void = defaultLog): string {
  const tool = RENDER_TOOLS[name];
  const target = join(LOCAL_BIN_DIR, name);
  if (hasPinnedVersion(target, tool)) return target;
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.status !== 0) {
    throw new Error(
      `${name} ${tool.version} is not installed in ${LOCAL_BIN_DIR} and there is no Go toolchain to build it ` +
        `(\`go version\` failed: ${go.error?.message ?? go.stderr.trim()}). Install Go, or put ${name} on the ` +
        `worker's PATH or in ${RENDER_TOOL_ENV[name]} (README.md, "Tools").`,
    );
  }
  log(`Installing ${name} ${tool.version} into ${LOCAL_BIN_DIR} (go install ${tool.package}@${tool.version}) …`);
  const scratch = join(LOCAL_TOOLS_DIR, `.gobin-${name}-${process.pid}`);
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const started = Date.now();
  const build = spawnSync('go', ['install', ...tool.buildFlags, `${tool.package}@${tool.version}`], {
    stdio: ['ignore', 'inherit', 'inherit'],
    // GOTOOLCHAIN=local: a pinned version that wanted a newer Go must fail here, not fetch a toolchain silently.
    env: { ...process.env, GOBIN: scratch, GOTOOLCHAIN: 'local' },
  });
  const built = join(scratch, name);
  if (build.status !== 0 || !hasPinnedVersion(built, tool)) {
    rmSync(scratch, { recursive: true, force: true });
    throw new Error(
      `go install ${tool.package}@${tool.version} failed (exit ${build.status ?? build.signal}); its output is above`,
    );
  }
  mkdirSync(LOCAL_BIN_DIR, { recursive: true });
  renameSync(built, target);
  rmSync(scratch, { recursive: true, force: true });
  log(`Installed ${name} ${tool.version} in ${Math.round((Date.now() - started) / 1000)} s.`);
  return target;
}

/**
 * The binaries `npm test` and `npm start` give the worker, as the environment that names them. A FERRY_*_PATH the
 * caller already set wins (an operator's own build), else the pinned project-local install.
 */
export function ensureRenderTools(
  env: NodeJS.ProcessEnv = process.env,
  log: (line: string) => void = defaultLog,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(RENDER_TOOLS) as RenderToolName[]) {
    const variable = RENDER_TOOL_ENV[name];
    const given = env[variable];
    if (given) {
      if (!isExecutable(given)) throw new Error(`${variable}=${given} is not an executable file`);
      out[variable] = given;
    } else {
      out[variable] = ensureGoTool(name, log);
    }
  }
  return out;
}

function defaultLog(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * For `npm start`: the pinned binaries that are already installed (FERRY_*_PATH set by the caller win), without
 * building any, so the first start stays quick; the worker reports the engines it lacks, and `npm run tools` adds them.
 */
export function installedRenderTools(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(RENDER_TOOLS) as RenderToolName[]) {
    const variable = RENDER_TOOL_ENV[name];
    const local = join(LOCAL_BIN_DIR, name);
    if (env[variable]) out[variable] = env[variable];
    else if (hasPinnedVersion(local, RENDER_TOOLS[name])) out[variable] = local;
  }
  return out;
}
