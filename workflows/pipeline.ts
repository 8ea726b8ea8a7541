// Pipeline workflow: one long-lived entity per pipeline. It holds the applied spec and the freight catalog, starts
// promotions as child workflows, hands out each stage's lock to one promotion at a time (the rest wait in order),
// and auto-promotes freight into `promotion: auto` stages. Continues as new when the history grows.
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  ParentClosePolicy,
  patched,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Stage } from '../pipeline/schema';
import {
  addFreightUpdate,
  applySpecUpdate,
  pipelineStatusQuery,
  promotionFinishedSignal,
  promotionWorkflowId,
  RefusalType,
  refusal,
  requestPromotionUpdate,
  stageGrantedSignal,
  stageLockRequestedSignal,
  type Freight,
  type FreightEntry,
  type PipelineStatus,
  type PipelineWorkflowInput,
  type PromotionRef,
  type PromotionRequested,
  type RequestPromotion,
  type StageState,
} from './messages';
import { promotionWorkflow } from './promotion';
import { FerryFreight, FerryPhase, FerryPipeline, FerryStage } from './search-attributes';

/** Bounds that keep the workflow state (and every query answer) small. */
export const MAX_FREIGHT = 100;
export const MAX_STAGE_HISTORY = 20;
const AUTO_PROMOTER = 'ferry/auto-promotion';

function refuse(type: RefusalType, message: string): never {
  throw refusal(type, message);
}

function newStageState(name: string): StageState {
  return { name, queue: [], active: [], history: [] };
}

/** A stage takes freight that succeeded in all of the stages it comes after, or any freight when it has none. */
export function isFreightAvailable(stage: Stage, freight: FreightEntry): boolean {
  return stage.after.every((upstream) => freight.verifiedIn.includes(upstream));
}

function isCarriedState(value: unknown): value is PipelineStatus {
  return typeof value === 'object' && value !== null && Array.isArray((value as PipelineStatus).stages);
}

export async function pipelineWorkflow(input: PipelineWorkflowInput): Promise<void> {
  const now = (): string => new Date().toISOString();
  const state: PipelineStatus = isCarriedState(input.carried)
    ? { ...input.carried, spec: input.spec }
    : {
        name: input.spec.metadata.name,
        spec: input.spec,
        appliedAt: now(),
        stages: input.spec.spec.stages.map((s) => newStageState(s.name)),
        freight: [],
      };
  const name = state.name;

  /** Stage-lock grants and auto-promotions are decided in handlers and carried out by the main loop. */
  const pendingGrants: string[] = [];
  const pendingAutoPromotions: Array<{ stage: string; freight: string }> = [];
  /** Promotions being started right now, so a concurrent identical request joins instead of starting twice. */
  const starting = new Map<string, Promise<PromotionRequested>>();

  const stageSpec = (stage: string): Stage | undefined => state.spec.spec.stages.find((s) => s.name === stage);
  const stageState = (stage: string): StageState => {
    let found = state.stages.find((s) => s.name === stage);
    if (!found) {
      found = newStageState(stage);
      state.stages.push(found);
    }
    return found;
  };
  const findFreight = (id: string): FreightEntry | undefined => state.freight.find((f) => f.id === id);

  const showDetails = (): void => {
    const lines = state.stages.map((s) => {
      const current = s.current ? `\`${s.current.freight}\`` : '—';
      const running = s.running ? `, running \`${s.running.freight}\`` : '';
      const queued = s.queue.length ? `, ${s.queue.length} queued` : '';
      return `- **${s.name}**: ${current}${running}${queued}`;
    });
    setCurrentDetails([`Pipeline **${name}** — ${state.freight.length} freight`, '', ...lines].join('\n'));
  };

  const queueAutoPromotions = (freight: FreightEntry): void => {
    for (const stage of state.spec.spec.stages) {
      if (stage.promotion !== 'auto' || !isFreightAvailable(stage, freight)) continue;
      if (stage.after.length === 0 && freight.verifiedIn.length > 0) continue; // only when the freight is new
      if (freight.verifiedIn.includes(stage.name)) continue;
      pendingAutoPromotions.push({ stage: stage.name, freight: freight.id });
    }
  };

  const validatePromotionRequest = (request: RequestPromotion): void => {
    const stage = stageSpec(request.stage);
    if (!stage) refuse(RefusalType.NotFound, `pipeline "${name}" has no stage "${request.stage}"`);
    const freight = findFreight(request.freight);
    if (!freight) refuse(RefusalType.NotFound, `pipeline "${name}" has no freight "${request.freight}"`);
    if (!isFreightAvailable(stage, freight)) {
      const missing = stage.after.filter((s) => !freight.verifiedIn.includes(s));
      refuse(
        RefusalType.Conflict,
        `freight "${freight.id}" is not available to stage "${stage.name}": it has not succeeded in ${missing.join(', ')}`,
      );
    }
  };

  /** Is this signal about the run we know (or about a promotion we know no run of)? */
  const sameRun = (ref: PromotionRef | undefined, id: string, runId: string): boolean =>
    ref !== undefined && ref.id === id && (ref.runId === undefined || ref.runId === runId);

  const startPromotion = async (request: RequestPromotion): Promise<PromotionRequested> => {
    const id = promotionWorkflowId(name, request.stage, request.freight);
    const stage = stageState(request.stage);
    const inFlight = starting.get(id);
    if (inFlight) return { ...(await inFlight), existing: true };

    const spec = stageSpec(request.stage);
    const freight = findFreight(request.freight);
    if (!spec || !freight)
      refuse(RefusalType.NotFound, `stage "${request.stage}" or freight "${request.freight}" vanished`);
    const versions = Object.entries(freight.artifacts)
      .map(([artifact, version]) => `${artifact}:${version}`)
      .join(', ');
    const track = (runId: string | undefined): void => {
      // A run we knew under this id has finished (its signal may still be on the way): the new run replaces it.
      stage.active = stage.active.filter((p) => p.id !== id);
      stage.active.push({
        id,
        ...(runId ? { runId } : {}),
        freight: freight.id,
        requestedBy: request.requestedBy,
        requestedAt: now(),
      });
      showDetails();
    };

    // Always ask Temporal: the workflow id is the promotion's identity, so a running promotion is joined
    // (AlreadyStarted) and a finished one is promoted again as a new run, however stale our own view is.
    const start = (async (): Promise<PromotionRequested> => {
      try {
        const child = await startChild(promotionWorkflow, {
          workflowId: id,
          args: [
            {
              pipeline: name,
              stage: spec,
              repo: state.spec.spec.repo,
              artifacts: state.spec.spec.artifacts,
              freight: { id: freight.id, artifacts: freight.artifacts },
              requestedBy: request.requestedBy,
              pipelineWorkflowId: workflowInfo().workflowId,
            },
          ],
          // The pipeline continues as new while promotions run; they report back by signal, not by result.
          parentClosePolicy: ParentClosePolicy.ABANDON,
          typedSearchAttributes: [
            { key: FerryPipeline, value: name },
            { key: FerryStage, value: spec.name },
            { key: FerryFreight, value: freight.id },
            { key: FerryPhase, value: 'Pending' },
          ],
          staticSummary: `Promote ${versions} (freight ${freight.id}) into ${name}/${spec.name}`,
          staticDetails: `Requested by ${request.requestedBy}. Stage renders ${spec.render.from} into branch ${spec.render.to}${spec.argocd ? ` and syncs Argo CD app ${spec.argocd.app}` : ''}.`,
        });
        track(child.firstExecutionRunId);
        return { id, existing: false };
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          if (!stage.active.some((p) => p.id === id)) track(undefined); // started by a run whose state we lost
          return { id, existing: true };
        }
        throw err;
      } finally {
        starting.delete(id);
      }
    })();
    starting.set(id, start);
    return start;
  };

  /** Starts the auto-promotions decided so far (from the main loop, or from the freight update itself). */
  const startPendingAutoPromotions = async (): Promise<void> => {
    while (pendingAutoPromotions.length > 0) {
      const next = pendingAutoPromotions.shift() as { stage: string; freight: string };
      const request = { ...next, requestedBy: AUTO_PROMOTER };
      try {
        validatePromotionRequest(request);
        await startPromotion(request);
      } catch (err) {
        log.warn('auto-promotion not started', { ...next, error: String(err) });
      }
    }
  };

  // --- handlers

  setHandler(pipelineStatusQuery, () => state);

  setHandler(
    applySpecUpdate,
    (spec) => {
      state.spec = spec;
      state.appliedAt = now();
      for (const s of spec.spec.stages) stageState(s.name);
      // Stages removed from the spec disappear once nothing runs in them.
      state.stages = state.stages.filter(
        (s) => spec.spec.stages.some((x) => x.name === s.name) || s.active.length > 0 || s.running !== undefined,
      );
      state.stages.sort(
        (a, b) =>
          spec.spec.stages.findIndex((s) => s.name === a.name) - spec.spec.stages.findIndex((s) => s.name === b.name),
      );
      showDetails();
      return state;
    },
    {
      validator: (spec) => {
        if (spec.metadata.name !== name) {
          refuse(
            RefusalType.InvalidArgument,
            `metadata.name "${spec.metadata.name}" does not match pipeline "${name}"`,
          );
        }
      },
    },
  );

  setHandler(
    addFreightUpdate,
    async (freight: Freight) => {
      const existing = findFreight(freight.id);
      if (existing) return { id: existing.id, created: false };
      const entry: FreightEntry = { ...freight, createdAt: now(), verifiedIn: [] };
      state.freight.unshift(entry);
      // Bounded catalog: drop the oldest freight that no stage currently holds.
      while (state.freight.length > MAX_FREIGHT) {
        const inUse = new Set(state.stages.flatMap((s) => [s.current?.freight, ...s.active.map((p) => p.freight)]));
        const index = state.freight.map((f) => !inUse.has(f.id)).lastIndexOf(true);
        if (index < 0) break;
        state.freight.splice(index, 1);
      }
      queueAutoPromotions(entry);
      showDetails();
      // The auto-promotions this freight triggers exist by the time the caller hears back, so it can look them
      // up at once. Pipelines that ran before this started them from the main loop, a moment later.
      if (patched('start-auto-promotions-before-freight-answer')) await startPendingAutoPromotions();
      return { id: entry.id, created: true };
    },
    {
      validator: (freight) => {
        const expected = state.spec.spec.artifacts.map((a) => a.name).sort();
        const given = Object.keys(freight.artifacts ?? {}).sort();
        if (expected.join(',') !== given.join(',')) {
          refuse(
            RefusalType.InvalidArgument,
            `freight must give a version for exactly the artifacts ${expected.join(', ')} (got ${given.join(', ') || 'none'})`,
          );
        }
        if (!/^[0-9a-f]{6,64}$/.test(freight.id))
          refuse(RefusalType.InvalidArgument, `freight id "${freight.id}" is not a content hash`);
      },
    },
  );

  setHandler(requestPromotionUpdate, (request) => startPromotion(request), {
    validator: validatePromotionRequest,
  });

  setHandler(stageLockRequestedSignal, ({ id, runId, stage }) => {
    const s = stageState(stage);
    if (sameRun(s.running, id, runId) || s.queue.some((p) => sameRun(p, id, runId))) return; // a repeated request
    const known = s.active.find((p) => p.id === id);
    const ref: PromotionRef = known
      ? { ...known, runId }
      : {
          id,
          runId,
          freight: id.split('/').pop() ?? '',
          requestedBy: 'unknown',
          requestedAt: now(),
        };
    if (!s.running) {
      s.running = ref;
      pendingGrants.push(id);
    } else {
      s.queue.push(ref);
    }
    showDetails();
  });

  setHandler(promotionFinishedSignal, (finished) => {
    const s = stageState(finished.stage);
    s.active = s.active.filter((p) => !sameRun(p, finished.id, finished.runId));
    s.queue = s.queue.filter((p) => !sameRun(p, finished.id, finished.runId));
    if (sameRun(s.running, finished.id, finished.runId)) {
      s.running = undefined;
      const next = s.queue.shift();
      if (next) {
        s.running = next;
        pendingGrants.push(next.id);
      }
    }
    s.history.unshift({
      id: finished.id,
      freight: finished.freight,
      phase: finished.phase,
      finishedAt: finished.finishedAt,
      ...(finished.commit ? { commit: finished.commit } : {}),
    });
    s.history.splice(MAX_STAGE_HISTORY);
    if (finished.phase === 'Succeeded') {
      s.current = {
        freight: finished.freight,
        promotion: finished.id,
        at: finished.finishedAt,
        ...(finished.commit ? { commit: finished.commit } : {}),
      };
      const freight = findFreight(finished.freight);
      if (freight && !freight.verifiedIn.includes(finished.stage)) {
        freight.verifiedIn.push(finished.stage);
        queueAutoPromotions(freight);
      }
    }
    showDetails();
  });

  upsertSearchAttributes([
    { key: FerryPipeline, value: name },
    { key: FerryPhase, value: 'Active' },
  ]);
  showDetails();

  // --- main loop: carry out grants and auto-promotions; continue as new when the history grows
  for (;;) {
    await condition(
      () => pendingGrants.length > 0 || pendingAutoPromotions.length > 0 || workflowInfo().continueAsNewSuggested,
    );
    while (pendingGrants.length > 0) {
      const id = pendingGrants.shift() as string;
      try {
        await getExternalWorkflowHandle(id).signal(stageGrantedSignal);
      } catch (err) {
        // The promotion is gone (terminated from outside): free the stage for the next one.
        log.warn('stage lock grant could not be delivered; releasing the stage', { promotion: id, error: String(err) });
        for (const s of state.stages) {
          if (s.running?.id !== id) continue;
          s.active = s.active.filter((p) => p.id !== id);
          s.running = s.queue.shift();
          if (s.running) pendingGrants.push(s.running.id);
        }
      }
    }
    await startPendingAutoPromotions();
    if (workflowInfo().continueAsNewSuggested && pendingGrants.length === 0 && pendingAutoPromotions.length === 0) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof pipelineWorkflow>({ spec: state.spec, carried: state });
    }
  }
}
