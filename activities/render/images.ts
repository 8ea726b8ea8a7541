// Image references and freight versions: how a version (a tag or a digest) is told apart, how a reference splits
// into repository, tag and digest, and how Docker Hub's several spellings of one repository compare equal.
import { ApplicationFailure } from '@temporalio/common';
import { IMAGE_DIGEST, IMAGE_TAG } from '../../pipeline/freight';

export type ImageVersion = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: string };

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
