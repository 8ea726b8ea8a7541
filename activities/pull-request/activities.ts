// The pull-request activities: open one (idempotently: an open one from the same head into the same base is
// found, never a second one), read its state, close it. Each resolves the stage's API token on the worker,
// builds the host's provider for the repository of `spec.repo.url`, and makes the calls. Inputs and results are
// small and secret-free (they are workflow history); a refusal is a non-retryable failure that says what to check,
// a rate limit or a host error is retried after the wait the host asks for.
import { ApplicationFailure } from '@temporalio/common';
import type { PullRequestSpec, Repo } from '../../pipeline/schema';
import type { SecretResolver } from '../secrets';
import { createGiteaProvider } from './gitea';
import { createGitHubProvider } from './github';
import { createGitLabProvider } from './gitlab';
import { locatePullRequests } from './repository';
import {
  PullRequestFailure,
  type ProviderConfig,
  type PullRequestProvider,
  type PullRequestProviderName,
  type PullRequestRef,
  type PullRequestState,
} from './types';

export const DEFAULT_PULL_REQUEST_TIMEOUT_MS = 10_000;

/** Which stage's pull requests, on which host: what every pull-request activity is given. */
export interface PullRequestTarget {
  pipeline: string;
  stage: string;
  repo: Repo;
  pullRequest: PullRequestSpec;
}

export interface OpenPullRequestInput extends PullRequestTarget {
  /** The promotion branch Ferry pushed. */
  head: string;
  /** The branch the change goes into (render.to, or spec.repo.branch for a directory). */
  base: string;
  title: string;
  body: string;
}
export type OpenPullRequestResult = PullRequestRef & { created: boolean };

export interface PullRequestStatusInput extends PullRequestTarget {
  number: number;
}
export type PullRequestStatusResult = PullRequestState;

export interface ClosePullRequestInput extends PullRequestTarget {
  number: number;
  /** Why, posted as a comment before closing (once): "Aborted by alice in Ferry". */
  comment?: string;
}
export interface ClosePullRequestResult {
  /** `merged` when it was merged before it could be closed; nothing was changed then. */
  state: 'closed' | 'merged';
}

export interface PullRequestActivitiesConfig {
  secrets: SecretResolver;
  /** How long one HTTP request to the host may take (default 10 s). */
  requestTimeoutMs?: number;
}

const PROVIDERS: Record<PullRequestProviderName, (config: ProviderConfig) => PullRequestProvider> = {
  github: createGitHubProvider,
  gitlab: createGitLabProvider,
  gitea: createGiteaProvider,
};

/** A provider by name, for one repository with one token. */
export function createPullRequestProvider(name: PullRequestProviderName, config: ProviderConfig): PullRequestProvider {
  return PROVIDERS[name](config);
}

export function createPullRequestActivities(config: PullRequestActivitiesConfig) {
  const timeoutMs = config.requestTimeoutMs ?? DEFAULT_PULL_REQUEST_TIMEOUT_MS;

  const providerFor = (target: PullRequestTarget): PullRequestProvider => {
    const context = `pipeline "${target.pipeline}" stage "${target.stage}"`;
    const { provider, api, repository } = locatePullRequests(
      target.pullRequest.provider,
      target.repo.url,
      target.pullRequest.api,
    );
    const credential = target.pullRequest.credentials ?? target.repo.credentials;
    if (!credential) {
      throw ApplicationFailure.nonRetryable(
        `${context}: pull requests on ${provider} need an API token: name its credential in ` +
          'render.pullRequest.credentials (or spec.repo.credentials)',
        PullRequestFailure.InvalidConfig,
      );
    }
    const resolved = config.secrets.resolve(credential);
    const token = resolved.token ?? resolved.password;
    if (!token) {
      throw ApplicationFailure.nonRetryable(
        `${context}: credential "${credential}" has neither a token nor a password for the ${provider} API`,
        'CredentialNotFound',
      );
    }
    return createPullRequestProvider(provider, {
      api,
      repository,
      token,
      credential,
      timeoutMs,
      context,
      redact: (text) => config.secrets.redact(text),
    });
  };

  async function openPullRequest(input: OpenPullRequestInput): Promise<OpenPullRequestResult> {
    return providerFor(input).open({
      head: input.head,
      base: input.base,
      title: input.title,
      body: input.body,
      ...(input.pullRequest.labels ? { labels: input.pullRequest.labels } : {}),
    });
  }

  async function pullRequestStatus(input: PullRequestStatusInput): Promise<PullRequestStatusResult> {
    return providerFor(input).get(input.number);
  }

  async function closePullRequest(input: ClosePullRequestInput): Promise<ClosePullRequestResult> {
    return { state: await providerFor(input).close(input.number, input.comment) };
  }

  return { openPullRequest, pullRequestStatus, closePullRequest };
}
