// The typed client: every operation Ferry offers, over one Temporal client. The HTTP API and, through it, the CLI
// are thin layers over these calls.
import {
  Client,
  Connection,
  WithStartWorkflowOperation,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { freightId, validateFreight } from '../pipeline/freight';
import type { Pipeline } from '../pipeline/schema';
import {
  abortUpdate,
  addFreightUpdate,
  applySpecUpdate,
  approveUpdate,
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
  type PipelineStatus,
  type PromotionRequested,
  type PromotionStatus,
} from '../workflows/messages';
import { FerryPhase, FerryPipeline } from '../workflows/search-attributes';
import { FerryError, type FerryErrorCode } from './errors';
import type { FerryApi, PipelineSummary, PromoteOptions } from './types';

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
      return new FerryError(REFUSAL_CODES[cause.type], cause.message);
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

const PROMOTION_ID = /^promotion\/[a-z0-9-]+\/[a-z0-9-]+\/[0-9a-f]+$/;

export class FerryClient implements FerryApi {
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
      staticDetails: `Repository ${spec.spec.repo.url} (${spec.spec.repo.branch}); artifacts ${spec.spec.artifacts.map((a) => a.image).join(', ')}`,
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
    const status = await this.getPipeline(pipeline);
    const errors = validateFreight(status.spec, artifacts);
    if (errors.length > 0) {
      throw new FerryError('InvalidArgument', `freight does not match the artifacts of pipeline "${pipeline}"`, {
        errors,
      });
    }
    try {
      return await this.pipelineHandle(pipeline).executeUpdate(addFreightUpdate, {
        args: [{ id: freightId(artifacts), artifacts }],
      });
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
      return await this.pipelineHandle(pipeline).executeUpdate(requestPromotionUpdate, {
        args: [{ stage, freight, requestedBy, ...(options.force ? { force: true } : {}) }],
      });
    } catch (err) {
      throw toFerryError(err, `pipeline "${pipeline}"`);
    }
  }

  private promotionHandle(id: string): WorkflowHandle {
    if (!PROMOTION_ID.test(id)) {
      throw new FerryError(
        'NotFound',
        `promotion "${id}" not found (ids look like promotion/<pipeline>/<stage>/<freight>)`,
      );
    }
    return this.temporal.workflow.getHandle(id);
  }

  async getPromotion(id: string): Promise<PromotionStatus> {
    try {
      return await this.promotionHandle(id).query(promotionStatusQuery);
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
      return await handle.executeUpdate(update, { args: [decision] });
    } catch (err) {
      const error = toFerryError(err, `promotion "${id}"`);
      // Temporal answers an update to a closed workflow as "not found"; the user needs to hear "already finished".
      if (error.code === 'NotFound') {
        const closed = await handle.describe().then(
          (d) => d.status.name !== 'RUNNING',
          () => false,
        );
        if (closed) {
          const phase = await handle.query(promotionStatusQuery).then(
            (s) => s.phase,
            () => 'closed',
          );
          throw new FerryError('Conflict', `promotion "${id}" has already finished (phase: ${phase})`);
        }
      }
      throw error;
    }
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
