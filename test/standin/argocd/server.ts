// A loopback Argo CD API server for tests: the real wire format (grpc-gateway v1 error
// bodies and status codes, 415 for non-JSON, 403-vs-404 for missing apps, JWT-shaped bearer tokens, int64 as
// numbers, second-precision times) in front of the simulated controller in ./controller. A test-control API lives
// under /__standin/* and, in process, on the returned `control` object.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import {
  ArgoCdSimulation,
  WireError,
  type AppSeed,
  type ControllerEvent,
  type Injection,
  type SyncRequest,
  type Timing,
} from './controller';
import { clone, type Application, type Info, type Spec } from './model';
import { jsonPatch, mergePatch, PatchError } from './patch';

export type { AppSeed, ControllerEvent, HealthStep, Injection, Timing } from './controller';
export type { Application, HealthStatus } from './model';

export type Action = 'get' | 'sync' | 'update' | 'override';

/** `true`: every action; `false`: a valid session that may do nothing (403 on app endpoints). */
export type TokenSpec = boolean | { username?: string; actions?: Action[] };

export interface ArgoCdStandInOptions {
  /** Default 0 (a random free port). Always on 127.0.0.1. */
  port?: number;
  tokens?: Record<string, TokenSpec>;
  timing?: Partial<Timing>;
  /** What GET /api/version reports. */
  version?: string;
}

export interface RecordedRequest {
  at: number;
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  /** Parsed JSON, the raw text when it was not JSON, or undefined when empty. */
  body?: unknown;
  /** The app the path names, if any. */
  app?: string;
  status?: number;
}

export interface RequestFilter {
  method?: string;
  /** Exact path, or a RegExp. */
  path?: string | RegExp;
  app?: string;
}

export interface ArgoCdStandInControl {
  /** Adds or replaces an app; resolves once its first reconcile has run. */
  addApp(seed: AppSeed): Promise<Application>;
  /** The app as GET returns it, without RBAC. */
  getApp(name: string, namespace?: string): Application | undefined;
  removeApp(name: string, namespace?: string): boolean;
  /** Merges branch/tag → SHA entries into the repo map for repoURL (consulted before git ls-remote). */
  setRepo(repoURL: string, refs: Record<string, string>): void;
  /** Credentials the stand-in's "repo-server" reads repoURL with (an Argo CD repository secret). */
  setRepoCredentials(repoURL: string, credentials: { username: string; password: string }): void;
  /** Replaces the accepted tokens. */
  setTokens(tokens: Record<string, TokenSpec>): void;
  inject(injection: Injection): Promise<string>;
  clearInjections(): void;
  setTiming(timing: Partial<Timing>): Timing;
  requests(filter?: RequestFilter): RecordedRequest[];
  clearRequests(): void;
  events(app?: string): ControllerEvent[];
  /** Back to the start options: no apps, repos, injections, recorded requests or events. */
  reset(): void;
}

export interface ArgoCdStandIn {
  url: string;
  control: ArgoCdStandInControl;
  close(): Promise<void>;
}

interface Grant {
  username: string;
  actions: ReadonlySet<Action>;
}

interface Reply {
  status: number;
  body: unknown;
}

interface Context {
  url: URL;
  params: string[];
  body: Record<string, unknown>;
  grant?: Grant;
  signal: AbortSignal;
}

interface Route {
  method: string;
  pattern: RegExp;
  /** Version answers without a session (with less detail). */
  anonymous?: boolean;
  handle(ctx: Context): Promise<Reply> | Reply;
}

const ALL_ACTIONS: Action[] = ['get', 'sync', 'update', 'override'];
const GRPC_TO_HTTP: Record<number, number> = {
  1: 408,
  2: 500,
  3: 400,
  4: 504,
  5: 404,
  7: 403,
  9: 400,
  10: 409,
  13: 500,
  14: 503,
  16: 401,
};

/** A JWT-shaped token (three base64url segments) for tests; its `sub` becomes the username. */
export function makeToken(subject = 'ferry'): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signature = Buffer.from(`${subject}:${Math.random()}`).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ iss: 'argocd', sub: subject, iat: Math.floor(Date.now() / 1000) })}.${signature}`;
}

function subjectOf(token: string): string | undefined {
  try {
    const payload: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return typeof payload === 'object' && payload !== null && 'sub' in payload && typeof payload.sub === 'string'
      ? payload.sub
      : undefined;
  } catch {
    return undefined;
  }
}

function toGrant(token: string, spec: TokenSpec): Grant {
  const username = (typeof spec === 'object' ? spec.username : undefined) ?? subjectOf(token) ?? 'admin';
  const actions = spec === true ? ALL_ACTIONS : spec === false ? [] : (spec.actions ?? ALL_ACTIONS);
  return { username, actions: new Set(actions) };
}

function queryOf(url: URL): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const name of new Set(url.searchParams.keys())) {
    const values = url.searchParams.getAll(name);
    query[name] = values.length === 1 ? values[0] : values;
  }
  return query;
}

function tokenOf(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) {
    const bearer = auth.slice('Bearer '.length).trim();
    if (bearer.split('.').length === 3) return bearer;
  }
  for (const cookie of (req.headers.cookie ?? '').split(';')) {
    const [name, ...value] = cookie.trim().split('=');
    if (name === 'argocd.token') return value.join('=');
  }
  return undefined;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function isJsonContentType(header: string | undefined): boolean {
  return (header ?? '').split(';')[0].trim().toLowerCase() === 'application/json';
}

/** Go's http.Error: plain text with a trailing newline. */
function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': contentType, 'X-Content-Type-Options': 'nosniff' });
  res.end(text);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Grpc-Metadata-Content-Type': 'application/grpc' });
  res.end(JSON.stringify(body));
}

function grpcError(code: number, message: string): Reply {
  return { status: GRPC_TO_HTTP[code] ?? 500, body: { error: message, code, message } };
}

function badGatewayHtml(status: number): string {
  const text = status === 504 ? '504 Gateway Time-out' : '502 Bad Gateway';
  return `<html>\r\n<head><title>${text}</title></head>\r\n<body>\r\n<center><h1>${text}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** encoding/json's complaint when a field has the wrong JSON type. */
function typeError(field: string, message: string, goType: string, value: unknown): WireError {
  const got = Array.isArray(value)
    ? 'array'
    : value === null
      ? 'null'
      : typeof value === 'object'
        ? 'object'
        : typeof value;
  return new WireError(3, `json: cannot unmarshal ${got} into Go struct field ${message}.${field} of type ${goType}`);
}

function syncRequestOf(body: Record<string, unknown>): SyncRequest {
  const request: SyncRequest = {};
  if (body.revision !== undefined) {
    if (typeof body.revision !== 'string')
      throw typeError('revision', 'ApplicationSyncRequest', 'string', body.revision);
    request.revision = body.revision;
  }
  if (body.revisions !== undefined) {
    if (!Array.isArray(body.revisions) || body.revisions.some((r) => typeof r !== 'string'))
      throw typeError('revisions', 'ApplicationSyncRequest', '[]string', body.revisions);
    request.revisions = body.revisions as string[];
  }
  if (body.sourcePositions !== undefined) {
    if (!Array.isArray(body.sourcePositions))
      throw typeError('sourcePositions', 'ApplicationSyncRequest', '[]int64', body.sourcePositions);
    const bad = body.sourcePositions.find((p) => typeof p !== 'number');
    if (bad !== undefined) throw typeError('sourcePositions', 'ApplicationSyncRequest', 'int64', bad);
    request.sourcePositions = body.sourcePositions as number[];
  }
  for (const flag of ['prune', 'dryRun'] as const) {
    if (body[flag] === undefined) continue;
    if (typeof body[flag] !== 'boolean') throw typeError(flag, 'ApplicationSyncRequest', 'bool', body[flag]);
    request[flag] = body[flag];
  }
  if (body.syncOptions !== undefined) {
    const items = (body.syncOptions as { items?: unknown } | null)?.items;
    if (
      typeof body.syncOptions !== 'object' ||
      Array.isArray(body.syncOptions) ||
      (items !== undefined && !Array.isArray(items))
    ) {
      throw typeError('syncOptions', 'ApplicationSyncRequest', 'application.SyncOptions', body.syncOptions);
    }
    request.syncOptions = { items: items as string[] | undefined };
  }
  if (body.infos !== undefined) {
    if (!Array.isArray(body.infos)) throw typeError('infos', 'ApplicationSyncRequest', '[]*v1alpha1.Info', body.infos);
    request.infos = (body.infos as Partial<Info>[]).map((i) => ({
      name: String(i.name ?? ''),
      value: String(i.value ?? ''),
    }));
  }
  if (body.strategy !== undefined) request.strategy = body.strategy;
  if (Array.isArray(body.resources)) request.resources = body.resources;
  if (body.retryStrategy !== undefined) request.retryStrategy = body.retryStrategy;
  return request;
}

function appNameOf(path: string): string | undefined {
  const match = /^\/api\/v1\/applications\/([^/]+)/.exec(path);
  return match ? decodeURIComponent(match[1]) : undefined;
}

function matchesSelector(labels: Record<string, string> | undefined, selector: string): boolean {
  return selector
    .split(',')
    .map((term) => term.trim())
    .filter(Boolean)
    .every((term) => {
      const [k, v] = term.split(/!?=+/);
      const equal = labels?.[k.trim()] === v?.trim();
      return term.includes('!=') ? !equal : v === undefined ? labels?.[k.trim()] !== undefined : equal;
    });
}

export async function startArgoCdStandIn(options: ArgoCdStandInOptions = {}): Promise<ArgoCdStandIn> {
  const sim = new ArgoCdSimulation(options.timing);
  const version = options.version ?? 'v3.5.1+37ee009';
  const grants = new Map<string, Grant>();
  const setTokens = (tokens: Record<string, TokenSpec>): void => {
    grants.clear();
    for (const [token, spec] of Object.entries(tokens)) grants.set(token, toGrant(token, spec));
  };
  setTokens(options.tokens ?? {});
  let recorded: RecordedRequest[] = [];

  /** getAppEnforceRBAC: without `project` a missing app is 403 so existence does not leak; with it, 404. */
  const lookup = (
    ctx: Context,
    action: Action,
    name: string,
    project: string | undefined,
    namespace: string | undefined,
  ) => {
    if (sim.take(name, ['forbidden'] as const)) throw new WireError(7, 'permission denied');
    const hidden = sim.take(name, ['notFound'] as const) !== undefined;
    const state = hidden ? undefined : sim.find(name, namespace);
    const allowed = ctx.grant?.actions.has(action) ?? false;
    if (project !== undefined) {
      if (!allowed) throw new WireError(7, 'permission denied');
      if (!state || state.app.spec.project !== project)
        throw new WireError(5, `applications.argoproj.io "${name}" not found`);
      return state;
    }
    if (!state || !allowed) throw new WireError(7, 'permission denied');
    return state;
  };

  const enforce = (ctx: Context, action: Action, app: Application): void => {
    if (!ctx.grant?.actions.has(action)) {
      throw new WireError(
        7,
        `permission denied: applications, ${action}, ${app.spec.project}/${app.metadata.name}, sub: ${ctx.grant?.username ?? ''}`,
      );
    }
  };

  const projectParam = (url: URL): string | undefined =>
    url.searchParams.get('project') ?? url.searchParams.get('projects') ?? undefined;
  const namespaceParam = (url: URL): string | undefined => url.searchParams.get('appNamespace') || undefined;

  const routes: Route[] = [
    {
      method: 'GET',
      pattern: /^\/api\/version$/,
      anonymous: true,
      handle: (ctx) =>
        ctx.grant
          ? {
              status: 200,
              body: {
                Version: version,
                BuildDate: '2026-08-22T10:00:00Z',
                GitCommit: '37ee0097cf85c1f3d5a6e6b0b8f6d9f1f2a3b4c5',
                GitTreeState: 'clean',
                GoVersion: 'go1.25.0',
                Compiler: 'gc',
                Platform: 'linux/amd64',
                KustomizeVersion: 'v5.7.1',
                HelmVersion: 'v3.18.4',
                KubectlVersion: 'v0.34.0',
                JsonnetVersion: 'v0.21.0',
              },
            }
          : { status: 200, body: { Version: version } },
    },
    {
      method: 'GET',
      pattern: /^\/api\/v1\/session\/userinfo$/,
      handle: (ctx) => ({ status: 200, body: { loggedIn: true, username: ctx.grant?.username, iss: 'argocd' } }),
    },
    {
      method: 'GET',
      pattern: /^\/api\/v1\/applications$/,
      handle: (ctx) => {
        const name = ctx.url.searchParams.get('name');
        const projects = [...ctx.url.searchParams.getAll('projects'), ...ctx.url.searchParams.getAll('project')];
        const namespace = namespaceParam(ctx.url);
        const selector = ctx.url.searchParams.get('selector');
        const mayGet = ctx.grant?.actions.has('get') ?? false;
        const items = sim
          .all()
          .filter(() => mayGet)
          .filter((s) => !name || s.app.metadata.name === name)
          .filter((s) => projects.length === 0 || projects.includes(s.app.spec.project))
          .filter((s) => !namespace || s.app.metadata.namespace === namespace)
          .filter((s) => !selector || matchesSelector(s.app.metadata.labels, selector))
          .map((s) => sim.view(s, false));
        const resourceVersion = items.reduce((max, a) => Math.max(max, Number(a.metadata.resourceVersion)), 0);
        return { status: 200, body: { metadata: { resourceVersion: String(resourceVersion) }, items } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/v1\/applications\/([^/]+)$/,
      handle: async (ctx) => {
        const state = lookup(ctx, 'get', ctx.params[0], projectParam(ctx.url), namespaceParam(ctx.url));
        const refresh = ctx.url.searchParams.get('refresh');
        if (refresh === 'normal' || refresh === 'hard') await sim.refresh(state, refresh, ctx.signal);
        return { status: 200, body: sim.view(state, true) };
      },
    },
    {
      method: 'PUT',
      pattern: /^\/api\/v1\/applications\/([^/]+)\/spec$/,
      handle: async (ctx) => {
        const state = lookup(ctx, 'get', ctx.params[0], projectParam(ctx.url), namespaceParam(ctx.url));
        enforce(ctx, 'update', state.app);
        await sim.updateSpec(state, ctx.body as unknown as Spec, ctx.url.searchParams.get('validate') !== 'false');
        return { status: 200, body: clone(state.app.spec) };
      },
    },
    {
      method: 'PATCH',
      pattern: /^\/api\/v1\/applications\/([^/]+)$/,
      handle: async (ctx) => {
        const { patch, patchType } = ctx.body;
        if (patch !== undefined && typeof patch !== 'string')
          throw typeError('patch', 'ApplicationPatchRequest', 'string', patch);
        const state = lookup(ctx, 'get', ctx.params[0], str(ctx.body.project), str(ctx.body.appNamespace));
        enforce(ctx, 'update', state.app);
        const type = typeof patchType === 'string' ? patchType : '';
        if (!['', 'json', 'merge'].includes(type)) throw new WireError(3, `Patch type '${type}' is not supported`);
        const current = clone(state.app);
        let patched: Application;
        try {
          const document: unknown = JSON.parse(patch ?? '');
          patched = (type === 'merge' ? mergePatch(current, document) : jsonPatch(current, document)) as Application;
        } catch (err) {
          if (err instanceof PatchError || err instanceof SyntaxError)
            throw new WireError(2, `error applying patch: ${err.message}`);
          throw err;
        }
        await sim.updateSpec(state, patched.spec, true, {
          labels: patched.metadata?.labels,
          annotations: patched.metadata?.annotations,
        });
        return { status: 200, body: sim.view(state, true) };
      },
    },
    {
      method: 'POST',
      pattern: /^\/api\/v1\/applications\/([^/]+)\/sync$/,
      handle: async (ctx) => {
        // body "*": project and appNamespace come from the body, not the query.
        const request = syncRequestOf(ctx.body);
        const state = lookup(ctx, 'get', ctx.params[0], str(ctx.body.project), str(ctx.body.appNamespace));
        enforce(ctx, 'sync', state.app);
        return { status: 200, body: await sim.sync(state, request, ctx.grant?.username ?? 'admin') };
      },
    },
    {
      method: 'DELETE',
      pattern: /^\/api\/v1\/applications\/([^/]+)\/operation$/,
      handle: (ctx) => {
        const state = lookup(ctx, 'get', ctx.params[0], projectParam(ctx.url), namespaceParam(ctx.url));
        enforce(ctx, 'sync', state.app);
        sim.terminate(state);
        return { status: 200, body: {} };
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/v1\/applications\/([^/]+)\/resource-tree$/,
      handle: (ctx) => {
        const state = lookup(ctx, 'get', ctx.params[0], projectParam(ctx.url), namespaceParam(ctx.url));
        return { status: 200, body: { nodes: sim.resourceTree(state) } };
      },
    },
  ];

  const handleArgo = async (
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    signal: AbortSignal,
  ): Promise<void> => {
    const method = req.method ?? 'GET';
    const raw = method === 'GET' || method === 'HEAD' ? '' : await readBody(req);
    let parsedBody: unknown;
    let malformed: string | undefined;
    if (raw.trim() !== '') {
      try {
        parsedBody = JSON.parse(raw);
      } catch (err) {
        parsedBody = raw;
        malformed = (err as Error).message;
      }
    }
    const app = appNameOf(url.pathname);
    const record: RecordedRequest = {
      at: Date.now(),
      method,
      path: url.pathname,
      query: queryOf(url),
      body: parsedBody,
      ...(app ? { app } : {}),
    };
    recorded.push(record);
    const reply = (status: number): void => {
      record.status = status;
    };

    const slow = sim.take(app, ['slow'] as const);
    if (slow) await delay(slow.latencyMs, undefined, { signal }).catch(() => undefined);
    if (signal.aborted) return;

    const failure = sim.take(app, ['serverError'] as const);
    if (failure) {
      const status = failure.status ?? 500;
      reply(status);
      if (status === 502 || status === 504) {
        sendText(res, status, badGatewayHtml(status), 'text/html');
        return;
      }
      const r =
        status === 503
          ? grpcError(
              14,
              failure.message ??
                'connection error: desc = "transport: Error while dialing: dial tcp 10.96.0.1:443: connect: connection refused"',
            )
          : grpcError(13, failure.message ?? 'etcdserver: request timed out');
      sendJson(res, r.status, r.body);
      return;
    }

    if (method !== 'GET' && method !== 'HEAD' && !isJsonContentType(req.headers['content-type'])) {
      reply(415);
      sendText(res, 415, 'Invalid content type\n');
      return;
    }

    const onPath = routes.filter((r) => r.pattern.test(url.pathname));
    const route = onPath.find((r) => r.method === method);
    if (!route) {
      const status = onPath.length > 0 ? 405 : 404;
      reply(status);
      sendText(res, status, onPath.length > 0 ? 'Method Not Allowed\n' : 'Not Found\n');
      return;
    }

    let result: Reply;
    try {
      if (malformed !== undefined) throw new WireError(3, malformed);
      if (
        parsedBody !== undefined &&
        (typeof parsedBody !== 'object' || parsedBody === null || Array.isArray(parsedBody))
      ) {
        throw new WireError(
          3,
          `json: cannot unmarshal ${Array.isArray(parsedBody) ? 'array' : typeof parsedBody} into Go value of type map[string]interface {}`,
        );
      }
      const token = tokenOf(req);
      const grant = token ? grants.get(token) : undefined;
      if (!route.anonymous) {
        const expired = sim.take(app, ['unauthenticated'] as const);
        if (expired)
          throw new WireError(16, expired.message ?? 'invalid session: token has invalid claims: token is expired');
        if (!token) throw new WireError(16, 'no session information');
        if (!grant) throw new WireError(16, 'invalid session: token signature is invalid: signature is invalid');
      }
      const match = route.pattern.exec(url.pathname) ?? [];
      result = await route.handle({
        url,
        params: match.slice(1).map((p) => decodeURIComponent(p)),
        body: (parsedBody ?? {}) as Record<string, unknown>,
        grant,
        signal,
      });
    } catch (err) {
      if (signal.aborted) return;
      result = err instanceof WireError ? grpcError(err.code, err.message) : grpcError(2, (err as Error).message);
    }
    if (signal.aborted) return;
    reply(result.status);
    sendJson(res, result.status, result.body);
  };

  const control: ArgoCdStandInControl = {
    addApp: (seed) => sim.addApp(seed),
    getApp: (name, namespace) => {
      const state = sim.find(name, namespace);
      return state ? sim.view(state, true) : undefined;
    },
    removeApp: (name, namespace) => sim.removeApp(name, namespace),
    setRepo: (repoURL, refs) => sim.setRepo(repoURL, refs),
    setRepoCredentials: (repoURL, credentials) => sim.setRepoCredentials(repoURL, credentials),
    setTokens,
    inject: (injection) => sim.inject(injection),
    clearInjections: () => sim.clearInjections(),
    setTiming: (timing) => {
      sim.timing = { ...sim.timing, ...timing };
      return { ...sim.timing };
    },
    requests: (filter = {}) =>
      recorded
        .filter((r) => !filter.method || r.method === filter.method.toUpperCase())
        .filter(
          (r) =>
            filter.path === undefined ||
            (typeof filter.path === 'string' ? r.path === filter.path : filter.path.test(r.path)),
        )
        .filter((r) => !filter.app || r.app === filter.app)
        .map((r) => clone(r)),
    clearRequests: () => {
      recorded = [];
    },
    events: (app) => sim.events.filter((e) => !app || e.app === app).map((e) => ({ ...e })),
    reset: () => {
      sim.reset(options.timing);
      setTokens(options.tokens ?? {});
      recorded = [];
    },
  };

  const handleControl = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const method = req.method ?? 'GET';
    const raw = await readBody(req);
    const body: unknown = raw.trim() === '' ? {} : JSON.parse(raw);
    const object = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const path = url.pathname.replace(/^\/__standin/, '');
    const appMatch = /^\/apps\/([^/]+)$/.exec(path);
    const namespace = url.searchParams.get('namespace') ?? undefined;
    if (path === '/apps' && method === 'GET')
      return sendJson(
        res,
        200,
        sim.all().map((s) => sim.view(s, true)),
      );
    if (path === '/apps' && method === 'POST') {
      if (typeof object.name !== 'string' || typeof object.repoURL !== 'string')
        return sendJson(res, 400, { error: 'an app needs "name" and "repoURL"' });
      return sendJson(res, 200, await control.addApp(object as unknown as AppSeed));
    }
    if (appMatch && method === 'GET') {
      const app = control.getApp(decodeURIComponent(appMatch[1]), namespace);
      return app ? sendJson(res, 200, app) : sendJson(res, 404, { error: `no app ${appMatch[1]}` });
    }
    if (appMatch && method === 'DELETE')
      return sendJson(res, 200, { removed: control.removeApp(decodeURIComponent(appMatch[1]), namespace) });
    if (path === '/repos' && method === 'POST') {
      if (typeof object.repoURL !== 'string' || typeof object.refs !== 'object' || object.refs === null) {
        return sendJson(res, 400, { error: 'expected {"repoURL": "...", "refs": {"<branch>": "<sha>"}}' });
      }
      control.setRepo(object.repoURL, object.refs as Record<string, string>);
      return sendJson(res, 200, {});
    }
    if (path === '/repocreds' && method === 'POST') {
      const { repoURL, username, password } = object;
      if (typeof repoURL !== 'string' || typeof username !== 'string' || typeof password !== 'string')
        return sendJson(res, 400, { error: 'expected {"repoURL": "...", "username": "...", "password": "..."}' });
      control.setRepoCredentials(repoURL, { username, password });
      return sendJson(res, 200, {});
    }
    if (path === '/tokens' && method === 'PUT') {
      control.setTokens(object as Record<string, TokenSpec>);
      return sendJson(res, 200, {});
    }
    if (path === '/injections' && method === 'POST') {
      if (typeof object.kind !== 'string') return sendJson(res, 400, { error: 'an injection needs "kind"' });
      return sendJson(res, 200, { id: await control.inject(object as unknown as Injection) });
    }
    if (path === '/injections' && method === 'DELETE') {
      control.clearInjections();
      return sendJson(res, 200, {});
    }
    if (path === '/timing' && method === 'PUT') return sendJson(res, 200, control.setTiming(object as Partial<Timing>));
    if (path === '/requests' && method === 'GET') {
      const filter: RequestFilter = {
        method: url.searchParams.get('method') ?? undefined,
        path: url.searchParams.get('path') ?? undefined,
        app: url.searchParams.get('app') ?? undefined,
      };
      return sendJson(res, 200, control.requests(filter));
    }
    if (path === '/requests' && method === 'DELETE') {
      control.clearRequests();
      return sendJson(res, 200, {});
    }
    if (path === '/events' && method === 'GET')
      return sendJson(res, 200, control.events(url.searchParams.get('app') ?? undefined));
    if (path === '/reset' && method === 'POST') {
      control.reset();
      return sendJson(res, 200, {});
    }
    sendJson(res, 404, { error: `no control route ${method} ${url.pathname}` });
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const aborter = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) aborter.abort();
    });
    const work = url.pathname.startsWith('/__standin/')
      ? handleControl(req, res, url)
      : handleArgo(req, res, url, aborter.signal);
    work.catch((err: unknown) => {
      if (res.headersSent) return;
      const status = url.pathname.startsWith('/__standin/') ? 400 : 500;
      sendJson(
        res,
        status,
        url.pathname.startsWith('/__standin/')
          ? { error: (err as Error).message }
          : grpcError(13, (err as Error).message).body,
      );
    });
  });

  // Argo CD's server (Go net/http, no idle timeout) keeps idle connections open; Node's default closes them after
  // 5 s, which races a client's reuse of the connection.
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    control,
    close: async () => {
      sim.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
