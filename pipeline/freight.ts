// Freight: one set of artifact versions that travels together. Its id is a content hash, so registering the same
// versions twice (from CI retries, two webhooks, a human) always lands on the same freight. The checks that need no
// library are in freight-rules.ts (the pipeline workflow runs them too).
import { createHash } from 'node:crypto';

export { IMAGE_DIGEST, IMAGE_TAG, validateFreight, type FreightError } from './freight-rules';

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
