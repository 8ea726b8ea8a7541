// Message contracts of Ferry's workflows: the names, argument and result types of every signal, query and
// update. Imported by workflow code and by the typed client, so it stays free of Node, zod, yaml and express.
import { ApplicationFailure } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { PullRequestProvider } from '../pipeline/ids';
import type { Pipeline, Stage, Subscriber } from '../pipeline/schema';

export const TASK_QUEUE = 'ferry';

export { pipelineWorkflowId, promotionWorkflowId, pullRequestKey } from '../pipeline/ids';

/**
 * Error `type`s that workflow validators and activities use to refuse a request. The HTTP API maps them to
 * status codes (Forbidden 403, Conflict 409, NotFound 404, InvalidArgument 400); everything else is a failure.
 */
export const RefusalType = {
  Forbidden: 'Forbidden',
  Conflict: 'Conflict',
  NotFound: 'NotFound',
  InvalidArgument: 'InvalidArgument',
} as const;
export type RefusalType = (typeof RefusalType)[keyof typeof RefusalType];

/** A refusal as workflow validators throw it: non-retryable, its `type` telling the caller what went wrong. */
export function refusal(type: RefusalType, message: string): ApplicationFailure {
  return ApplicationFailure.create({ message, type, nonRetryable: true });
}

// ---------------------------------------------------------------------------------------------------------------
// Freight

/** One set of artifact versions that travels together; `id` is a content hash (pipeline/freight.ts). */
export interface Freight {
  id: string;
  /** artifact name -> version (an image tag, or a digest `sha256:...`) */
  artifacts: Record<string, string>;
}

export interface FreightEntry extends Freight {
  createdAt: string;
  /** Stages this freight was promoted into successfully, in order. */
  verifiedIn: string[];
}

// ---------------------------------------------------------------------------------------------------------------
// Promotion workflow

export type PromotionPhase =
  | 'Pending'
  | 'AwaitingApproval'
  | 'Queued'
  | 'Rendering'
  | 'AwaitingMerge'
  | 'Syncing'
  | 'WaitingHealthy'
  | 'AwaitingGates'
  | 'Succeeded'
  | 'Failed'
  | 'Rejected'
  | 'Aborted';

export const TERMINAL_PHASES: readonly PromotionPhase[] = ['Succeeded', 'Failed', 'Rejected', 'Aborted'];

export type StepName =
  'approval' | 'queue' | 'preflight' | 'render' | 'pull-request' | 'merge' | 'sync' | 'health' | 'gates';
export type StepStatus = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Skipped' | 'Cancelled';

export interface PromotionStep {
  name: StepName;
  status: StepStatus;
  startedAt?: string;
  finishedAt?: string;
  message?: string;
  /** Machine-readable reason beside a failed or cancelled step's message (pipeline/reasons.ts). */
  reason?: string;
  /** While the step's activity retries: its attempt (2 = first retry) and the error of the attempt before. */
  attempt?: number;
  lastError?: string;
}

export interface Approval {
  user: string;
  at: string;
  comment?: string;
}

export interface PromotionInput {
  pipeline: string;
  /** The stage's spec as applied when the promotion was requested. */
  stage: Stage;
  repo: Pipeline['spec']['repo'];
  artifacts: Pipeline['spec']['artifacts'];
  freight: Freight;
  requestedBy: string;
  /** Workflow id of the pipeline workflow that owns the stage lock. */
  pipelineWorkflowId: string;
  /** The pipeline granted the stage lock at start (the stage was free): no lock request, no grant signal. */
  granted?: boolean;
  /** The pipeline's event subscribers (`spec.notify`) as applied when the promotion was requested. */
  notify?: Subscriber[];
}

export interface PromotionStatus {
  id: string;
  pipeline: string;
  stage: string;
  freight: Freight;
  phase: PromotionPhase;
  steps: PromotionStep[];
  approval?: { required: number; approvers: string[]; allowSelfApproval?: boolean };
  approvals: Approval[];
  rejectedBy?: Approval;
  abortedBy?: Approval;
  requestedBy: string;
  startedAt: string;
  finishedAt?: string;
  /** Commit on the stage's branch (set once written). */
  commit?: string;
  /** Commit on repo.branch the render was taken from. */
  sourceCommit?: string;
  error?: string;
  /** Machine-readable reason beside `error` (pipeline/reasons.ts, or the failed check's type). */
  reason?: string;
  /** The stage's gates, in order (only when the stage has gates). */
  gates?: GateStatus[];
  /** The `pull-request` strategy's pull request, once opened. */
  pullRequest?: PullRequestInfo;
}

/** A promotion's pull request (GitLab: merge request) and where it stands, as last seen on the host. */
export interface PullRequestInfo {
  provider: PullRequestProvider;
  /** `owner/name`, or GitLab's project path. */
  repository: string;
  number: number;
  /** Its web page. */
  url: string;
  /** The promotion branch, and the branch it goes into. */
  head: string;
  base: string;
  state: 'open' | 'merged' | 'closed';
  /** The commit the merge made on `base`: what the stage deploys. */
  mergeCommit?: string;
  /** Host users whose approving review stands (with `approvalOnHost`, the stage's approvals come from these). */
  approvedBy?: string[];
}

export type GateType = 'callback' | 'http';
export type GatePhase = 'Pending' | 'Waiting' | 'Passed' | 'Failed' | 'TimedOut' | 'Cancelled' | 'Skipped';

/** One of the stage's gates in a promotion's status: where it stands, and once decided, what decided and why. */
export interface GateStatus {
  name: string;
  type: GateType;
  phase: GatePhase;
  /** When the gate started waiting. */
  startedAt?: string;
  /** When it gives up (startedAt + its timeout). */
  deadline?: string;
  /** When it was decided (passed, failed, timed out, cancelled). */
  at?: string;
  /** What decided: `callback` or `callback by <by>`, `GET <url>`, `timeout`, or the user who aborted. */
  decidedBy?: string;
  /** In words: the reason the external system posted, or the answer that passed, or what was seen last. */
  message?: string;
  /** Machine-readable reason beside a failed or timed-out gate's message (pipeline/reasons.ts). */
  reason?: string;
  /** http gates: answers read so far, and how many of the last ones passed in a row. */
  attempts?: number;
  consecutive?: number;
}

/** A callback gate's result as the external system posted it; the HTTP API checked the gate's token first. */
export interface GateDecision {
  gate: string;
  result: 'pass' | 'fail';
  reason?: string;
  /** Who or what posted, as the caller says (an e2e suite's name); recorded, not authenticated. */
  by?: string;
}

/** Roles of the HTTP API (api/roles.ts says what each allows). */
export type Role = 'viewer' | 'promoter' | 'approver' | 'admin';

export interface Decision {
  /** The authenticated user; the HTTP API fills it from the bearer token, never from the request body. */
  user: string;
  comment?: string;
  /** Set by the HTTP API when the user is an admin on the promotion's stage, never from a request body. */
  admin?: boolean;
  /**
   * The roles the user holds on the promotion's stage, admin expanded to every role, filled by the HTTP API from
   * its role configuration (never from a request body). When present, the approval and abort rules decide with
   * them; absent (decisions recorded before roles existed, or sent by a program with a Temporal client), the
   * rules fall back to the approver list, the requester and `admin`.
   */
  roles?: Role[];
}

export const promotionStatusQuery = defineQuery<PromotionStatus>('status');
/** Approve (Update with validator: refusals come back at once with a reason). */
export const approveUpdate = defineUpdate<PromotionStatus, [Decision]>('approve');
/** The same approval as a fire-and-forget signal; invalid ones are recorded in the workflow log and ignored. */
export const approveSignal = defineSignal<[Decision]>('approveSignal');
export const rejectUpdate = defineUpdate<PromotionStatus, [Decision]>('reject');
export const abortUpdate = defineUpdate<PromotionStatus, [Decision]>('abort');
/**
 * A callback gate's result (Update with validator: a gate that is not waiting, or already decided, is refused at
 * once as a Conflict, so a callback URL works once). The answer is the gate after the decision.
 */
export const decideGateUpdate = defineUpdate<GateStatus, [GateDecision]>('decideGate');
/** Sent by the pipeline workflow when this promotion may write its stage. */
export const stageGrantedSignal = defineSignal<[]>('stageGranted');

/** A pull request (GitLab: merge request) was merged, as its webhook reported it. */
export interface PullRequestMerged {
  provider: PullRequestProvider;
  /** `owner/name` (GitHub) or the project path (GitLab), as the host spells it. */
  repository: string;
  /** The pull request's number (GitLab: the merge request's iid). */
  number: number;
  /** The commit the merge made on the target branch (absent when the host does not say). */
  mergeCommit?: string;
}

/**
 * Webhook → a promotion waiting on a pull request. The waiting workflow carries the FerryPullRequest search
 * attribute (`pullRequestKey`) while it waits; the signal may come more than once (a redelivery), so handle it
 * idempotently.
 */
export const pullRequestMergedSignal = defineSignal<[PullRequestMerged]>('pullRequestMerged');

// ---------------------------------------------------------------------------------------------------------------
// Pipeline workflow

export interface PromotionRef {
  id: string;
  /** The run of that workflow id; a promotion promoted again after it finished is a new run under the same id. */
  runId?: string;
  freight: string;
  requestedBy: string;
  requestedAt: string;
}

export interface StageHistoryEntry {
  id: string;
  freight: string;
  phase: PromotionPhase;
  finishedAt: string;
  commit?: string;
  error?: string;
  reason?: string;
}

export interface StageState {
  name: string;
  /** Freight currently in the stage (last successful promotion). */
  current?: { freight: string; promotion: string; commit?: string; at: string };
  /** The promotion that holds the stage lock (writing git, syncing, waiting for health). */
  running?: PromotionRef;
  /** Promotions waiting for the stage lock, in order. */
  queue: PromotionRef[];
  /** Promotions started for this stage and not finished (includes ones awaiting approval). */
  active: PromotionRef[];
  /** The most recent finished promotions, newest first (bounded). */
  history: StageHistoryEntry[];
}

export interface PipelineStatus {
  name: string;
  spec: Pipeline;
  appliedAt: string;
  stages: StageState[];
  /** The freight catalog, newest first (bounded). */
  freight: FreightEntry[];
}

export interface PipelineWorkflowInput {
  spec: Pipeline;
  /** State carried over by continue-as-new; absent on first start. */
  carried?: unknown;
}

export interface RequestPromotion {
  stage: string;
  freight: string;
  requestedBy: string;
  /** Start a new run even when the freight is already current in the stage or its promotion is running. */
  force?: boolean;
}

export interface PromotionRequested {
  id: string;
  /** true when an unfinished promotion of this freight into this stage already existed (idempotent request). */
  existing: boolean;
}

export interface AddFreightResult {
  id: string;
  created: boolean;
}

export const pipelineStatusQuery = defineQuery<PipelineStatus>('status');
export const applySpecUpdate = defineUpdate<PipelineStatus, [Pipeline]>('applySpec');
export const addFreightUpdate = defineUpdate<AddFreightResult, [Freight]>('addFreight');
export const requestPromotionUpdate = defineUpdate<PromotionRequested, [RequestPromotion]>('requestPromotion');
/** Child → pipeline: the promotion passed its gates and asks for the stage lock. */
export const stageLockRequestedSignal =
  defineSignal<[{ id: string; runId: string; stage: string }]>('stageLockRequested');
/** What a promotion tells its pipeline when it ends. */
export interface PromotionFinished {
  id: string;
  runId: string;
  stage: string;
  freight: string;
  phase: PromotionPhase;
  commit?: string;
  finishedAt: string;
  error?: string;
  reason?: string;
}

/** Child → pipeline: the promotion finished (any terminal phase); releases the stage lock. */
export const promotionFinishedSignal = defineSignal<[PromotionFinished]>('promotionFinished');
