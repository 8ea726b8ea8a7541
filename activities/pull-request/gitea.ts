// Gitea (and Forgejo, which keeps Gitea's API) pull requests over the REST API v1:
//   find    GET   /repos/{o}/{r}/pulls?state=open        paginated (page, limit, Link); head and base filtered here
//   open    POST  /repos/{o}/{r}/pulls                   409 "pull request already exists" → find again
//   labels  GET/POST /repos/{o}/{r}/labels, POST /repos/{o}/{r}/issues/{n}/labels {labels: [ids]}
//   state   GET   /repos/{o}/{r}/pulls/{n}               merged, merge_commit_sha, state, head.sha
//   review  GET   /repos/{o}/{r}/pulls/{n}/reviews       state APPROVED | REQUEST_CHANGES | COMMENT, dismissed
//   close   POST  /repos/{o}/{r}/issues/{n}/comments, then PATCH /repos/{o}/{r}/pulls/{n} {state: closed}
// The token goes in `Authorization: token …`.
import { ApplicationFailure } from '@temporalio/common';
import { standingApprovals } from './github';
import { createHostClient } from './host';
import {
  PullRequestFailure,
  type OpenRequest,
  type ProviderConfig,
  type PullRequestProvider,
  type PullRequestRef,
  type PullRequestState,
} from './types';

interface GiteaPull {
  number: number;
  html_url: string;
  state: 'open' | 'closed';
  merged?: boolean;
  merge_commit_sha?: string | null;
  head: { ref: string; sha: string; repo?: { full_name?: string } | null };
  base: { ref: string };
  labels?: Array<{ id: number; name: string }>;
}

interface GiteaReview {
  user?: { login?: string } | null;
  state: string;
  dismissed?: boolean;
}

interface GiteaLabel {
  id: number;
  name: string;
}

interface GiteaComment {
  body?: string;
}

export const GITEA_TOKEN_ADVICE =
  'has the scopes write:repository and write:issue, and its user has write access to the repository';

/** Colour of labels Ferry creates when the repository has none of that name. */
const NEW_LABEL_COLOR = '#1d76db';

export function createGiteaProvider(config: ProviderConfig): PullRequestProvider {
  const client = createHostClient({
    host: 'Gitea',
    config,
    auth: { Authorization: `token ${config.token}` },
    tokenAdvice: GITEA_TOKEN_ADVICE,
  });
  const repo = `/repos/${config.repository}`;
  const ref = (pull: GiteaPull): PullRequestRef => ({
    provider: 'gitea',
    repository: config.repository,
    number: pull.number,
    url: pull.html_url,
  });

  const findOpen = async (head: string, base: string): Promise<GiteaPull | undefined> => {
    const pulls = await client.list<GiteaPull>(`${repo}/pulls?state=open&limit=50`);
    const ours = config.repository.toLowerCase();
    return pulls.find(
      (p) =>
        p.state === 'open' &&
        p.head.ref === head &&
        p.base.ref === base &&
        // Not a fork's branch of the same name.
        (p.head.repo?.full_name === undefined || p.head.repo.full_name.toLowerCase() === ours),
    );
  };

  const ensureLabels = async (pull: GiteaPull, labels: string[] | undefined): Promise<void> => {
    const have = new Set((pull.labels ?? []).map((l) => l.name));
    const missing = (labels ?? []).filter((l) => !have.has(l));
    if (missing.length === 0) return;
    const known = await client.list<GiteaLabel>(`${repo}/labels?limit=50`);
    const ids: number[] = [];
    for (const name of missing) {
      const label =
        known.find((l) => l.name === name) ??
        (await client.request<GiteaLabel>('POST', `${repo}/labels`, { name, color: NEW_LABEL_COLOR })).json;
      ids.push(label.id);
    }
    await client.request('POST', `${repo}/issues/${pull.number}/labels`, { labels: ids });
  };

  const open = async (request: OpenRequest): Promise<PullRequestRef & { created: boolean }> => {
    const existing = await findOpen(request.head, request.base);
    if (existing) {
      await ensureLabels(existing, request.labels);
      return { ...ref(existing), created: false };
    }
    const created = await client.request<GiteaPull>(
      'POST',
      `${repo}/pulls`,
      { head: request.head, base: request.base, title: request.title, body: request.body },
      { allow: [409, 422] },
    );
    if (created.status === 409 || created.status === 422) {
      const raced = created.status === 409 ? await findOpen(request.head, request.base) : undefined;
      if (!raced) {
        throw ApplicationFailure.nonRetryable(
          `${client.where}: Gitea refused to open a pull request from ${request.head} into ${request.base} ` +
            `(${created.status}: ${created.text.replace(/\s+/g, ' ').slice(0, 200)})`,
          PullRequestFailure.Refused,
        );
      }
      await ensureLabels(raced, request.labels);
      return { ...ref(raced), created: false };
    }
    await ensureLabels(created.json, request.labels);
    return { ...ref(created.json), created: true };
  };

  const get = async (number: number): Promise<PullRequestState> => {
    const pull = (await client.request<GiteaPull>('GET', `${repo}/pulls/${number}`)).json;
    const reviews = await client.list<GiteaReview>(`${repo}/pulls/${number}/reviews?limit=50`);
    const approvedBy = standingApprovals(
      reviews.map((r) => ({ user: r.user?.login, state: r.state, ...(r.dismissed ? { dismissed: true } : {}) })),
      { approve: 'APPROVED', withdraw: ['REQUEST_CHANGES'] },
    );
    const common = { headCommit: pull.head.sha, approvedBy, url: pull.html_url };
    if (pull.merged === true) {
      return pull.merge_commit_sha
        ? { state: 'merged', mergeCommit: pull.merge_commit_sha, ...common }
        : { state: 'open', ...common };
    }
    return { state: pull.state === 'closed' ? 'closed' : 'open', ...common };
  };

  const close = async (number: number, comment?: string): Promise<'closed' | 'merged'> => {
    const pull = (await client.request<GiteaPull>('GET', `${repo}/pulls/${number}`)).json;
    if (pull.merged === true) return 'merged';
    if (pull.state === 'closed') return 'closed';
    if (comment) {
      const comments = await client.list<GiteaComment>(`${repo}/issues/${number}/comments`);
      if (!comments.some((c) => c.body === comment))
        await client.request('POST', `${repo}/issues/${number}/comments`, { body: comment });
    }
    const closed = await client.request<GiteaPull>('PATCH', `${repo}/pulls/${number}`, { state: 'closed' });
    return closed.json.merged === true ? 'merged' : 'closed';
  };

  return { open, get, close };
}
