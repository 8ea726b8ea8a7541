// GitHub (and GitHub Enterprise Server) pull requests over the REST API, version 2022-11-28:
//   find   GET   /repos/{o}/{r}/pulls?head={o}:{head}&base={base}&state=open
//   open   POST  /repos/{o}/{r}/pulls                  422 "A pull request already exists" → find again
//   label  POST  /repos/{o}/{r}/issues/{n}/labels      (additive, so a retry adds nothing twice)
//   state  GET   /repos/{o}/{r}/pulls/{n}              merged, merge_commit_sha, state, head.sha
//   review GET   /repos/{o}/{r}/pulls/{n}/reviews      paginated (Link), oldest first
//   close  POST  /repos/{o}/{r}/issues/{n}/comments, then PATCH /repos/{o}/{r}/pulls/{n} {state: closed}
// GitHub writes the merge commit of a merged pull request asynchronously: until `merge_commit_sha` is there, the
// pull request is reported open, so the caller simply looks again.
import { ApplicationFailure } from '@temporalio/common';
import { GITHUB_API_VERSION } from '../notify/github-deployment';
import { createHostClient } from './host';
import {
  PullRequestFailure,
  type OpenRequest,
  type ProviderConfig,
  type PullRequestProvider,
  type PullRequestRef,
  type PullRequestState,
} from './types';

interface GitHubPull {
  number: number;
  html_url: string;
  state: 'open' | 'closed';
  merged?: boolean;
  merged_at?: string | null;
  merge_commit_sha?: string | null;
  head: { ref: string; sha: string };
  base: { ref: string };
  labels?: Array<{ name: string }>;
}

interface GitHubReview {
  user: { login: string } | null;
  state: string;
}

interface GitHubComment {
  body?: string;
}

export const GITHUB_TOKEN_ADVICE =
  'has access to the repository: a fine-grained token (or GitHub App) with Pull requests: write, Contents: read ' +
  'and Issues: write, or a classic token with scope repo';

export function createGitHubProvider(config: ProviderConfig): PullRequestProvider {
  const client = createHostClient({
    host: 'GitHub',
    config,
    auth: { Authorization: `Bearer ${config.token}` },
    headers: { Accept: 'application/vnd.github+json', 'X-GitHub-Api-Version': GITHUB_API_VERSION },
    tokenAdvice: GITHUB_TOKEN_ADVICE,
  });
  const repo = `/repos/${config.repository}`;
  const owner = config.repository.split('/')[0];
  const ref = (pull: GitHubPull): PullRequestRef => ({
    provider: 'github',
    repository: config.repository,
    number: pull.number,
    url: pull.html_url,
  });

  const findOpen = async (head: string, base: string): Promise<GitHubPull | undefined> => {
    const query = new URLSearchParams({ head: `${owner}:${head}`, base, state: 'open', per_page: '100' });
    const pulls = await client.list<GitHubPull>(`${repo}/pulls?${query}`);
    // The filters are the host's; checked again so a host that ignored one cannot hand us someone else's pull.
    return pulls.find((p) => p.state === 'open' && p.head.ref === head && p.base.ref === base);
  };

  const ensureLabels = async (pull: GitHubPull, labels: string[] | undefined): Promise<void> => {
    const have = new Set((pull.labels ?? []).map((l) => l.name));
    const missing = (labels ?? []).filter((l) => !have.has(l));
    if (missing.length > 0) await client.request('POST', `${repo}/issues/${pull.number}/labels`, { labels: missing });
  };

  const open = async (request: OpenRequest): Promise<PullRequestRef & { created: boolean }> => {
    const existing = await findOpen(request.head, request.base);
    if (existing) {
      await ensureLabels(existing, request.labels);
      return { ...ref(existing), created: false };
    }
    const created = await client.request<GitHubPull>(
      'POST',
      `${repo}/pulls`,
      {
        title: request.title,
        head: request.head,
        base: request.base,
        body: request.body,
        maintainer_can_modify: false,
      },
      { allow: [422] },
    );
    if (created.status === 422) {
      // Someone (an earlier attempt of this activity) opened it between our look and our create.
      const raced = /already exists/i.test(created.text) ? await findOpen(request.head, request.base) : undefined;
      if (!raced) {
        throw ApplicationFailure.nonRetryable(
          `${client.where}: GitHub refused to open a pull request from ${request.head} into ${request.base} ` +
            `(${describe422(created.json)})`,
          PullRequestFailure.Refused,
        );
      }
      await ensureLabels(raced, request.labels);
      return { ...ref(raced), created: false };
    }
    await ensureLabels(created.json, request.labels);
    return { ...ref(created.json), created: true };
  };

  const approvers = async (number: number): Promise<string[]> => {
    const reviews = await client.list<GitHubReview>(`${repo}/pulls/${number}/reviews?per_page=100`);
    return standingApprovals(
      reviews.map((r) => ({ user: r.user?.login, state: r.state })),
      { approve: 'APPROVED', withdraw: ['CHANGES_REQUESTED', 'DISMISSED'] },
    );
  };

  const get = async (number: number): Promise<PullRequestState> => {
    const pull = (await client.request<GitHubPull>('GET', `${repo}/pulls/${number}`)).json;
    const approvedBy = await approvers(number);
    const common = { headCommit: pull.head.sha, approvedBy, url: pull.html_url };
    if (pull.merged === true || pull.merged_at) {
      return pull.merge_commit_sha
        ? { state: 'merged', mergeCommit: pull.merge_commit_sha, ...common }
        : { state: 'open', ...common };
    }
    return { state: pull.state === 'closed' ? 'closed' : 'open', ...common };
  };

  const close = async (number: number, comment?: string): Promise<'closed' | 'merged'> => {
    const pull = (await client.request<GitHubPull>('GET', `${repo}/pulls/${number}`)).json;
    if (pull.merged === true || pull.merged_at) return 'merged';
    if (pull.state === 'closed') return 'closed';
    if (comment) {
      const comments = await client.list<GitHubComment>(`${repo}/issues/${number}/comments?per_page=100`);
      if (!comments.some((c) => c.body === comment))
        await client.request('POST', `${repo}/issues/${number}/comments`, { body: comment });
    }
    const closed = await client.request<GitHubPull>(
      'PATCH',
      `${repo}/pulls/${number}`,
      { state: 'closed' },
      { allow: [422] },
    );
    if (closed.status === 422) {
      // Merged in the meantime ("cannot close a merged pull request"): say so rather than fail.
      const now = (await client.request<GitHubPull>('GET', `${repo}/pulls/${number}`)).json;
      if (now.merged === true || now.merged_at) return 'merged';
      if (now.state === 'closed') return 'closed';
      throw ApplicationFailure.nonRetryable(
        `${client.where}: GitHub refused to close pull request #${number} (${describe422(closed.json)})`,
        PullRequestFailure.Refused,
      );
    }
    return 'closed';
  };

  return { open, get, close };
}

function describe422(body: unknown): string {
  const parsed = (body ?? {}) as {
    message?: string;
    errors?: Array<{ message?: string; field?: string; code?: string } | string>;
  };
  const errors = (parsed.errors ?? []).map((e) =>
    typeof e === 'string' ? e : (e.message ?? `${e.field ?? ''} ${e.code ?? ''}`.trim()),
  );
  return [parsed.message ?? 'Validation Failed', ...errors].join('; ');
}

/**
 * The users whose approval stands, from reviews oldest first: each user's latest review that approves or
 * withdraws decides; reviews of any other state (a comment) change nothing. Sorted.
 */
export function standingApprovals(
  reviews: Array<{ user: string | undefined; state: string; dismissed?: boolean }>,
  states: { approve: string; withdraw: string[] },
): string[] {
  const latest = new Map<string, boolean>();
  for (const review of reviews) {
    if (!review.user) continue;
    if (review.dismissed) latest.set(review.user, false);
    else if (review.state === states.approve) latest.set(review.user, true);
    else if (states.withdraw.includes(review.state)) latest.set(review.user, false);
  }
  return [...latest]
    .filter(([, approved]) => approved)
    .map(([user]) => user)
    .sort();
}
