// The typed client: every operation Ferry offers, over one Temporal client. The HTTP API and, through it, the CLI
// are thin layers over these calls.
import {
  Client,
  Connection,
  WithStartWorkflowOperation,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateStage,
  type WorkflowHandle,
} from '@temporalio/client';
import {
  ApplicationFailure,
  defaultPayloadConverter,
  TemporalFailure,
  type UpdateDefinition,
} from '@temporalio/common';
import { freightId } from '../pipeline/freight';
import { PROMOTION_ID } from '../pipeline/ids';
import { sameRepository } from '../pipeline/repository-url';
import { normalizeDir, stageLayout } from '../pipeline/layout';
import type { Pipeline, Stage } from '../pipeline/schema';
import {
  abortUpdate,
  addFreightUpdate,
  applySpecUpdate,
  approveUpdate,
  decideGateUpdate,
  pipelineStatusQuery,
  pipelineWorkflowId,
  promotionStatusQuery,
  rejectUpdate,
  requestPromotionUpdate,
  RefusalType,
  TASK_QUEUE,
  TERMINAL_PHASES,
  type AddFreightResult,
  type Decision,
  type GateDecision,
  type GateStatus,
  type PipelineStatus,
  type PromotionRequested,
  type PromotionStatus,
  pullRequestKey,
  pullRequestMergedSignal,
  type PullRequestMerged,
} from '../workflows/messages';
import { decisionTaken, findGate, gateOutcome } from '../workflows/promotion-core';
import { FerryPhase, FerryPipeline, FerryPullRequest } from '../workflows/search-attributes';
import { FerryError, type FerryErrorCode, type FieldError } from './errors';
import type { GateRef } from './gate-callbacks';
import { checkRenderTools } from './render-tools';
import type { FerryApi, PipelineSummary, PromoteOptions } from './types';
import { createUpdateAdmission } from './update-admission';

export interface FerryClientOptions {
  /** Temporal frontend, default `TEMPORAL_ADDRESS` or 127.0.0.1:7233. */
  address?: string;
  namespace?: string;
  taskQueue?: string;
}

const REFUSAL_CODES: Record<string, FerryErrorCode> = {
  [RefusalType.Forbidden]: 'Forbidden',
  [RefusalType.Conflict]: 'Conflict',
  [RefusalType.NotFound]: 'NotFound',
  [RefusalType.InvalidArgument]: 'InvalidArgument',
};

/** gRPC's UNAVAILABLE (14) and DEADLINE_EXCEEDED (4), however deep in the causes, or a refused connection. */
function isUnreachable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === 14 || code === 4) return true;
    if (/UNAVAILABLE|DEADLINE_EXCEEDED|ECONNREFUSED|Failed to connect/i.test(e.message)) return true;
  }
  return false;
}

/** Turns a Temporal error into a FerryError that says what the user can act on. */
export function toFerryError(err: unknown, what: string): FerryError {
  if (err instanceof FerryError) return err;
  if (err instanceof WorkflowNotFoundError) return new FerryError('NotFound', `${what} not found`);
  if (err instanceof WorkflowUpdateFailedError) {
    const cause = err.cause;
    if (cause instanceof ApplicationFailure && cause.type && REFUSAL_CODES[cause.type]) {
      return new FerryError(REFUSAL_CODES[cause.type], cause.message, fieldErrorsOf(cause));
    }
    return new FerryError('Internal', `${what}: ${cause instanceof Error ? cause.message : err.message}`);
  }
  const message = err instanceof Error ? err.message : String(err);
  if (/workflow execution already completed/i.test(message)) {
    return new FerryError('Conflict', `${what} has already finished`);
  }
  if (/not found/i.test(message) && !(err instanceof TemporalFailure))
    return new FerryError('NotFound', `${what} not found`);
  if (isUnreachable(err)) {
    return new FerryError('Unavailable', `Temporal is not reachable: ${message}`);
  }
  return new FerryError('Internal', `${what}: ${message}`);
}

const HEALTH_DEADLINE_MS = 1000;

/** The per-field errors a workflow validator put in its refusal's details (e.g. every bad artifact of freight). */
function fieldErrorsOf(failure: ApplicationFailure): { errors: FieldError[] } | undefined {
  const first: unknown = failure.details?.[0];
  if (typeof first !== 'object' || first === null || !Array.isArray((first as { errors?: unknown }).errors))
    return undefined;
  return { errors: (first as { errors: FieldError[] }).errors };
}

export { sameRepository } from '../pipeline/repository-url';

/**
 * Sends an update and waits for its result, asking for that result from the run that accepted the update.
 *
 * The SDK's `handle.executeUpdate` does not: when the server answers before the update has completed (it does when
 * its update registry was reset, which happens under load), the SDK polls for the outcome on the workflow's *current*
 * run. A pipeline that continued as new in between has never seen that update, and the call failed with `update
 * "…" not found` although the update had been applied (the cause of the 60-requests test failing about one run in
 * twenty on a loaded machine). `startUpdate` returns the accepting run, and its `result()` polls that run.
 */
async function runUpdate<Ret, Args extends [unknown, ...unknown[]]>(
  handle: WorkflowHandle,
  update: UpdateDefinition<Ret, Args>,
  args: Args,
): Promise<Ret> {
  const accepted = await handle.startUpdate(update, { args, waitForStage: WorkflowUpdateStage.ACCEPTED });
  return accepted.result();
}

/**
 * Why `stage` of `spec` would write what a stage of pipeline `other` (same repository) owns, or undefined. A
 * branch stage owns its branch; a directory stage owns its directory on the other pipeline's source branch.
 */
function ownershipClash(spec: Pipeline, stage: Stage, other: Pipeline): string | undefined {
  const url = spec.spec.repo.url;
  const name = other.metadata.name;
  if (stageLayout(stage.render) === 'branch') {
    if (other.spec.repo.branch === stage.render.to)
      return `branch "${stage.render.to}" of ${url} holds the sources of pipeline "${name}"; give this stage a branch of its own`;
    const owner = other.spec.stages.find((s) => stageLayout(s.render) === 'branch' && s.render.to === stage.render.to);
    if (owner)
      return `branch "${stage.render.to}" of ${url} is already written by pipeline "${name}" (stage "${owner.name}"); give this stage a branch of its own`;
    return undefined;
  }
  const trunk = spec.spec.repo.branch;
  const dir = normalizeDir(stage.render.to);
  const branchOwner = other.spec.stages.find((s) => stageLayout(s.render) === 'branch' && s.render.to === trunk);
  if (branchOwner)
    return `branch "${trunk}" of ${url} is the rendered branch of pipeline "${name}" (stage "${branchOwner.name}"): a directory stage cannot live on it`;
  if (other.spec.repo.branch !== trunk) return undefined;
  const owner = other.spec.stages.find((s) => {
    if (stageLayout(s.render) !== 'directory') return false;
    const theirs = normalizeDir(s.render.to);
    return theirs === dir || theirs.startsWith(`${dir}/`) || dir.startsWith(`${theirs}/`);
  });
  if (owner)
    return `directory "${dir}" on branch "${trunk}" of ${url} overlaps "${owner.render.to}", the directory of pipeline "${name}" (stage "${owner.name}"); give this stage a directory of its own`;
  return undefined;
}

type PendingActivity = NonNullable<Awaited<ReturnType<WorkflowHandle['describe']>>['raw']['pendingActivities']>[number];

/**
 * A waiting http gate's progress, from its activity's last heartbeat: answers so far, how many passed in a row, the
 * last one. The workflow records them only when the gate is decided; this shows them while it polls.
 */
function showGateProgress(status: PromotionStatus, pending: PendingActivity[]): void {
  const gate = status.gates?.find((g) => g.type === 'http' && g.phase === 'Waiting');
  const poll = pending.find((a) => a.activityType?.name === 'pollHttpGate');
  const payload = poll?.heartbeatDetails?.payloads?.[0];
  if (!gate || !payload) return;
  try {
    const progress = defaultPayloadConverter.fromPayload<{ attempts?: unknown; consecutive?: unknown; last?: unknown }>(
      payload as Parameters<typeof defaultPayloadConverter.fromPayload>[0],
    );
    if (typeof progress?.attempts === 'number') gate.attempts = progress.attempts;
    if (typeof progress?.consecutive === 'number') gate.consecutive = progress.consecutive;
    if (typeof progress?.last === 'string') gate.message = `last answer: ${progress.last}`;
  } catch {
    // Progress is a nicety; a heartbeat that cannot be read leaves the status as the workflow reported it.
  }
}

export class FerryClient implements FerryApi {
  /** Queues this process's updates per workflow and retries those Temporal pushes back (update-admission.ts). */
  private readonly updates = createUpdateAdmission();

  private constructor(
    readonly temporal: Client,
    private readonly connection: Connection | undefined,
    private readonly taskQueue: string,
  ) {}

  /**
   * A client whose connection is made on first use and remade whenever Temporal comes back: it never fails because
   * Temporal is down now, so the API can start before the Temporal server and outlive its restarts.
   */
  static async connect(options: FerryClientOptions = {}): Promise<FerryClient> {
    const address = options.address ?? process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
    const connection = Connection.lazy({
      address,
      // gRPC backs off up to 2 minutes between reconnect attempts by default; a server that is back should be used
      // within seconds.
      channelArgs: { 'grpc.initial_reconnect_backoff_ms': 500, 'grpc.max_reconnect_backoff_ms': 2000 },
    });
    const client = new Client({
      connection,
      namespace: options.namespace ?? process.env.TEMPORAL_NAMESPACE ?? 'default',
    });
    return new FerryClient(client, connection, options.taskQueue ?? TASK_QUEUE);
  }

  /** Wraps an existing Temporal client (tests); closing it is the caller's business. */
  static fromClient(client: Client, taskQueue: string = TASK_QUEUE): FerryClient {
    return new FerryClient(client, undefined, taskQueue);
  }

  async close(): Promise<void> {
    await this.connection?.close();
  }

  /** true when Temporal answers within HEALTH_DEADLINE_MS (a health probe must not wait out gRPC's retries). */
  async health(): Promise<boolean> {
    try {
      await this.temporal.connection.withDeadline(Date.now() + HEALTH_DEADLINE_MS, () =>
        this.temporal.workflowService.getSystemInfo({}),
      );
      return true;
    } catch {
      return false;
    }
  }

  async applyPipeline(spec: Pipeline): Promise<PipelineStatus> {
    const name = spec.metadata.name;
    await this.refuseBranchesOwnedElsewhere(spec);
    const missingTools = await checkRenderTools(this.temporal, this.taskQueue, spec);
    if (missingTools.length > 0)
      throw new FerryError('InvalidArgument', `pipeline "${name}" needs render engines the workers do not have`, {
        errors: missingTools,
      });
    const startWorkflowOperation = new WithStartWorkflowOperation('pipelineWorkflow', {
      workflowId: pipelineWorkflowId(name),
      taskQueue: this.taskQueue,
      args: [{ spec }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      typedSearchAttributes: [
        { key: FerryPipeline, value: name },
        { key: FerryPhase, value: 'Active' },
      ],
      staticSummary: `Pipeline ${name}: ${spec.spec.stages.map((s) => s.name).join(' → ')}`,
      staticDetails: `Repository ${spec.spec.repo.url} (${spec.spec.repo.branch}); artifacts ${spec.spec.artifacts.map((a) => a.image ?? `${a.git?.url} ${a.git?.branch}`).join(', ')}`,
    });
    try {
      return await this.temporal.workflow.executeUpdateWithStart(applySpecUpdate, {
        args: [spec],
        startWorkflowOperation,
      });
    } catch (err) {
      throw toFerryError(err, `pipeline "${name}"`);
    }
  }

  /**
   * Two pipelines must not write the same branch of the same repository: each would overwrite the other's
   * freight. Compares the spec against every other running pipeline's applied spec.
   */
  private async refuseBranchesOwnedElsewhere(spec: Pipeline): Promise<void> {
    const others: PipelineStatus[] = [];
    try {
      const names: string[] = [];
      for await (const wf of this.temporal.workflow.list({
        query: `WorkflowType = "pipelineWorkflow" AND ExecutionStatus = "Running"`,
      })) {
        const other = wf.workflowId.replace(/^pipeline\//, '');
        if (other !== spec.metadata.name) names.push(other);
      }
      const specs = await Promise.all(names.map((other) => this.getPipeline(other).catch(() => undefined)));
      for (const status of specs) if (status) others.push(status);
    } catch (err) {
      throw toFerryError(err, 'pipelines');
    }
    const errors: FieldError[] = [];
    const url = spec.spec.repo.url;
    spec.spec.stages.forEach((stage, i) => {
      const path = `spec.stages[${i}].render.to`;
      for (const other of others) {
        if (!sameRepository(other.spec.spec.repo.url, url)) continue;
        const problem = ownershipClash(spec, stage, other.spec);
        if (problem) {
          errors.push({ path, message: problem });
          break;
        }
      }
    });
    if (errors.length > 0) {
      throw new FerryError(
        'InvalidArgument',
        `pipeline "${spec.metadata.name}" would write branches another pipeline owns`,
        { errors },
      );
    }
  }

  async listPipelines(): Promise<PipelineSummary[]> {
    const summaries: PipelineSummary[] = [];
    try {
      for await (const wf of this.temporal.workflow.list({
        query: `WorkflowType = "pipelineWorkflow" AND ExecutionStatus = "Running"`,
      })) {
        const name = wf.workflowId.replace(/^pipeline\//, '');
        const status = await this.getPipeline(name).catch(() => undefined);
        summaries.push({ name, stages: status?.spec.spec.stages.map((s) => s.name) ?? [], status: wf.status.name });
      }
    } catch (err) {
      throw toFerryError(err, 'pipelines');
    }
    return summaries.sort((a, b) => a.name.localeCompare(b.name));
  }

  private pipelineHandle(name: string): WorkflowHandle {
    return this.temporal.workflow.getHandle(pipelineWorkflowId(name));
  }

  async getPipeline(name: string): Promise<PipelineStatus> {
    try {
      return await this.pipelineHandle(name).query(pipelineStatusQuery);
    } catch (err) {
      throw toFerryError(err, `pipeline "${name}"`);
    }
  }

  async addFreight(pipeline: string, artifacts: Record<string, string>): Promise<AddFreightResult> {
    // One round trip: the pipeline workflow checks the artifacts in its update validator (every bad one by path).
    const isRecord = typeof artifacts === 'object' && artifacts !== null && !Array.isArray(artifacts);
    try {
      return await this.updates.run(pipelineWorkflowId(pipeline), `pipeline "${pipeline}"`, () =>
        runUpdate(this.pipelineHandle(pipeline), addFreightUpdate, [
          { id: isRecord ? freightId(artifacts) : '', artifacts },
        ]),
      );
    } catch (err) {
      throw toFerryError(err, `pipeline "${pipeline}"`);
    }
  }

  async promote(
    pipeline: string,
    stage: string,
    freight: string,
    requestedBy: string,
    options: PromoteOptions = {},
  ): Promise<PromotionRequested> {
    try {
      return await this.updates.run(pipelineWorkflowId(pipeline), `pipeline "${pipeline}"`, () =>
        runUpdate(this.pipelineHandle(pipeline), requestPromotionUpdate, [
          { stage, freight, requestedBy, ...(options.force ? { force: true } : {}) },
        ]),
      );
    } catch (err) {
      throw toFerryError(err, `pipeline "${pipeline}"`);
    }
  }

  async pullRequestMerged(merge: PullRequestMerged): Promise<{ signalled: string[] }> {
    const key = pullRequestKey(merge.provider, merge.repository, merge.number);
    const signalled: string[] = [];
    try {
      for await (const wf of this.temporal.workflow.list({
        query: `${FerryPullRequest.name} = ${JSON.stringify(key)} AND ExecutionStatus = "Running"`,
      })) {
        try {
          await this.temporal.workflow.getHandle(wf.workflowId, wf.runId).signal(pullRequestMergedSignal, merge);
          signalled.push(wf.workflowId);
        } catch (err) {
          // It ended between the list and the signal: nothing waits there any more.
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
      }
    } catch (err) {
      throw toFerryError(err, `workflows waiting on pull request ${key}`);
    }
    return { signalled };
  }

  private promotionHandle(id: string, runId?: string): WorkflowHandle {
    if (!PROMOTION_ID.test(id)) {
      throw new FerryError(
        'NotFound',
        `promotion "${id}" not found (ids look like promotion/<pipeline>/<stage>/<freight>)`,
      );
    }
    return this.temporal.workflow.getHandle(id, runId);
  }

  /**
   * The promotion's status. While a step's activity retries, the running step also shows the attempt and the
   * last attempt's error (from the workflow's pending activity, read in parallel with the query).
   */
  async getPromotion(id: string): Promise<PromotionStatus> {
    const handle = this.promotionHandle(id);
    try {
      const [status, pending] = await Promise.all([
        handle.query(promotionStatusQuery),
        handle.describe().then(
          (d) => d.raw.pendingActivities ?? [],
          () => [],
        ),
      ]);
      showGateProgress(status, pending);
      const retrying = pending.find((a) => (a.attempt ?? 1) > 1);
      const running = status.steps.find((s) => s.status === 'Running');
      if (retrying && running) {
        running.attempt = retrying.attempt ?? undefined;
        const lastError = retrying.lastFailure?.cause?.message || retrying.lastFailure?.message;
        if (lastError) running.lastError = lastError;
      }
      return status;
    } catch (err) {
      throw toFerryError(err, `promotion "${id}"`);
    }
  }

  async approve(id: string, decision: Decision): Promise<PromotionStatus> {
    return this.decide(id, approveUpdate, decision);
  }

  async reject(id: string, decision: Decision): Promise<PromotionStatus> {
    return this.decide(id, rejectUpdate, decision);
  }

  async abort(id: string, decision: Decision): Promise<PromotionStatus> {
    return this.decide(id, abortUpdate, decision);
  }

  private async decide(
    id: string,
    update: typeof approveUpdate | typeof rejectUpdate | typeof abortUpdate,
    decision: Decision,
  ): Promise<PromotionStatus> {
    const handle = this.promotionHandle(id);
    try {
      return await this.updates.run(id, `promotion "${id}"`, () => runUpdate(handle, update, [decision]));
    } catch (err) {
      const error = toFerryError(err, `promotion "${id}"`);
      // Temporal answers an update to a closed workflow as "not found" or "already completed"; the user needs to
      // hear which decision ended it.
      if (error.code === 'NotFound' || (error.code === 'Conflict' && !(err instanceof WorkflowUpdateFailedError))) {
        const closed = await handle.describe().then(
          (d) => d.status.name !== 'RUNNING',
          () => false,
        );
        if (closed) {
          const taken = await handle.query(promotionStatusQuery).then(
            (s) => decisionTaken(s) ?? `it has already finished (phase: ${s.phase})`,
            () => 'it has already finished',
          );
          const done = { approve: 'approved', reject: 'rejected', abort: 'aborted' }[update.name] ?? update.name;
          throw new FerryError('Conflict', `promotion "${id}" cannot be ${done}: ${taken}`);
        }
      }
      throw error;
    }
  }

  async decideGate(ref: GateRef, decision: Omit<GateDecision, 'gate'>): Promise<GateStatus> {
    const what = `gate "${ref.gate}" of promotion "${ref.promotionId}"`;
    // The run the token was issued for, never a later run of the same promotion id.
    const handle = this.promotionHandle(ref.promotionId, ref.runId);
    try {
      return await this.updates.run(ref.promotionId, what, () =>
        runUpdate(handle, decideGateUpdate, [{ gate: ref.gate, ...decision }]),
      );
    } catch (err) {
      const error = toFerryError(err, what);
      if (error.code === 'NotFound' || (error.code === 'Conflict' && !(err instanceof WorkflowUpdateFailedError))) {
        // Temporal answers an update to a closed run as "not found" or "already completed": the gate is over.
        const closed = await handle.describe().then(
          (d) => d.status.name !== 'RUNNING',
          () => false,
        );
        if (closed) {
          const gate = await handle.query(promotionStatusQuery).then(
            (s) => findGate(s, ref.gate),
            () => undefined,
          );
          const outcome =
            gate && !['Pending', 'Waiting', 'Skipped'].includes(gate.phase)
              ? `it already ${gateOutcome(gate, true)}`
              : 'that promotion run has ended';
          throw new FerryError('Conflict', `${what} cannot be decided: ${outcome}`);
        }
      }
      throw error;
    }
  }

  async waitingGate(id: string, gate: string): Promise<GateRef> {
    const handle = this.promotionHandle(id);
    let runId: string;
    let status: PromotionStatus;
    try {
      runId = (await handle.describe()).runId;
      // The status of that very run, so the URL is never made for one run from another's state.
      status = await this.promotionHandle(id, runId).query(promotionStatusQuery);
    } catch (err) {
      throw toFerryError(err, `promotion "${id}"`);
    }
    const found = findGate(status, gate);
    if (!found) {
      const names = (status.gates ?? []).map((g) => g.name);
      throw new FerryError(
        'NotFound',
        `promotion "${id}" has no gate "${gate}"${names.length > 0 ? ` (gates: ${names.join(', ')})` : ' (its stage has no gates)'}`,
      );
    }
    if (found.type !== 'callback') {
      throw new FerryError(
        'Conflict',
        `gate "${gate}" of promotion "${id}" is an ${found.type} gate: it has no callback URL`,
      );
    }
    if (found.phase !== 'Waiting') {
      const state =
        found.phase === 'Pending'
          ? `it is not waiting yet (promotion phase: ${status.phase})`
          : `it ${gateOutcome(found, true)}`;
      throw new FerryError('Conflict', `gate "${gate}" of promotion "${id}" takes no callback: ${state}`);
    }
    return { promotionId: id, runId, gate };
  }

  async waitForPromotion(id: string, options: { timeoutMs?: number; pollMs?: number } = {}): Promise<PromotionStatus> {
    const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000);
    for (;;) {
      const status = await this.getPromotion(id);
      if (TERMINAL_PHASES.includes(status.phase) || Date.now() >= deadline) return status;
      await new Promise((r) => setTimeout(r, options.pollMs ?? 250));
    }
  }
}
