// The plain render engine: the stage's manifests are written as they are, except that references to the
// pipeline's images are set to the freight's versions. People review these branches as diffs, so an edit touches
// the bytes of the changed value and nothing else: files are edited through the YAML CST (comments, key order,
// quoting and indentation survive), and a file with nothing to change is returned as the very same Buffer.
// After the images, the stage's `render.set` values are set in the files they name.
import { CST, isMap, isScalar, isSeq, visit } from 'yaml';
import type { Document, Scalar, YAMLMap } from 'yaml';
import type { Artifact } from '../../pipeline/schema';
import type { RenderEngine, RenderInput, RenderedFile } from './engine';
import {
  formatImageReference,
  normalizeRepository,
  parseImageReference,
  parseVersion,
  type ImageVersion,
} from './images';
import { repositoryPath } from './paths';
import { applySetValues } from './set-values';
import {
  addItem,
  attachLinesToTheirItems,
  keyOf,
  parseEditableYaml,
  removeItem,
  serializeEditedYaml,
  setItemValue,
  setScalarToken,
  type MapToken,
} from './yaml-cst';

const CONTAINER_LISTS = new Set(['containers', 'initContainers', 'ephemeralContainers']);
const KUSTOMIZATION_FILES = new Set(['kustomization.yaml', 'kustomization.yml', 'Kustomization']);

// The image helpers are also the git activity's (commit messages) and the tests' way in.
export {
  formatImageReference,
  normalizeRepository,
  parseImageReference,
  parseVersion,
  type ImageReference,
  type ImageVersion,
} from './images';

/** What one artifact's version turns into: the repository it manages and the version to set. */
interface ImageTarget {
  artifact: string;
  version: ImageVersion;
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
    const withImages = input.files.map((file) => {
      if (targets.size === 0 || !isYamlFile(file.path)) return { path: file.path, content: file.content };
      const edited = setImagesInYaml(repositoryPath(input.from, file.path), file.content, targets);
      return { path: file.path, content: edited ?? file.content };
    });
    const set = (input.render.set ?? []).filter((entry) => entry.file !== undefined);
    if (set.length === 0) return withImages;
    return applySetValues(withImages, set, input.artifacts, input.versions, { base: input.from });
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

/**
 * Returns the edited file, or undefined when nothing in it refers to the targets' images at another version. `name`
 * is the file's path in the repository, for errors.
 */
function setImagesInYaml(name: string, content: Buffer, targets: Map<string, ImageTarget>): Buffer | undefined {
  const yaml = parseEditableYaml(name, content);
  let changed = false;
  for (const doc of yaml.docs) {
    if (setContainerImages(doc, targets)) changed = true;
    if (isKustomization(name) && setKustomizationImages(doc, targets)) changed = true;
  }
  return changed ? serializeEditedYaml(yaml) : undefined;
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

// ---------------------------------------------------------------------------------------------------------------
// kustomization.yaml `images:` entries

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
