// The HTTP API's contract as zod schemas: every request body and path parameter the routes validate with, and every
// response body they answer with. app.ts validates with these; api/openapi.ts turns the same objects into the
// OpenAPI document, so the description cannot disagree with the routes. The response schemas mirror the types in
// workflows/messages.ts and client/types.ts (which stay zod-free for the workflow bundle); the `Same` checks at the
// bottom make a field added to one and not the other a compile error.
import { z } from 'zod';
import { freightId } from '../pipeline/freight';
import { CallbackBody } from './callbacks';
import {
  DuplicateDelivery,
  FreightRegistered,
  GenericDeliveryBody,
  GitHubDelivery,
  GitLabDelivery,
  GiteaDelivery,
  HostDeliveryResult,
} from './webhooks/payloads';
import type { PullRequestProvider } from '../pipeline/ids';
import { PipelineSchema } from '../pipeline/schema';
import type { FerryError, FerryErrorCode } from '../client/errors';
import type { PipelineSummary } from '../client/types';
import type {
  AddFreightResult,
  GatePhase,
  GateType,
  PipelineStatus,
  PromotionPhase,
  PromotionRequested,
  PromotionStatus,
  StepName,
  StepStatus,
} from '../workflows/messages';

/** The walkthrough's names (README.md), as examples in the document: fuzzers and readers start from them. */
const EXAMPLE_FREIGHT = freightId({ guestbook: '1.4.2' });
export const EXAMPLE_PROMOTION = `promotion/guestbook/dev/${EXAMPLE_FREIGHT}`;

// ---------------------------------------------------------------------------------------------------------------
// Request bodies

export const FreightBody = z
  .object({
    // Shape and names are checked against the pipeline by its workflow's update validator (validateFreight), each
    // by path; the document states the shape it checks.
    artifacts: z
      .unknown()
      .refine((v) => v !== undefined, 'is required')
      .meta({
        type: 'object',
        additionalProperties: { type: 'string', description: 'an image tag, or sha256: and 64 lowercase hex digits' },
        description:
          'Artifact name → version, one for every artifact of the pipeline and nothing else, e.g. `{"guestbook": "1.4.2"}`.',
      }),
  })
  .strict()
  .describe('Freight to register: one version of every artifact of the pipeline.')
  .meta({ examples: [{ artifacts: { guestbook: '1.4.2' } }] });

export const PromotionBody = z
  .object({
    freight: z
      .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string (a freight id)') })
      .min(1, 'must not be empty')
      .describe('Id of registered freight of the pipeline.'),
    force: z
      .boolean({ error: 'must be true or false' })
      .optional()
      .describe('Start a new run even when the freight is already current in the stage or its promotion runs.'),
  })
  .strict()
  .describe('A promotion request.')
  .meta({ examples: [{ freight: EXAMPLE_FREIGHT }] });

export const DecisionBody = z
  .object({
    comment: z
      .string({ error: 'must be a string' })
      .max(4096, 'must be at most 4096 characters')
      .optional()
      .describe('Recorded with the decision.'),
  })
  .strict()
  .describe("An approval, rejection or abort; the user is the bearer token's, never a field of the body.");

// ---------------------------------------------------------------------------------------------------------------
// Path parameters (strings as the URL gives them; an unknown name is a 404 from the route)

export const PipelineNameParam = z
  .string()
  .min(1)
  .describe('Name of the pipeline (`metadata.name`).')
  .meta({ examples: ['guestbook'] });
export const StageNameParam = z
  .string()
  .min(1)
  .describe('Name of a stage of the pipeline.')
  .meta({ examples: ['dev'] });
export const PromotionIdParam = z
  .string()
  .min(1)
  .describe(
    'Promotion id, `promotion/<pipeline>/<stage>/<freight>`: URL-encoded as one segment, or with its slashes as ' +
      'they are.',
  )
  .meta({ examples: [EXAMPLE_PROMOTION] });

// ---------------------------------------------------------------------------------------------------------------
// Responses

const timestamp = z.iso.datetime();
const artifactVersions = z.record(z.string(), z.string()).describe('Artifact name → version.');

export const ErrorBodySchema = z
  .object({
    error: z.object({
      code: z.enum([
        'InvalidArgument',
        'Unauthenticated',
        'Forbidden',
        'NotFound',
        'Conflict',
        'Unavailable',
        'Internal',
      ] satisfies FerryErrorCode[]),
      message: z.string().describe('What is wrong and what to do about it.'),
      errors: z
        .array(z.object({ path: z.string(), message: z.string() }))
        .optional()
        .describe('Every bad field, by path (of a pipeline file, freight or a request body).'),
    }),
  })
  .describe('The one error body of every route.');

export const HealthSchema = z.object({ ok: z.boolean() }).describe('Whether the API can reach Temporal.');

export const PipelineSummarySchema = z.object({
  name: z.string(),
  stages: z.array(z.string()),
  status: z.string().describe('Workflow status of the pipeline workflow (Running unless someone stopped it).'),
});

export const PipelineListSchema = z.object({ pipelines: z.array(PipelineSummarySchema) });

const PromotionPhaseSchema = z.enum([
  'Pending',
  'AwaitingApproval',
  'Queued',
  'Rendering',
  'AwaitingMerge',
  'Syncing',
  'WaitingHealthy',
  'AwaitingGates',
  'Succeeded',
  'Failed',
  'Rejected',
  'Aborted',
] satisfies PromotionPhase[]);

const FreightSchema = z.object({ id: z.string(), artifacts: artifactVersions });

const PromotionRefSchema = z.object({
  id: z.string(),
  runId: z.string().optional(),
  freight: z.string(),
  requestedBy: z.string(),
  requestedAt: timestamp,
});

const StageStateSchema = z.object({
  name: z.string(),
  current: z
    .object({ freight: z.string(), promotion: z.string(), commit: z.string().optional(), at: timestamp })
    .optional()
    .describe('Freight currently in the stage (last successful promotion).'),
  running: PromotionRefSchema.optional().describe('The promotion that holds the stage.'),
  queue: z.array(PromotionRefSchema).describe('Promotions waiting for the stage, in order.'),
  active: z
    .array(PromotionRefSchema)
    .describe('Unfinished promotions of the stage, including those awaiting approval.'),
  history: z
    .array(
      z.object({
        id: z.string(),
        freight: z.string(),
        phase: PromotionPhaseSchema,
        finishedAt: timestamp,
        commit: z.string().optional(),
        error: z.string().optional(),
        reason: z.string().optional(),
      }),
    )
    .describe('The most recent finished promotions, newest first.'),
});

export const PipelineStatusSchema = z.object({
  name: z.string(),
  spec: PipelineSchema.describe('The applied pipeline, with defaults filled in.'),
  appliedAt: timestamp,
  stages: z.array(StageStateSchema),
  freight: z
    .array(FreightSchema.extend({ createdAt: timestamp, verifiedIn: z.array(z.string()) }))
    .describe('The freight catalog, newest first.'),
});

export const FreightCreatedSchema = z.object({
  id: z.string().describe('The freight id, a content hash of the versions.'),
  created: z.boolean().describe('false when this freight was registered before.'),
});

export const PromotionRequestedSchema = z.object({
  id: z.string().describe('The promotion id.'),
  existing: z
    .boolean()
    .describe('true when an unfinished promotion of this freight into this stage already existed (no new run).'),
});

const GateStatusSchema = z.object({
  name: z.string(),
  type: z.enum(['callback', 'http'] satisfies GateType[]),
  phase: z.enum(['Pending', 'Waiting', 'Passed', 'Failed', 'TimedOut', 'Cancelled', 'Skipped'] satisfies GatePhase[]),
  startedAt: timestamp.optional().describe('When the gate started waiting.'),
  deadline: timestamp.optional().describe('When it gives up.'),
  at: timestamp.optional().describe('When it was decided.'),
  decidedBy: z
    .string()
    .optional()
    .describe('What decided: `callback` or `callback by <by>`, `GET <url>`, `timeout`, or who aborted.'),
  message: z.string().optional(),
  reason: z.string().optional().describe("Machine-readable reason beside a failed or timed-out gate's message."),
  attempts: z.number().int().optional().describe('http gates: answers read so far.'),
  consecutive: z.number().int().optional().describe('http gates: how many of the last answers passed in a row.'),
});

const DecisionRecordSchema = z.object({ user: z.string(), at: timestamp, comment: z.string().optional() });

export const PromotionStatusSchema = z.object({
  id: z.string(),
  pipeline: z.string(),
  stage: z.string(),
  freight: FreightSchema,
  phase: PromotionPhaseSchema,
  steps: z.array(
    z.object({
      name: z.enum([
        'approval',
        'queue',
        'preflight',
        'render',
        'pull-request',
        'merge',
        'sync',
        'health',
        'gates',
      ] satisfies StepName[]),
      status: z.enum(['Pending', 'Running', 'Succeeded', 'Failed', 'Skipped', 'Cancelled'] satisfies StepStatus[]),
      startedAt: timestamp.optional(),
      finishedAt: timestamp.optional(),
      message: z.string().optional(),
      reason: z.string().optional().describe("Machine-readable reason beside a failed or cancelled step's message."),
      attempt: z.number().int().optional().describe("While the step's work retries: its attempt (2 = first retry)."),
      lastError: z.string().optional().describe('While the step retries: the error of the attempt before.'),
    }),
  ),
  approval: z
    .object({ required: z.number().int(), approvers: z.array(z.string()), allowSelfApproval: z.boolean().optional() })
    .optional()
    .describe("The stage's approval gate."),
  approvals: z.array(DecisionRecordSchema),
  rejectedBy: DecisionRecordSchema.optional(),
  abortedBy: DecisionRecordSchema.optional(),
  requestedBy: z.string(),
  startedAt: timestamp,
  finishedAt: timestamp.optional(),
  commit: z.string().optional().describe("Commit on the stage's branch, once written."),
  sourceCommit: z.string().optional().describe('Commit on repo.branch the render was taken from.'),
  error: z.string().optional(),
  reason: z.string().optional().describe('Machine-readable reason beside `error`.'),
  gates: z.array(GateStatusSchema).optional().describe("The stage's gates, in order (only when the stage has gates)."),
  pullRequest: z
    .object({
      provider: z.enum(['github', 'gitlab', 'gitea'] satisfies PullRequestProvider[]),
      repository: z.string(),
      number: z.number().int(),
      url: z.string().describe('Its web page.'),
      head: z.string().describe('The promotion branch.'),
      base: z.string().describe('The branch it goes into.'),
      state: z.enum(['open', 'merged', 'closed']),
      mergeCommit: z.string().optional().describe('The commit the merge made on `base`: what the stage deploys.'),
      approvedBy: z.array(z.string()).optional().describe('Host users whose approving review stands.'),
    })
    .optional()
    .describe("The `pull-request` strategy's pull request, once opened."),
});

export const OpenApiDocumentSchema = z
  .looseObject({ openapi: z.literal('3.1.0'), info: z.looseObject({}), paths: z.record(z.string(), z.unknown()) })
  .describe('An OpenAPI 3.1 document.');

// ---------------------------------------------------------------------------------------------------------------
// The named schemas of the document (components/schemas): bodies as clients send them (defaults optional), responses
// as the API answers them (defaults filled in). A route may only use schemas named here.

/** The walkthrough's pipeline, trimmed to two stages: an example body for PUT /api/v1/pipelines/{name}. */
const EXAMPLE_PIPELINE = {
  apiVersion: 'ferry.dev/v1alpha1',
  kind: 'Pipeline',
  metadata: { name: 'guestbook' },
  spec: {
    repo: { url: 'https://git.example.com/org/gitops.git', branch: 'main', credentials: 'gitops' },
    artifacts: [{ name: 'guestbook', image: 'registry.example.com/team/guestbook' }],
    stages: [
      {
        name: 'dev',
        promotion: 'auto',
        render: { strategy: 'branch', from: 'apps/guestbook/overlays/dev', to: 'env/dev' },
      },
      {
        name: 'prod',
        after: ['dev'],
        approval: { required: 1, approvers: ['alice', 'bob'] },
        render: { strategy: 'branch', from: 'apps/guestbook/overlays/prod', to: 'env/prod' },
      },
    ],
  },
};

export const REQUEST_SCHEMAS = {
  // A copy of the pipeline schema carrying the example; app.ts validates with PipelineSchema itself (pipeline/load).
  Pipeline: PipelineSchema.meta({ examples: [EXAMPLE_PIPELINE] }),
  FreightRequest: FreightBody,
  PromotionRequest: PromotionBody,
  DecisionRequest: DecisionBody,
  GateCallback: CallbackBody.describe('A callback gate\'s result: `reason` is required when `result` is "fail".'),
  GenericDelivery: GenericDeliveryBody,
  GitHubDelivery: GitHubDelivery.describe('A GitHub webhook payload; Ferry reads only the fields it needs.'),
  GitLabDelivery: GitLabDelivery.describe('A GitLab webhook payload; Ferry reads only the fields it needs.'),
  GiteaDelivery: GiteaDelivery.describe('A Gitea or Forgejo webhook payload; Ferry reads only the fields it needs.'),
} as const;

export const RESPONSE_SCHEMAS = {
  Error: ErrorBodySchema,
  Health: HealthSchema,
  PipelineList: PipelineListSchema,
  PipelineStatus: PipelineStatusSchema,
  FreightCreated: FreightCreatedSchema,
  PromotionRequested: PromotionRequestedSchema,
  PromotionStatus: PromotionStatusSchema,
  OpenApiDocument: OpenApiDocumentSchema,
  GateDecided: z
    .object({ promotion: z.string(), gate: z.string(), phase: z.enum(['Passed', 'Failed'] satisfies GatePhase[]) })
    .describe('The gate after the callback.'),
  GateCallbackUrl: z
    .object({ promotion: z.string(), gate: z.string(), url: z.string().describe('The one-time callback URL.') })
    .describe("A waiting callback gate's URL."),
  GenericDeliveryAnswer: z
    .union([FreightRegistered, DuplicateDelivery])
    .describe('The freight the delivery registered, or `{"duplicate": true}` for a delivery acted on before.'),
  HostDeliveryAnswer: z
    .union([HostDeliveryResult, DuplicateDelivery])
    .describe('What the delivery did per pipeline, or `{"duplicate": true}` for a delivery acted on before.'),
} as const;

// ---------------------------------------------------------------------------------------------------------------
// The response schemas describe exactly the types the typed client returns.

type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const agree = <T extends true>(): T => true as T;
agree<Same<z.output<typeof PromotionStatusSchema>, PromotionStatus>>();
agree<Same<z.output<typeof PipelineStatusSchema>, PipelineStatus>>();
agree<Same<z.output<typeof PipelineSummarySchema>, PipelineSummary>>();
agree<Same<z.output<typeof FreightCreatedSchema>, AddFreightResult>>();
agree<Same<z.output<typeof PromotionRequestedSchema>, PromotionRequested>>();
agree<Same<z.output<typeof ErrorBodySchema>, ReturnType<FerryError['toJSON']>>>();
