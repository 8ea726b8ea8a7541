// `render.set`: values Ferry writes from the freight into YAML files besides the image references it always sets, a
// Helm values path or a tag in a config file. As with images, the edit goes through the YAML CST: the value's bytes
// change and nothing else (comments, key order, quoting where possible, indentation), and a file no entry changes
// is returned as the very same Buffer. The branch strategy's engines apply entries to the sources of `render.from`;
// the directory strategy applies them to the stage directory in place.
import { ApplicationFailure } from '@temporalio/common';
import { isAlias, isMap, isScalar, isSeq } from 'yaml';
import type { Document, Node, Pair, YAMLMap, YAMLSeq } from 'yaml';
import { CST } from 'yaml';
import type { Artifact, SetValueSpec } from '../../pipeline/schema';
import type { SourceFile } from './engine';
import { formatImageReference, parseVersion } from './images';
import { repositoryPath } from './paths';
import {
  attachLinesToTheirItems,
  keyOf,
  parseEditableYaml,
  serializeEditedYaml,
  setItemValue,
  setScalarToken,
  type EditableYaml,
} from './yaml-cst';

/**
 * The string a `render.set` entry writes: what of the freight's version of its artifact the entry's `value` asks
 * for. A tag asked of a digest (or the reverse), or a part of an image asked of a git artifact, is a non-retryable
 * `InvalidVersion` naming the artifact and the entry.
 */
export function setValueFor(
  entry: SetValueSpec,
  index: number,
  artifacts: readonly Artifact[],
  versions: Readonly<Record<string, string>>,
): string {
  const value = entry.value ?? 'version';
  const label = `render.set[${index}] (key ${entry.key}, value ${value} of artifact "${entry.artifact}")`;
  const fail = (why: string): never => {
    throw ApplicationFailure.nonRetryable(`${label}: ${why}`, 'InvalidVersion', {
      entry: index,
      artifact: entry.artifact,
    });
  };
  const artifact = artifacts.find((a) => a.name === entry.artifact);
  if (!artifact) {
    return fail(`the pipeline has no artifact "${entry.artifact}" (it has ${artifacts.map((a) => a.name).join(', ')})`);
  }
  const version = versions[artifact.name];
  if (version === undefined) return fail(`the freight has no version of artifact "${artifact.name}"`);
  if (artifact.image === undefined) {
    if (value === 'version') return version;
    return fail(`"${artifact.name}" is a git artifact: its version is a commit id, so only value "version" applies`);
  }
  const parsed = parseVersion(artifact.name, version);
  switch (value) {
    case 'version':
      return version;
    case 'tag':
      if (parsed.kind === 'tag') return parsed.tag;
      return fail(
        `the freight's version of "${artifact.name}" is a digest (${version}), not a tag; ask for value digest or reference, or register freight with a tag`,
      );
    case 'digest':
      if (parsed.kind === 'digest') return parsed.digest;
      return fail(
        `the freight's version of "${artifact.name}" is a tag (${version}), not a digest; ask for value tag or reference, or register freight with a digest`,
      );
    case 'reference':
      return formatImageReference(artifact.image, parsed);
    case 'repository':
      return artifact.image;
  }
}

/**
 * Applies the `render.set` entries that name a `file` to `files` (paths relative to `where.base`, the directory
 * the entries' files are relative to, as a repository path). Returns the files in the same order: the edited ones
 * as new files, the others as they were (the same Buffers). The value at the entry's key path is replaced in every
 * YAML document of the file that has that path; a path no document has, a missing file, or a file that is not YAML
 * is a non-retryable `InvalidManifest` naming the file, the key and, where known, the line.
 */
export function applySetValues(
  files: readonly SourceFile[],
  set: readonly SetValueSpec[],
  artifacts: readonly Artifact[],
  versions: Readonly<Record<string, string>>,
  where: { base: string },
): SourceFile[] {
  const byPath = new Map(files.map((file) => [file.path, file] as const));
  const parsed = new Map<string, EditableYaml>();
  set.forEach((entry, index) => {
    if (entry.file === undefined) return;
    const path = normalizeFile(entry.file);
    const name = repositoryPath(where.base, path);
    const file = byPath.get(path);
    if (!file) {
      throw ApplicationFailure.nonRetryable(
        `${name}: render.set[${index}] (key ${entry.key}): no such file; render.set[].file is relative to ${where.base || 'the repository root'}`,
        'InvalidManifest',
        { file: name, key: entry.key, entry: index },
      );
    }
    const value = setValueFor(entry, index, artifacts, versions);
    let yaml = parsed.get(path);
    if (!yaml) {
      yaml = parseEditableYaml(name, file.content);
      parsed.set(path, yaml);
    }
    setKeyPath(yaml, parseKeyPath(entry.key), value, { name, key: entry.key, index });
  });
  return files.map((file) => {
    const yaml = parsed.get(file.path);
    const edited = yaml ? serializeEditedYaml(yaml) : undefined;
    return edited ? { path: file.path, content: edited } : file;
  });
}

function normalizeFile(path: string): string {
  return path.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
}

interface Segment {
  key: string;
  indexes: number[];
}

/** `spec.containers[0].image` → spec; containers [0]; image. The schema has checked the syntax. */
export function parseKeyPath(path: string): Segment[] {
  return path.split('.').map((part) => {
    const bracket = part.indexOf('[');
    const key = bracket < 0 ? part : part.slice(0, bracket);
    const indexes = bracket < 0 ? [] : [...part.slice(bracket).matchAll(/\[(\d+)\]/g)].map((m) => Number(m[1]));
    return { key, indexes };
  });
}

type Located =
  | { kind: 'pair'; map: YAMLMap; pair: Pair; key: string }
  | { kind: 'item'; seq: YAMLSeq; index: number }
  | { kind: 'missing'; depth: number; why: string; node: Node | null | undefined };

/** Where the key path leads in one document, or why it leads nowhere (and how far it got). */
function locate(doc: Document.Parsed, segments: readonly Segment[]): Located {
  let node: unknown = doc.contents;
  let walked = '';
  let depth = 0;
  const missing = (why: string, at: unknown): Located => ({
    kind: 'missing',
    depth,
    why,
    node: at as Node | null | undefined,
  });
  for (const [s, segment] of segments.entries()) {
    const last = s === segments.length - 1;
    if (isAlias(node))
      return missing(
        `${quoted(walked)} is an alias (${String(node.source)}); Ferry does not edit through aliases`,
        node,
      );
    if (!isMap(node))
      return missing(`${walked ? `${quoted(walked)} is not a map` : 'the document is not a map'}`, node);
    const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === segment.key);
    if (!pair) return missing(`${walked ? quoted(walked) : 'the document'} has no key "${segment.key}"`, node);
    walked = walked ? `${walked}.${segment.key}` : segment.key;
    depth++;
    if (last && segment.indexes.length === 0) return { kind: 'pair', map: node, pair, key: segment.key };
    node = pair.value;
    for (const [i, index] of segment.indexes.entries()) {
      if (isAlias(node)) return missing(`${quoted(walked)} is an alias; Ferry does not edit through aliases`, node);
      if (!isSeq(node)) return missing(`${quoted(walked)} is not a list`, node ?? pair.key);
      if (index >= node.items.length)
        return missing(`${quoted(walked)} has ${node.items.length} item${node.items.length === 1 ? '' : 's'}`, node);
      walked += `[${index}]`;
      depth++;
      if (last && i === segment.indexes.length - 1) return { kind: 'item', seq: node, index };
      node = node.items[index];
    }
  }
  // Unreachable: the last segment returns above.
  return missing('empty key path', node);
}

function quoted(path: string): string {
  return `"${path}"`;
}

interface EntryContext {
  /** The file's repository path. */
  name: string;
  key: string;
  index: number;
}

function setKeyPath(yaml: EditableYaml, segments: readonly Segment[], value: string, entry: EntryContext): void {
  const fail = (why: string, node?: Node | null): never => {
    const offset = node?.range?.[0];
    const line = offset !== undefined ? yaml.lineCounter.linePos(offset).line : undefined;
    throw ApplicationFailure.nonRetryable(
      `${entry.name}${line !== undefined ? `:${line}` : ''}: render.set[${entry.index}]: key ${entry.key}: ${why}`,
      'InvalidManifest',
      { file: entry.name, key: entry.key, entry: entry.index, ...(line !== undefined ? { line } : {}) },
    );
  };
  let found = false;
  let deepest: Extract<Located, { kind: 'missing' }> | undefined;
  for (const doc of yaml.docs) {
    const located = locate(doc, segments);
    if (located.kind === 'missing') {
      if (!deepest || located.depth > deepest.depth) deepest = located;
      continue;
    }
    found = true;
    if (located.kind === 'pair') setPair(located.map, located.pair, located.key, value, fail);
    else setItem(located.seq, located.index, value, fail);
  }
  if (!found) fail(deepest ? `not found: ${deepest.why}` : 'not found: the file has no YAML document', deepest?.node);
}

type Fail = (why: string, node?: Node | null) => never;

function setPair(map: YAMLMap, pair: Pair, key: string, value: string, fail: Fail): void {
  const current = pair.value as Node | null;
  if (isAlias(current)) fail('the value is an alias; Ferry does not edit through aliases', current);
  if (isMap(current) || isSeq(current))
    fail(`the value is a ${isMap(current) ? 'map' : 'list'}, not a single value`, current);
  const token = map.srcToken;
  if (!token || (token.type !== 'block-map' && token.type !== 'flow-collection')) {
    return fail('the map has no source to edit', map);
  }
  if (token.type === 'block-map') attachLinesToTheirItems(token);
  const item = token.items.find((i) => keyOf(i) === key);
  if (!item) return fail('the key has no source to edit', map);
  setItemValue(item, value, token.type === 'flow-collection', token.indent);
}

function setItem(seq: YAMLSeq, index: number, value: string, fail: Fail): void {
  const node = seq.items[index] as Node | null;
  if (!isScalar(node) || !node.srcToken) {
    const what = isAlias(node) ? 'an alias' : isMap(node) ? 'a map' : isSeq(node) ? 'a list' : 'empty';
    return fail(`item ${index} is ${what}, not a single value`, node ?? seq);
  }
  const current = CST.resolveAsScalar(node.srcToken as CST.FlowScalar)?.value ?? String(node.value);
  if (current.trim() === value) return;
  setScalarToken(node.srcToken, value, seq.flow === true, current);
}
