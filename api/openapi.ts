// The OpenAPI 3.1 description of the HTTP API, generated from the zod schemas in api/schemas.ts (the ones the routes
// validate with). Each route is one declaration in ROUTES; test/unit/openapi.test.ts checks that the declarations and
// the routes express registers are the same set, and that the app's answers match the documented schemas. Served at
// GET /api/v1/openapi.json and published as docs/openapi.json (`npm run docs`).
import type { RequestHandler } from 'express';
import { z } from 'zod';
import { PipelineNameParam, PromotionIdParam, REQUEST_SCHEMAS, RESPONSE_SCHEMAS, StageNameParam } from './schemas';
import {
  GenericDeliveryHeaders,
  GitHubDeliveryHeaders,
  GitLabDeliveryHeaders,
  GiteaDeliveryHeaders,
} from './webhooks/payloads';

type RequestSchemaName = keyof typeof REQUEST_SCHEMAS;
type ResponseSchemaName = keyof typeof RESPONSE_SCHEMAS;

/** Error statuses a route can answer, each with the one error body (client/errors.ts). */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 500 | 503;

export interface RouteDoc {
  method: 'get' | 'put' | 'post';
  /** OpenAPI form: `{name}` where express has `:name` or `*name`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  /** No bearer token needed; such a route lists its error statuses itself. */
  public?: boolean;
  /** Path parameters, by name, in path order. */
  params?: Record<string, z.ZodType>;
  /** Request headers the route reads (lowercase names), as one object schema. */
  headers?: z.ZodObject;
  body?: {
    schema: RequestSchemaName;
    /** Media types the body may be sent as; default application/json. */
    contentTypes?: string[];
    required?: boolean;
  };
  /** Statuses answered with a body of their own (not the error body), and that body. */
  responses: Partial<Record<200 | 201 | 503, { description: string; schema: ResponseSchemaName }>>;
  /** Error statuses beyond those every authenticated route has (AUTHENTICATED_ERRORS). */
  errors?: ErrorStatus[];
}

/** What every route behind the bearer token can answer besides its own: the body reader, auth, roles, Temporal. */
export const AUTHENTICATED_ERRORS: readonly ErrorStatus[] = [400, 401, 403, 413, 415, 500, 503];

const ERROR_DESCRIPTIONS: Record<ErrorStatus, string> = {
  400: '`InvalidArgument`: a bad request; `errors` lists every bad field by path',
  401: '`Unauthenticated`: no bearer token or an unknown one (webhooks: a missing or wrong signature)',
  403: "`Forbidden`: the token's user may not do this; the message says who may",
  404: '`NotFound`: unknown pipeline, stage, freight or promotion',
  409: '`Conflict`: the pipeline or promotion is not in a state that takes this request; the message says why',
  413: '`InvalidArgument`: the body is larger than 1 MB',
  415: '`InvalidArgument`: a body encoding or charset other than UTF-8',
  500: '`Internal`: something Ferry did not expect; the API log has the details',
  503: '`Unavailable`: Temporal cannot be reached, or the pipeline is too busy; safe to retry',
};

const DECISION_ERRORS: ErrorStatus[] = [404, 409];
const decision = (verb: 'approve' | 'reject' | 'abort', summary: string, description: string): RouteDoc => ({
  method: 'post',
  path: `/api/v1/promotions/{id}/${verb}`,
  operationId: `${verb}Promotion`,
  summary,
  description,
  params: { id: PromotionIdParam },
  body: { schema: 'DecisionRequest', required: false },
  responses: { 200: { description: 'The promotion after the decision.', schema: 'PromotionStatus' } },
  errors: DECISION_ERRORS,
});

/** A webhook: no bearer token (a signature over the body instead), errors in the one error body. */
const webhook = (route: Omit<RouteDoc, 'method' | 'public' | 'errors'>): RouteDoc => ({
  ...route,
  method: 'post',
  public: true,
  errors: [400, 401, 404, 409, 413, 500, 503],
});

/** Every route of the API. Adding a route to app.ts means adding its declaration here. */
export const ROUTES: RouteDoc[] = [
  {
    method: 'get',
    path: '/healthz',
    operationId: 'health',
    summary: 'Whether the API can reach Temporal',
    public: true,
    responses: {
      200: { description: 'Temporal answers.', schema: 'Health' },
      503: { description: 'Temporal does not answer (`{"ok": false}`).', schema: 'Health' },
    },
  },
  {
    method: 'get',
    path: '/api/v1/openapi.json',
    operationId: 'openapi',
    summary: 'This document',
    public: true,
    responses: { 200: { description: 'This OpenAPI 3.1 document.', schema: 'OpenApiDocument' } },
  },
  {
    method: 'put',
    path: '/api/v1/pipelines/{name}',
    operationId: 'applyPipeline',
    summary: 'Apply (create or update) a pipeline',
    description:
      'The pipeline file as YAML or JSON; `metadata.name` must equal `{name}`. Every mistake comes back at once, ' +
      'each with its path. A stage may not write a branch another pipeline writes in the same repository (409).',
    params: { name: PipelineNameParam },
    body: { schema: 'Pipeline', contentTypes: ['application/json', 'application/yaml'] },
    responses: { 200: { description: 'The pipeline as applied.', schema: 'PipelineStatus' } },
    errors: [409],
  },
  {
    method: 'get',
    path: '/api/v1/pipelines',
    operationId: 'listPipelines',
    summary: 'List pipelines',
    responses: { 200: { description: 'Every pipeline.', schema: 'PipelineList' } },
  },
  {
    method: 'get',
    path: '/api/v1/pipelines/{name}',
    operationId: 'getPipeline',
    summary: "A pipeline's stages, freight and applied spec",
    params: { name: PipelineNameParam },
    responses: { 200: { description: 'The pipeline status.', schema: 'PipelineStatus' } },
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/v1/pipelines/{name}/freight',
    operationId: 'addFreight',
    summary: 'Register freight (idempotent)',
    description: 'The same versions always give the same id; registering existing freight changes nothing.',
    params: { name: PipelineNameParam },
    body: { schema: 'FreightRequest' },
    responses: {
      200: { description: 'The freight existed.', schema: 'FreightCreated' },
      201: { description: 'The freight was registered.', schema: 'FreightCreated' },
    },
    errors: [404, 409],
  },
  {
    method: 'post',
    path: '/api/v1/pipelines/{name}/stages/{stage}/promotions',
    operationId: 'promote',
    summary: 'Promote freight into a stage (idempotent)',
    description:
      'Freight already current in the stage, or being promoted there, gives that promotion (200, `existing: ' +
      'true`) unless `force` asks for a new run of a finished one. Freight that has not passed the stages this ' +
      'stage comes after is a 409.',
    params: { name: PipelineNameParam, stage: StageNameParam },
    body: { schema: 'PromotionRequest' },
    responses: {
      200: { description: 'The promotion that already has this freight.', schema: 'PromotionRequested' },
      201: { description: 'A run started.', schema: 'PromotionRequested' },
    },
    errors: [404, 409],
  },
  {
    method: 'get',
    path: '/api/v1/promotions/{id}',
    operationId: 'getPromotion',
    summary: "A promotion's phase, steps, approvals, commit and error",
    params: { id: PromotionIdParam },
    responses: { 200: { description: 'The promotion status.', schema: 'PromotionStatus' } },
    errors: [404],
  },
  decision(
    'approve',
    "Approve a promotion as the token's user",
    'Only the approvers of the stage (403 for anyone else); a decided or finished promotion is a 409.',
  ),
  decision(
    'reject',
    'Reject a promotion awaiting approval',
    'Only the approvers of the stage; the promotion ends Rejected.',
  ),
  decision(
    'abort',
    'Abort a promotion at any step until it ends',
    'Allowed to its requester, the approvers of its stage and admins; a finished promotion is a 409.',
  ),
  {
    method: 'get',
    path: '/api/v1/promotions/{id}/gates/{gate}/callback-url',
    operationId: 'gateCallbackUrl',
    summary: "A waiting callback gate's one-time URL (admins)",
    description: 'For when no event subscriber carries the URL; never part of the promotion status.',
    params: { id: PromotionIdParam, gate: z.string().min(1).describe("Name of one of the stage's gates.") },
    responses: { 200: { description: 'The URL.', schema: 'GateCallbackUrl' } },
    errors: [404, 409],
  },
  {
    method: 'post',
    path: '/api/v1/callbacks/{token}',
    operationId: 'gateCallback',
    summary: 'Decide a waiting callback gate: pass or fail with a reason',
    description:
      'No bearer token: the one-time token in the path (from the gate-waiting event or `ferry gate url`) is the ' +
      'credential. A token Ferry did not issue is a 401; a gate that is not waiting is a 409, so the URL works once.',
    public: true,
    params: { token: z.string().min(1).describe("The gate's one-time token.") },
    body: { schema: 'GateCallback' },
    responses: { 200: { description: 'The gate was decided.', schema: 'GateDecided' } },
    errors: [400, 401, 404, 409, 413, 500, 503],
  },
  webhook({
    path: '/webhooks/generic/{pipeline}',
    operationId: 'genericWebhook',
    summary: 'Register freight from any CI, signed with HMAC-SHA256',
    description:
      'Signed over `<X-Ferry-Timestamp>.<raw body>` with the secret the pipeline names in `spec.triggers`; a ' +
      'delivery outside the five-minute window, or for a pipeline that takes no generic webhook, is a 401.',
    params: { pipeline: PipelineNameParam },
    headers: GenericDeliveryHeaders,
    body: { schema: 'GenericDelivery' },
    responses: {
      200: { description: 'The freight existed, or the delivery is a duplicate.', schema: 'GenericDeliveryAnswer' },
      201: { description: 'The freight was registered.', schema: 'GenericDeliveryAnswer' },
    },
  }),
  webhook({
    path: '/webhooks/github',
    operationId: 'githubWebhook',
    summary: "GitHub's push, package, registry_package and pull_request events (X-Hub-Signature-256)",
    headers: GitHubDeliveryHeaders,
    body: { schema: 'GitHubDelivery' },
    responses: { 200: { description: 'What the delivery did per pipeline.', schema: 'HostDeliveryAnswer' } },
  }),
  webhook({
    path: '/webhooks/gitlab',
    operationId: 'gitlabWebhook',
    summary: "GitLab's Push Hook and Merge Request Hook (X-Gitlab-Token)",
    headers: GitLabDeliveryHeaders,
    body: { schema: 'GitLabDelivery' },
    responses: { 200: { description: 'What the delivery did per pipeline.', schema: 'HostDeliveryAnswer' } },
  }),
  webhook({
    path: '/webhooks/gitea',
    operationId: 'giteaWebhook',
    summary: "Gitea's (and Forgejo's) push and pull_request events (X-Gitea-Signature)",
    headers: GiteaDeliveryHeaders,
    body: { schema: 'GiteaDelivery' },
    responses: { 200: { description: 'What the delivery did per pipeline.', schema: 'HostDeliveryAnswer' } },
  }),
];

// ---------------------------------------------------------------------------------------------------------------
// Generation

const INFO_DESCRIPTION =
  'Ferry moves freight (a set of artifact versions) through the stages of a GitOps pipeline; every promotion is a ' +
  'durable Temporal workflow. Every route but `/healthz`, this document and the webhooks (which check a signature ' +
  'over the body instead) needs `Authorization: Bearer <token>`. ' +
  'Errors have one shape (`Error`). Guide: docs/api.md.';

const WWW_AUTHENTICATE = {
  description: 'The scheme the API takes: `Bearer realm="ferry"`, with `error="invalid_token"` for a refused token.',
  schema: { type: 'string' },
};

const componentRef = (name: string): { $ref: string } => ({ $ref: `#/components/schemas/${name}` });
const errorResponseName = (status: ErrorStatus): string => `Error${status}`;

/** The named schemas as JSON Schema, `$ref`s between them pointing into components/schemas. */
function components(
  schemas: Record<string, z.ZodType>,
  io: 'input' | 'output',
): Record<string, Record<string, unknown>> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const generated = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    io,
    uri: (id) => `#/components/schemas/${id}`,
    // zod spells a timestamp as format and a long pattern; the format says it.
    override: ({ jsonSchema }) => {
      if (jsonSchema.format === 'date-time') delete jsonSchema.pattern;
    },
  }).schemas as Record<string, Record<string, unknown>>;
  // OpenAPI 3.1 documents are JSON Schema 2020-12 already; per-schema $schema and fragment $ids are noise.
  return Object.fromEntries(Object.entries(generated).map(([id, { $schema: _s, $id: _i, ...schema }]) => [id, schema]));
}

function parameter(name: string, schema: z.ZodType, where: 'path' | 'header' = 'path'): Record<string, unknown> {
  const required = where === 'path' || !schema.safeParse(undefined).success;
  const { $schema: _s, description, ...json } = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input' });
  return { name, in: where, required, description, schema: json };
}

function operation(route: RouteDoc): Record<string, unknown> {
  const responses: Record<string, unknown> = {};
  for (const [status, response] of Object.entries(route.responses)) {
    responses[status] = {
      description: response.description,
      content: { 'application/json': { schema: componentRef(response.schema) } },
    };
  }
  const errors = new Set<ErrorStatus>([...(route.public ? [] : AUTHENTICATED_ERRORS), ...(route.errors ?? [])]);
  for (const status of [...errors].sort((a, b) => a - b)) {
    const name = status === 401 && !route.public ? 'Error401Bearer' : errorResponseName(status);
    responses[String(status)] = { $ref: `#/components/responses/${name}` };
  }
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    ...(route.public ? { security: [] } : {}),
    ...(route.params || route.headers
      ? {
          parameters: [
            ...Object.entries(route.params ?? {}).map(([name, schema]) => parameter(name, schema)),
            ...Object.entries(route.headers?.shape ?? {}).map(([name, schema]) =>
              parameter(name, schema as z.ZodType, 'header'),
            ),
          ],
        }
      : {}),
    ...(route.body
      ? {
          requestBody: {
            required: route.body.required ?? true,
            content: Object.fromEntries(
              (route.body.contentTypes ?? ['application/json']).map((type) => [
                type,
                { schema: componentRef(route.body!.schema) },
              ]),
            ),
          },
        }
      : {}),
    responses,
  };
}

/** The OpenAPI 3.1 document; deterministic, so the published copy can be compared byte for byte. */
export function openApiDocument(routes: readonly RouteDoc[] = ROUTES): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const declared = Object.keys(route.params ?? {});
    const inPath = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    if (declared.join() !== inPath.join()) {
      throw new Error(`${route.method.toUpperCase()} ${route.path}: params must be ${inPath.join(', ') || 'none'}`);
    }
    paths[route.path] ??= {};
    if (paths[route.path][route.method]) throw new Error(`${route.method} ${route.path} is declared twice`);
    paths[route.path][route.method] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Ferry API', version: 'v1', description: INFO_DESCRIPTION },
    servers: [{ url: 'http://127.0.0.1:8234', description: 'the local stack (`npm start`)' }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An API token (`FERRY_TOKENS`, `.ferry/token`).' },
      },
      schemas: { ...components(REQUEST_SCHEMAS, 'input'), ...components(RESPONSE_SCHEMAS, 'output') },
      responses: {
        Error401Bearer: {
          description: ERROR_DESCRIPTIONS[401],
          headers: { 'WWW-Authenticate': WWW_AUTHENTICATE },
          content: { 'application/json': { schema: componentRef('Error') } },
        },
        ...Object.fromEntries(
          (Object.keys(ERROR_DESCRIPTIONS).map(Number) as ErrorStatus[]).map((status) => [
            errorResponseName(status),
            {
              description: ERROR_DESCRIPTIONS[status],
              content: { 'application/json': { schema: componentRef('Error') } },
            },
          ]),
        ),
      },
    },
  };
}

/** GET /api/v1/openapi.json: public, generated once. */
export function openApiRoute(): RequestHandler {
  let body: string | undefined;
  return (_req, res) => {
    body ??= JSON.stringify(openApiDocument());
    res.type('application/json').send(body);
  };
}
