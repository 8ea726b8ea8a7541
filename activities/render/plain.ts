// The plain render engine: the stage's manifests are written as they are, except that references to the
// pipeline's images are set to the freight's versions. People review these branches as diffs, so an edit touches
// the bytes of the changed value and nothing else: files are edited through the YAML CST (comments, key order,
// quoting and indentation survive), and a file with nothing to change is returned as the very same Buffer.
import { ApplicationFailure } from '@temporalio/common';
import { CST, Composer, LineCounter, Parser, isMap, isScalar, isSeq, parse, visit } from 'yaml';
import type { Document, Scalar, YAMLMap } from 'yaml';
import { IMAGE_DIGEST, IMAGE_TAG } from '../../pipeline/freight';
import type { Artifact } from '../../pipeline/schema';
import type { RenderEngine, RenderInput, RenderedFile } from './engine';

const CONTAINER_LISTS = new Set(['containers', 'initContainers', 'ephemeralContainers']);
const KUSTOMIZATION_FILES = new Set(['kustomization.yaml', 'kustomization.yml', 'Kustomization']);

export type ImageVersion = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: string };

/** What one artifact's version turns into: the repository it manages and the version to set. */
interface ImageTarget {
  artifact: string;
  version: ImageVersion;
}

/**
 * A freight version is a tag (`1.4.2`) or a digest (`sha256:…`), as freight registration checks it; anything else
 * would corrupt the manifests.
 */
export function parseVersion(artifact: string, version: string): ImageVersion {
  if (IMAGE_DIGEST.test(version)) return { kind: 'digest', digest: version };
  if (IMAGE_TAG.test(version)) return { kind: 'tag', tag: version };
  throw ApplicationFailure.nonRetryable(
    `freight version "${version}" of artifact "${artifact}" is neither an image tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}) nor a digest (sha256:<64 hex>)`,
    'InvalidVersion',
  );
}

export interface ImageReference {
  /** Everything before the tag and digest, e.g. `host:5000/team/app`. */
  repository: string;
  tag?: string;
  digest?: string;
}

/** Splits `[host[:port]/]path[:tag][@digest]`; a colon before the last slash is a registry port, not a tag. */
export function parseImageReference(reference: string): ImageReference {
  let rest = reference;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  return { repository: rest, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

export function formatImageReference(repository: string, version: ImageVersion): string {
  return version.kind === 'tag' ? `${repository}:${version.tag}` : `${repository}@${version.digest}`;
}

/**
 * Docker Hub images have several spellings (`nginx`, `docker.io/library/nginx`, `index.docker.io/library/nginx`);
 * compare them in one form so an artifact matches however a manifest writes it.
 */
export function normalizeRepository(repository: string): string {
  const parts = repository.split('/');
  const first = parts[0] ?? '';
  const hasRegistry = parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (!hasRegistry) parts.unshift('docker.io');
  if (parts[0] === 'index.docker.io' || parts[0] === 'registry-1.docker.io') parts[0] = 'docker.io';
  if (parts[0] === 'docker.io' && parts.length === 2) parts.splice(1, 0, 'library');
  return parts.join('/');
}

function isYamlFile(path: string): boolean {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return /\.ya?ml$/i.test(base) || base === 'Kustomization';
}

function isKustomization(path: string): boolean {
  return KUSTOMIZATION_FILES.has(path.slice(path.lastIndexOf('/') + 1));
}

export const plainEngine: RenderEngine = {
  name: 'plain',
  async render(input: RenderInput): Promise<RenderedFile[]> {
    const targets = imageTargets(input.artifacts, input.versions);
    return input.files.map((file) => {
      if (targets.size === 0 || !isYamlFile(file.path)) return { path: file.path, content: file.content };
      const edited = setImagesInYaml(file.path, file.content, targets);
      return { path: file.path, content: edited ?? file.content };
    });
  },
};

function imageTargets(
  artifacts: readonly Artifact[],
  versions: Readonly<Record<string, string>>,
): Map<string, ImageTarget> {
  const targets = new Map<string, ImageTarget>();
  for (const artifact of artifacts) {
    const version = versions[artifact.name];
    // Git artifacts choose the commit sources are rendered from (render-and-push.ts), not an image in them.
    if (version === undefined || artifact.image === undefined) continue;
    targets.set(normalizeRepository(artifact.image), {
      artifact: artifact.name,
      version: parseVersion(artifact.name, version),
    });
  }
  return targets;
}

/** Returns the edited file, or undefined when nothing in it refers to the targets' images at another version. */
function setImagesInYaml(path: string, content: Buffer, targets: Map<string, ImageTarget>): Buffer | undefined {
  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, so the CST writes it back.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(content);
  } catch {
    throw ApplicationFailure.nonRetryable(`${path}: invalid YAML: the file is not UTF-8 text`, 'InvalidManifest', {
      file: path,
    });
  }
  const lineCounter = new LineCounter();
  const tokens = Array.from(new Parser(lineCounter.addNewLine).parse(text));
  const docs = Array.from(new Composer({ keepSourceTokens: true }).compose(tokens));
  for (const doc of docs) {
    const error = doc.errors[0];
    if (error) {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      throw ApplicationFailure.nonRetryable(
        `${path}:${line}:${col}: invalid YAML: ${error.message.split('\n')[0]}`,
        'InvalidManifest',
        { file: path, line, column: col },
      );
    }
  }
  let changed = false;
  for (const doc of docs) {
    if (setContainerImages(doc, targets)) changed = true;
    if (isKustomization(path) && setKustomizationImages(doc, targets)) changed = true;
  }
  if (!changed) return undefined;
  const out = tokens.map((token) => CST.stringify(token)).join('');
  return out === text ? undefined : Buffer.from(out, 'utf8');
}

/** `image:` of every entry of every containers/initContainers/ephemeralContainers list, wherever it sits. */
function setContainerImages(doc: Document.Parsed, targets: Map<string, ImageTarget>): boolean {
  let changed = false;
  visit(doc, {
    Pair(_, pair) {
      if (!isScalar(pair.key) || !CONTAINER_LISTS.has(String(pair.key.value)) || !isSeq(pair.value)) return;
      for (const container of pair.value.items) {
        if (!isMap(container)) continue;
        const image = container.get('image', true);
        if (
          isScalar(image) &&
          typeof image.value === 'string' &&
          setImage(image as Scalar<string>, container.flow === true, targets)
        ) {
          changed = true;
        }
      }
    },
  });
  return changed;
}

function setImage(node: Scalar<string>, inFlow: boolean, targets: Map<string, ImageTarget>): boolean {
  const current = node.value.trim();
  const reference = parseImageReference(current);
  const target = targets.get(normalizeRepository(reference.repository));
  if (!target) return false;
  // The manifest's own spelling of the repository is kept; only the tag/digest changes.
  const next = formatImageReference(reference.repository, target.version);
  if (next === current) return false;
  if (!node.srcToken) throw new Error('yaml composer did not keep source tokens');
  setScalarToken(node.srcToken, next, inFlow, node.value);
  return true;
}

/**
 * Sets a scalar's value in the CST, keeping its style. A plain scalar that would read back as something other
 * than the same string (`1.10` is a float, `yes` a boolean in YAML 1.1) is double-quoted instead.
 */
function setScalarToken(token: CST.Token, value: string, inFlow: boolean, previous?: string): void {
  if (token.type === 'block-scalar') {
    // Keep the block's chomping: a `|` scalar's value ends with the newline it had.
    const trailing = /\s*$/.exec(previous ?? '')?.[0] ?? '';
    CST.setScalarValue(token, value + trailing, { afterKey: true, inFlow });
    return;
  }
  const plainIsSafe = readsBackAsString(value, inFlow);
  const keepsStyle = token.type === 'single-quoted-scalar' || token.type === 'double-quoted-scalar' || plainIsSafe;
  CST.setScalarValue(token, value, {
    afterKey: true,
    inFlow,
    ...(keepsStyle ? {} : { type: 'QUOTE_DOUBLE' as const }),
  });
}

function readsBackAsString(value: string, inFlow: boolean): boolean {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_./@:+-]*$/.test(value)) return false;
  if (inFlow && /[,[\]{}]/.test(value)) return false;
  try {
    return parse(value) === value && parse(value, { version: '1.1' }) === value;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// kustomization.yaml `images:` entries

type MapToken = CST.BlockMap | CST.FlowCollection;
type MapItem = CST.BlockMap['items'][number] | CST.FlowCollection['items'][number];

function setKustomizationImages(doc: Document.Parsed, targets: Map<string, ImageTarget>): boolean {
  if (!isMap(doc.contents)) return false;
  const images = doc.contents.get('images', true);
  if (!isSeq(images)) return false;
  let changed = false;
  for (const entry of images.items) {
    if (!isMap(entry)) continue;
    const target = [stringAt(entry, 'name'), stringAt(entry, 'newName')]
      .map((name) =>
        name === undefined ? undefined : targets.get(normalizeRepository(parseImageReference(name).repository)),
      )
      .find((t) => t !== undefined);
    if (!target) continue;
    const token = entry.srcToken;
    if (!token || (token.type !== 'block-map' && token.type !== 'flow-collection')) continue;
    if (setKustomizationImage(token, target.version)) changed = true;
  }
  return changed;
}

function stringAt(map: YAMLMap, key: string): string | undefined {
  const node = map.get(key, true);
  return isScalar(node) && typeof node.value === 'string' ? node.value : undefined;
}

/** A tag sets `newTag` and drops `digest`; a digest sets `digest` and drops `newTag` (kustomize takes either). */
function setKustomizationImage(map: MapToken, version: ImageVersion): boolean {
  const [field, other, value] =
    version.kind === 'tag'
      ? (['newTag', 'digest', version.tag] as const)
      : (['digest', 'newTag', version.digest] as const);
  const inFlow = map.type === 'flow-collection';
  if (map.type === 'block-map') attachLinesToTheirItems(map);
  const fieldIndex = map.items.findIndex((item) => keyOf(item) === field);
  const otherIndex = map.items.findIndex((item) => keyOf(item) === other);
  if (fieldIndex >= 0) {
    let changed = setItemValue(map.items[fieldIndex]!, value, inFlow, map.indent);
    if (otherIndex >= 0) {
      removeItem(map, otherIndex);
      changed = true;
    }
    return changed;
  }
  if (otherIndex >= 0) {
    // Turn `digest: sha256:…` into `newTag: 1.2` in place: same line, same position, same comment.
    const item = map.items[otherIndex]!;
    if (item.key) CST.setScalarValue(item.key, field, { implicitKey: true, inFlow });
    setItemValue(item, value, inFlow, map.indent, true);
    return true;
  }
  addItem(map, field, value);
  return true;
}

function keyOf(item: MapItem): string | undefined {
  return item.key ? CST.resolveAsScalar(item.key)?.value : undefined;
}

function isFlowScalar(token: CST.Token | undefined): token is CST.FlowScalar {
  return token?.type === 'scalar' || token?.type === 'single-quoted-scalar' || token?.type === 'double-quoted-scalar';
}

/** The tokens that end an item's line: a scalar's `end`, or, for a key without a value, its separator. */
function lineEndOf(item: MapItem): CST.SourceToken[] | undefined {
  if (!item.value) return item.sep;
  if (isFlowScalar(item.value)) return (item.value.end ??= []);
  return undefined;
}

function splitAfterFirstNewline(tokens: CST.SourceToken[]): [CST.SourceToken[], CST.SourceToken[]] {
  const newline = tokens.findIndex((t) => t.type === 'newline');
  return newline < 0 ? [tokens, []] : [tokens.slice(0, newline + 1), tokens.slice(newline + 1)];
}

/**
 * The parser files the comments and indentation that follow a key without a value (`newTag:`) under that key,
 * because a nested value could still follow. Give them to the next item, so removing or editing an item moves
 * exactly its own lines.
 */
function attachLinesToTheirItems(map: CST.BlockMap): void {
  for (let i = 0; i + 1 < map.items.length; i++) {
    const item = map.items[i]!;
    if (item.value || !item.sep) continue;
    const [line, following] = splitAfterFirstNewline(item.sep);
    item.sep = line;
    map.items[i + 1]!.start = [...following, ...map.items[i + 1]!.start];
  }
}

function setItemValue(item: MapItem, value: string, inFlow: boolean, indent: number, force = false): boolean {
  if (item.value && (isFlowScalar(item.value) || item.value.type === 'block-scalar')) {
    const current = CST.resolveAsScalar(item.value)?.value;
    if (!force && current?.trim() === value) return false;
    setScalarToken(item.value, value, inFlow, current);
    return true;
  }
  if (item.value) {
    CST.setScalarValue(item.value, value, {
      afterKey: true,
      inFlow,
      ...(readsBackAsString(value, inFlow) ? {} : { type: 'QUOTE_DOUBLE' as const }),
    });
    return true;
  }
  // `newTag:` with no value: the line break and any comment after the colon move behind the new value.
  const sep = item.sep ?? [];
  const indicator = sep.findIndex((t) => t.type === 'map-value-ind');
  const after = sep.slice(indicator + 1);
  const end =
    after[0]?.type === 'space' && (after.length === 1 || after[1]?.type === 'newline') ? after.slice(1) : after;
  item.sep = [...sep.slice(0, indicator + 1), sourceToken('space', ' ', indent)];
  item.value = newScalar(value, indent, inFlow, end);
  return true;
}

function removeItem(map: MapToken, index: number): void {
  const [removed] = map.items.splice(index, 1);
  if (!removed) return;
  const next = map.items[index];
  if (map.type === 'flow-collection') {
    // The first item carries what precedes the first key (`{`); the new first item takes it over without a comma.
    if (index === 0 && next) {
      const rest = next.start.slice(next.start.findIndex((t) => t.type === 'comma') + 1);
      next.start = [...removed.start, ...(rest[0]?.type === 'space' ? rest.slice(1) : rest)];
    }
    return;
  }
  if (index === 0 && next && next.start.every((t) => t.type === 'space')) {
    // The first item of `- name: x` has no indentation of its own: the `- ` is before it.
    next.start = removed.start;
  }
  if (!next) {
    // The last item may hold what follows the map (the indentation of the next line); keep it in the stream.
    const [, following] = splitAfterFirstNewline(lineEndOf(removed) ?? []);
    const previous = map.items[index - 1];
    if (previous && following.length > 0) lineEndOf(previous)?.push(...following);
  }
}

function addItem(map: MapToken, key: string, value: string): void {
  const indent = map.indent;
  const inFlow = map.type === 'flow-collection';
  const keyToken = CST.createScalarToken(key, { indent, end: [] });
  const sep = [sourceToken('map-value-ind', ':', indent), sourceToken('space', ' ', indent)];
  if (map.type === 'flow-collection') {
    const start = map.items.length > 0 ? [sourceToken('comma', ',', indent), sourceToken('space', ' ', indent)] : [];
    map.items.push({ start, key: keyToken, sep, value: newScalar(value, indent, inFlow, []) });
    return;
  }
  const last = map.items[map.items.length - 1];
  // A map at the end of a file without a final newline: the new line goes before the new key instead.
  const endsLine = last === undefined || CST.stringify(last).endsWith('\n');
  const start = [
    ...(endsLine ? [] : [sourceToken('newline', '\n', indent)]),
    sourceToken('space', ' '.repeat(indent), 0),
  ];
  const end = endsLine ? [sourceToken('newline', '\n', indent)] : [];
  map.items.push({ start, key: keyToken, sep, value: newScalar(value, indent, inFlow, end) });
}

function newScalar(
  value: string,
  indent: number,
  inFlow: boolean,
  end: CST.SourceToken[],
): CST.FlowScalar | CST.BlockScalar {
  return CST.createScalarToken(value, {
    indent,
    inFlow,
    end,
    type: readsBackAsString(value, inFlow) ? 'PLAIN' : 'QUOTE_DOUBLE',
  });
}

function sourceToken(type: CST.SourceToken['type'], source: string, indent: number): CST.SourceToken {
  // Offsets only matter to the parser; CST.stringify concatenates sources.
  return { type, offset: 0, indent, source };
}
