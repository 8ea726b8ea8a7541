// GitHub's pull requests for the GitHub stand-in (server.ts routes here), on a real bare repository per
// repository (git-host/repository.ts), with GitHub's wire format:
//
//   POST  /repos/{o}/{r}/pulls                        201 pull | 422 already exists, no commits between, bad head/base
//   GET   /repos/{o}/{r}/pulls?state=&head=o:ref&base=&per_page=&page=   200 list, newest first, Link
//   GET   /repos/{o}/{r}/pulls/{n}                    200 pull (merged, merge_commit_sha, mergeable, head.sha) | 404
//   PATCH /repos/{o}/{r}/pulls/{n}                    200 pull {title, body, state: open|closed}
//   PUT   /repos/{o}/{r}/pulls/{n}/merge              200 {sha, merged, message} | 405 not mergeable | 409 head moved
//   POST  /repos/{o}/{r}/pulls/{n}/reviews            200 review {event: APPROVE|REQUEST_CHANGES|COMMENT}
//   GET   /repos/{o}/{r}/pulls/{n}/reviews            200 list, oldest first; Link to /repositories/{id}/…
//   PUT   /repos/{o}/{r}/pulls/{n}/reviews/{id}/dismissals   200 review DISMISSED
//   POST/GET /repos/{o}/{r}/issues/{n}/labels         200 the issue's labels (POST adds, creating unknown ones)
//   POST/GET /repos/{o}/{r}/issues/{n}/comments       201 comment | 200 list
//   POST/GET /repos/{o}/{r}/hooks                     201 hook (and a `ping` delivery) | 200 list
//   /repositories/{id}/…                              the same, by repository id (GitHub's Link headers use it)
//
// As on GitHub: an open pull request's `merge_commit_sha` is its test merge (refs/pull/{n}/merge), null when it
// conflicts (`mergeable: false`); a merge is a real merge (or squash) commit on the base branch; a `head` filter
// without `owner:` is ignored; the author cannot approve or request changes on their own pull request.
// `hideMergeCommit(repo, n, gets)` makes the next GETs of a merged pull report `merge_commit_sha: null`, as GitHub
// does while it is still writing the merge.
import { createHmac } from 'node:crypto';
import { BareRepository, BaseMoved, MergeConflict, type Identity } from '../git-host/repository';
import { paginate } from '../git-host/pages';
import type { WebhookSender } from '../git-host/webhooks';

const DOCS = 'https://docs.github.com/rest/pulls/pulls';

export interface StandInReview {
  id: number;
  user: string;
  state: 'APPROVED' | 'CHANGES_REQUESTED' | 'COMMENTED' | 'DISMISSED' | 'PENDING';
  body: string;
  commitId: string;
  submittedAt?: string;
}

export interface StandInPull {
  repository: string;
  number: number;
  id: number;
  title: string;
  body: string | null;
  head: string;
  base: string;
  author: string;
  state: 'open' | 'closed';
  merged: boolean;
  mergedAt?: string;
  mergedBy?: string;
  mergeCommit?: string;
  closedAt?: string;
  createdAt: string;
  updatedAt: string;
  /** The head commit when the pull was closed or merged (the branch may move or go away after). */
  frozenHead?: string;
  labels: string[];
  reviews: StandInReview[];
  comments: Array<{ id: number; user: string; body: string; createdAt: string }>;
  /** GETs left that report `merge_commit_sha: null` although merged. */
  hiddenMergeCommitGets: number;
}

export interface StandInHook {
  id: number;
  repository: string;
  url: string;
  secret?: string;
  events: string[];
  active: boolean;
  createdAt: string;
}

export interface PullsContext {
  base: () => string;
  repositories: Map<string, { id: number; git: BareRepository }>;
  /** The user a token belongs to (login → token), for ids and types. */
  users: () => string[];
  hooks: WebhookSender;
  now: () => string;
  nextId: () => number;
}

/** Answers the request; returns true, so a route can `return reply(…)` to say it handled the request. */
type Reply = (status: number, body: unknown, headers?: Record<string, string>) => true;

export interface PullsRequest {
  method: string;
  url: URL;
  /** The path below /repos/{o}/{r} (or /repositories/{id}), e.g. `/pulls/3/reviews`. */
  rest: string;
  repository: string;
  body: any;
  user: string;
  reply: Reply;
}

const GITHUB_IDENTITY: Identity = { name: 'GitHub', email: 'noreply@github.com' };

export function createPulls(ctx: PullsContext) {
  const pulls: StandInPull[] = [];
  const hooks: StandInHook[] = [];
  const labelIds = new Map<string, number>();
  const testMerges = new Map<string, string | null>();

  const git = (repository: string): BareRepository => ctx.repositories.get(repository)!.git;
  const repoId = (repository: string): number => ctx.repositories.get(repository)!.id;
  const userId = (login: string): number => 1000 + ctx.users().indexOf(login) + 1;

  const userJson = (login: string) => ({
    login,
    id: userId(login),
    node_id: `U_kgDO${userId(login)}`,
    type: login.endsWith('-bot') || login.endsWith('[bot]') ? 'Bot' : 'User',
    site_admin: false,
    url: `${ctx.base()}/users/${login}`,
    html_url: `${ctx.base()}/${login}`,
  });

  const repoJson = (repository: string) => {
    const [owner, name] = repository.split('/');
    return {
      id: repoId(repository),
      node_id: `R_kgDO${repoId(repository)}`,
      name,
      full_name: repository,
      private: true,
      owner: { ...userJson(owner), type: 'Organization' },
      html_url: `${ctx.base()}/${repository}`,
      url: `${ctx.base()}/repos/${repository}`,
      clone_url: `${ctx.base()}/${repository}.git`,
      git_url: `${ctx.base().replace(/^https?/, 'git')}/${repository}.git`,
      ssh_url: `git@${new URL(ctx.base()).hostname}:${repository}.git`,
      default_branch: 'main',
    };
  };

  const headSha = (pull: StandInPull): string | undefined => pull.frozenHead ?? git(pull.repository).branch(pull.head);

  /** The test merge of an open pull: GitHub's refs/pull/{n}/merge, cached per base and head commit. */
  const testMerge = (pull: StandInPull): string | null => {
    const repo = git(pull.repository);
    const head = repo.branch(pull.head);
    const base = repo.branch(pull.base);
    if (!head || !base) return null;
    const key = `${pull.repository}#${pull.number}:${base}:${head}`;
    if (!testMerges.has(key)) {
      const tree = repo.mergeTree(base, head);
      let sha: string | null = null;
      if ('tree' in tree) {
        sha = repo.commitTree(tree.tree, [base, head], `Merge ${head} into ${base}`, GITHUB_IDENTITY, GITHUB_IDENTITY);
        repo.git(['update-ref', `refs/pull/${pull.number}/merge`, sha]);
      }
      testMerges.set(key, sha);
    }
    return testMerges.get(key) ?? null;
  };

  const labelJson = (repository: string, name: string) => {
    const key = `${repository}\0${name}`;
    if (!labelIds.has(key)) labelIds.set(key, ctx.nextId());
    const id = labelIds.get(key)!;
    return {
      id,
      node_id: `LA_kwDO${id}`,
      url: `${ctx.base()}/repos/${repository}/labels/${encodeURIComponent(name)}`,
      name,
      color: 'ededed',
      default: false,
      description: null,
    };
  };

  const pullJson = (pull: StandInPull) => {
    const repo = pull.repository;
    const [owner] = repo.split('/');
    const api = `${ctx.base()}/repos/${repo}`;
    const html = `${ctx.base()}/${repo}/pull/${pull.number}`;
    let mergeCommit: string | null;
    if (pull.merged) {
      if (pull.hiddenMergeCommitGets > 0) {
        pull.hiddenMergeCommitGets--;
        mergeCommit = null;
      } else mergeCommit = pull.mergeCommit ?? null;
    } else mergeCommit = pull.state === 'open' ? testMerge(pull) : null;
    const mergeable = pull.state === 'open' ? mergeCommit !== null : null;
    const side = (ref: string, sha: string | undefined) => ({
      label: `${owner}:${ref}`,
      ref,
      sha: sha ?? null,
      user: { ...userJson(owner), type: 'Organization' },
      repo: repoJson(repo),
    });
    return {
      url: `${api}/pulls/${pull.number}`,
      id: pull.id,
      node_id: `PR_kwDO${pull.id}`,
      html_url: html,
      diff_url: `${html}.diff`,
      patch_url: `${html}.patch`,
      issue_url: `${api}/issues/${pull.number}`,
      commits_url: `${api}/pulls/${pull.number}/commits`,
      review_comments_url: `${api}/pulls/${pull.number}/comments`,
      comments_url: `${api}/issues/${pull.number}/comments`,
      statuses_url: `${api}/statuses/${headSha(pull) ?? ''}`,
      number: pull.number,
      state: pull.state,
      locked: false,
      title: pull.title,
      user: userJson(pull.author),
      body: pull.body,
      labels: pull.labels.map((l) => labelJson(repo, l)),
      milestone: null,
      active_lock_reason: null,
      created_at: pull.createdAt,
      updated_at: pull.updatedAt,
      closed_at: pull.closedAt ?? null,
      merged_at: pull.mergedAt ?? null,
      merge_commit_sha: mergeCommit,
      assignee: null,
      assignees: [],
      requested_reviewers: [],
      requested_teams: [],
      head: side(pull.head, headSha(pull)),
      base: side(pull.base, git(repo).branch(pull.base)),
      author_association: 'MEMBER',
      auto_merge: null,
      draft: false,
      merged: pull.merged,
      mergeable,
      rebaseable: mergeable,
      mergeable_state: pull.state !== 'open' ? 'unknown' : mergeable ? 'clean' : 'dirty',
      merged_by: pull.mergedBy ? userJson(pull.mergedBy) : null,
      comments: pull.comments.length,
      review_comments: 0,
      maintainer_can_modify: false,
    };
  };

  const reviewJson = (pull: StandInPull, review: StandInReview) => ({
    id: review.id,
    node_id: `PRR_kwDO${review.id}`,
    user: userJson(review.user),
    body: review.body,
    state: review.state,
    html_url: `${ctx.base()}/${pull.repository}/pull/${pull.number}#pullrequestreview-${review.id}`,
    pull_request_url: `${ctx.base()}/repos/${pull.repository}/pulls/${pull.number}`,
    author_association: 'MEMBER',
    ...(review.submittedAt ? { submitted_at: review.submittedAt } : {}),
    commit_id: review.commitId,
  });

  const commentJson = (pull: StandInPull, comment: StandInPull['comments'][number]) => ({
    id: comment.id,
    node_id: `IC_kwDO${comment.id}`,
    url: `${ctx.base()}/repos/${pull.repository}/issues/comments/${comment.id}`,
    html_url: `${ctx.base()}/${pull.repository}/pull/${pull.number}#issuecomment-${comment.id}`,
    issue_url: `${ctx.base()}/repos/${pull.repository}/issues/${pull.number}`,
    body: comment.body,
    user: userJson(comment.user),
    created_at: comment.createdAt,
    updated_at: comment.createdAt,
    author_association: 'MEMBER',
  });

  const hookJson = (hook: StandInHook) => ({
    type: 'Repository',
    id: hook.id,
    name: 'web',
    active: hook.active,
    events: hook.events,
    config: { content_type: 'json', insecure_ssl: '0', url: hook.url, ...(hook.secret ? { secret: '********' } : {}) },
    updated_at: hook.createdAt,
    created_at: hook.createdAt,
    url: `${ctx.base()}/repos/${hook.repository}/hooks/${hook.id}`,
    test_url: `${ctx.base()}/repos/${hook.repository}/hooks/${hook.id}/test`,
    ping_url: `${ctx.base()}/repos/${hook.repository}/hooks/${hook.id}/pings`,
    deliveries_url: `${ctx.base()}/repos/${hook.repository}/hooks/${hook.id}/deliveries`,
    last_response: { code: null, status: 'unused', message: null },
  });

  /** Sends `event` to the repository's hooks that subscribe to it (`*` takes every event; `ping` goes to one). */
  const deliver = (repository: string, event: string, payload: Record<string, unknown>, only?: StandInHook): void => {
    for (const hook of only ? [only] : hooks.filter((h) => h.repository === repository)) {
      if (!hook.active || (!only && !hook.events.includes(event) && !hook.events.includes('*'))) continue;
      ctx.hooks.send(hook, event, payload, (body, id) => ({
        'user-agent': 'GitHub-Hookshot/standin',
        'x-github-event': event,
        'x-github-delivery': id,
        'x-github-hook-id': String(hook.id),
        'x-github-hook-installation-target-id': String(repoId(repository)),
        'x-github-hook-installation-target-type': 'repository',
        ...(hook.secret
          ? {
              'x-hub-signature': `sha1=${createHmac('sha1', hook.secret).update(body).digest('hex')}`,
              'x-hub-signature-256': `sha256=${createHmac('sha256', hook.secret).update(body).digest('hex')}`,
            }
          : {}),
      }));
    }
  };

  const pullEvent = (pull: StandInPull, action: string, sender: string, extra: Record<string, unknown> = {}) =>
    deliver(pull.repository, 'pull_request', {
      action,
      number: pull.number,
      pull_request: pullJson(pull),
      repository: repoJson(pull.repository),
      sender: userJson(sender),
      ...extra,
    });

  /** A branch moved (a merge, or a git push): GitHub's `push`, and `synchronize` for open pulls from it. */
  const branchMoved = (
    repository: string,
    branch: string,
    before: string | undefined,
    after: string | undefined,
    pusher: string,
  ) => {
    const zero = '0'.repeat(40);
    deliver(repository, 'push', {
      ref: `refs/heads/${branch}`,
      before: before ?? zero,
      after: after ?? zero,
      created: before === undefined,
      deleted: after === undefined,
      forced: before !== undefined && after !== undefined && !git(repository).isAncestor(before, after),
      base_ref: null,
      compare: `${ctx.base()}/${repository}/compare/${(before ?? zero).slice(0, 12)}...${(after ?? zero).slice(0, 12)}`,
      commits: [],
      head_commit: after ? { id: after, tree_id: git(repository).git(['rev-parse', `${after}^{tree}`]) } : null,
      repository: repoJson(repository),
      pusher: { name: pusher, email: `${pusher}@users.noreply.github.com` },
      sender: userJson(pusher),
    });
    if (after === undefined) return;
    for (const pull of pulls.filter((p) => p.repository === repository && p.state === 'open' && p.head === branch)) {
      pull.updatedAt = ctx.now();
      pullEvent(pull, 'synchronize', pusher, { before, after });
    }
  };

  const validation = (reply: Reply, errors: unknown[], docs = `${DOCS}#create-a-pull-request`): true =>
    reply(422, { message: 'Validation Failed', errors, documentation_url: docs, status: '422' });
  const notFound = (reply: Reply, docs = DOCS): true =>
    reply(404, { message: 'Not Found', documentation_url: docs, status: '404' });

  const handle = (r: PullsRequest): boolean => {
    const { method, url, rest, repository, body, user, reply } = r;
    const repo = git(repository);
    let m: RegExpExecArray | null;

    if (rest === '/pulls' && method === 'POST') {
      if (
        typeof body.title !== 'string' ||
        body.title === '' ||
        typeof body.head !== 'string' ||
        typeof body.base !== 'string'
      ) {
        return validation(
          reply,
          ['title', 'head', 'base']
            .filter((f) => typeof body[f] !== 'string' || body[f] === '')
            .map((field) => ({ resource: 'PullRequest', field, code: 'missing_field' })),
        );
      }
      const [owner] = repository.split('/');
      const headParts = body.head.includes(':') ? body.head.split(':') : [owner, body.head];
      const head = headParts.slice(1).join(':');
      if (headParts[0].toLowerCase() !== owner.toLowerCase() || !repo.branch(head))
        return validation(reply, [{ resource: 'PullRequest', field: 'head', code: 'invalid' }]);
      if (!repo.branch(body.base))
        return validation(reply, [{ resource: 'PullRequest', field: 'base', code: 'invalid' }]);
      if (
        pulls.some((p) => p.repository === repository && p.state === 'open' && p.head === head && p.base === body.base)
      ) {
        return validation(reply, [
          { resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${owner}:${head}.` },
        ]);
      }
      if (repo.isAncestor(repo.branch(head)!, repo.branch(body.base)!)) {
        return validation(reply, [
          { resource: 'PullRequest', code: 'custom', message: `No commits between ${body.base} and ${head}` },
        ]);
      }
      const number = pulls.filter((p) => p.repository === repository).length + 1;
      const pull: StandInPull = {
        repository,
        number,
        id: ctx.nextId(),
        title: body.title,
        body: typeof body.body === 'string' ? body.body : null,
        head,
        base: body.base,
        author: user,
        state: 'open',
        merged: false,
        createdAt: ctx.now(),
        updatedAt: ctx.now(),
        labels: [],
        reviews: [],
        comments: [],
        hiddenMergeCommitGets: 0,
      };
      pulls.push(pull);
      repo.git(['update-ref', `refs/pull/${number}/head`, repo.branch(head)!]);
      const json = pullJson(pull);
      reply(201, json, { location: json.url });
      pullEvent(pull, 'opened', user);
      return true;
    }

    if (rest === '/pulls' && method === 'GET') {
      const state = url.searchParams.get('state') ?? 'open';
      const headFilter = url.searchParams.get('head');
      const baseFilter = url.searchParams.get('base');
      const list = pulls
        .filter((p) => p.repository === repository)
        .filter((p) => state === 'all' || p.state === state)
        // GitHub ignores a head filter that is not owner:branch.
        .filter((p) => {
          if (!headFilter?.includes(':')) return true;
          const [owner, ...ref] = headFilter.split(':');
          return owner.toLowerCase() === repository.split('/')[0].toLowerCase() && p.head === ref.join(':');
        })
        .filter((p) => !baseFilter || p.base === baseFilter)
        .sort((a, b) => (url.searchParams.get('direction') === 'asc' ? a.number - b.number : b.number - a.number));
      const page = paginate(list, url, {
        linkBase: `${ctx.base()}/repositories/${repoId(repository)}/pulls`,
        defaultPerPage: 30,
        maxPerPage: 100,
        style: 'github',
      });
      reply(200, page.items.map(pullJson), page.headers);
      return true;
    }

    if ((m = /^\/(pulls|issues)\/(\d+)(\/.*)?$/.exec(rest))) {
      const pull = pulls.find((p) => p.repository === repository && p.number === Number(m![2]));
      if (!pull) return notFound(reply);
      const kind = m[1];
      const sub = m[3] ?? '';

      if (kind === 'pulls' && sub === '' && method === 'GET') return reply(200, pullJson(pull));

      if (kind === 'pulls' && sub === '' && method === 'PATCH') {
        if (typeof body.title === 'string') pull.title = body.title;
        if (typeof body.body === 'string') pull.body = body.body;
        if (body.state !== undefined && body.state !== pull.state) {
          if (body.state !== 'open' && body.state !== 'closed')
            return validation(reply, [{ resource: 'PullRequest', field: 'state', code: 'invalid' }]);
          if (pull.merged) {
            return validation(reply, [
              { resource: 'PullRequest', code: 'custom', message: 'Cannot change the state of a merged pull request' },
            ]);
          }
          if (body.state === 'closed') {
            pull.state = 'closed';
            pull.closedAt = ctx.now();
            pull.frozenHead = repo.branch(pull.head);
          } else {
            if (!repo.branch(pull.head))
              return validation(reply, [{ resource: 'PullRequest', field: 'head', code: 'invalid' }]);
            pull.state = 'open';
            delete pull.closedAt;
            delete pull.frozenHead;
          }
        }
        pull.updatedAt = ctx.now();
        reply(200, pullJson(pull));
        if (body.state === 'closed') pullEvent(pull, 'closed', user);
        if (body.state === 'open') pullEvent(pull, 'reopened', user);
        return true;
      }

      if (kind === 'pulls' && sub === '/merge' && method === 'PUT') {
        const refuse = (status: number, message: string): true =>
          reply(status, { message, documentation_url: `${DOCS}#merge-a-pull-request`, status: String(status) });
        if (pull.state !== 'open') return refuse(405, 'Pull Request is not mergeable');
        const method_ = body.merge_method ?? 'merge';
        if (method_ === 'rebase') return refuse(405, 'Rebase merges are not allowed on this repository.');
        if (method_ !== 'merge' && method_ !== 'squash')
          return validation(reply, [{ resource: 'PullRequest', field: 'merge_method', code: 'invalid' }]);
        const head = repo.branch(pull.head);
        if (!head) return refuse(405, 'Pull Request is not mergeable');
        if (typeof body.sha === 'string' && body.sha !== head)
          return refuse(409, 'Head branch was modified. Review and try the merge again.');
        const baseBefore = repo.branch(pull.base);
        const [owner] = repository.split('/');
        const title =
          typeof body.commit_title === 'string'
            ? body.commit_title
            : method_ === 'merge'
              ? `Merge pull request #${pull.number} from ${owner}/${pull.head}`
              : `${pull.title} (#${pull.number})`;
        const message =
          `${title}\n\n${typeof body.commit_message === 'string' ? body.commit_message : method_ === 'merge' ? pull.title : ''}`.trim();
        let sha: string;
        try {
          sha = repo.merge({
            base: pull.base,
            head,
            method: method_,
            message: `${message}\n`,
            author: { name: user, email: `${user}@users.noreply.github.com` },
            committer: GITHUB_IDENTITY,
          }).sha;
        } catch (err) {
          if (err instanceof MergeConflict) return refuse(405, 'Pull Request is not mergeable');
          if (err instanceof BaseMoved) return refuse(409, 'Base branch was modified. Review and try the merge again.');
          throw err;
        }
        Object.assign(pull, {
          state: 'closed',
          merged: true,
          mergedAt: ctx.now(),
          mergedBy: user,
          mergeCommit: sha,
          closedAt: ctx.now(),
          updatedAt: ctx.now(),
          frozenHead: head,
        });
        reply(200, { sha, merged: true, message: 'Pull Request successfully merged' });
        pullEvent(pull, 'closed', user);
        branchMoved(repository, pull.base, baseBefore, sha, user);
        return true;
      }

      if (kind === 'pulls' && sub === '/reviews' && method === 'POST') {
        const events: Record<string, StandInReview['state']> = {
          APPROVE: 'APPROVED',
          REQUEST_CHANGES: 'CHANGES_REQUESTED',
          COMMENT: 'COMMENTED',
        };
        const docs = 'https://docs.github.com/rest/pulls/reviews#create-a-review-for-a-pull-request';
        const unprocessable = (error: string): true =>
          reply(422, { message: 'Unprocessable Entity', errors: [error], documentation_url: docs, status: '422' });
        const event = body.event as string | undefined;
        if (event !== undefined && !(event in events)) return unprocessable(`Event "${event}" is not valid`);
        if (event === 'APPROVE' && pull.author === user)
          return unprocessable('Review Can not approve your own pull request');
        if (event === 'REQUEST_CHANGES' && pull.author === user)
          return unprocessable('Review Can not request changes on your own pull request');
        if ((event === 'REQUEST_CHANGES' || event === 'COMMENT') && !body.body)
          return unprocessable(`Review Body is required for ${event}`);
        const review: StandInReview = {
          id: ctx.nextId(),
          user,
          state: event ? events[event] : 'PENDING',
          body: typeof body.body === 'string' ? body.body : '',
          commitId: typeof body.commit_id === 'string' ? body.commit_id : (headSha(pull) ?? ''),
          ...(event ? { submittedAt: ctx.now() } : {}),
        };
        pull.reviews.push(review);
        reply(200, reviewJson(pull, review));
        if (event) {
          deliver(pull.repository, 'pull_request_review', {
            action: 'submitted',
            review: reviewJson(pull, review),
            pull_request: pullJson(pull),
            repository: repoJson(pull.repository),
            sender: userJson(user),
          });
        }
        return true;
      }

      if (kind === 'pulls' && sub === '/reviews' && method === 'GET') {
        // Others' pending reviews are not shown.
        const visible = pull.reviews.filter((rv) => rv.state !== 'PENDING' || rv.user === user);
        const page = paginate(visible, url, {
          linkBase: `${ctx.base()}/repositories/${repoId(repository)}/pulls/${pull.number}/reviews`,
          defaultPerPage: 30,
          maxPerPage: 100,
          style: 'github',
        });
        reply(
          200,
          page.items.map((rv) => reviewJson(pull, rv)),
          page.headers,
        );
        return true;
      }

      if (kind === 'pulls' && (m = /^\/reviews\/(\d+)\/dismissals$/.exec(sub)) && method === 'PUT') {
        const review = pull.reviews.find((rv) => rv.id === Number(m![1]));
        if (!review) return notFound(reply);
        if (review.state !== 'APPROVED' && review.state !== 'CHANGES_REQUESTED') {
          reply(422, {
            message: 'Unprocessable Entity',
            errors: [`Can not dismiss a ${review.state.toLowerCase()} pull request review`],
            documentation_url: 'https://docs.github.com/rest/pulls/reviews#dismiss-a-review-for-a-pull-request',
            status: '422',
          });
          return true;
        }
        review.state = 'DISMISSED';
        reply(200, reviewJson(pull, review));
        return true;
      }

      if (kind === 'issues' && sub === '/labels') {
        if (method === 'POST' || method === 'PUT') {
          const given = Array.isArray(body) ? body : body.labels;
          if (!Array.isArray(given) || given.some((l: unknown) => typeof l !== 'string' || l === ''))
            return validation(reply, [{ resource: 'Label', field: 'name', code: 'invalid' }]);
          if (method === 'PUT') pull.labels = [];
          for (const l of given as string[]) if (!pull.labels.includes(l)) pull.labels.push(l);
          pull.updatedAt = ctx.now();
        } else if (method !== 'GET') return false;
        reply(
          200,
          pull.labels.map((l) => labelJson(repository, l)),
        );
        return true;
      }

      if (kind === 'issues' && sub === '/comments') {
        if (method === 'POST') {
          if (typeof body.body !== 'string' || body.body === '')
            return validation(reply, [{ resource: 'IssueComment', field: 'body', code: 'missing_field' }]);
          const comment = { id: ctx.nextId(), user, body: body.body, createdAt: ctx.now() };
          pull.comments.push(comment);
          const json = commentJson(pull, comment);
          reply(201, json, { location: json.url });
          return true;
        }
        if (method !== 'GET') return false;
        const page = paginate(pull.comments, url, {
          linkBase: `${ctx.base()}/repositories/${repoId(repository)}/issues/${pull.number}/comments`,
          defaultPerPage: 30,
          maxPerPage: 100,
          style: 'github',
        });
        reply(
          200,
          page.items.map((c) => commentJson(pull, c)),
          page.headers,
        );
        return true;
      }
      return false;
    }

    if (rest === '/hooks' && method === 'POST') {
      const config = body.config ?? {};
      if (typeof config.url !== 'string' || !/^https?:\/\//.test(config.url))
        return validation(reply, [
          { resource: 'Hook', code: 'custom', message: 'Config must contain URL for webhooks' },
        ]);
      const hook: StandInHook = {
        id: ctx.nextId(),
        repository,
        url: config.url,
        ...(typeof config.secret === 'string' && config.secret !== '' ? { secret: config.secret } : {}),
        events: Array.isArray(body.events) && body.events.length > 0 ? body.events : ['push'],
        active: body.active !== false,
        createdAt: ctx.now(),
      };
      hooks.push(hook);
      reply(201, hookJson(hook), { location: hookJson(hook).url });
      deliver(
        repository,
        'ping',
        {
          zen: 'Keep it logically awesome.',
          hook_id: hook.id,
          hook: hookJson(hook),
          repository: repoJson(repository),
          sender: userJson(user),
        },
        hook,
      );
      return true;
    }
    if (rest === '/hooks' && method === 'GET') {
      reply(200, hooks.filter((h) => h.repository === repository).map(hookJson));
      return true;
    }
    return false;
  };

  return { pulls, hooks, handle, branchMoved };
}
