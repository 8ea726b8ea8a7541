// Where a stage's manifests live, by strategy: a branch of its own (`branch`, `pull-request` into a branch) or a
// directory on spec.repo.branch (`directory`, `pull-request` into a directory). Dependency-free: the workflows,
// the activities and the API all ask here.
import type { Repo, RenderSpec } from './schema';

export type StageLayout = 'branch' | 'directory';

/** A repository directory without `./` in front or `/` behind; '' for the root. */
export function normalizeDir(path: string): string {
  const trimmed = path.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  return trimmed === '.' ? '' : trimmed;
}

export function stageLayout(render: Pick<RenderSpec, 'strategy' | 'pullRequest'>): StageLayout {
  if (render.strategy === 'directory') return 'directory';
  if (render.strategy === 'pull-request' && render.pullRequest?.target === 'directory') return 'directory';
  return 'branch';
}

/** The branch the stage's Argo CD application tracks: render.to, or spec.repo.branch for a directory stage. */
export function deployedBranch(
  repo: Pick<Repo, 'branch'>,
  render: Pick<RenderSpec, 'strategy' | 'pullRequest' | 'to'>,
): string {
  return stageLayout(render) === 'directory' ? repo.branch : render.to;
}

/** The path the stage's Argo CD application deploys from that branch: the root, or the stage directory. */
export function deployedPath(render: Pick<RenderSpec, 'strategy' | 'pullRequest' | 'to'>): string {
  if (stageLayout(render) === 'branch') return '.';
  return normalizeDir(render.to) || '.';
}

/** A line saying what the stage writes, for messages and summaries. */
export function describeTarget(
  repo: Pick<Repo, 'branch'>,
  render: Pick<RenderSpec, 'strategy' | 'pullRequest' | 'to' | 'from'>,
): string {
  return stageLayout(render) === 'directory'
    ? `directory ${render.to} on ${repo.branch}`
    : `${render.from ?? '.'} into branch ${render.to}`;
}

/**
 * The branch a `pull-request` promotion pushes and opens its pull request from: one per pipeline, stage and
 * freight, so a promotion run again (or retried) finds its own pull request.
 */
export function promotionBranch(pipeline: string, stage: string, freight: string): string {
  return `ferry/${pipeline}/${stage}/${freight}`;
}
