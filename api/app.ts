// The HTTP API: a thin express layer over the typed client (FerryApi). It authenticates the caller, validates
// bodies at the edge (every bad field by path, nothing started when invalid), and turns every failure into the
// one error body of client/errors.ts. The user behind a decision is always the bearer token's user, and every
// route asks for the role it needs (api/roles.ts) before it does anything: 403 names the missing role and where.
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { parsePipelineDocument, pipelineNameOf, specErrorsFromZod, validatePipeline } from '../pipeline/load';
import type { Pipeline } from '../pipeline/schema';
import type { Decision } from '../workflows/messages';
import type { TokenStore } from '../client/auth';
import { createAuthenticator, type Authenticator } from './identity';
import type { OidcVerifier } from './identity/oidc';
import {
  createRoleBook,
  holdsRole,
  mayView,
  missingRoleMessage,
  rolesIn,
  type Identity,
  type Role,
  type RoleBook,
  type Scope,
} from './roles';
import { FerryError, type FieldError } from '../client/errors';
import { logger as defaultLogger, type Logger } from '../client/log';
import type { FerryApi } from '../client/types';
import { promotionIdParam } from './params';
import { guardAvailability, type AvailabilityOptions } from './availability';
import { openApiRoute } from './openapi';
import { DecisionBody, FreightBody, PromotionBody } from './schemas';
import { createWebhookRouter, staticWebhookSecrets, type WebhookRouterOptions } from './webhooks';
import { callbackRouter, gateUrlRouter } from './callbacks';
import { publicBaseUrl } from '../client/gate-callbacks';

export interface ApiAppOptions {
  ferry: FerryApi;
  tokens: TokenStore;
  /** Users the operator made admins (FERRY_ADMINS): role admin everywhere. Used when `roles` is not given. */
  admins?: readonly string[];
  /** Who holds which role (server configuration); default: the unconfigured default of api/roles.ts plus `admins`. */
  roles?: RoleBook;
  /** Verifies OIDC tokens of the configured issuers; without it a JWT bearer is refused. */
  oidc?: OidcVerifier;
  logger?: Logger;
  /** How quickly calls fail while Temporal is unreachable (tests). */
  availability?: Pick<AvailabilityOptions, 'checkAfterMs'>;
  /** Inbound webhooks (/webhooks): the secrets they verify with, and limits; without it no secret resolves. */
  webhooks?: Omit<WebhookRouterOptions, 'ferry' | 'logger'>;
  /** FERRY_CALLBACK_KEY: checks callback gates' tokens (api/callbacks.ts); without it those routes answer 503. */
  callbackKey?: Buffer;
  /** The base URL of callback URLs (default FERRY_PUBLIC_URL, else FERRY_HOST and FERRY_PORT). */
  publicUrl?: () => string;
}

/** FERRY_ADMINS: comma-separated user names (the names tokens map to); blanks are ignored. */
export function adminsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.FERRY_ADMINS ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
}

const BODY_LIMIT_BYTES = 1024 * 1024;

/** Content types a pipeline may be sent as; YAML is a superset of JSON, so text types go through the YAML loader. */
const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain'];
const JSON_TYPE = 'application/json';

/** Fields that would let a caller speak for someone else or raise its rights; the user always comes from the token. */
const IDENTITY_FIELDS: Record<string, string> = {
  user: 'must not be set: the user is the one the bearer token belongs to',
  requestedBy: 'must not be set: the user is the one the bearer token belongs to',
  admin: 'must not be set: admins are named by the operator (FERRY_ADMINS or the server configuration)',
  roles: 'must not be set: roles come from the server configuration',
};

type Locals = { identity?: Identity };

export function createApiApp(options: ApiAppOptions): Express {
  const { tokens } = options;
  const log = options.logger ?? defaultLogger;
  const ferry = guardAvailability(options.ferry, { logger: log, ...(options.availability ?? {}) });
  const roles = options.roles ?? createRoleBook({ admins: options.admins });
  const authenticator = createAuthenticator({ tokens, roles, oidc: options.oidc });
  const app = express();
  app.disable('x-powered-by');

  app.use(requestLog(log));

  app.get('/healthz', async (_req, res) => {
    const ok = await ferry.health();
    res.status(ok ? 200 : 503).json({ ok });
  });

  app.get('/api/v1/openapi.json', openApiRoute());

  // Webhooks authenticate by signature over their raw body, so they are mounted before the bearer-token routes.
  app.use(
    '/webhooks',
    createWebhookRouter({ secrets: staticWebhookSecrets({}), ...options.webhooks, ferry, logger: log }),
  );
  // The one route without a bearer token: a callback gate's one-time token is its credential.
  app.use('/api/v1/callbacks', callbackRouter({ ferry, key: options.callbackKey }));

  const api = express.Router();
  api.use(authenticate(authenticator));
  // One body reader for every content type; each route decides how to parse the text (YAML or JSON).
  api.use(express.text({ type: () => true, limit: BODY_LIMIT_BYTES }));
  api.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  api.put('/pipelines/:name', async (req, res) => {
    const name = req.params.name;
    // The whole pipeline (approval gates included) is rewritten: admin on every stage of it.
    requireRole(res, ['admin'], { pipeline: name, stage: '*' });
    const pipeline = readPipelineBody(req, name);
    res.status(200).json(await ferry.applyPipeline(pipeline));
  });

  api.get('/pipelines', async (_req, res) => {
    const identity = authenticatedIdentity(res);
    // Only the pipelines the caller may see; no role anywhere is an empty list, not a 403.
    const pipelines = (await ferry.listPipelines()).filter((p) => mayView(identity, p.name));
    res.json({ pipelines });
  });

  api.get('/pipelines/:name', async (req, res) => {
    requireRole(res, ['viewer'], { pipeline: req.params.name });
    res.json(await ferry.getPipeline(req.params.name));
  });

  api.post('/pipelines/:name/freight', async (req, res) => {
    const name = req.params.name;
    // Freight belongs to the pipeline, not a stage: a promoter of any of its stages may register it.
    requireRole(res, ['promoter'], { pipeline: name });
    const body = parseBody(req, FreightBody);
    // The pipeline workflow's update validator checks the versions against its artifacts (400 with every bad one
    // by path); the typed client only passes its answer on.
    const result = await ferry.addFreight(name, body.artifacts as Record<string, string>);
    res.status(result.created ? 201 : 200).json({ id: result.id, created: result.created });
  });

  api.post('/pipelines/:name/stages/:stage/promotions', async (req, res) => {
    requireRole(res, ['promoter'], { pipeline: req.params.name, stage: req.params.stage });
    const body = parseBody(req, PromotionBody);
    const user = authenticatedUser(res);
    const result = await ferry.promote(
      req.params.name,
      req.params.stage,
      body.freight,
      user,
      body.force ? { force: true } : {},
    );
    res.status(result.existing ? 200 : 201).json({ id: result.id, existing: result.existing });
  });

  api.use(
    gateUrlRouter({
      ferry,
      key: options.callbackKey,
      authorize: (res, id) => requireRole(res, ['admin'], promotionScope(id)),
      publicUrl: options.publicUrl ?? (() => publicBaseUrl()),
    }),
  );

  api.get('/promotions/*id', async (req, res) => {
    const id = promotionIdParam(req);
    requireRole(res, ['viewer'], promotionScope(id));
    res.json(await ferry.getPromotion(id));
  });

  /**
   * A decision needs one of `needs` on the promotion's stage; the workflow's rules (promotion-core.ts) then decide
   * with the roles the decision carries: e.g. a promoter may abort only what it requested.
   */
  const decide =
    (needs: Role[], act: (id: string, decision: Decision) => Promise<unknown>): RequestHandler =>
    async (req, res) => {
      const id = promotionIdParam(req);
      const scope = promotionScope(id);
      requireRole(res, needs, scope);
      const body = parseBody(req, DecisionBody, { optional: true });
      const identity = authenticatedIdentity(res);
      const held = rolesIn(identity, scope);
      const decision: Decision = {
        user: identity.user,
        ...(body?.comment ? { comment: body.comment } : {}),
        ...(held.includes('admin') ? { admin: true } : {}),
        roles: held,
      };
      res.json(await act(id, decision));
    };
  api.post(
    '/promotions/*id/approve',
    decide(['approver'], (id, d) => ferry.approve(id, d)),
  );
  api.post(
    '/promotions/*id/reject',
    decide(['approver'], (id, d) => ferry.reject(id, d)),
  );
  api.post(
    '/promotions/*id/abort',
    decide(['promoter', 'approver'], (id, d) => ferry.abort(id, d)),
  );

  app.use('/api/v1', api);

  app.use((req, _res, next) => {
    next(new FerryError('NotFound', `no such route: ${req.method} ${pathOf(req)}`));
  });

  app.use(errorHandler(log));
  return app;
}

// ---------------------------------------------------------------------------------------------------------------
// Authentication

function authenticate(authenticator: Authenticator): RequestHandler {
  return async (req, res, next) => {
    const header = req.get('authorization');
    const match = header ? /^Bearer +(\S+) *$/i.exec(header) : null;
    if (!match) {
      res.set('WWW-Authenticate', 'Bearer realm="ferry"');
      next(new FerryError('Unauthenticated', 'missing bearer token: send "Authorization: Bearer <token>"'));
      return;
    }
    let identity: Identity;
    try {
      identity = await authenticator.authenticate(match[1]);
    } catch (err) {
      if (err instanceof FerryError && err.code === 'Unauthenticated') {
        res.set('WWW-Authenticate', 'Bearer realm="ferry", error="invalid_token"');
      }
      next(err);
      return;
    }
    (res.locals as Locals).identity = identity;
    next();
  };
}

function authenticatedIdentity(res: Response): Identity {
  const identity = (res.locals as Locals).identity;
  if (!identity) throw new FerryError('Unauthenticated', 'not authenticated');
  return identity;
}

function authenticatedUser(res: Response): string {
  return authenticatedIdentity(res).user;
}

/** Throws 403 Forbidden naming the missing role and the scope unless the caller holds one of `roles` there. */
function requireRole(res: Response, roles: Role[], scope: Scope): void {
  const identity = authenticatedIdentity(res);
  if (!holdsRole(identity, roles, scope)) {
    throw new FerryError('Forbidden', missingRoleMessage(identity.user, roles, scope));
  }
}

/** The pipeline and stage a promotion id names (`promotion/<pipeline>/<stage>/<freight>`); 404 for any other id. */
function promotionScope(id: string): Scope {
  const parts = id.split('/');
  if (parts.length !== 4 || parts[0] !== 'promotion' || parts.some((p) => p === '')) {
    throw new FerryError('NotFound', `promotion "${id}" not found`);
  }
  return { pipeline: parts[1], stage: parts[2] };
}

// ---------------------------------------------------------------------------------------------------------------
// Bodies

function mediaType(req: Request): string | undefined {
  const header = req.get('content-type');
  if (!header) return undefined;
  return header.split(';')[0].trim().toLowerCase() || undefined;
}

function bodyText(req: Request): string {
  return typeof req.body === 'string' ? req.body : '';
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FerryError(
      'InvalidArgument',
      `request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** A JSON body validated by a strict zod object; every problem comes back with its path. */
function parseBody<T extends z.ZodType>(req: Request, schema: T, options?: { optional?: false }): z.output<T>;
function parseBody<T extends z.ZodType>(req: Request, schema: T, options: { optional: true }): z.output<T> | undefined;
function parseBody<T extends z.ZodType>(
  req: Request,
  schema: T,
  options: { optional?: boolean } = {},
): z.output<T> | undefined {
  const text = bodyText(req);
  if (text.trim() === '') {
    if (options.optional) return undefined;
    throw new FerryError('InvalidArgument', 'request body is empty: send a JSON object');
  }
  // Parsed as JSON whatever the Content-Type says: `curl -d '{...}'` sends form-urlencoded.
  const value = parseJson(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FerryError('InvalidArgument', 'request body must be a JSON object');
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new FerryError('InvalidArgument', 'request body is invalid', {
      errors: bodyFieldErrors(result.error, value),
    });
  }
  return result.data;
}

/** The loader's messages and paths (`unknown field`, `Required`), so bodies and pipeline files read alike. */
function bodyFieldErrors(error: z.ZodError, input: unknown): FieldError[] {
  return specErrorsFromZod(error, input).map((e) =>
    Object.prototype.hasOwnProperty.call(IDENTITY_FIELDS, e.path)
      ? { path: e.path, message: IDENTITY_FIELDS[e.path] }
      : e,
  );
}

/** The pipeline of a PUT: YAML or JSON by Content-Type, validated as a whole, and named like the URL. */
function readPipelineBody(req: Request, name: string): Pipeline {
  const text = bodyText(req);
  if (text.trim() === '') {
    throw new FerryError('InvalidArgument', 'request body is empty: send the pipeline as YAML or JSON');
  }
  const type = mediaType(req) ?? 'application/yaml';
  let document: unknown;
  if (type === JSON_TYPE || type.endsWith('+json')) {
    document = parseJson(text);
  } else if (YAML_TYPES.includes(type)) {
    const parsed = parsePipelineDocument(text, { source: 'body' });
    if (!parsed.ok) throw invalidPipeline(name, parsed.errors);
    document = parsed.value;
  } else {
    throw new FerryError(
      'InvalidArgument',
      `Content-Type ${type} is not accepted for a pipeline: send application/yaml or application/json`,
    );
  }
  const result = validatePipeline(document);
  const nameInBody = pipelineNameOf(document);

  const errors: FieldError[] = result.ok ? [] : [...result.errors];
  // Checked even when other fields are wrong, so the caller gets every mistake at once.
  if (nameInBody !== undefined && nameInBody !== name) {
    const mismatch = `must be "${name}", the name in the URL (found "${nameInBody}")`;
    const existing = errors.find((e) => e.path === 'metadata.name');
    if (existing) existing.message = `${existing.message}; ${mismatch}`;
    else errors.push({ path: 'metadata.name', message: mismatch });
  }
  if (!result.ok || errors.length > 0) throw invalidPipeline(name, errors);
  return result.pipeline;
}

function invalidPipeline(name: string, errors: FieldError[]): FerryError {
  const count = errors.length === 1 ? '1 error' : `${errors.length} errors`;
  return new FerryError('InvalidArgument', `pipeline "${name}" is invalid: ${count}`, { errors });
}

// ---------------------------------------------------------------------------------------------------------------
// Logging and errors

function pathOf(req: Request): string {
  // Never the query string: it is the one place a careless client might put a secret. Nor a callback gate's token.
  return req.originalUrl.split('?')[0].replace(/^(\/api\/v1\/callbacks\/)[^/]+/i, '$1***');
}

function requestLog(log: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    let logged = false;
    const done = (): void => {
      if (logged) return;
      logged = true;
      const fields = {
        method: req.method,
        path: pathOf(req),
        status: res.writableFinished ? res.statusCode : 499,
        ms: Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10,
        user: (res.locals as Locals).identity?.user,
      };
      // Health probes come every few seconds; keep them out of the normal log.
      if (req.path === '/healthz' && res.statusCode === 200) log.debug('request', fields);
      else log.info('request', fields);
    };
    res.on('finish', done);
    res.on('close', done);
    next();
  };
}

interface HttpishError {
  status?: unknown;
  statusCode?: unknown;
  type?: unknown;
}

/** Errors that are the caller's fault, from express and body-parser, as FerryErrors with a safe message. */
function requestError(err: unknown): { status: number; error: FerryError } | undefined {
  if (err instanceof URIError) {
    return { status: 400, error: new FerryError('InvalidArgument', 'the URL path has malformed percent-encoding') };
  }
  const e = (typeof err === 'object' && err !== null ? err : {}) as HttpishError;
  const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  if (status === undefined || status < 400 || status >= 500) return undefined;
  switch (e.type) {
    case 'entity.too.large':
      return {
        status: 413,
        error: new FerryError('InvalidArgument', `request body is larger than ${BODY_LIMIT_BYTES / 1024 / 1024} MB`),
      };
    case 'charset.unsupported':
    case 'encoding.unsupported':
      return { status: 415, error: new FerryError('InvalidArgument', 'unsupported body encoding: send UTF-8 text') };
    case 'request.aborted':
      return { status: 400, error: new FerryError('InvalidArgument', 'the request body was not received completely') };
    default:
      return { status: 400, error: new FerryError('InvalidArgument', 'the request could not be read') };
  }
}

const INTERNAL_ERROR = new FerryError('Internal', 'internal error; the API log has the details');

function errorHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    let status: number;
    let error: FerryError;
    if (err instanceof FerryError && err.code === 'Internal') {
      // The typed client wraps whatever Temporal or the workflow threw as Internal, raw message included: that
      // message goes to the log like any other unexpected failure, not to the caller.
      log.error('request failed', { method: req.method, path: pathOf(req), code: err.code, error: err });
      status = 500;
      error = INTERNAL_ERROR;
    } else if (err instanceof FerryError) {
      status = err.status;
      error = err;
      // Unavailable is logged once when Temporal goes away (availability.ts), not once per request.
      if (status >= 500 && err.code !== 'Unavailable')
        log.error('request failed', { method: req.method, path: pathOf(req), code: err.code, error: err });
    } else {
      const known = requestError(err);
      if (known) {
        ({ status, error } = known);
      } else {
        // Unexpected: the details (and the stack) go to the log, never to the caller.
        log.error('unexpected error', { method: req.method, path: pathOf(req), error: err });
        status = 500;
        error = INTERNAL_ERROR;
      }
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    if (status === 401 && !res.get('WWW-Authenticate')) res.set('WWW-Authenticate', 'Bearer realm="ferry"');
    res.status(status).json(error.toJSON());
  };
}
