// What every commit Ferry makes says about itself: a subject, the versions it wrote, and trailers naming the
// pipeline, stage, freight, promotion and run. The trailers are the idempotency key of every strategy: before
// writing, the branch's recent history is searched for this promotion's run, so an activity retried after a crash
// that followed a successful push finds that commit instead of making a second one.
export { normalizeDir } from '../pipeline/layout';
import type { Artifact } from '../pipeline/schema';
import type { CommitSummary } from './git';
import { formatImageReference, parseVersion } from './render/plain';
import type { RenderAndPushInput } from './types';

export const TRAILERS = {
  pipeline: 'Ferry-Pipeline',
  stage: 'Ferry-Stage',
  freight: 'Ferry-Freight',
  promotion: 'Ferry-Promotion',
  run: 'Ferry-Run',
  source: 'Ferry-Source',
} as const;

/** Trailer values are single lines; ids are written (and compared) in that form. */
export function oneLine(value: string): string {
  return value.replace(/\s+/g, ' ').trim();
}

/** This promotion run's commit among `history`, if an earlier attempt already made it. */
export function findPromotionCommit(
  history: readonly CommitSummary[],
  input: Pick<RenderAndPushInput, 'promotionId' | 'runId'>,
): CommitSummary | undefined {
  return history.find(
    (c) =>
      c.trailers[TRAILERS.promotion]?.includes(oneLine(input.promotionId)) &&
      c.trailers[TRAILERS.run]?.includes(oneLine(input.runId)),
  );
}

/**
 * The commit message: `what` says what was done (`Rendered apps/guestbook/overlays/dev from main`, `Edited envs/prod
 * on main`), then the versions, then the trailers.
 */
export function commitMessage(input: RenderAndPushInput, what: string, source: string): string {
  const artifacts = new Map<string, Artifact>(input.artifacts.map((a) => [a.name, a]));
  const versions = Object.entries(input.freight.artifacts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, version]) => {
      const artifact = artifacts.get(name);
      if (artifact?.image) return `- ${name}: ${formatImageReference(artifact.image, parseVersion(name, version))}`;
      if (artifact?.git) return `- ${name}: ${artifact.git.url} ${artifact.git.branch} at ${version}`;
      return `- ${name}: ${version}`;
    });
  return [
    `ferry: promote ${input.freight.id} to ${input.stage}`,
    '',
    `${what} with:`,
    ...versions,
    '',
    `${TRAILERS.pipeline}: ${oneLine(input.pipeline)}`,
    `${TRAILERS.stage}: ${oneLine(input.stage)}`,
    `${TRAILERS.freight}: ${oneLine(input.freight.id)}`,
    `${TRAILERS.promotion}: ${oneLine(input.promotionId)}`,
    `${TRAILERS.run}: ${oneLine(input.runId)}`,
    `${TRAILERS.source}: ${source}`,
    '',
  ].join('\n');
}
