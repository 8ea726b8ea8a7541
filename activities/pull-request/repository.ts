// Which repository on which API a stage's pull requests go to, from the pipeline: the repository is the path of
// `spec.repo.url`, the API is `pullRequest.api` or the host's documented default (pipeline/schema.ts,
// PullRequestSchema.api). Pure, so the rules are unit-tested without a host.
import { ApplicationFailure } from '@temporalio/common';
import type { PullRequestProviderName } from '../../pipeline/schema';
import { PullRequestFailure } from './types';

export const DEFAULT_GITHUB_API = 'https://api.github.com';
export const DEFAULT_GITLAB_API = 'https://gitlab.com/api/v4';

/** The path of the API on its host: what is left of the repository path once a host's own prefix is removed. */
const API_SUFFIX: Record<PullRequestProviderName, RegExp> = {
  github: /\/api\/v3$/,
  gitlab: /\/api\/v4$/,
  gitea: /\/api\/v1$/,
};

export interface PullRequestLocation {
  provider: PullRequestProviderName;
  /** Base URL of the REST API, no trailing slash. */
  api: string;
  /** `owner/name`, or GitLab's `group/sub/project`. */
  repository: string;
}

function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, PullRequestFailure.InvalidConfig);
}

/**
 * The repository and API for a stage's pull requests. `repoUrl` is `https://host/owner/name(.git)` or
 * `ssh://git@host(:port)/owner/name.git` (GitLab: any depth of groups). A host served under a path prefix
 * (`https://host/gitlab/group/app`, with `api: https://host/gitlab/api/v4`) has that prefix removed.
 */
export function locatePullRequests(
  provider: PullRequestProviderName,
  repoUrl: string,
  api?: string,
): PullRequestLocation {
  let url: URL;
  try {
    url = new URL(repoUrl);
  } catch {
    throw invalid(`spec.repo.url ${repoUrl} is not a URL the pull-request strategy can read a repository from`);
  }
  if (!['https:', 'http:', 'ssh:'].includes(url.protocol)) {
    throw invalid(
      `spec.repo.url ${repoUrl}: the pull-request strategy needs the repository's URL on the host (https:// or ` +
        `ssh://), from which it reads the ${provider} repository; a ${url.protocol}// URL names none`,
    );
  }
  const base = (api ?? defaultApi(provider, url)).replace(/\/+$/, '');
  let apiUrl: URL;
  try {
    apiUrl = new URL(base);
  } catch {
    throw invalid(`render.pullRequest.api ${base} is not a URL`);
  }
  let path = decodeURIComponent(url.pathname)
    .replace(/\/+$/, '')
    .replace(/\.git$/, '')
    .replace(/^\/+/, '');
  // A host under a path prefix serves its API under the same prefix; only a repository URL on the API's host can
  // carry it (GitHub's API host differs from its git host, so its prefix never matches).
  const prefix = apiUrl.pathname.replace(API_SUFFIX[provider], '').replace(/^\/+|\/+$/g, '');
  if (prefix && url.hostname === apiUrl.hostname && path.startsWith(`${prefix}/`)) path = path.slice(prefix.length + 1);
  const segments = path.split('/').filter((s) => s !== '');
  const wanted = provider === 'gitlab' ? segments.length >= 2 : segments.length === 2;
  if (!wanted) {
    throw invalid(
      `spec.repo.url ${repoUrl}: expected a ${provider} repository path ` +
        `${provider === 'gitlab' ? 'group/project (or group/subgroup/project)' : 'owner/name'}, found "${path}"`,
    );
  }
  return { provider, api: base, repository: segments.join('/') };
}

function defaultApi(provider: PullRequestProviderName, repo: URL): string {
  switch (provider) {
    case 'github':
      return DEFAULT_GITHUB_API;
    case 'gitlab':
      return DEFAULT_GITLAB_API;
    case 'gitea': {
      // Gitea serves its API on its web origin. An ssh:// URL gives the host but not the web port: assume https.
      const origin = repo.protocol === 'ssh:' ? `https://${repo.hostname}` : `${repo.protocol}//${repo.host}`;
      return `${origin}/api/v1`;
    }
  }
}
