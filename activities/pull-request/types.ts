// The host side of the `pull-request` strategy: one interface over GitHub, GitLab and Gitea (Forgejo), so the
// workflow asks "open it", "how is it", "close it" without knowing the host. Each provider is a thin REST client
// over the shared HTTP layer (activities/notify/http.ts), built for one repository with one token.
import type { PullRequestProviderName } from '../../pipeline/schema';

export type { PullRequestProviderName };

/** A pull request (GitLab: merge request) as Ferry refers to it. Small and secret-free: it goes into history. */
export interface PullRequestRef {
  provider: PullRequestProviderName;
  /** `owner/name` (GitHub, Gitea) or the project path `group/sub/project` (GitLab), as the host spells it. */
  repository: string;
  /** The pull request's number (GitLab: the merge request's iid). */
  number: number;
  /** Its web page. */
  url: string;
}

export interface PullRequestState {
  /**
   * `merged` only once the host reports the merge commit: GitHub computes it after the merge, and a pull request
   * that is merged without one yet is reported `open` (look again), never as an error.
   */
  state: 'open' | 'merged' | 'closed';
  /** The commit the merge made on the base branch (GitLab: the squash commit, or the head for a fast-forward). */
  mergeCommit?: string;
  /** The newest commit of the head branch the host knows. */
  headCommit?: string;
  /**
   * Host user names whose approval stands, sorted. GitHub: the user's latest review that approves or requests
   * changes (or was dismissed) is APPROVED (a later comment-only review does not withdraw it); GitLab: the
   * approvals API's `approved_by`; Gitea: as GitHub, with REQUEST_CHANGES and dismissed reviews withdrawing it.
   */
  approvedBy: string[];
  url: string;
}

export interface OpenRequest {
  /** The branch with the change. */
  head: string;
  /** The branch it is to be merged into. */
  base: string;
  title: string;
  body: string;
  labels?: string[];
}

export interface PullRequestProvider {
  /**
   * Idempotent: an OPEN pull request from `head` into `base` is found and returned (`created: false`), never a
   * second one; its labels are made sure of either way (a retry after a crash between create and label).
   */
  open(request: OpenRequest): Promise<PullRequestRef & { created: boolean }>;
  get(number: number): Promise<PullRequestState>;
  /**
   * Idempotent: an open pull request gets the comment (once: not again when the same text is already there) and
   * is closed. Answers the state it ends in: `merged` when it was merged before it could be closed (an abort that
   * raced a merge), and then nothing is changed.
   */
  close(number: number, comment?: string): Promise<'closed' | 'merged'>;
}

/** What a provider needs: where the API is, which repository, and the token (held only in this object). */
export interface ProviderConfig {
  /** Base URL of the REST API, without a trailing slash: `https://api.github.com`, `https://gitlab.com/api/v4`. */
  api: string;
  repository: string;
  token: string;
  /** The credential's name, for messages ("check credential gitops"); never its value. */
  credential: string;
  /** How long one HTTP request may take. */
  timeoutMs: number;
  /** Who asks, for messages: `pipeline "shop" stage "prod"`. */
  context?: string;
  /** Removes secret values from text the host sent back before it goes into an error (SecretResolver.redact). */
  redact?: (text: string) => string;
  userAgent?: string;
}

/** Failure types of the pull-request activities: retried unless marked non-retryable. */
export const PullRequestFailure = {
  /** No answer from the host (network, timeout): retried. */
  Unreachable: 'PullRequestHostUnreachable',
  /** 429 or a 403 that is a rate limit: retried after Retry-After or the reset time. */
  RateLimited: 'PullRequestHostRateLimited',
  /** 5xx or 408: retried. */
  HostError: 'PullRequestHostError',
  /** 401, or 403 that is not a rate limit: the token was refused or lacks a scope. Not retried. */
  Unauthorized: 'PullRequestHostUnauthorized',
  /** 404: the repository or pull request does not exist, or the token cannot see it. Not retried. */
  NotFound: 'PullRequestNotFound',
  /** Any other refusal (422 "no commits between", a head branch that does not exist). Not retried. */
  Refused: 'PullRequestRefused',
  /** The pipeline's settings cannot work: no credential, a repository URL the host cannot be asked about. */
  InvalidConfig: 'PullRequestInvalidConfig',
} as const;
