// Freight: one set of artifact versions that travels together. Its id is a content hash, so registering the same
// versions twice (from CI retries, two webhooks, a human) always lands on the same freight.
import { createHash } from 'node:crypto';
import { formatPath, type SpecError } from './load';
import type { Pipeline } from './schema';

/** An image tag as the OCI distribution spec allows it. */
export const IMAGE_TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** An image digest; only sha256, the algorithm registries use, written as OCI requires (lowercase hex). */
export const IMAGE_DIGEST = /^sha256:[a-f0-9]{64}$/;

/**
 * The id of the freight holding these versions: the first 12 hex digits of the sha256 of the JSON encoding of the
 * `[name, version]` pairs sorted by name. This encoding is a contract: changing it changes every freight id.
 */
export function freightId(artifacts: Record<string, string>): string {
  const pairs = Object.keys(artifacts)
    .sort()
    .map((name) => [name, artifacts[name]]);
  return createHash('sha256').update(JSON.stringify(pairs)).digest('hex').slice(0, 12);
}

/**
 * Checks freight against a pipeline: an object naming a version for every artifact of the pipeline and nothing
 * else. Paths read `artifacts.guestbook`. An empty list means the freight is valid.
 */
export function validateFreight(pipeline: Pipeline, artifacts: unknown): SpecError[] {
  const declared = pipeline.spec.artifacts;
  const known = declared.map((a) => a.name);
  if (typeof artifacts !== 'object' || artifacts === null || Array.isArray(artifacts)) {
    const example = Object.fromEntries(known.map((name) => [name, '1.0.0']));
    return [
      {
        path: 'artifacts',
        message: `must be an object of artifact name → version, e.g. ${JSON.stringify(example)}; got ${Array.isArray(artifacts) ? 'a list' : artifacts === null ? 'null' : typeof artifacts}`,
      },
    ];
  }

  const given = artifacts as Record<string, unknown>;
  const errors: SpecError[] = [];
  for (const [name, version] of Object.entries(given)) {
    const path = formatPath([name], 'artifacts');
    if (!known.includes(name)) {
      errors.push({
        path,
        message: `unknown artifact "${name}"; pipeline "${pipeline.metadata.name}" has ${known.map((k) => `"${k}"`).join(', ')}`,
      });
    } else if (typeof version !== 'string') {
      errors.push({
        path,
        message: `must be a version string (an image tag or sha256:<digest>), not ${version === null ? 'null' : typeof version}`,
      });
    } else if (!IMAGE_TAG.test(version) && !IMAGE_DIGEST.test(version)) {
      errors.push({
        path,
        message: `${JSON.stringify(version)} is not an image tag ([A-Za-z0-9_][A-Za-z0-9_.-], at most 128 characters) or a digest (sha256: and 64 lowercase hex digits)`,
      });
    }
  }
  for (const artifact of declared) {
    if (!Object.prototype.hasOwnProperty.call(given, artifact.name)) {
      errors.push({
        path: formatPath([artifact.name], 'artifacts'),
        message: `Required: a version of ${artifact.image}`,
      });
    }
  }
  return errors;
}
