// A stand-in for the parts of GitHub that Ferry uses, on 127.0.0.1, with GitHub's wire format (status codes, field
// names, Location, x-ratelimit-* headers, error bodies with `message` and `documentation_url`): deployments and
// their statuses (the github-deployment target), pull requests (pulls.ts: the pull-request strategy), webhooks
// GitHub sends about them, and git over smart HTTP at `/{owner}/{name}.git` for repositories given with a bare
// repository (`git`), so a test's repository URL is the stand-in's, as github.com serves both. Deployments live in
// memory; pull requests sit on the real repository. Every API request is recorded, so a test can read the status
// sequence an environment went through, or when a retry came.
//
//   POST /repos/{owner}/{repo}/deployments                   201 deployment | 401 | 404 | 422
//   GET  /repos/{owner}/{repo}/deployments?environment=&ref=&task=&sha=&per_page=   200 list, newest first
//   POST /repos/{owner}/{repo}/deployments/{id}/statuses     201 status | 404 | 422
//   GET  /repos/{owner}/{repo}/deployments/{id}/statuses?per_page=   200 list, newest first
//
// `auto_inactive` (default true) behaves as GitHub documents it: a new `success` status adds `inactive` to earlier
// non-transient, non-production deployments of the same environment whose latest status is `success`.
// `rateLimitNext` makes the next API requests answer a primary (403, x-ratelimit-remaining: 0) or secondary
// (429 with retry-after) rate limit. Tokens: `token` is the bot `ferry-bot`; `users` adds people (login → token)
// who review, merge and close through the same API (`as(login)` calls it with their token).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basicPassword, gitRequestPath, serveGit } from '../git-host/http-backend';
import { BareRepository } from '../git-host/repository';
import { createWebhookSender, type HookDelivery } from '../git-host/webhooks';
import { createPulls, type StandInHook, type StandInPull } from './pulls';

const DOCS = 'https://docs.github.com/rest/deployments';
const STATES = ['error', 'failure', 'inactive', 'in_progress', 'queued', 'pending', 'success'] as const;

export interface StandInDeployment {
  url: string;
  id: number;
  node_id: string;
  sha: string;
  ref: string;
  task: string;
  payload: unknown;
  original_environment: string;
  environment: string;
  description: string | null;
  creator: { login: string; id: number; type: string };
  created_at: string;
  updated_at: string;
  statuses_url: string;
  repository_url: string;
  transient_environment: boolean;
  production_environment: boolean;
}

export interface StandInStatus {
  url: string;
  id: number;
  node_id: string;
  state: (typeof STATES)[number];
  creator: { login: string; id: number; type: string };
  description: string;
  environment: string;
  target_url: string;
  log_url: string;
  environment_url: string;
  created_at: string;
  updated_at: string;
  deployment_url: string;
  repository_url: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  status: number;
  at: number;
  headers: Record<string, string | string[] | undefined>;
  body?: any;
}

export interface GitHubStandIn {
  /** The API base (`api` of a pipeline's pullRequest) and the web and git origin (`${url}/owner/name.git`). */
  url: string;
  requests: RecordedRequest[];
  pulls: StandInPull[];
  hooks: StandInHook[];
  /** Webhook deliveries made, oldest first, with the receiver's answer. */
  deliveries: HookDelivery[];
  /** Waits until every webhook delivery under way has been answered. */
  deliveriesSettled(): Promise<void>;
  /** The next `gets` GETs of a merged pull request report `merge_commit_sha: null`, as GitHub does for a moment. */
  hideMergeCommit(repository: string, number: number, gets: number): void;
  /** Calls the API as `login` (a key of `users`, or `ferry-bot`), as that person would with their token. */
  as(login: string): ApiCaller;
  deployments: StandInDeployment[];
  statuses: Map<number, StandInStatus[]>;
  /** The states posted to an environment's deployments, oldest first, as `<deployment id>:<state>`. */
  statusSequence(environment: string): string[];
  /** The next `count` requests answer with a rate limit: `primary` (403, remaining 0, reset) or `secondary` (429). */
  rateLimitNext(kind: 'primary' | 'secondary', count: number, retryAfterSeconds: number): void;
  close(): Promise<void>;
}

export type ApiCaller = (
  method: string,
  path: string,
  body?: unknown,
) => Promise<{ status: number; headers: Headers; body: any }>;

export interface GitHubStandInOptions {
  /** The token of the bot user `ferry-bot`. */
  token: string;
  /** Repositories (owner/name) that exist, for deployments. */
  repositories: string[];
  /** Repositories with a real bare repository (owner/name → its path): pull requests and git over HTTP. */
  git?: Record<string, string>;
  /** More users, login → token. */
  users?: Record<string, string>;
}

export async function startGitHubStandIn(options: GitHubStandInOptions): Promise<GitHubStandIn> {
  const started = Date.now();
  const tokens = new Map<string, string>([
    [options.token, 'ferry-bot'],
    ...Object.entries(options.users ?? {}).map(([login, token]) => [token, login] as [string, string]),
  ]);
  const logins = ['ferry-bot', ...Object.keys(options.users ?? {})];
  const gitRepos = new Map(
    Object.entries(options.git ?? {}).map(([name, path], i) => [
      name,
      { id: 700_000 + i, git: new BareRepository(path) },
    ]),
  );
  const known = new Set([...options.repositories, ...gitRepos.keys()]);
  const userOf = (header: string | undefined): string | undefined => {
    const match = /^(?:Bearer|token)\s+(\S+)$/i.exec(header ?? '');
    return match ? tokens.get(match[1]) : undefined;
  };
  const hookSender = createWebhookSender();
  const requests: RecordedRequest[] = [];
  const deployments: StandInDeployment[] = [];
  const statuses = new Map<number, StandInStatus[]>();
  let nextId = 1000;
  let limited: { kind: 'primary' | 'secondary'; left: number; after: number } | undefined;
  let used = 0;
  let base = '';

  const send = (res: ServerResponse, record: RecordedRequest, status: number, body: unknown, extra = {}): void => {
    record.status = status;
    used++;
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'x-github-api-version-selected': '2022-11-28',
      'x-ratelimit-limit': '5000',
      'x-ratelimit-remaining': String(Math.max(5000 - used, 0)),
      'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 3600),
      'x-ratelimit-used': String(used),
      'x-ratelimit-resource': 'core',
      ...extra,
    });
    res.end(body === undefined ? '' : JSON.stringify(body));
  };
  const error = (res: ServerResponse, record: RecordedRequest, status: number, message: string, errors?: unknown[]) =>
    send(res, record, status, {
      message,
      ...(errors ? { errors } : {}),
      documentation_url: DOCS,
      status: String(status),
    });

  const creator = { login: 'ferry-bot', id: 7, type: 'Bot' };
  const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const pullsApi = createPulls({
    base: () => base,
    repositories: gitRepos,
    users: () => logins,
    hooks: hookSender,
    now,
    nextId: () => nextId++,
  });

  /** git over smart HTTP: basic auth with a user's token as the password, as github.com takes it. */
  const handleGit = async (req: IncomingMessage, res: ServerResponse, raw: Buffer, url: URL): Promise<boolean> => {
    const target = gitRequestPath(url.pathname);
    if (!target) return false;
    const repo = gitRepos.get(target.repository);
    const user = tokens.get(basicPassword(req.headers.authorization) ?? '');
    if (!user) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="GitHub"', 'content-type': 'text/plain' });
      res.end('Invalid username or token. Password authentication is not supported for Git operations.\n');
      return true;
    }
    if (!repo) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('Repository not found.\n');
      return true;
    }
    const pushing = target.rest === '/git-receive-pack';
    const before = pushing ? repo.git.branches() : undefined;
    await serveGit(req, res, {
      repoPath: repo.git.path,
      rest: target.rest,
      query: url.search.slice(1),
      body: raw,
      user,
    });
    if (before) {
      const after = repo.git.branches();
      for (const branch of new Set([...before.keys(), ...after.keys()])) {
        if (before.get(branch) !== after.get(branch))
          pullsApi.branchMoved(target.repository, branch, before.get(branch), after.get(branch), user);
      }
    }
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, rawBytes: Buffer): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (await handleGit(req, res, rawBytes, url)) return;
    const raw = rawBytes.toString('utf8');
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname + url.search,
      status: 0,
      at: Date.now() - started,
      headers: req.headers,
    };
    requests.push(record);

    if (limited && limited.left > 0) {
      limited.left--;
      if (limited.kind === 'primary') {
        record.status = 403;
        res.writeHead(403, {
          'content-type': 'application/json; charset=utf-8',
          'x-ratelimit-limit': '5000',
          'x-ratelimit-remaining': '0',
          'x-ratelimit-reset': String(Math.ceil(Date.now() / 1000) + limited.after),
          'x-ratelimit-used': '5000',
          'x-ratelimit-resource': 'core',
        });
        res.end(JSON.stringify({ message: 'API rate limit exceeded for installation.', documentation_url: DOCS }));
        return;
      }
      return send(
        res,
        record,
        429,
        {
          message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
          documentation_url: DOCS,
        },
        { 'retry-after': String(limited.after) },
      );
    }

    const user = userOf(req.headers.authorization);
    if (!user) return error(res, record, 401, 'Bad credentials');
    if (req.headers.accept !== 'application/vnd.github+json') {
      return error(res, record, 415, 'Unsupported media type; send Accept: application/vnd.github+json');
    }

    const repoPath =
      /^\/repos\/([^/]+\/[^/]+)(\/(?:pulls|issues|hooks)(?:\/.*)?)$/.exec(url.pathname) ??
      /^\/repositories\/(\d+)(\/(?:pulls|issues|hooks)(?:\/.*)?)$/.exec(url.pathname);
    if (repoPath) {
      const repository = /^\d+$/.test(repoPath[1])
        ? [...gitRepos].find(([, r]) => r.id === Number(repoPath[1]))?.[0]
        : [...gitRepos.keys()].find((r) => r.toLowerCase() === repoPath[1].toLowerCase());
      if (!repository) return error(res, record, 404, 'Not Found');
      let body: any = {};
      if (req.method !== 'GET' && raw !== '') {
        try {
          body = JSON.parse(raw);
        } catch {
          return error(res, record, 400, 'Problems parsing JSON');
        }
        record.body = body;
      }
      const handled = pullsApi.handle({
        method: req.method ?? 'GET',
        url,
        rest: repoPath[2],
        repository,
        body: body ?? {},
        user,
        reply: (status, answer, headers = {}) => {
          send(res, record, status, answer, headers);
          return true;
        },
      });
      if (!handled) error(res, record, 404, 'Not Found');
      return;
    }

    const match = /^\/repos\/([^/]+)\/([^/]+)\/deployments(?:\/(\d+)\/statuses)?$/.exec(url.pathname);
    if (!match || !known.has(`${match[1]}/${match[2]}`)) return error(res, record, 404, 'Not Found');
    const repository = `${match[1]}/${match[2]}`;
    const repoUrl = `${base}/repos/${repository}`;
    let body: any = {};
    if (req.method === 'POST') {
      try {
        body = JSON.parse(raw || '{}');
      } catch {
        return error(res, record, 400, 'Problems parsing JSON');
      }
      record.body = body;
    }
    const perPage = Math.min(Number(url.searchParams.get('per_page') ?? 30), 100);

    if (!match[3]) {
      if (req.method === 'GET') {
        const filters = ['environment', 'ref', 'task', 'sha'] as const;
        const list = deployments
          .filter((d) => d.repository_url === repoUrl)
          .filter((d) => filters.every((f) => !url.searchParams.has(f) || d[f] === url.searchParams.get(f)))
          .sort((a, b) => b.id - a.id)
          .slice(0, perPage);
        return send(res, record, 200, list);
      }
      if (req.method !== 'POST') return error(res, record, 404, 'Not Found');
      if (typeof body.ref !== 'string' || body.ref === '') {
        return error(res, record, 422, 'Invalid request.\n\n"ref" wasn\'t supplied.');
      }
      if (body.required_contexts !== undefined && !Array.isArray(body.required_contexts)) {
        return error(res, record, 422, 'Validation Failed', [
          { resource: 'Deployment', field: 'required_contexts', code: 'invalid' },
        ]);
      }
      const id = nextId++;
      const environment = typeof body.environment === 'string' ? body.environment : 'production';
      const deployment: StandInDeployment = {
        url: `${repoUrl}/deployments/${id}`,
        id,
        node_id: `DE_kwDO${id}`,
        sha: (body.ref.match(/^[0-9a-f]{40}$/) ? body.ref : `${id}`.padStart(40, '0')) as string,
        ref: body.ref,
        task: typeof body.task === 'string' ? body.task : 'deploy',
        payload: body.payload ?? {},
        original_environment: environment,
        environment,
        description: typeof body.description === 'string' ? body.description : null,
        creator,
        created_at: now(),
        updated_at: now(),
        statuses_url: `${repoUrl}/deployments/${id}/statuses`,
        repository_url: repoUrl,
        transient_environment: body.transient_environment === true,
        production_environment: body.production_environment ?? environment === 'production',
      };
      deployments.push(deployment);
      statuses.set(id, []);
      return send(res, record, 201, deployment, { location: deployment.url });
    }

    const deployment = deployments.find((d) => d.id === Number(match[3]) && d.repository_url === repoUrl);
    if (!deployment) return error(res, record, 404, 'Not Found');
    const list = statuses.get(deployment.id) as StandInStatus[];
    if (req.method === 'GET') return send(res, record, 200, [...list].reverse().slice(0, perPage));
    if (req.method !== 'POST') return error(res, record, 404, 'Not Found');
    if (!STATES.includes(body.state)) {
      return error(res, record, 422, 'Validation Failed', [
        { resource: 'DeploymentStatus', field: 'state', code: 'invalid' },
      ]);
    }
    const post = (target: StandInDeployment, state: StandInStatus['state'], fields: any): StandInStatus => {
      const id = nextId++;
      const status: StandInStatus = {
        url: `${target.url}/statuses/${id}`,
        id,
        node_id: `DES_kwDO${id}`,
        state,
        creator,
        description: typeof fields.description === 'string' ? fields.description : '',
        environment: typeof fields.environment === 'string' ? fields.environment : target.environment,
        target_url: fields.log_url ?? fields.target_url ?? '',
        log_url: fields.log_url ?? fields.target_url ?? '',
        environment_url: fields.environment_url ?? '',
        created_at: now(),
        updated_at: now(),
        deployment_url: target.url,
        repository_url: repoUrl,
      };
      (statuses.get(target.id) as StandInStatus[]).push(status);
      return status;
    };
    const created = post(deployment, body.state, body);
    if (body.state === 'success' && body.auto_inactive !== false) {
      for (const earlier of deployments) {
        const latest = statuses.get(earlier.id)?.at(-1);
        if (
          earlier.id < deployment.id &&
          earlier.repository_url === repoUrl &&
          earlier.environment === deployment.environment &&
          !earlier.transient_environment &&
          !earlier.production_environment &&
          latest?.state === 'success'
        )
          post(earlier, 'inactive', { description: 'auto_inactive' });
      }
    }
    return send(res, record, 201, created, { location: created.url });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks)).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify({ message: `stand-in failure: ${err instanceof Error ? err.message : String(err)}` }));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const as =
    (login: string): ApiCaller =>
    async (method, path, body) => {
      const token = login === 'ferry-bot' ? options.token : options.users?.[login];
      if (token === undefined) throw new Error(`the GitHub stand-in has no user ${login}`);
      const res = await fetch(`${base}${path}`, {
        method,
        headers: {
          Accept: 'application/vnd.github+json',
          'X-GitHub-Api-Version': '2022-11-28',
          Authorization: `Bearer ${token}`,
          ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
    };

  return {
    url: base,
    requests,
    pulls: pullsApi.pulls,
    hooks: pullsApi.hooks,
    deliveries: hookSender.deliveries,
    deliveriesSettled: () => hookSender.settled(),
    hideMergeCommit(repository, number, gets) {
      const pull = pullsApi.pulls.find((p) => p.repository === repository && p.number === number);
      if (!pull) throw new Error(`no pull request ${repository}#${number}`);
      pull.hiddenMergeCommitGets = gets;
    },
    as,
    deployments,
    statuses,
    statusSequence(environment) {
      const all = deployments
        .filter((d) => d.environment === environment)
        .flatMap((d) => (statuses.get(d.id) ?? []).map((s) => ({ d: d.id, s })));
      return all.sort((a, b) => a.s.id - b.s.id).map(({ d, s }) => `${d}:${s.state}`);
    },
    rateLimitNext(kind, count, retryAfterSeconds) {
      limited = { kind, left: count, after: retryAfterSeconds };
    },
    async close() {
      await hookSender.settled();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
