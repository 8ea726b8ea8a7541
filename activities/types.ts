// Inputs and results of Ferry's activities. Workflows `import type` these; results stay small
// (a commit SHA, a status), never whole manifests.
import type { ArgoCdSpec, Artifact, RenderSpec, Repo } from '../pipeline/schema';
import type { Freight } from '../workflows/messages';

export interface RenderAndPushInput {
  pipeline: string;
  stage: string;
  /** Promotion workflow id and run id: the idempotency key written into the commit trailers. */
  promotionId: string;
  runId: string;
  repo: Repo;
  render: RenderSpec;
  artifacts: Artifact[];
  freight: Freight;
}

export interface RenderAndPushResult {
  /** Head of the stage's branch after the step: the new commit, or the unchanged head. */
  commit: string;
  /** Commit of repo.branch the manifests were rendered from. */
  sourceCommit: string;
  /** false when the render changed nothing, or this promotion's commit was already pushed (a retry). */
  created: boolean;
  /** Files written (relative to the branch root); for the promotion's step message. */
  files: number;
  /**
   * `pull-request` only: the promotion branch the commit was pushed to (absent when the render changed nothing,
   * so there is nothing to ask for), and the branch its pull request goes into.
   */
  pullRequest?: { head: string; base: string };
}

export interface ArgoAppRef {
  argocd: ArgoCdSpec;
}

export interface SyncArgoAppInput extends ArgoAppRef {
  /** The commit the app must end up at (40-hex SHA). */
  revision: string;
  /** The branch the stage renders to; the app's targetRevision must track it. */
  branch: string;
  repoUrl: string;
  /** Tag written into the operation's `info` (`ferry.dev/promotion=<tag>`) to correlate it. */
  tag: string;
}

export interface SyncArgoAppResult {
  /** false when an operation tagged for this promotion already existed (a retry). */
  started: boolean;
  /** true when the app has automated sync and Ferry only refreshed it. */
  automated: boolean;
}

export interface WaitArgoAppHealthyInput extends SyncArgoAppInput {
  /** Give up after this long (the stage's argocd.timeout), in milliseconds. */
  timeoutMs: number;
  /**
   * Set for a stage whose branch other stages write too (a directory on spec.repo.branch): a later commit of it that
   * contains `revision` deploys it too. The repository (url, branch, credential name) to check that with.
   */
  sharedBranch?: Repo;
}

export interface WaitArgoAppHealthyResult {
  revision: string;
  health: 'Healthy';
  syncStatus: 'Synced';
  /** How long the wait took, for the step message. */
  waitedMs: number;
}

/**
 * What a promotion checks before it writes anything: credentials resolve, the remote answers, the Argo CD app is
 * readable and tracks what the stage writes. Everything here is read-only.
 */
export interface PreflightInput {
  pipeline: string;
  stage: string;
  repo: Repo;
  render: RenderSpec;
  /** The stage's Argo CD app, when it has one. */
  argocd?: ArgoCdSpec;
}

export interface PreflightResult {
  /** One line per check that passed, for the promotion's step message. */
  checked: string[];
}
