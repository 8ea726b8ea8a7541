// The helm engine: `helm template` of the chart `render.from`, exactly as a user would run it in a checkout of the
// same commit:
//
//   helm package <dependency> --destination <chart>/charts   for each `file://` dependency of the chart
//   helm template <release> <chart> [--namespace NS] [-f <chart>/<values file>]… [--set-string KEY=VALUE]…
//                 [--kube-version V] [--api-versions V]… [--include-crds]
//
// run at the repository root; its stdout is render.output. `render.set` entries with a `file` are written into
// that values file first; entries without one become `--set-string`, in order. Ferry does not download charts: a
// dependency must be vendored in the chart's `charts/` (as `helm dependency build` leaves it) or be a `file://`
// path in the repository, which is packaged from the commit being rendered (replacing a vendored copy of it), as
// `helm dependency build` does for `file://` dependencies. HOME and helm's config, cache and data directories are
// private to the render: no repositories, no registry logins, no plugins, no kubeconfig.
import { gunzipSync } from 'node:zlib';
import { ApplicationFailure } from '@temporalio/common';
import { parse } from 'yaml';
import type { RenderEngine, RenderInput, RenderedFile, SourceFile } from './engine';
import { repositoryPath, resolveInRepository } from './paths';
import { applySetValues, setValueFor } from './set-values';
import { SourceTree } from './source-tree';
import { DEFAULT_RENDER_OUTPUT, DEFAULT_RENDER_TIMEOUT_MS, runRenderTool, withRenderDir } from './tool-process';

export interface HelmEngineOptions {
  /** How long one helm run may take (default 60 s). */
  timeoutMs?: number;
}

interface ChartDependency {
  name: string;
  repository: string;
}

/** The dependencies a Chart.yaml declares; undefined when it cannot be read (helm then says why). */
export function chartDependencies(chartYaml: Buffer): ChartDependency[] | undefined {
  let chart: unknown;
  try {
    chart = parse(chartYaml.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof chart !== 'object' || chart === null) return undefined;
  const deps = (chart as { dependencies?: unknown }).dependencies;
  if (!Array.isArray(deps)) return [];
  return deps.flatMap((d: unknown) => {
    if (typeof d !== 'object' || d === null) return [];
    const { name, repository } = d as { name?: unknown; repository?: unknown };
    return typeof name === 'string' ? [{ name, repository: typeof repository === 'string' ? repository : '' }] : [];
  });
}

/**
 * The charts vendored in a chart's `charts/` directory, by chart name (as helm matches dependencies), with the
 * paths (relative to the chart) that hold each: `charts/<name>-<version>.tgz` archives and `charts/<dir>/` trees.
 * Entries whose name starts with `_` or `.` are skipped, as helm skips them.
 */
export function vendoredCharts(files: readonly SourceFile[]): Map<string, string[]> {
  const charts = new Map<string, string[]>();
  const add = (name: string | undefined, path: string) => {
    if (name !== undefined) charts.set(name, [...(charts.get(name) ?? []), path]);
  };
  for (const file of files) {
    const match = /^charts\/([^/]+)(\/Chart\.yaml)?$/.exec(file.path);
    if (!match || /^[_.]/.test(match[1]!)) continue;
    if (match[2]) add(chartName(file.content), `charts/${match[1]}`);
    else if (match[1]!.endsWith('.tgz')) add(archivedChartName(file.content), file.path);
  }
  return charts;
}

function chartName(chartYaml: Buffer): string | undefined {
  try {
    const name = (parse(chartYaml.toString('utf8')) as { name?: unknown } | null)?.name;
    return typeof name === 'string' ? name : undefined;
  } catch {
    return undefined;
  }
}

/** The name in `<dir>/Chart.yaml` of a chart archive (a gzipped tar), or undefined when it cannot be read. */
export function archivedChartName(archive: Buffer): string | undefined {
  let tar: Buffer;
  try {
    tar = gunzipSync(archive);
  } catch {
    return undefined;
  }
  let paxPath: string | undefined;
  for (let at = 0; at + 512 <= tar.length;) {
    const header = tar.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const text = (from: number, to: number) => header.subarray(from, to).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(text(124, 136).trim() || '0', 8);
    const type = text(156, 157);
    const prefix = text(345, 500);
    const name = paxPath ?? (prefix ? `${prefix}/${text(0, 100)}` : text(0, 100));
    const body = tar.subarray(at + 512, at + 512 + size);
    paxPath = undefined;
    if (type === 'x') paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString('utf8'))?.[1];
    else if (/^[^/]+\/Chart\.yaml$/.test(name)) return chartName(body);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return undefined;
}

export function createHelmEngine(binary: string, options: HelmEngineOptions = {}): RenderEngine {
  const timeoutMs = options.timeoutMs ?? DEFAULT_RENDER_TIMEOUT_MS;
  return {
    name: 'helm',
    async render(input: RenderInput): Promise<RenderedFile[]> {
      const all = input.render.set ?? [];
      const inFiles = all.filter((entry) => entry.file !== undefined);
      const files =
        inFiles.length > 0
          ? applySetValues(input.files, inFiles, input.artifacts, input.versions, { base: input.from })
          : input.files;
      const setStrings = all.flatMap((entry, i) =>
        entry.file === undefined ? [`${entry.key}=${setValueFor(entry, i, input.artifacts, input.versions)}`] : [],
      );
      const helm = input.render.helm;
      const chart = relativeDir(input.from);
      const args = [
        'template',
        helm?.releaseName ?? input.pipeline,
        chart,
        ...(helm?.namespace ? ['--namespace', helm.namespace] : []),
        ...(helm?.valuesFiles ?? []).flatMap((file) => ['-f', relativeDir(repositoryPath(input.from, file))]),
        ...setStrings.flatMap((value) => ['--set-string', value]),
        ...(helm?.kubeVersion ? ['--kube-version', helm.kubeVersion] : []),
        ...(helm?.apiVersions ?? []).flatMap((version) => ['--api-versions', version]),
        ...(helm?.includeCRDs ? ['--include-crds'] : []),
      ];
      const stdout = await withRenderDir(async (dir) => {
        const tree = new SourceTree(dir.sources, input.source);
        await tree.addDirectory(input.from, files);
        const run = (runArgs: string[], what: string) =>
          runRenderTool({ tool: 'helm', binary, args: runArgs, cwd: dir.sources, dir, timeoutMs, what });
        await prepareDependencies(tree, input.from, files, run, []);
        return run(args, `helm template ${input.from || '.'}`);
      });
      return [{ path: input.render.output ?? DEFAULT_RENDER_OUTPUT, content: stdout }];
    },
  };
}

/** `./dir`: helm takes a path that does not start with `.` or `/` for a chart in a repository when it is missing. */
function relativeDir(path: string): string {
  return path === '' ? '.' : `./${path}`;
}

/**
 * Checks that each dependency of the chart in `dir` is vendored or local, and packages the `file://` ones (with
 * their own `file://` dependencies first) into the chart's `charts/`.
 */
async function prepareDependencies(
  tree: SourceTree,
  dir: string,
  files: readonly SourceFile[],
  run: (args: string[], what: string) => Promise<Buffer>,
  within: readonly string[],
): Promise<void> {
  const chartYaml = files.find((f) => f.path === 'Chart.yaml');
  const dependencies = chartYaml ? chartDependencies(chartYaml.content) : undefined;
  if (!dependencies) return; // helm reports a missing or broken Chart.yaml itself
  const file = repositoryPath(dir, 'Chart.yaml');
  const vendored = vendoredCharts(files);
  const fail = (message: string): never => {
    throw ApplicationFailure.nonRetryable(`${file}: ${message}`, 'RenderFailed', { file });
  };
  for (const dependency of dependencies) {
    const label = `dependency "${dependency.name}"${dependency.repository ? ` (${dependency.repository})` : ''}`;
    if (!dependency.repository.startsWith('file://')) {
      if (vendored.has(dependency.name)) continue;
      fail(
        `${label} is not vendored in ${repositoryPath(dir, 'charts/')}: Ferry does not download charts; vendor it ` +
          `(run \`helm dependency build ${dir || '.'}\` in the repository and commit ${repositoryPath(dir, 'charts/')}) ` +
          'or refer to a chart in the repository with a file:// repository',
      );
    }
    const path = resolveInRepository(dir, dependency.repository.slice('file://'.length));
    if (path === undefined)
      fail(`${label} points outside the repository; Ferry renders only the repository's own files`);
    const at = path!;
    if (at === dir || within.includes(at)) fail(`${label} is ${at}, which depends on this chart: a cycle`);
    const listed = await tree.copyDirectory(at);
    if (typeof listed === 'string') {
      fail(
        `${label} is ${at || '.'} in the repository, which ${listed === 'missing' ? 'does not exist' : 'is a file'} at this commit`,
      );
    }
    await prepareDependencies(tree, at, listed as SourceFile[], run, [...within, dir]);
    // The chart from the repository replaces a vendored copy of it, as `helm dependency build` would.
    for (const vendoredPath of vendored.get(dependency.name) ?? [])
      await tree.remove(repositoryPath(dir, vendoredPath));
    await run(
      ['package', relativeDir(at), '--destination', relativeDir(repositoryPath(dir, 'charts'))],
      `helm package ${at || '.'} (${label} of ${dir || '.'})`,
    );
  }
}
