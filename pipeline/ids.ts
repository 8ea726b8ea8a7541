// Ferry's identifiers in one place: workflow ids, the freight id's shape, the requester of automatic promotions.
// Dependency-free, so workflow code may import it (the freight id itself is computed in pipeline/freight.ts).

/** Workflow ids are readable and deterministic; the same request never starts two workflows. */
export const pipelineWorkflowId = (pipeline: string): string => `pipeline/${pipeline}`;
export const promotionWorkflowId = (pipeline: string, stage: string, freight: string): string =>
  `promotion/${pipeline}/${stage}/${freight}`;

/** What a promotion id looks like: promotion/<pipeline>/<stage>/<freight>. */
export const PROMOTION_ID = /^promotion\/[a-z0-9-]+\/[a-z0-9-]+\/[0-9a-f]+$/;

/** A freight id: the first 12 hex digits of a sha256 (older freight may carry a longer or shorter prefix). */
export const FREIGHT_ID = /^[0-9a-f]{6,64}$/;

/** The requester recorded on promotions the pipeline starts by itself (`promotion: auto`). */
export const AUTO_PROMOTER = 'ferry/auto-promotion';

/** Where a merged pull request (or GitLab merge request) was reported from. */
export type PullRequestProvider = 'github' | 'gitlab' | 'gitea';

/**
 * The FerryPullRequest search attribute of a promotion waiting on a pull request: `github:org/gitops#12`,
 * `gitlab:group/gitops#7`, `gitea:org/gitops#3` (the repository in lowercase; GitLab's merge request iid as the number). The promotion sets
 * it when it opens the pull request; the webhook finds the promotion by it.
 */
export const pullRequestKey = (provider: PullRequestProvider, repository: string, number: number): string =>
  `${provider}:${repository.toLowerCase()}#${number}`;
