// Preflight: every check a promotion can make before its first git write, so that a promotion that cannot finish
// fails with nothing pushed (with auto-sync, pushed freight would deploy while Ferry reports Failed). Everything
// here is read-only on the remote and on Argo CD: credentials resolve; the repository answers `git ls-remote` with
// those credentials and has repo.branch; render.to can exist beside the remote's branches; the Argo CD app is
// readable with its token and deploys repo.url at render.to from the branch root. A failed check is a non-retryable
// ApplicationFailure whose message says what to fix and whose type is a reason code; an unreachable remote or Argo
// CD is retryable.
import { ApplicationFailure } from '@temporalio/common';
import { deployedBranch, deployedPath, stageLayout } from '../pipeline/layout';
import { checkArgoApp, createArgoCdAccess } from './argocd/activities';
import { createGitWorkspaces } from './git';
import { remoteDisplayUrl, transportFor } from './git-transport';
import type { SecretResolver } from './secrets';
import type { PreflightInput, PreflightResult } from './types';

export interface PreflightOptions {
  /** The same workspace root as the git activities: the check opens (creates) the repository's cached workspace. */
  workspaceRoot: string;
  secrets: SecretResolver;
  /** Whether `file://` repositories may be used (default false). */
  allowFileRepos?: boolean;
  /** Timeout of each Argo CD request (default 8 s). */
  argoRequestTimeoutMs?: number;
  /** A git ls-remote running longer than this is stopped and fails as retryable (default 2 minutes). */
  networkTimeoutMs?: number;
}

/** Re-throws a failure with `context` in front of its message, keeping its type and retryability. */
function within(context: string, err: unknown): never {
  if (err instanceof ApplicationFailure) {
    throw ApplicationFailure.create({
      message: `${context}: ${err.message}`,
      type: err.type ?? undefined,
      nonRetryable: err.nonRetryable ?? false,
    });
  }
  throw err;
}

export function createPreflightActivities(options: PreflightOptions) {
  const { secrets } = options;
  const allowFileRepos = options.allowFileRepos ?? false;
  const workspaces = createGitWorkspaces({
    workspaceRoot: options.workspaceRoot,
    secrets,
    allowFileRepos,
    networkTimeoutMs: options.networkTimeoutMs ?? 2 * 60_000,
  });
  const argo = createArgoCdAccess(secrets, options.argoRequestTimeoutMs ?? 8_000);

  async function preflightPromotion(input: PreflightInput): Promise<PreflightResult> {
    const { repo, render, argocd } = input;
    const stage = `stage ${input.stage}`;
    const checked: string[] = [];

    // Credentials first: no network needed to find out that one is missing, or cannot be used for the URL's scheme
    // (an ssh:// repository without an ssh_key or known_hosts).
    if (repo.credentials !== undefined) {
      try {
        transportFor({
          url: repo.url,
          displayUrl: remoteDisplayUrl(repo.url, secrets),
          credentials: repo.credentials,
          secrets,
        });
      } catch (err) {
        within(`${stage}: spec.repo.credentials`, err);
      }
    }
    if (argocd) {
      try {
        secrets.resolve(argocd.credentials);
      } catch (err) {
        within(`${stage}: argocd.credentials`, err);
      }
    }
    if (render.pullRequest) {
      // The host's API token: the pull request is opened after the push, so a missing one must be found now.
      const name = render.pullRequest.credentials ?? repo.credentials;
      const field = render.pullRequest.credentials ? 'render.pullRequest.credentials' : 'spec.repo.credentials';
      if (name === undefined) {
        throw ApplicationFailure.nonRetryable(
          `${stage}: pull requests on ${render.pullRequest.provider} need an API token: name its credential in ` +
            'render.pullRequest.credentials (or spec.repo.credentials)',
          'PullRequestInvalidConfig',
        );
      }
      try {
        secrets.resolve(name);
      } catch (err) {
        within(`${stage}: ${field}`, err);
      }
    }

    const workspace = await workspaces.open(repo);
    const branches = await workspace.remoteBranches();
    const source = branches.get(repo.branch);
    if (!source) {
      throw ApplicationFailure.nonRetryable(
        `${stage}: ${workspace.displayUrl} has no branch ${repo.branch} (spec.repo.branch), where the sources live`,
        'SourceBranchNotFound',
      );
    }
    if (stageLayout(render) === 'branch') {
      // git stores branches as paths: env/dev cannot exist beside env or env/dev/x.
      const clash = [...branches.keys()].find((b) => b.startsWith(`${render.to}/`) || render.to.startsWith(`${b}/`));
      if (clash !== undefined) {
        throw ApplicationFailure.nonRetryable(
          `${stage}: render.to "${render.to}" cannot be created on ${workspace.displayUrl}: branch "${clash}" exists, ` +
            'and git cannot hold a branch and a folder of the same name; choose another render.to or delete that branch',
          'BranchNameConflict',
        );
      }
      const target = branches.get(render.to);
      checked.push(
        `git: ${workspace.displayUrl} answers; ${repo.branch} at ${source.slice(0, 12)}, ` +
          (target ? `${render.to} at ${target.slice(0, 12)}` : `${render.to} will be created`),
      );
    } else {
      checked.push(`git: ${workspace.displayUrl} answers; ${repo.branch} at ${source.slice(0, 12)}`);
    }

    if (argocd) {
      try {
        checked.push(await checkArgoApp(argo, argocd, repo.url, deployedBranch(repo, render), deployedPath(render)));
      } catch (err) {
        within(stage, err);
      }
    }
    return { checked };
  }

  return { preflightPromotion };
}
