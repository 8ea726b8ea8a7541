// GitLab merge requests over the REST API v4. The project is addressed by its URL-encoded path
// (`group%2Fsub%2Fapp`), so nested groups need no lookup:
//   find     GET  /projects/:id/merge_requests?source_branch=&target_branch=&state=opened
//   open     POST /projects/:id/merge_requests              409 "Another open merge request already exists" → find
//   labels   PUT  /projects/:id/merge_requests/:iid {add_labels}   (only for a found one that lacks some)
//   state    GET  /projects/:id/merge_requests/:iid          state opened|closed|merged|locked, merge_commit_sha,
//                                                            squash_commit_sha, sha
//   approved GET  /projects/:id/merge_requests/:iid/approvals   approved_by[].user.username
//   close    POST /projects/:id/merge_requests/:iid/notes, then PUT … {state_event: close}
// Lists paginate with X-Next-Page (and Link). The token goes in PRIVATE-TOKEN (personal, project or group
// access tokens all take it).
import { ApplicationFailure } from '@temporalio/common';
import { createHostClient } from './host';
import {
  PullRequestFailure,
  type OpenRequest,
  type ProviderConfig,
  type PullRequestProvider,
  type PullRequestRef,
  type PullRequestState,
} from './types';

interface GitLabMergeRequest {
  iid: number;
  web_url: string;
  state: 'opened' | 'closed' | 'merged' | 'locked';
  source_branch: string;
  target_branch: string;
  sha?: string | null;
  merge_commit_sha?: string | null;
  squash_commit_sha?: string | null;
  labels?: string[];
}

interface GitLabApprovals {
  approved_by?: Array<{ user?: { username?: string } }>;
}

interface GitLabNote {
  body?: string;
  system?: boolean;
}

export const GITLAB_TOKEN_ADVICE =
  'has scope api and at least the Developer role on the project (a project or group access token works)';

export function createGitLabProvider(config: ProviderConfig): PullRequestProvider {
  const client = createHostClient({
    host: 'GitLab',
    config,
    auth: { 'PRIVATE-TOKEN': config.token },
    tokenAdvice: GITLAB_TOKEN_ADVICE,
  });
  const project = `/projects/${encodeURIComponent(config.repository)}`;
  const ref = (mr: GitLabMergeRequest): PullRequestRef => ({
    provider: 'gitlab',
    repository: config.repository,
    number: mr.iid,
    url: mr.web_url,
  });

  const findOpen = async (head: string, base: string): Promise<GitLabMergeRequest | undefined> => {
    const query = new URLSearchParams({ source_branch: head, target_branch: base, state: 'opened', per_page: '100' });
    const found = await client.list<GitLabMergeRequest>(`${project}/merge_requests?${query}`);
    return found.find((mr) => mr.state === 'opened' && mr.source_branch === head && mr.target_branch === base);
  };

  const ensureLabels = async (mr: GitLabMergeRequest, labels: string[] | undefined): Promise<void> => {
    const have = new Set(mr.labels ?? []);
    const missing = (labels ?? []).filter((l) => !have.has(l));
    if (missing.length > 0)
      await client.request('PUT', `${project}/merge_requests/${mr.iid}`, { add_labels: missing.join(',') });
  };

  const open = async (request: OpenRequest): Promise<PullRequestRef & { created: boolean }> => {
    const existing = await findOpen(request.head, request.base);
    if (existing) {
      await ensureLabels(existing, request.labels);
      return { ...ref(existing), created: false };
    }
    const created = await client.request<GitLabMergeRequest>(
      'POST',
      `${project}/merge_requests`,
      {
        source_branch: request.head,
        target_branch: request.base,
        title: request.title,
        description: request.body,
        ...(request.labels?.length ? { labels: request.labels.join(',') } : {}),
      },
      { allow: [409] },
    );
    if (created.status === 409) {
      const raced = await findOpen(request.head, request.base);
      if (!raced) {
        throw ApplicationFailure.nonRetryable(
          `${client.where}: GitLab refused to open a merge request from ${request.head} into ${request.base} ` +
            `(409: ${created.text.slice(0, 200)})`,
          PullRequestFailure.Refused,
        );
      }
      await ensureLabels(raced, request.labels);
      return { ...ref(raced), created: false };
    }
    return { ...ref(created.json), created: true };
  };

  const get = async (number: number): Promise<PullRequestState> => {
    const mr = (await client.request<GitLabMergeRequest>('GET', `${project}/merge_requests/${number}`)).json;
    const approvals = (await client.request<GitLabApprovals>('GET', `${project}/merge_requests/${number}/approvals`))
      .json;
    const approvedBy = [
      ...new Set(
        (approvals.approved_by ?? []).map((a) => a.user?.username).filter((u): u is string => typeof u === 'string'),
      ),
    ].sort();
    const common = { ...(mr.sha ? { headCommit: mr.sha } : {}), approvedBy, url: mr.web_url };
    if (mr.state === 'merged') {
      // A merge commit, else (squashed into a fast-forward) the squash commit, else (fast-forward) the head itself.
      const mergeCommit = mr.merge_commit_sha ?? mr.squash_commit_sha ?? mr.sha ?? undefined;
      return mergeCommit ? { state: 'merged', mergeCommit, ...common } : { state: 'open', ...common };
    }
    return { state: mr.state === 'closed' ? 'closed' : 'open', ...common };
  };

  const close = async (number: number, comment?: string): Promise<'closed' | 'merged'> => {
    const path = `${project}/merge_requests/${number}`;
    const mr = (await client.request<GitLabMergeRequest>('GET', path)).json;
    if (mr.state === 'merged') return 'merged';
    if (mr.state === 'closed') return 'closed';
    if (comment) {
      const notes = await client.list<GitLabNote>(`${path}/notes?per_page=100&sort=asc`);
      if (!notes.some((n) => !n.system && n.body === comment))
        await client.request('POST', `${path}/notes`, { body: comment });
    }
    const closed = (await client.request<GitLabMergeRequest>('PUT', path, { state_event: 'close' })).json;
    // A merge that won the race leaves the state merged: GitLab ignores a close event it cannot apply.
    return closed.state === 'merged' ? 'merged' : 'closed';
  };

  return { open, get, close };
}
