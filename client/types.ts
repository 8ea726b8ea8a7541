// What the typed client offers; the HTTP API and the CLI are thin layers over exactly these calls.
import type { Pipeline } from '../pipeline/schema';
import type { GateRef } from './gate-callbacks';
import type {
  AddFreightResult,
  Decision,
  GateDecision,
  GateStatus,
  PipelineStatus,
  PromotionRequested,
  PromotionStatus,
  PullRequestMerged,
} from '../workflows/messages';

export interface PipelineSummary {
  name: string;
  stages: string[];
  /** Workflow status of the pipeline workflow (Running unless someone stopped it). */
  status: string;
}

export interface PromoteOptions {
  /** Start a new run even when the freight is already current in the stage or being promoted there. */
  force?: boolean;
}

export interface FerryApi {
  /** true when Temporal answers. */
  health(): Promise<boolean>;
  /** Applies (creates or updates) a validated pipeline; starts its pipeline workflow if needed. */
  applyPipeline(spec: Pipeline): Promise<PipelineStatus>;
  listPipelines(): Promise<PipelineSummary[]>;
  /** Throws FerryError NotFound for an unknown pipeline. */
  getPipeline(name: string): Promise<PipelineStatus>;
  /** Registers freight (idempotent: the same versions give the same id). Validates artifact names. */
  addFreight(pipeline: string, artifacts: Record<string, string>): Promise<AddFreightResult>;
  /** Starts (or returns the unfinished) promotion of freight into a stage. */
  promote(
    pipeline: string,
    stage: string,
    freight: string,
    requestedBy: string,
    options?: PromoteOptions,
  ): Promise<PromotionRequested>;
  /** Throws FerryError NotFound for an unknown promotion. */
  getPromotion(id: string): Promise<PromotionStatus>;
  /** Refusals: Forbidden (not an approver), Conflict (not awaiting approval / already approved), NotFound. */
  approve(id: string, decision: Decision): Promise<PromotionStatus>;
  reject(id: string, decision: Decision): Promise<PromotionStatus>;
  abort(id: string, decision: Decision): Promise<PromotionStatus>;
  /**
   * Tells every running workflow that waits on this pull request (FerryPullRequest search attribute) that it was
   * merged; returns the ids of the workflows signalled (none when nothing waits on it).
   */
  pullRequestMerged(merge: PullRequestMerged): Promise<{ signalled: string[] }>;
  /**
   * Delivers a callback gate's result to the run the gate's token names (the HTTP API checked the token). Returns
   * the gate after the decision. Refusals: Conflict (the gate is not waiting: already decided, not reached yet, or
   * the run has ended), NotFound (no such promotion run or gate).
   */
  decideGate(ref: GateRef, decision: Omit<GateDecision, 'gate'>): Promise<GateStatus>;
  /**
   * The promotion's current run and one of its callback gates that is waiting now: what a callback URL is made of.
   * Refusals: NotFound (no such promotion or gate), Conflict (an http gate, or a gate that is not waiting).
   */
  waitingGate(id: string, gate: string): Promise<GateRef>;
}
