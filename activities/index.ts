// All of Ferry's activities, built from their collaborators. The worker registers the result; workflows import
// the `FerryActivities` type only.
import type { Repo } from '../pipeline/schema';
import { createArgoCdActivities } from './argocd/activities';
import { createGitWorkspaces } from './git';
import { createGateActivities } from './gates/http-gate';
import { createNotifyActivities, type EventEnricher } from './notify';
import { createPreflightActivities } from './preflight';
import { createPullRequestActivities } from './pull-request';
import { createPullRequestWait } from './pull-request/wait';
import { createGitActivities } from './render-and-push';
import type { RenderTools } from './render/engine';
import { createRenderToolActivities } from './render/tools-activity';
import type { SecretResolver } from './secrets';

export interface ActivitiesConfig {
  /** Where cached git workspaces live (one per repository). */
  workspaceRoot: string;
  secrets: SecretResolver;
  /** How often the Argo CD wait polls the app (default: the activity's own default). */
  argoPollIntervalMs?: number;
  /** Whether pipelines may use `file://` repositories (default false; the worker reads FERRY_ALLOW_FILE_REPOS). */
  allowFileRepos?: boolean;
  /** Timeout of each poll of an http gate (default: the activity's own default). */
  gateRequestTimeoutMs?: number;
  /** Base URL of the Temporal UI, for the run link in events (default http://localhost:8233). */
  temporalUiUrl?: string;
  /** How long one HTTP request of an event delivery may take, in milliseconds (default 10 s). */
  notifyTimeoutMs?: number;
  /** Adds to an event right before delivery what must not be in workflow history (see activities/notify). */
  enrichEvent?: EventEnricher;
  /** How long one HTTP request to a git host's API may take, in milliseconds (default 10 s). */
  pullRequestTimeoutMs?: number;
  /** The kustomize and helm binaries of this worker (default none: only the plain engine). */
  renderTools?: RenderTools;
}

export function createActivities(config: ActivitiesConfig) {
  const allowFileRepos = config.allowFileRepos ?? false;
  const workspaces = createGitWorkspaces({
    workspaceRoot: config.workspaceRoot,
    secrets: config.secrets,
    allowFileRepos,
  });
  /** Whether `candidate` contains `commit` on the repository's branch, as of a fresh fetch of that branch. */
  const containsCommit = async (check: { repo: Repo; commit: string; candidate: string }): Promise<boolean> => {
    const workspace = await workspaces.open(check.repo);
    await workspace.fetch(check.repo.branch, check.repo.branch);
    return (await workspace.isAncestor(check.commit, check.candidate)) === 'yes';
  };
  const pullRequests = createPullRequestActivities({
    secrets: config.secrets,
    ...(config.pullRequestTimeoutMs !== undefined ? { requestTimeoutMs: config.pullRequestTimeoutMs } : {}),
  });
  return {
    ...createPreflightActivities({ workspaceRoot: config.workspaceRoot, secrets: config.secrets, allowFileRepos }),
    ...createGitActivities({
      workspaceRoot: config.workspaceRoot,
      secrets: config.secrets,
      allowFileRepos,
      renderTools: config.renderTools ?? {},
    }),
    ...createRenderToolActivities(config.renderTools ?? {}),
    ...createNotifyActivities({
      secrets: config.secrets,
      ...(config.temporalUiUrl !== undefined ? { temporalUiUrl: config.temporalUiUrl } : {}),
      ...(config.notifyTimeoutMs !== undefined ? { requestTimeoutMs: config.notifyTimeoutMs } : {}),
      ...(config.enrichEvent ? { enrich: config.enrichEvent } : {}),
    }),
    ...createArgoCdActivities({
      secrets: config.secrets,
      containsCommit,
      ...(config.argoPollIntervalMs !== undefined ? { pollIntervalMs: config.argoPollIntervalMs } : {}),
    }),
    ...createGateActivities({
      secrets: config.secrets,
      ...(config.gateRequestTimeoutMs !== undefined ? { requestTimeoutMs: config.gateRequestTimeoutMs } : {}),
    }),
    ...pullRequests,
    ...createPullRequestWait(pullRequests.pullRequestStatus),
  };
}

export type FerryActivities = ReturnType<typeof createActivities>;
