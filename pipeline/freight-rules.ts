// Freight's rules that need no library: what a version looks like and how freight is checked against a pipeline.
// Dependency-free, so the pipeline workflow checks freight in its update validator (one round trip per request)
// with the same messages the API returns; pipeline/freight.ts adds the id (a sha256) for the edges.
import type { Pipeline } from './schema';

/** One mistake in a freight request: `path` names the artifact (`artifacts.guestbook`). */
export interface FreightError {
  path: string;
  message: string;
}

/** An image tag as the OCI distribution spec allows it. */
export const IMAGE_TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** An image digest; only sha256, the algorithm registries use, written as OCI requires (lowercase hex). */
export const IMAGE_DIGEST = /^sha256:[a-f0-9]{64}$/;
/** A git artifact's version: a full commit id, 40 hex digits (SHA-1 repositories) or 64 (SHA-256), lowercase. */
export const COMMIT_SHA = /^([0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * Checks freight against a pipeline: an object naming a version for every artifact of the pipeline and nothing
 * else: an image tag or digest for an image artifact, a full commit id for a git artifact. Paths read
 * `artifacts.guestbook`. An empty list means the freight is valid.
 */
export function validateFreight(pipeline: Pipeline, artifacts: unknown): FreightError[] {
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
  const errors: FreightError[] = [];
  for (const [name, version] of Object.entries(given)) {
    const path = artifactPath(name);
    const artifact = declared.find((a) => a.name === name);
    if (!artifact) {
      errors.push({
        path,
        message: `unknown artifact "${name}"; pipeline "${pipeline.metadata.name}" has ${known.map((k) => `"${k}"`).join(', ')}`,
      });
    } else if (artifact.git) {
      if (typeof version !== 'string' || !COMMIT_SHA.test(version)) {
        errors.push({
          path,
          message: `must be a full commit id of ${artifact.git.url} (40 or 64 lowercase hex digits), not ${typeof version === 'string' ? JSON.stringify(version) : version === null ? 'null' : typeof version}`,
        });
      }
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
        path: artifactPath(artifact.name),
        message: artifact.git
          ? `Required: a commit of ${artifact.git.url} (branch ${artifact.git.branch})`
          : `Required: a version of ${artifact.image}`,
      });
    }
  }
  return errors;
}

/** `artifacts.guestbook`, or `artifacts["my app"]` for a name that is not an identifier (as pipeline paths read). */
function artifactPath(name: string): string {
  return /^[A-Za-z_$][\w$-]*$/.test(name) ? `artifacts.${name}` : `artifacts[${JSON.stringify(name)}]`;
}
