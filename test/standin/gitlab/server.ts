// A stand-in for the part of GitLab that Ferry's pull-request strategy uses, on 127.0.0.1, with GitLab's REST API v4
// wire format, on a real bare repository per project (git-host/repository.ts):
//
//   POST /api/v4/projects/:id/merge_requests              201 | 400 {"error": "title is missing"} |
//                                                         400 {"message": {"source_branch": ["does not exist"]}} |
//                                                         409 {"message": ["Another open merge request already exists for this source branch: !1"]}
//   GET  /api/v4/projects/:id/merge_requests?source_branch=&target_branch=&state=&per_page=&page=
//                                                         200 list, newest first; X-Page, X-Next-Page, X-Total…, Link
//   GET  /api/v4/projects/:id/merge_requests/:iid         200 | 404 {"message": "404 Not found"}
//   PUT  /api/v4/projects/:id/merge_requests/:iid         200 {title, description, state_event: close|reopen,
//                                                         labels, add_labels, remove_labels}
//   PUT  /api/v4/projects/:id/merge_requests/:iid/merge   200 merged | 405 not open | 409 sha | 422 conflicts
//   GET  /api/v4/projects/:id/merge_requests/:iid/approvals   200 {approved, approved_by: [{user}]…}
//   POST /api/v4/projects/:id/merge_requests/:iid/approve     201 | 401 (the author, or approved already)
//   POST /api/v4/projects/:id/merge_requests/:iid/unapprove   201 | 404
//   GET/POST /api/v4/projects/:id/merge_requests/:iid/notes   notes (GitLab's system notes included)
//   GET/POST /api/v4/projects/:id/hooks                   project webhooks: Merge Request Hook, Push Hook
//   git smart HTTP at /{group}/{project}.git              basic auth, the token as password
//
// `:id` is the URL-encoded path (`group%2Fsub%2Fapp`) or the numeric id. Auth: `PRIVATE-TOKEN: <token>` or
// `Authorization: Bearer <token>`; else 401 {"message": "401 Unauthorized"}. `rateLimitNext` answers the next
// requests as GitLab's throttle does: 429, text "Retry later", Retry-After and RateLimit-* headers.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basicPassword, gitRequestPath, serveGit } from '../git-host/http-backend';
import { paginate } from '../git-host/pages';
import { BareRepository, BaseMoved, MergeConflict, type Identity } from '../git-host/repository';
import { createWebhookSender, type HookDelivery } from '../git-host/webhooks';

export interface StandInNote {
  id: number;
  author: string;
  body: string;
  system: boolean;
  createdAt: string;
}

export interface StandInMergeRequest {
  project: string;
  id: number;
  iid: number;
  title: string;
  description: string | null;
  source: string;
  target: string;
  author: string;
  state: 'opened' | 'closed' | 'merged' | 'locked';
  labels: string[];
  squash: boolean;
  mergeCommit?: string;
  squashCommit?: string;
  mergedBy?: string;
  mergedAt?: string;
  closedBy?: string;
  closedAt?: string;
  createdAt: string;
  updatedAt: string;
  /** The source branch's commit when the merge request was merged or closed. */
  frozenHead?: string;
  approvedBy: string[];
  notes: StandInNote[];
}

export interface StandInProjectHook {
  id: number;
  project: string;
  url: string;
  token?: string;
  pushEvents: boolean;
  mergeRequestsEvents: boolean;
  createdAt: string;
}

export interface GitLabRecordedRequest {
  method: string;
  path: string;
  status: number;
  at: number;
  headers: Record<string, string | string[] | undefined>;
  body?: any;
}

export type GitLabApiCaller = (
  method: string,
  path: string,
  body?: unknown,
) => Promise<{ status: number; headers: Headers; body: any }>;

export interface GitLabStandIn {
  /** The web and git origin; the API is `${url}/api/v4`. */
  url: string;
  api: string;
  requests: GitLabRecordedRequest[];
  mergeRequests: StandInMergeRequest[];
  hooks: StandInProjectHook[];
  deliveries: HookDelivery[];
  deliveriesSettled(): Promise<void>;
  /** The next `count` API requests answer 429 with Retry-After: `retryAfterSeconds`. */
  rateLimitNext(count: number, retryAfterSeconds: number): void;
  /** Calls the API (paths below /api/v4) as `username`, with their token. */
  as(username: string): GitLabApiCaller;
  close(): Promise<void>;
}

export interface GitLabStandInOptions {
  /** The token of the bot user `ferry-bot`. */
  token: string;
  /** Projects (path with namespace → bare repository path). */
  projects: Record<string, string>;
  /** More users, username → token. */
  users?: Record<string, string>;
}

export async function startGitLabStandIn(options: GitLabStandInOptions): Promise<GitLabStandIn> {
  const started = Date.now();
  const tokens = new Map<string, string>([
    [options.token, 'ferry-bot'],
    ...Object.entries(options.users ?? {}).map(([u, t]) => [t, u] as [string, string]),
  ]);
  const usernames = ['ferry-bot', ...Object.keys(options.users ?? {})];
  const projects = new Map(
    Object.entries(options.projects).map(([path, dir], i) => [path, { id: 100 + i, git: new BareRepository(dir) }]),
  );
  const requests: GitLabRecordedRequest[] = [];
  const mergeRequests: StandInMergeRequest[] = [];
  const hooks: StandInProjectHook[] = [];
  const sender = createWebhookSender();
  let nextId = 5000;
  let limited: { left: number; after: number } | undefined;
  let base = '';
  const now = (): string => new Date().toISOString();

  const userId = (username: string): number => 10 + usernames.indexOf(username);
  const userJson = (username: string) => ({
    id: userId(username),
    username,
    name: username,
    state: 'active',
    locked: false,
    avatar_url: null,
    web_url: `${base}/${username}`,
  });
  const projectJson = (path: string) => {
    const project = projects.get(path)!;
    return {
      id: project.id,
      name: path.split('/').pop(),
      path: path.split('/').pop(),
      path_with_namespace: path,
      name_with_namespace: path.split('/').join(' / '),
      namespace: { full_path: path.split('/').slice(0, -1).join('/') },
      default_branch: 'main',
      web_url: `${base}/${path}`,
      http_url_to_repo: `${base}/${path}.git`,
      ssh_url_to_repo: `git@${new URL(base).hostname}:${path}.git`,
      merge_method: 'merge',
    };
  };
  const projectHookJson = (path: string) => ({
    id: projects.get(path)!.id,
    name: path.split('/').pop(),
    description: null,
    web_url: `${base}/${path}`,
    avatar_url: null,
    git_ssh_url: `git@${new URL(base).hostname}:${path}.git`,
    git_http_url: `${base}/${path}.git`,
    namespace: path.split('/').slice(0, -1).join('/'),
    visibility_level: 0,
    path_with_namespace: path,
    default_branch: 'main',
    homepage: `${base}/${path}`,
    url: `git@${new URL(base).hostname}:${path}.git`,
    ssh_url: `git@${new URL(base).hostname}:${path}.git`,
    http_url: `${base}/${path}.git`,
  });

  const git = (mr: StandInMergeRequest): BareRepository => projects.get(mr.project)!.git;
  const headOf = (mr: StandInMergeRequest): string | undefined => mr.frozenHead ?? git(mr).branch(mr.source);
  const conflicts = (mr: StandInMergeRequest): boolean => {
    const head = git(mr).branch(mr.source);
    const target = git(mr).branch(mr.target);
    return !head || !target || 'conflicts' in git(mr).mergeTree(target, head);
  };

  const mrJson = (mr: StandInMergeRequest) => {
    const open = mr.state === 'opened';
    const conflicting = open && conflicts(mr);
    return {
      id: mr.id,
      iid: mr.iid,
      project_id: projects.get(mr.project)!.id,
      title: mr.title,
      description: mr.description,
      state: mr.state,
      created_at: mr.createdAt,
      updated_at: mr.updatedAt,
      merged_by: mr.mergedBy ? userJson(mr.mergedBy) : null,
      merge_user: mr.mergedBy ? userJson(mr.mergedBy) : null,
      merged_at: mr.mergedAt ?? null,
      closed_by: mr.closedBy ? userJson(mr.closedBy) : null,
      closed_at: mr.closedAt ?? null,
      target_branch: mr.target,
      source_branch: mr.source,
      user_notes_count: mr.notes.filter((n) => !n.system).length,
      upvotes: 0,
      downvotes: 0,
      author: userJson(mr.author),
      assignees: [],
      assignee: null,
      reviewers: [],
      source_project_id: projects.get(mr.project)!.id,
      target_project_id: projects.get(mr.project)!.id,
      labels: mr.labels,
      draft: false,
      work_in_progress: false,
      milestone: null,
      merge_when_pipeline_succeeds: false,
      merge_status: open ? (conflicting ? 'cannot_be_merged' : 'can_be_merged') : 'can_be_merged',
      detailed_merge_status: open ? (conflicting ? 'conflict' : 'mergeable') : 'not_open',
      sha: headOf(mr) ?? null,
      merge_commit_sha: mr.mergeCommit ?? null,
      squash_commit_sha: mr.squashCommit ?? null,
      discussion_locked: null,
      should_remove_source_branch: null,
      force_remove_source_branch: false,
      squash: mr.squash,
      squash_on_merge: mr.squash,
      web_url: `${base}/${mr.project}/-/merge_requests/${mr.iid}`,
      references: { short: `!${mr.iid}`, relative: `!${mr.iid}`, full: `${mr.project}!${mr.iid}` },
      has_conflicts: conflicting,
      blocking_discussions_resolved: true,
    };
  };

  const approvalsJson = (mr: StandInMergeRequest, viewer: string) => ({
    id: mr.id,
    iid: mr.iid,
    project_id: projects.get(mr.project)!.id,
    title: mr.title,
    description: mr.description,
    state: mr.state,
    created_at: mr.createdAt,
    updated_at: mr.updatedAt,
    merge_status: mrJson(mr).merge_status,
    approved: mr.approvedBy.length > 0,
    approvals_required: 0,
    approvals_left: 0,
    require_password_to_approve: false,
    approved_by: mr.approvedBy.map((u) => ({ user: userJson(u) })),
    suggested_approvers: [],
    approvers: [],
    approver_groups: [],
    user_has_approved: mr.approvedBy.includes(viewer),
    user_can_approve: viewer !== mr.author && !mr.approvedBy.includes(viewer),
    approval_rules_left: [],
    has_approval_rules: false,
    merge_request_approvers_available: false,
    multiple_approval_rules_available: false,
    invalid_approvers_rules: [],
  });

  const noteJson = (mr: StandInMergeRequest, note: StandInNote) => ({
    id: note.id,
    type: null,
    body: note.body,
    attachment: null,
    author: userJson(note.author),
    created_at: note.createdAt,
    updated_at: note.createdAt,
    system: note.system,
    noteable_id: mr.id,
    noteable_type: 'MergeRequest',
    project_id: projects.get(mr.project)!.id,
    resolvable: false,
    confidential: false,
    internal: false,
    noteable_iid: mr.iid,
    commands_changes: {},
  });

  const hookJson = (hook: StandInProjectHook) => ({
    id: hook.id,
    url: hook.url,
    project_id: projects.get(hook.project)!.id,
    push_events: hook.pushEvents,
    merge_requests_events: hook.mergeRequestsEvents,
    issues_events: false,
    tag_push_events: false,
    note_events: false,
    enable_ssl_verification: true,
    created_at: hook.createdAt,
  });

  const deliver = (project: string, event: 'Merge Request Hook' | 'Push Hook', payload: unknown): void => {
    for (const hook of hooks.filter((h) => h.project === project)) {
      if (event === 'Push Hook' ? !hook.pushEvents : !hook.mergeRequestsEvents) continue;
      sender.send(hook, event, payload, (_body, id) => ({
        'user-agent': 'GitLab/17.5.0',
        'x-gitlab-event': event,
        'x-gitlab-event-uuid': id,
        'x-gitlab-webhook-uuid': createHash('sha256').update(String(hook.id)).digest('hex').slice(0, 36),
        'x-gitlab-instance': base,
        'idempotency-key': id,
        ...(hook.token ? { 'x-gitlab-token': hook.token } : {}),
      }));
    }
  };

  const mergeRequestEvent = (mr: StandInMergeRequest, action: string, by: string): void => {
    const json = mrJson(mr);
    deliver(mr.project, 'Merge Request Hook', {
      object_kind: 'merge_request',
      event_type: 'merge_request',
      user: { id: userId(by), name: by, username: by, avatar_url: null, email: '[REDACTED]' },
      project: projectHookJson(mr.project),
      object_attributes: {
        id: mr.id,
        iid: mr.iid,
        target_branch: mr.target,
        source_branch: mr.source,
        source_project_id: json.source_project_id,
        target_project_id: json.target_project_id,
        author_id: userId(mr.author),
        title: mr.title,
        description: mr.description,
        created_at: mr.createdAt,
        updated_at: mr.updatedAt,
        state: mr.state,
        merge_status: json.merge_status,
        detailed_merge_status: json.detailed_merge_status,
        merge_commit_sha: mr.mergeCommit ?? null,
        url: json.web_url,
        action,
        last_commit: { id: headOf(mr) ?? null },
        labels: mr.labels.map((title) => ({ title })),
      },
      labels: mr.labels.map((title) => ({ title })),
      changes: {},
      repository: {
        name: json.references.full,
        url: `git@${new URL(base).hostname}:${mr.project}.git`,
        homepage: `${base}/${mr.project}`,
      },
    });
  };

  const branchMoved = (
    project: string,
    branch: string,
    before: string | undefined,
    after: string | undefined,
    by: string,
  ) => {
    const zero = '0'.repeat(40);
    deliver(project, 'Push Hook', {
      object_kind: 'push',
      event_name: 'push',
      before: before ?? zero,
      after: after ?? zero,
      ref: `refs/heads/${branch}`,
      ref_protected: branch === 'main',
      checkout_sha: after ?? null,
      user_id: userId(by),
      user_name: by,
      user_username: by,
      project_id: projects.get(project)!.id,
      project: projectHookJson(project),
      commits: [],
      total_commits_count: 0,
      repository: {
        name: project.split('/').pop(),
        url: `git@${new URL(base).hostname}:${project}.git`,
        git_http_url: `${base}/${project}.git`,
      },
    });
  };

  const systemNote = (mr: StandInMergeRequest, author: string, body: string): void => {
    mr.notes.push({ id: nextId++, author, body, system: true, createdAt: now() });
  };

  // --- answering

  const send = (
    res: ServerResponse,
    record: GitLabRecordedRequest,
    status: number,
    body: unknown,
    extra = {},
  ): void => {
    record.status = status;
    res.writeHead(status, {
      'content-type': 'application/json',
      'cache-control': 'max-age=0, private, must-revalidate',
      ...extra,
    });
    res.end(body === undefined ? '' : JSON.stringify(body));
  };

  const handleGit = async (req: IncomingMessage, res: ServerResponse, raw: Buffer, url: URL): Promise<boolean> => {
    const target = gitRequestPath(url.pathname);
    if (!target) return false;
    const project = projects.get(target.repository);
    const user = tokens.get(basicPassword(req.headers.authorization) ?? '');
    if (!user) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="GitLab"', 'content-type': 'text/plain' });
      res.end('HTTP Basic: Access denied.\n');
      return true;
    }
    if (!project) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('The project you were looking for could not be found.\n');
      return true;
    }
    const pushing = target.rest === '/git-receive-pack';
    const before = pushing ? project.git.branches() : undefined;
    await serveGit(req, res, {
      repoPath: project.git.path,
      rest: target.rest,
      query: url.search.slice(1),
      body: raw,
      user,
    });
    if (before) {
      const after = project.git.branches();
      for (const branch of new Set([...before.keys(), ...after.keys()]))
        if (before.get(branch) !== after.get(branch))
          branchMoved(target.repository, branch, before.get(branch), after.get(branch), user);
    }
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, rawBytes: Buffer): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (await handleGit(req, res, rawBytes, url)) return;
    const raw = rawBytes.toString('utf8');
    const method = req.method ?? 'GET';
    const record: GitLabRecordedRequest = {
      method,
      path: url.pathname + url.search,
      status: 0,
      at: Date.now() - started,
      headers: req.headers,
    };
    requests.push(record);
    const reply = (status: number, body: unknown, extra: Record<string, string> = {}): true => {
      send(res, record, status, body, extra);
      return true;
    };
    const message = (status: number, text: unknown): true => reply(status, { message: text });

    if (!url.pathname.startsWith('/api/v4/')) return void reply(404, { error: '404 Not Found' });

    if (limited && limited.left > 0) {
      limited.left--;
      const reset = Math.ceil(Date.now() / 1000) + limited.after;
      record.status = 429;
      res.writeHead(429, {
        'content-type': 'text/plain',
        'retry-after': String(limited.after),
        'ratelimit-name': 'throttle_authenticated_api',
        'ratelimit-limit': '2000',
        'ratelimit-observed': '2001',
        'ratelimit-remaining': '0',
        'ratelimit-reset': String(reset),
        'ratelimit-resettime': new Date(reset * 1000).toUTCString(),
      });
      res.end('Retry later\n');
      return;
    }

    const bearer = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''))?.[1];
    const given = (req.headers['private-token'] as string | undefined) ?? bearer;
    const user = given === undefined ? undefined : tokens.get(given);
    if (!user) return void message(401, '401 Unauthorized');

    let body: any = {};
    if (method !== 'GET' && raw !== '') {
      if (String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
        body = Object.fromEntries(new URLSearchParams(raw));
      } else {
        try {
          body = JSON.parse(raw);
        } catch {
          return void reply(400, { error: 'The provided content-type is not supported or the body is malformed JSON' });
        }
      }
      record.body = body;
    }

    if (url.pathname === '/api/v4/user' && method === 'GET') return void reply(200, userJson(user));

    const routed = /^\/api\/v4\/projects\/([^/]+)(\/.*)?$/.exec(url.pathname);
    if (!routed) return void reply(404, { error: '404 Not Found' });
    const idOrPath = decodeURIComponent(routed[1]);
    const path = /^\d+$/.test(idOrPath) ? [...projects].find(([, p]) => p.id === Number(idOrPath))?.[0] : idOrPath;
    const project = path === undefined ? undefined : projects.get(path);
    if (!path || !project) return void message(404, '404 Project Not Found');
    const rest = routed[2] ?? '';
    const repo = project.git;
    let m: RegExpExecArray | null;

    if (rest === '' && method === 'GET') return void reply(200, projectJson(path));

    const labelsOf = (value: unknown): string[] =>
      (Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [])
        .map((l: unknown) => String(l).trim())
        .filter((l: string) => l !== '');

    if (rest === '/merge_requests' && method === 'POST') {
      const missing = ['source_branch', 'target_branch', 'title'].filter(
        (f) => typeof body[f] !== 'string' || body[f] === '',
      );
      if (missing.length > 0) return void reply(400, { error: missing.map((f) => `${f} is missing`).join(', ') });
      const problems: Record<string, string[]> = {};
      if (!repo.branch(body.source_branch)) problems.source_branch = ['does not exist'];
      if (!repo.branch(body.target_branch)) problems.target_branch = ['does not exist'];
      if (Object.keys(problems).length > 0) return void message(400, problems);
      if (body.source_branch === body.target_branch)
        return void message(422, ['You can not use same project/branch for source and target']);
      const other = mergeRequests.find(
        (mr) =>
          mr.project === path &&
          mr.state === 'opened' &&
          mr.source === body.source_branch &&
          mr.target === body.target_branch,
      );
      if (other)
        return void message(409, [`Another open merge request already exists for this source branch: !${other.iid}`]);
      const mr: StandInMergeRequest = {
        project: path,
        id: nextId++,
        iid: mergeRequests.filter((x) => x.project === path).length + 1,
        title: body.title,
        description: typeof body.description === 'string' ? body.description : null,
        source: body.source_branch,
        target: body.target_branch,
        author: user,
        state: 'opened',
        labels: labelsOf(body.labels),
        squash: body.squash === true || body.squash === 'true',
        createdAt: now(),
        updatedAt: now(),
        approvedBy: [],
        notes: [],
      };
      mergeRequests.push(mr);
      reply(201, mrJson(mr));
      mergeRequestEvent(mr, 'open', user);
      return;
    }

    if (rest === '/merge_requests' && method === 'GET') {
      const state = url.searchParams.get('state') ?? 'all';
      const list = mergeRequests
        .filter((mr) => mr.project === path)
        .filter((mr) => state === 'all' || mr.state === state)
        .filter((mr) => !url.searchParams.has('source_branch') || mr.source === url.searchParams.get('source_branch'))
        .filter((mr) => !url.searchParams.has('target_branch') || mr.target === url.searchParams.get('target_branch'))
        .sort((a, b) => b.id - a.id);
      const page = paginate(list, url, {
        linkBase: `${base}${url.pathname}`,
        defaultPerPage: 20,
        maxPerPage: 100,
        style: 'gitlab',
      });
      return void reply(200, page.items.map(mrJson), page.headers);
    }

    if ((m = /^\/merge_requests\/(\d+)(\/[a-z_]+)?$/.exec(rest))) {
      const mr = mergeRequests.find((x) => x.project === path && x.iid === Number(m![1]));
      if (!mr) return void message(404, '404 Not found');
      const sub = m[2] ?? '';

      if (sub === '' && method === 'GET') return void reply(200, mrJson(mr));

      if (sub === '' && method === 'PUT') {
        if (typeof body.title === 'string') mr.title = body.title;
        if (typeof body.description === 'string') mr.description = body.description;
        if (body.labels !== undefined) mr.labels = labelsOf(body.labels);
        for (const l of labelsOf(body.add_labels)) if (!mr.labels.includes(l)) mr.labels.push(l);
        const removed = labelsOf(body.remove_labels);
        mr.labels = mr.labels.filter((l) => !removed.includes(l));
        let action: string | undefined;
        // GitLab ignores a state event that does not apply (closing a merged merge request).
        if (body.state_event === 'close' && mr.state === 'opened') {
          Object.assign(mr, { state: 'closed', closedBy: user, closedAt: now(), frozenHead: repo.branch(mr.source) });
          systemNote(mr, user, 'closed');
          action = 'close';
        } else if (body.state_event === 'reopen' && mr.state === 'closed') {
          Object.assign(mr, { state: 'opened' });
          delete mr.closedAt;
          delete mr.closedBy;
          delete mr.frozenHead;
          systemNote(mr, user, 'reopened');
          action = 'reopen';
        }
        mr.updatedAt = now();
        reply(200, mrJson(mr));
        mergeRequestEvent(mr, action ?? 'update', user);
        return;
      }

      if (sub === '/merge' && method === 'PUT') {
        if (mr.state !== 'opened') return void message(405, '405 Method Not Allowed');
        const head = repo.branch(mr.source);
        if (!head) return void message(405, '405 Method Not Allowed');
        if (typeof body.sha === 'string' && body.sha !== head)
          return void message(409, `SHA does not match HEAD of source branch: ${head}`);
        const targetBefore = repo.branch(mr.target)!;
        const squash = body.squash === true || body.squash === 'true' || mr.squash;
        const author: Identity = { name: user, email: `${user}@users.noreply.gitlab.example.com` };
        let merged = head;
        try {
          if (squash) {
            const mergeBase = repo.git(['merge-base', targetBefore, head]);
            const squashed = repo.commitTree(
              repo.git(['rev-parse', `${head}^{tree}`]),
              [mergeBase],
              `${typeof body.squash_commit_message === 'string' ? body.squash_commit_message : mr.title}\n`,
              author,
              author,
            );
            mr.squashCommit = squashed;
            merged = squashed;
          }
          const message_ =
            typeof body.merge_commit_message === 'string'
              ? body.merge_commit_message
              : `Merge branch '${mr.source}' into '${mr.target}'\n\n${mr.title}\n\nSee merge request ${path}!${mr.iid}`;
          const { sha } = repo.merge({
            base: mr.target,
            head: merged,
            method: 'merge',
            message: `${message_}\n`,
            author,
            committer: author,
          });
          mr.mergeCommit = sha;
        } catch (err) {
          delete mr.squashCommit;
          if (err instanceof MergeConflict || err instanceof BaseMoved)
            return void message(422, 'Branch cannot be merged');
          throw err;
        }
        Object.assign(mr, { state: 'merged', mergedBy: user, mergedAt: now(), updatedAt: now(), frozenHead: head });
        systemNote(mr, user, `merged`);
        if (body.should_remove_source_branch === true || body.should_remove_source_branch === 'true')
          repo.deleteBranch(mr.source);
        reply(200, mrJson(mr));
        mergeRequestEvent(mr, 'merge', user);
        branchMoved(path, mr.target, targetBefore, mr.mergeCommit, user);
        return;
      }

      if (sub === '/approvals' && method === 'GET') return void reply(200, approvalsJson(mr, user));

      if (sub === '/approve' && method === 'POST') {
        // GitLab answers 401 when the user may not approve: the author (by default), or approved already.
        if (mr.state !== 'opened' || user === mr.author || mr.approvedBy.includes(user))
          return void message(401, '401 Unauthorized');
        if (typeof body.sha === 'string' && body.sha !== repo.branch(mr.source))
          return void message(409, `SHA does not match HEAD of source branch: ${repo.branch(mr.source)}`);
        mr.approvedBy.push(user);
        systemNote(mr, user, 'approved this merge request');
        reply(201, approvalsJson(mr, user));
        mergeRequestEvent(mr, 'approved', user);
        return;
      }

      if (sub === '/unapprove' && method === 'POST') {
        if (!mr.approvedBy.includes(user)) return void message(404, '404 Not Found');
        mr.approvedBy = mr.approvedBy.filter((u) => u !== user);
        systemNote(mr, user, 'unapproved this merge request');
        reply(201, approvalsJson(mr, user));
        mergeRequestEvent(mr, 'unapproved', user);
        return;
      }

      if (sub === '/notes' && method === 'POST') {
        if (typeof body.body !== 'string' || body.body === '') return void reply(400, { error: 'body is missing' });
        const note: StandInNote = { id: nextId++, author: user, body: body.body, system: false, createdAt: now() };
        mr.notes.push(note);
        return void reply(201, noteJson(mr, note));
      }

      if (sub === '/notes' && method === 'GET') {
        const asc = url.searchParams.get('sort') === 'asc';
        const list = [...mr.notes].sort((a, b) => (asc ? a.id - b.id : b.id - a.id));
        const page = paginate(list, url, {
          linkBase: `${base}${url.pathname}`,
          defaultPerPage: 20,
          maxPerPage: 100,
          style: 'gitlab',
        });
        return void reply(
          200,
          page.items.map((n) => noteJson(mr, n)),
          page.headers,
        );
      }
      return void reply(404, { error: '404 Not Found' });
    }

    if (rest === '/hooks' && method === 'POST') {
      if (typeof body.url !== 'string' || !/^https?:\/\//.test(body.url))
        return void reply(400, { error: 'url is missing' });
      const hook: StandInProjectHook = {
        id: nextId++,
        project: path,
        url: body.url,
        ...(typeof body.token === 'string' && body.token !== '' ? { token: body.token } : {}),
        pushEvents: body.push_events !== false,
        mergeRequestsEvents: body.merge_requests_events === true,
        createdAt: now(),
      };
      hooks.push(hook);
      return void reply(201, hookJson(hook));
    }
    if (rest === '/hooks' && method === 'GET')
      return void reply(200, hooks.filter((h) => h.project === path).map(hookJson));

    reply(404, { error: '404 Not Found' });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks)).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ message: `500 Internal Server Error: ${err instanceof Error ? err.message : String(err)}` }),
        );
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    api: `${base}/api/v4`,
    requests,
    mergeRequests,
    hooks,
    deliveries: sender.deliveries,
    deliveriesSettled: () => sender.settled(),
    rateLimitNext(count, retryAfterSeconds) {
      limited = { left: count, after: retryAfterSeconds };
    },
    as: (username) => async (method, path, body) => {
      const token = username === 'ferry-bot' ? options.token : options.users?.[username];
      if (token === undefined) throw new Error(`the GitLab stand-in has no user ${username}`);
      const res = await fetch(`${base}/api/v4${path}`, {
        method,
        headers: { 'PRIVATE-TOKEN': token, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // GitLab's throttle answers text
      }
      return { status: res.status, headers: res.headers, body: parsed };
    },
    async close() {
      await sender.settled();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
