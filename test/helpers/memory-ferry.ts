// An in-memory FerryApi: a test double of the typed client for the HTTP API and CLI tests (the real client against
// Temporal is covered by the end-to-end tests). Timestamps are fixed so that what the API and CLI print can be compared
// exactly.
import { FerryError } from '../../client/errors';
import type { GateRef } from '../../client/gate-callbacks';
import type { FerryApi, PipelineSummary, PromoteOptions } from '../../client/types';
import { freightId, validateFreight } from '../../pipeline/freight';
import type { Pipeline } from '../../pipeline/schema';
import {
  TERMINAL_PHASES,
  promotionWorkflowId,
  type AddFreightResult,
  type Decision,
  type GateDecision,
  type GateStatus,
  type PipelineStatus,
  type PromotionPhase,
  type PromotionRequested,
  type PromotionStatus,
  type PullRequestMerged,
} from '../../workflows/messages';
import { abortRefusal, decideGate, findGate, gateDecisionRefusal } from '../../workflows/promotion-core';

export interface MemoryFerryOptions {
  /**
   * Per stage, the phases a new promotion into it goes through: it starts at the first and moves one further each time
   * it is read (getPromotion), then stays at the last; a decision (approve, reject, abort) ends the
   * script. A promotion into a stage not named here starts AwaitingApproval when the stage has an approval gate, else
   * Pending, and changes only by a decision.
   */
  phases?: Record<string, PromotionPhase[]>;
  /** The error a scripted promotion carries once it reads Failed. */
  failure?: string;
}

class MemoryFerry implements FerryApi {
  healthy = true;
  applied: Pipeline[] = [];
  pipelines = new Map<string, PipelineStatus>();
  promotions = new Map<string, PromotionStatus>();
  decisions: Array<{ action: string; id: string; decision: Decision }> = [];
  promoteCalls: Array<{ pipeline: string; stage: string; freight: string; requestedBy: string; force?: boolean }> = [];
  /** Every pullRequestMerged call, in order. */
  pullRequestMerges: PullRequestMerged[] = [];
  /** Thrown by listPipelines, to see what the API does with an unexpected failure. */
  listFailure?: Error;
  /** Per promotion id, what is left of its stage's script (see MemoryFerryOptions.phases). */
  private readonly scripts = new Map<string, PromotionPhase[]>();
  /** Per promotion id, the run id of its current run (`run-1`, `run-2`, … in the order they were started). */
  readonly runIds = new Map<string, string>();
  private runs = 0;

  constructor(private readonly options: MemoryFerryOptions) {}

  async health(): Promise<boolean> {
    return this.healthy;
  }

  async applyPipeline(spec: Pipeline): Promise<PipelineStatus> {
    this.applied.push(spec);
    const previous = this.pipelines.get(spec.metadata.name);
    const status: PipelineStatus = {
      name: spec.metadata.name,
      spec,
      appliedAt: '2025-01-01T00:00:00.000Z',
      stages: spec.spec.stages.map((s) => ({ name: s.name, queue: [], active: [], history: [] })),
      freight: previous?.freight ?? [],
    };
    this.pipelines.set(status.name, status);
    return status;
  }

  async listPipelines(): Promise<PipelineSummary[]> {
    if (this.listFailure) throw this.listFailure;
    return [...this.pipelines.values()].map((p) => ({
      name: p.name,
      stages: p.stages.map((s) => s.name),
      status: 'Running',
    }));
  }

  async getPipeline(name: string): Promise<PipelineStatus> {
    const status = this.pipelines.get(name);
    if (!status) throw new FerryError('NotFound', `pipeline "${name}" not found`);
    return status;
  }

  async addFreight(pipeline: string, artifacts: Record<string, string>): Promise<AddFreightResult> {
    const status = await this.getPipeline(pipeline);
    // As the real client does: versions are checked against the pipeline's artifacts.
    const errors = validateFreight(status.spec, artifacts);
    if (errors.length > 0) {
      throw new FerryError('InvalidArgument', `freight does not match the artifacts of pipeline "${pipeline}"`, {
        errors,
      });
    }
    const id = freightId(artifacts);
    if (status.freight.some((f) => f.id === id)) return { id, created: false };
    status.freight.unshift({ id, artifacts, createdAt: '2025-01-01T00:00:01.000Z', verifiedIn: [] });
    return { id, created: true };
  }

  async promote(
    pipeline: string,
    stage: string,
    freight: string,
    requestedBy: string,
    options: PromoteOptions = {},
  ): Promise<PromotionRequested> {
    this.promoteCalls.push({ pipeline, stage, freight, requestedBy, ...(options.force ? { force: true } : {}) });
    const status = await this.getPipeline(pipeline);
    const stageSpec = status.spec.spec.stages.find((s) => s.name === stage);
    if (!stageSpec) throw new FerryError('NotFound', `pipeline "${pipeline}" has no stage "${stage}"`);
    const entry = status.freight.find((f) => f.id === freight);
    if (!entry) throw new FerryError('NotFound', `pipeline "${pipeline}" has no freight "${freight}"`);
    const id = promotionWorkflowId(pipeline, stage, freight);
    const existing = this.promotions.get(id);
    if (existing && !TERMINAL_PHASES.includes(existing.phase)) return { id, existing: true };
    const script = this.options.phases?.[stage];
    if (script) this.scripts.set(id, [...script]);
    else this.scripts.delete(id);
    this.promotions.set(id, {
      id,
      pipeline,
      stage,
      freight: { id: entry.id, artifacts: entry.artifacts },
      phase: script ? script[0] : stageSpec.approval ? 'AwaitingApproval' : 'Pending',
      steps: [],
      ...(stageSpec.approval
        ? { approval: { required: stageSpec.approval.required, approvers: stageSpec.approval.approvers } }
        : {}),
      approvals: [],
      requestedBy,
      startedAt: '2025-01-01T00:00:02.000Z',
      ...(stageSpec.gates?.length
        ? {
            gates: stageSpec.gates.map((g): GateStatus => ({
              name: g.name,
              type: g.http ? 'http' : 'callback',
              phase: 'Pending',
            })),
          }
        : {}),
    });
    this.runIds.set(id, `run-${++this.runs}`);
    status.stages
      .find((s) => s.name === stage)
      ?.active.push({ id, freight, requestedBy, requestedAt: '2025-01-01T00:00:02.000Z' });
    return { id, existing: false };
  }

  async getPromotion(id: string): Promise<PromotionStatus> {
    const status = this.promotion(id);
    const script = this.scripts.get(id);
    if (script) {
      status.phase = script.length > 1 ? (script.shift() as PromotionPhase) : script[0];
      if (status.phase === 'Failed' && this.options.failure) status.error = this.options.failure;
    }
    return status;
  }

  async approve(id: string, decision: Decision): Promise<PromotionStatus> {
    const status = this.promotion(id);
    if (status.phase !== 'AwaitingApproval') {
      throw new FerryError(
        'Conflict',
        `promotion ${id} is ${status.phase}; only a promotion awaiting approval takes approvals`,
      );
    }
    if (!status.approval?.approvers.includes(decision.user)) {
      const approvers = status.approval?.approvers.join(', ') ?? 'none';
      throw new FerryError(
        'Forbidden',
        `${decision.user} is not an approver of stage "${status.stage}" (approvers: ${approvers})`,
      );
    }
    this.decided('approve', id, decision);
    status.approvals.push({
      user: decision.user,
      at: '2025-01-01T00:00:03.000Z',
      ...(decision.comment ? { comment: decision.comment } : {}),
    });
    if (status.approvals.length >= status.approval.required) status.phase = 'Queued';
    return status;
  }

  async reject(id: string, decision: Decision): Promise<PromotionStatus> {
    const status = this.promotion(id);
    if (status.phase !== 'AwaitingApproval') throw new FerryError('Conflict', `promotion ${id} is ${status.phase}`);
    this.decided('reject', id, decision);
    status.phase = 'Rejected';
    status.rejectedBy = { user: decision.user, at: '2025-01-01T00:00:03.000Z', comment: decision.comment };
    return status;
  }

  async abort(id: string, decision: Decision): Promise<PromotionStatus> {
    const status = this.promotion(id);
    if (TERMINAL_PHASES.includes(status.phase))
      throw new FerryError('Conflict', `promotion ${id} has already finished (${status.phase})`);
    // Who may abort is the workflow's rule (the requester, the stage approvers, an admin): the same here.
    const refused = abortRefusal(status, decision);
    if (refused?.type === 'Forbidden') throw new FerryError('Forbidden', refused.message);
    this.decided('abort', id, decision);
    status.phase = 'Aborted';
    status.abortedBy = { user: decision.user, at: '2025-01-01T00:00:03.000Z', comment: decision.comment };
    return status;
  }

  async pullRequestMerged(merge: PullRequestMerged): Promise<{ signalled: string[] }> {
    this.pullRequestMerges.push(merge);
    return { signalled: [] };
  }

  /** Test control: the promotion reached its gate `gate`, which now waits (as the workflow does after health). */
  startGate(id: string, gate: string): void {
    const status = this.promotion(id);
    const found = findGate(status, gate);
    if (!found) throw new Error(`promotion ${id} has no gate ${gate}`);
    status.phase = 'AwaitingGates';
    found.phase = 'Waiting';
    found.startedAt = '2025-01-01T00:00:04.000Z';
  }

  async decideGate(ref: GateRef, decision: Omit<GateDecision, 'gate'>): Promise<GateStatus> {
    const status = this.promotion(ref.promotionId);
    if (this.runIds.get(ref.promotionId) !== ref.runId) {
      throw new FerryError('Conflict', `gate "${ref.gate}" of promotion "${ref.promotionId}": that run has ended`);
    }
    // The workflow's own rule decides whether the gate takes it.
    const refused = gateDecisionRefusal(status, { gate: ref.gate, ...decision });
    if (refused) throw new FerryError(refused.type === 'NotFound' ? 'NotFound' : 'Conflict', refused.message);
    this.decisions.push({ action: 'decideGate', id: ref.promotionId, decision: { user: decision.by ?? 'callback' } });
    const gate = decideGate(status, { gate: ref.gate, ...decision }, '2025-01-01T00:00:05.000Z');
    if (gate.phase === 'Failed') status.phase = 'Failed';
    return gate;
  }

  async waitingGate(id: string, gate: string): Promise<GateRef> {
    const status = this.promotion(id);
    const found = findGate(status, gate);
    if (!found) throw new FerryError('NotFound', `promotion "${id}" has no gate "${gate}"`);
    if (found.type !== 'callback') throw new FerryError('Conflict', `gate "${gate}" is an ${found.type} gate`);
    if (found.phase !== 'Waiting') throw new FerryError('Conflict', `gate "${gate}" is ${found.phase}`);
    return { promotionId: id, runId: this.runIds.get(id) ?? '', gate };
  }

  /** The promotion as it stands, without reading it (which would move a scripted one on). */
  private promotion(id: string): PromotionStatus {
    const status = this.promotions.get(id);
    if (!status) throw new FerryError('NotFound', `promotion "${id}" not found`);
    return status;
  }

  private decided(action: string, id: string, decision: Decision): void {
    this.decisions.push({ action, id, decision });
    this.scripts.delete(id);
  }
}

export type { MemoryFerry };

export function createMemoryFerry(options: MemoryFerryOptions = {}): MemoryFerry {
  return new MemoryFerry(options);
}

/**
 * A FerryApi that forwards every call to whatever `current()` returns at the time: a server started once can then
 * run each test against a fresh fake.
 */
export function delegateTo(current: () => MemoryFerry): FerryApi {
  const names: Array<keyof FerryApi> = [
    'health',
    'applyPipeline',
    'listPipelines',
    'getPipeline',
    'addFreight',
    'promote',
    'getPromotion',
    'approve',
    'reject',
    'abort',
    'pullRequestMerged',
    'decideGate',
    'waitingGate',
  ];
  return Object.fromEntries(
    names.map((name) => [
      name,
      (...args: unknown[]) => (current()[name] as (...a: unknown[]) => unknown).apply(current(), args),
    ]),
  ) as unknown as FerryApi;
}
