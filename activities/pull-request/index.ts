// Pull requests on git hosts (the `pull-request` strategy's host side): the activities, and the providers behind
// them for code that talks to a host directly.
export * from './activities';
export { createGiteaProvider } from './gitea';
export { createGitHubProvider } from './github';
export { createGitLabProvider } from './gitlab';
export { DEFAULT_GITHUB_API, DEFAULT_GITLAB_API, locatePullRequests, type PullRequestLocation } from './repository';
export * from './types';
