// A narrow REST client for the Argo CD API server: only the endpoints and fields Ferry uses,
// validated with zod at the edge. Errors are ArgoCdError { status, grpcCode, message }, built from the grpc-gateway
// body when there is one and from the status line when a proxy answered with HTML. The token goes into the
// Authorization header only; it is scrubbed from every message this module produces.
import { z } from 'zod';
import { formatPath } from '../../pipeline/load';

// ---- the fields Ferry reads -------------------------------------------------------------------------------------

/** A source is compared as a whole (comparedTo vs spec), so unknown fields (helm, kustomize, ...) are kept. */
const SourceSchema = z.looseObject({
  repoURL: z.string(),
  path: z.string().optional(),
  chart: z.string().optional(),
  targetRevision: z.string().optional(),
  ref: z.string().optional(),
});

const InfoSchema = z.object({ name: z.string(), value: z.string() });

const OperationSchema = z.object({
  sync: z.object({ revision: z.string().optional(), revisions: z.array(z.string()).optional() }).optional(),
  initiatedBy: z.object({ username: z.string().optional(), automated: z.boolean().optional() }).optional(),
  info: z.array(InfoSchema).optional(),
});

const ResourceResultSchema = z.object({
  group: z.string().optional(),
  kind: z.string(),
  namespace: z.string().optional(),
  name: z.string(),
  status: z.string().optional(),
  message: z.string().optional(),
  hookPhase: z.string().optional(),
});

const OperationStateSchema = z.object({
  operation: OperationSchema.optional(),
  phase: z.string(),
  message: z.string().optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  syncResult: z
    .object({
      revision: z.string().optional(),
      revisions: z.array(z.string()).optional(),
      resources: z.array(ResourceResultSchema).optional(),
    })
    .optional(),
});

const HealthSchema = z.object({ status: z.string().optional(), message: z.string().optional() });

const ResourceStatusSchema = z.object({
  group: z.string().optional(),
  kind: z.string(),
  namespace: z.string().optional(),
  name: z.string(),
  status: z.string().optional(),
  health: HealthSchema.optional(),
});

const ApplicationSchema = z.object({
  metadata: z.object({
    name: z.string(),
    namespace: z.string().optional(),
    resourceVersion: z.string().optional(),
  }),
  spec: z.object({
    project: z.string().optional(),
    source: SourceSchema.optional(),
    sources: z.array(SourceSchema).optional(),
    syncPolicy: z.object({ automated: z.object({ enabled: z.boolean().optional() }).nullish() }).nullish(),
  }),
  operation: OperationSchema.optional(),
  status: z
    .object({
      sync: z
        .object({
          status: z.string().optional(),
          revision: z.string().optional(),
          revisions: z.array(z.string()).optional(),
          comparedTo: z
            .object({ source: SourceSchema.optional(), sources: z.array(SourceSchema).optional() })
            .optional(),
        })
        .optional(),
      health: HealthSchema.optional(),
      operationState: OperationStateSchema.optional(),
      conditions: z.array(z.object({ type: z.string(), message: z.string().optional() })).optional(),
      reconciledAt: z.string().optional(),
      resources: z.array(ResourceStatusSchema).optional(),
    })
    .optional(),
});

const ResourceTreeSchema = z.object({
  nodes: z
    .array(
      z.object({
        group: z.string().optional(),
        kind: z.string(),
        namespace: z.string().optional(),
        name: z.string(),
        health: HealthSchema.optional(),
      }),
    )
    .nullish(),
});

export type ApplicationSource = z.infer<typeof SourceSchema>;
export type Application = z.infer<typeof ApplicationSchema>;
export type Operation = z.infer<typeof OperationSchema>;
export type ResourceTree = z.infer<typeof ResourceTreeSchema>;

// ---- errors -----------------------------------------------------------------------------------------------------

/** gRPC codes Argo CD's errors carry (grpc-gateway maps them to the HTTP status). */
export const GrpcCode = {
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  PermissionDenied: 7,
  FailedPrecondition: 9,
  Aborted: 10,
  Internal: 13,
  Unavailable: 14,
  Unauthenticated: 16,
} as const;

export class ArgoCdError extends Error {
  override readonly name = 'ArgoCdError';
  constructor(
    /** HTTP status; 0 when no response arrived (network error, timeout). */
    readonly status: number,
    /** The gRPC code from the error body, when the body was Argo CD's JSON. */
    readonly grpcCode: number | undefined,
    message: string,
    /** 5xx, 408/409/429, timeouts and network errors may pass; other 4xx answers about this request will not. */
    readonly retryable = status === 0 || status >= 500 || status === 408 || status === 409 || status === 429,
  ) {
    super(message);
  }
}

// ---- the client -------------------------------------------------------------------------------------------------

export interface ArgoCdClientOptions {
  /** Base URL of the Argo CD API server, e.g. https://argocd.example.com. */
  server: string;
  token: string;
  /** Per-request timeout (default 10 s). */
  requestTimeoutMs?: number;
  /** Cancels every request (an activity's cancellationSignal). Its reason is rethrown as is. */
  signal?: AbortSignal;
  /** Extra scrubbing of messages (e.g. SecretResolver.redact); the token itself is always scrubbed. */
  redact?: (text: string) => string;
}

export interface AppRef {
  name: string;
  project?: string;
  appNamespace?: string;
}

export interface SyncOptions {
  /** Copied to operation.info; how Ferry recognises its own operation. */
  infos?: { name: string; value: string }[];
  /** Omit to sync spec.targetRevision (what Ferry does). */
  revision?: string;
  prune?: boolean;
}

export interface RequestOptions {
  /** Overrides the client's per-request timeout. */
  timeoutMs?: number;
}

export interface ArgoCdClient {
  readonly server: string;
  getApplication(app: AppRef, options?: RequestOptions & { refresh?: 'normal' | 'hard' }): Promise<Application>;
  syncApplication(app: AppRef, sync: SyncOptions, options?: RequestOptions): Promise<Application>;
  getResourceTree(app: AppRef, options?: RequestOptions): Promise<ResourceTree>;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

function plainText(body: string): string {
  const title = /<title>([^<]*)<\/title>/i.exec(body)?.[1];
  const text = (title ?? body.replace(/<[^>]*>/g, ' ')).replace(/\s+/g, ' ').trim();
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

export function createArgoCdClient(options: ArgoCdClientOptions): ArgoCdClient {
  const server = options.server.replace(/\/+$/, '');
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const scrub = (text: string): string => {
    const redacted = options.redact ? options.redact(text) : text;
    return options.token.length > 0 ? redacted.split(options.token).join('***') : redacted;
  };

  const appPath = (app: AppRef, suffix = ''): string => `/api/v1/applications/${encodeURIComponent(app.name)}${suffix}`;
  const appQuery = (
    app: AppRef,
    extra: Record<string, string | undefined> = {},
  ): Record<string, string | undefined> => ({
    project: app.project,
    appNamespace: app.appNamespace,
    ...extra,
  });

  async function call<T>(
    method: string,
    path: string,
    schema: z.ZodType<T>,
    query: Record<string, string | undefined> = {},
    body?: unknown,
    requestOptions: RequestOptions = {},
  ): Promise<T> {
    const url = new URL(server + path);
    for (const [name, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(name, value);
    const what = `${method} ${url.pathname}${url.search}`;
    const limit = requestOptions.timeoutMs ?? timeoutMs;
    const timeout = AbortSignal.timeout(limit);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;

    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers: {
          Authorization: `Bearer ${options.token}`,
          // Argo CD answers 415 to any non-GET without it, DELETE included.
          'Content-Type': 'application/json',
          Accept: 'application/json',
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal,
      });
      text = await response.text();
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (timeout.aborted) {
        throw new ArgoCdError(0, GrpcCode.DeadlineExceeded, `${what}: no answer within ${limit} ms`);
      }
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ArgoCdError(
        0,
        GrpcCode.Unavailable,
        scrub(`${what}: ${cause?.code ?? cause?.message ?? (err as Error).message}`),
      );
    }

    let json: unknown;
    try {
      json = text === '' ? {} : JSON.parse(text);
    } catch {
      json = undefined;
    }

    if (!response.ok) {
      const error = json as { message?: unknown; error?: unknown; code?: unknown } | undefined;
      const message =
        typeof error?.message === 'string' ? error.message : typeof error?.error === 'string' ? error.error : undefined;
      const code = typeof error?.code === 'number' ? error.code : undefined;
      const detail = message ?? (plainText(text) || response.statusText);
      throw new ArgoCdError(
        response.status,
        code,
        scrub(
          `${detail} (HTTP ${response.status}${message === undefined ? ` from ${what}, not an Argo CD error body` : ''})`,
        ),
      );
    }
    if (json === undefined) {
      // A proxy or login page answering 2xx with HTML: worth another try, not a contract break.
      throw new ArgoCdError(
        response.status,
        undefined,
        scrub(`${what} answered HTTP ${response.status} with a non-JSON body: ${plainText(text)}`),
        true,
      );
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ArgoCdError(
        response.status,
        GrpcCode.Internal,
        scrub(`${what} returned an unexpected body: ${formatPath(issue.path)}: ${issue.message}`),
        false,
      );
    }
    return parsed.data;
  }

  return {
    server,
    getApplication(app, requestOptions = {}) {
      return call(
        'GET',
        appPath(app),
        ApplicationSchema,
        appQuery(app, { refresh: requestOptions.refresh }),
        undefined,
        requestOptions,
      );
    },
    syncApplication(app, sync, requestOptions) {
      // The sync route takes its whole body (`body: "*"`), so project and appNamespace go in the body as well.
      const body = {
        name: app.name,
        ...(sync.revision !== undefined ? { revision: sync.revision } : {}),
        ...(sync.prune !== undefined ? { prune: sync.prune } : {}),
        ...(sync.infos && sync.infos.length > 0 ? { infos: sync.infos } : {}),
        ...(app.project !== undefined ? { project: app.project } : {}),
        ...(app.appNamespace !== undefined ? { appNamespace: app.appNamespace } : {}),
      };
      return call('POST', appPath(app, '/sync'), ApplicationSchema, appQuery(app), body, requestOptions);
    },
    getResourceTree(app, requestOptions) {
      return call('GET', appPath(app, '/resource-tree'), ResourceTreeSchema, appQuery(app), undefined, requestOptions);
    },
  };
}
