// All of Ferry's activities, built from their collaborators. The worker registers the result; workflows import
// the `FerryActivities` type only.
import { createArgoCdActivities } from './argocd/activities';
import { createPreflightActivities } from './preflight';
import { createGitActivities } from './render-and-push';
import type { SecretResolver } from './secrets';

export interface ActivitiesConfig {
  /** Where cached git workspaces live (one per repository). */
  workspaceRoot: string;
  secrets: SecretResolver;
  /** How often the Argo CD wait polls the app (default: the activity's own default). */
  argoPollIntervalMs?: number;
}

export function createActivities(config: ActivitiesConfig) {
  return {
    ...createPreflightActivities(),
    ...createGitActivities({ workspaceRoot: config.workspaceRoot, secrets: config.secrets }),
    ...createArgoCdActivities({
      secrets: config.secrets,
      ...(config.argoPollIntervalMs !== undefined ? { pollIntervalMs: config.argoPollIntervalMs } : {}),
    }),
  };
}

export type FerryActivities = ReturnType<typeof createActivities>;
