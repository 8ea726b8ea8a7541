// The kustomize engine: `kustomize build` of `render.from` with the freight's images set, exactly as a user would
// run it in a checkout of the same commit:
//
//   kustomize edit set image <name>=*:<tag>…   (or <name>=*@<digest>), in render.from
//   kustomize build <render.from>             at the repository root; its stdout is render.output
//
// The sources come from the commit through the SourceReader: `from` and, recursively, every local path its
// kustomizations refer to (resources, bases, components, patches, generators' files, …), copied into a private
// directory with the repository's layout. Remote references (URLs, `github.com/…`) and paths leading outside the
// repository are refused before kustomize runs: kustomize runs without network and without the worker's files.
// Helm inflation (`--enable-helm`) and exec/alpha plugins stay off, as they are by default.
import { ApplicationFailure } from '@temporalio/common';
import { parse } from 'yaml';
import type { RenderEngine, RenderInput, RenderedFile } from './engine';
import { normalizeRepository, parseImageReference, parseVersion } from './images';
import { repositoryPath, resolveInRepository } from './paths';
import { applySetValues } from './set-values';
import { SourceTree } from './source-tree';
import { DEFAULT_RENDER_OUTPUT, DEFAULT_RENDER_TIMEOUT_MS, runRenderTool, withRenderDir } from './tool-process';

/** The names kustomize looks for in a directory, in its order. */
export const KUSTOMIZATION_FILE_NAMES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'] as const;

/** What a kustomization refers to, as written in it (relative to its directory). */
export interface KustomizationReferences {
  /** Entries that may be a directory (another kustomization) or a file: resources, bases, components, … */
  paths: ReferenceEntry[];
  /** Entries that are files: patches, generator sources, CRDs, OpenAPI schema, replacements, configurations. */
  files: ReferenceEntry[];
}

export interface ReferenceEntry {
  /** The field it came from, for messages: `resources`, `patches[1].path`, `configMapGenerator[0].files`. */
  field: string;
  path: string;
}

/**
 * The local paths a kustomization (parsed YAML) refers to. Inline content (a patch or transformer written in the
 * kustomization itself) is not a path and is left out; remote references are kept, for the caller to refuse.
 */
export function kustomizationReferences(kustomization: unknown): KustomizationReferences {
  const refs: KustomizationReferences = { paths: [], files: [] };
  if (!isRecord(kustomization)) return refs;
  const k = kustomization;
  const add = (into: ReferenceEntry[], field: string, value: unknown) => {
    // A path is one line; a multi-line string is an inline patch or transformer.
    if (typeof value === 'string' && value.trim() !== '' && !value.includes('\n')) {
      into.push({ field, path: value.trim() });
    }
  };
  const each = (value: unknown, fn: (item: unknown, i: number) => void) => {
    if (Array.isArray(value)) value.forEach(fn);
  };

  for (const field of ['resources', 'bases', 'components', 'transformers', 'generators', 'validators']) {
    each(k[field], (item) => add(refs.paths, field, item));
  }
  for (const field of ['patchesStrategicMerge', 'crds', 'configurations']) {
    each(k[field], (item) => add(refs.files, field, item));
  }
  for (const field of ['patches', 'patchesJson6902', 'replacements']) {
    each(k[field], (item, i) => {
      if (isRecord(item)) add(refs.files, `${field}[${i}].path`, item.path);
    });
  }
  for (const field of ['configMapGenerator', 'secretGenerator']) {
    each(k[field], (item, i) => {
      if (!isRecord(item)) return;
      // `files` entries may name their key: `key=path`.
      each(item.files, (f) =>
        add(refs.files, `${field}[${i}].files`, typeof f === 'string' ? f.slice(f.indexOf('=') + 1) : f),
      );
      each(item.envs, (f) => add(refs.files, `${field}[${i}].envs`, f));
      add(refs.files, `${field}[${i}].env`, item.env);
    });
  }
  if (isRecord(k.openapi)) add(refs.files, 'openapi.path', k.openapi.path);
  if (Array.isArray(k.helmCharts) && k.helmCharts.length > 0) {
    const home = isRecord(k.helmGlobals) ? k.helmGlobals.chartHome : undefined;
    add(refs.paths, 'helmGlobals.chartHome', typeof home === 'string' ? home : 'charts');
    k.helmCharts.forEach((chart, i) => {
      if (!isRecord(chart)) return;
      add(refs.files, `helmCharts[${i}].valuesFile`, chart.valuesFile);
      each(chart.additionalValuesFiles, (f) => add(refs.files, `helmCharts[${i}].additionalValuesFiles`, f));
    });
  }
  return refs;
}

/** Whether a reference kustomize would fetch over the network: a URL, an scp-style git address, `host.tld/path`. */
export function isRemoteReference(path: string): boolean {
  return (
    /^[a-z][a-z0-9+.-]*:\/\//i.test(path) ||
    /^git@/.test(path) ||
    /^git::/.test(path) ||
    /\?(ref|version|submodules|timeout)=/.test(path) ||
    /^[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}\//i.test(path)
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The kustomization file among a directory's files (paths relative to it), as kustomize picks it. */
export function kustomizationFileOf(files: readonly { path: string }[]): string | undefined {
  return KUSTOMIZATION_FILE_NAMES.find((name) => files.some((f) => f.path === name));
}

/**
 * Copies the kustomization in `dir` and everything it refers to, recursively, into the tree. A reference that is
 * not in the repository is left for kustomize to report, unless it is remote (refused here: kustomize would fetch
 * it); a reference outside the repository is refused.
 */
export async function copyKustomization(tree: SourceTree, dir: string, visited = new Set<string>()): Promise<void> {
  if (visited.has(dir)) return;
  visited.add(dir);
  const listed = await tree.copyDirectory(dir);
  if (typeof listed === 'string') return;
  const name = kustomizationFileOf(listed);
  if (!name) return;
  const file = repositoryPath(dir, name);
  let parsed: unknown;
  try {
    parsed = parse(listed.find((f) => f.path === name)!.content.toString('utf8'));
  } catch {
    return; // kustomize reports its own file's syntax
  }
  const refs = kustomizationReferences(parsed);
  const resolve = (entry: ReferenceEntry): string => {
    const path = resolveInRepository(dir, entry.path);
    if (path === undefined) {
      throw ApplicationFailure.nonRetryable(
        `${file}: ${entry.field} entry "${entry.path}" points outside the repository; Ferry renders only the repository's own files`,
        'RenderFailed',
        { file, field: entry.field },
      );
    }
    return path;
  };
  const refuseIfRemote = (entry: ReferenceEntry) => {
    if (!isRemoteReference(entry.path)) return;
    throw ApplicationFailure.nonRetryable(
      `${file}: ${entry.field} entry "${entry.path}" is a remote reference, which Ferry does not fetch: kustomize ` +
        "runs without network on the repository's own files; vendor it into the repository and refer to it by path",
      'RenderFailed',
      { file, field: entry.field },
    );
  };
  for (const entry of refs.paths) {
    const path = resolve(entry);
    const found = await tree.list(path);
    if (found === 'missing') refuseIfRemote(entry);
    else if (found === 'not-a-directory') await tree.copyFile(path);
    else await copyKustomization(tree, path, visited);
  }
  for (const entry of refs.files) {
    const path = resolve(entry);
    if ((await tree.copyFile(path)) === undefined) {
      // A directory given where kustomize wants a file: copy it, and let kustomize say what it thinks.
      if ((await tree.copyDirectory(path)) === 'missing') refuseIfRemote(entry);
    }
  }
}

/**
 * The `kustomize edit set image` arguments for the freight: `<name>=*:<tag>` (or `=*@<digest>`) for each image
 * artifact, under the artifact's repository and under the name of every `images:` entry of the kustomization that
 * already maps an image onto it (`name: app, newName: <repository>`), so that the entry's own tag does not win.
 * `*` keeps an entry's `newName` (a mirror) as it is.
 */
export function setImageArguments(
  kustomization: unknown,
  artifacts: RenderInput['artifacts'],
  versions: RenderInput['versions'],
): string[] {
  const entries = isRecord(kustomization) && Array.isArray(kustomization.images) ? kustomization.images : [];
  const names = new Map<string, string>();
  for (const artifact of artifacts) {
    const version = versions[artifact.name];
    if (artifact.image === undefined || version === undefined) continue;
    const parsed = parseVersion(artifact.name, version);
    const value = parsed.kind === 'tag' ? `*:${parsed.tag}` : `*@${parsed.digest}`;
    const repository = normalizeRepository(artifact.image);
    const aliases = entries.flatMap((entry) => {
      if (!isRecord(entry) || typeof entry.name !== 'string') return [];
      const target = typeof entry.newName === 'string' ? entry.newName : entry.name;
      const matches = [entry.name, target].some(
        (n) => normalizeRepository(parseImageReference(n).repository) === repository,
      );
      return matches ? [entry.name] : [];
    });
    for (const name of [artifact.image, ...aliases]) if (!names.has(name)) names.set(name, value);
  }
  return [...names].map(([name, value]) => `${name}=${value}`);
}

export interface KustomizeEngineOptions {
  /** How long one kustomize run may take (default 60 s). */
  timeoutMs?: number;
}

export function createKustomizeEngine(binary: string, options: KustomizeEngineOptions = {}): RenderEngine {
  const timeoutMs = options.timeoutMs ?? DEFAULT_RENDER_TIMEOUT_MS;
  return {
    name: 'kustomize',
    async render(input: RenderInput): Promise<RenderedFile[]> {
      const set = (input.render.set ?? []).filter((entry) => entry.file !== undefined);
      const files =
        set.length > 0
          ? applySetValues(input.files, set, input.artifacts, input.versions, { base: input.from })
          : input.files;
      const stdout = await withRenderDir(async (dir) => {
        const tree = new SourceTree(dir.sources, input.source);
        await tree.addDirectory(input.from, files);
        await copyKustomization(tree, input.from);
        const kustomize = (args: string[], cwd: string, what: string) =>
          runRenderTool({ tool: 'kustomize', binary, args, cwd, dir, timeoutMs, what });
        const name = kustomizationFileOf(files);
        const images = setImageArguments(name ? parseQuietly(files, name) : undefined, input.artifacts, input.versions);
        if (name && images.length > 0) {
          await kustomize(
            ['edit', 'set', 'image', ...images],
            tree.pathOf(input.from),
            `kustomize edit set image (in ${input.from || '.'})`,
          );
        }
        return kustomize(['build', input.from || '.'], dir.sources, `kustomize build ${input.from || '.'}`);
      });
      return [{ path: input.render.output ?? DEFAULT_RENDER_OUTPUT, content: stdout }];
    },
  };
}

function parseQuietly(files: readonly { path: string; content: Buffer }[], name: string): unknown {
  try {
    return parse(files.find((f) => f.path === name)!.content.toString('utf8'));
  } catch {
    return undefined;
  }
}
