// Pipeline workflow: one long-lived entity per pipeline. It holds the applied spec and the freight catalog, starts
// promotions as child workflows, hands out each stage's lock to one promotion at a time (the rest wait in order),
// and auto-promotes freight into `promotion: auto` stages. Continues as new while its history is still short, so
// a query on a pipeline evicted from the worker's cache replays little.
//
// The rules (catalogue, availability, stage lock, results) are in pipeline-core.ts; this file is the Temporal
// wiring: handlers, child starts, signals, timers, continue-as-new.
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
import { ApplicationFailure, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { validateFreight } from '../pipeline/freight-rules';
import { AUTO_PROMOTER, FREIGHT_ID, pipelineWorkflowId, promotionWorkflowId } from '../pipeline/ids';
import { describeTarget } from '../pipeline/layout';
import { Reason } from '../pipeline/reasons';
import type { Stage } from '../pipeline/schema';
import {
  addFreightUpdate,
  applySpecUpdate,
  pipelineStatusQuery,
  promotionFinishedSignal,
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
} from './messages';
import {
  addFreight,
  applySpec,
  autoPromotionsFor,
  catalogueRefusal,
  existingPromotion,
  isFreightAvailable,
  isExactRunKnown,
  isKnownRun,
  isStageFree,
  newPipelineState,
  nextProbeBatch,
  recordEnd,
  referencedFreight,
  releaseLock,
  requestLock,
  stageStateOf,
  type PromotionEnded,
} from './pipeline-core';
import { createEmitter } from './delivery';
import { promotionWorkflow } from './promotion';
import { FerryFreight, FerryPhase, FerryPipeline, FerryStage } from './search-attributes';

export { isFreightAvailable, MAX_FREIGHT, MAX_STAGE_HISTORY } from './pipeline-core';

/**
 * Continue as new past this many events (Temporal suggests it only at thousands): a query on a pipeline evicted
 * from the worker cache replays the current run, and a few hundred events replay in tens of milliseconds.
 */
export const MAX_HISTORY_EVENTS = 300;
/** How often the pipeline looks whether a lock holder it cannot watch (started by an earlier run) still runs. */
const HOLDER_PROBE_INTERVAL = '3s';
/**
 * How many of those holders one look probes (each probe is a signal: a server round trip and two history events).
 * A pipeline that continued as new with 200 promotions running would otherwise signal all 200 every 3 s, filling
 * its history, continuing as new again, and finding them all unwatched once more.
 */
const HOLDER_PROBE_BATCH = 8;

function refuse(type: RefusalType, message: string): never {
  throw refusal(type, message);
}

function isCarriedState(value: unknown): value is PipelineStatus {
  return typeof value === 'object' && value !== null && Array.isArray((value as PipelineStatus).stages);
}

export async function pipelineWorkflow(input: PipelineWorkflowInput): Promise<void> {
  const now = (): string => new Date().toISOString();
  const state: PipelineStatus = isCarriedState(input.carried)
    ? { ...input.carried, spec: input.spec }
    : newPipelineState(input.spec, now());
  const name = state.name;

  /** Stage-lock grants and auto-promotions are decided in handlers and carried out by the main loop. */
  const pendingGrants: string[] = [];
  const pendingAutoPromotions: Array<{ stage: string; freight: string }> = [];
  /** Promotions being started right now, so a concurrent identical request joins instead of starting twice. */
  const starting = new Map<string, Promise<PromotionRequested>>();
  /** Runs started by this run of the pipeline: their end (however it comes) reaches us as the child's result. */
  const watched = new Set<string>();

  /** Outbound events of the pipeline itself (freight registered); promotions emit their own. */
  const events = createEmitter(name, pipelineWorkflowId(name), () => state.spec.spec.notify);

  const stageSpec = (stage: string): Stage | undefined => state.spec.spec.stages.find((s) => s.name === stage);
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
    pendingAutoPromotions.push(...autoPromotionsFor(state.spec, freight));
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

  /** Records a promotion's end and carries out what follows: the next lock holder, auto-promotions onward. */
  const promotionEnded = (ended: PromotionEnded): void => {
    const { next, verified } = recordEnd(state, ended);
    if (next) pendingGrants.push(next.id);
    if (verified) queueAutoPromotions(verified);
    showDetails();
  };

  /**
   * A promotion that ended without reporting (terminated or timed out by Temporal) is recorded as failed, and its
   * subscribers hear of it as they would of any failure: the promotion itself can no longer tell them.
   */
  const promotionEndedOutside = (ended: PromotionEnded): void => {
    const stageState = stageStateOf(state, ended.stage);
    const ref = [...stageState.active, ...stageState.queue, stageState.running].find(
      (p) => p !== undefined && p.id === ended.id,
    );
    promotionEnded(ended);
    const freight = findFreight(ended.freight);
    if (!freight || !ended.runId || !state.spec.spec.notify?.length) return;
    if (!patched('event-for-promotion-ended-outside')) return;
    events.emit(
      'dev.ferry.promotion.failed',
      {
        pipeline: name,
        stage: ended.stage,
        freight: { id: freight.id, artifacts: freight.artifacts },
        promotion: {
          id: ended.id,
          runId: ended.runId,
          phase: 'Failed',
          requestedBy: ref?.requestedBy ?? 'unknown',
          startedAt: ref?.requestedAt ?? ended.finishedAt,
          finishedAt: ended.finishedAt,
        },
        ...(ended.reason ? { reason: ended.reason } : {}),
        ...(ended.error ? { error: ended.error } : {}),
      },
      { change: `promotion.ended-outside/${ended.id}/${ended.runId}` },
    );
  };

  /**
   * A run this pipeline started ended. If it never reported (terminated or timed out by Temporal), it is released
   * here, so the stage goes to the next promotion at once.
   */
  const watchEnd = (id: string, runId: string, stage: string, freight: string, result: Promise<unknown>): void => {
    watched.add(runId);
    result
      .catch(() => undefined)
      .then(() => {
        watched.delete(runId);
        const stageState = stageStateOf(state, stage);
        // A forced new run of the same promotion id may be starting (tracked without a run id yet): only this exact
        // run counts, or the new run would be dropped and its lock released in the old run's name.
        const known = patched('watched-end-matches-exact-run')
          ? isExactRunKnown(stageState, id, runId)
          : isKnownRun(stageState, id, runId);
        if (!known) return; // it reported its end itself
        log.warn('promotion ended without reporting (terminated or timed out); releasing its stage', { id, runId });
        promotionEndedOutside({
          id,
          runId,
          stage,
          freight,
          phase: 'Failed',
          finishedAt: now(),
          error: 'the promotion workflow was terminated or timed out outside Ferry',
          reason: Reason.EndedOutside,
        });
      });
  };

  const startPromotion = async (request: RequestPromotion): Promise<PromotionRequested> => {
    const id = promotionWorkflowId(name, request.stage, request.freight);
    const stage = stageStateOf(state, request.stage);
    const inFlight = starting.get(id);
    if (inFlight) return { ...(await inFlight), existing: true };
    // The same promotion asked again (50 clients, a retry, the auto-promotion and a human) joins the one that runs
    // or made the freight current; `force` asks for a new run of a finished one.
    if (!request.force && patched('idempotent-promotion-requests')) {
      const existing = existingPromotion(stage, name, request.freight);
      if (existing) return { id: existing, existing: true };
    }

    const spec = stageSpec(request.stage);
    const freight = findFreight(request.freight);
    if (!spec || !freight)
      refuse(RefusalType.NotFound, `stage "${request.stage}" or freight "${request.freight}" vanished`);
    const versions = Object.entries(freight.artifacts)
      .map(([artifact, version]) => `${artifact}:${version}`)
      .join(', ');
    const ref: PromotionRef = {
      id,
      freight: freight.id,
      requestedBy: request.requestedBy,
      requestedAt: now(),
    };
    const track = (runId: string | undefined): void => {
      // A run we knew under this id has finished (its signal may still be on the way): the new run replaces it.
      stage.active = stage.active.filter((p) => p.id !== id);
      if (runId) ref.runId = runId;
      stage.active.push(ref);
      showDetails();
    };
    // A free stage is granted with the start: the promotion needs no lock request and no grant signal.
    const grantAtStart = !spec.approval && isStageFree(stage) && patched('grant-free-stage-at-start');
    if (grantAtStart) stage.running = ref;
    track(undefined); // referenced before the start returns, so the catalogue keeps its freight meanwhile

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
              ...(grantAtStart ? { granted: true } : {}),
              ...(state.spec.spec.notify?.length ? { notify: state.spec.spec.notify } : {}),
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
          staticDetails: `Requested by ${request.requestedBy}. Stage renders ${describeTarget(state.spec.spec.repo, spec.render)}${spec.argocd ? ` and syncs Argo CD app ${spec.argocd.app}` : ''}.`,
        });
        track(child.firstExecutionRunId);
        if (patched('free-stage-of-ended-promotion'))
          watchEnd(id, child.firstExecutionRunId, spec.name, freight.id, child.result());
        return { id, existing: false };
      } catch (err) {
        if (grantAtStart) {
          // Another run of this id holds on (started by a run whose state we lost): it asks for the lock itself.
          const next = releaseLock(stage, id, undefined);
          if (next) pendingGrants.push(next.id);
        }
        // Already running: started by a run of this pipeline whose state we lost; it stays tracked.
        if (err instanceof WorkflowExecutionAlreadyStartedError) return { id, existing: true };
        stage.active = stage.active.filter((p) => p !== ref);
        throw err;
      } finally {
        starting.delete(id);
      }
    })();
    starting.set(id, start);
    return start;
  };

  /** Starts the auto-promotions decided so far, all at once (each start is a round trip to the server). */
  const startPendingAutoPromotions = async (): Promise<void> => {
    const concurrently = patched('start-auto-promotions-concurrently');
    const starts: Promise<void>[] = [];
    while (pendingAutoPromotions.length > 0) {
      const next = pendingAutoPromotions.shift() as { stage: string; freight: string };
      const request = { ...next, requestedBy: AUTO_PROMOTER };
      const started = (async () => {
        try {
          validatePromotionRequest(request);
          await startPromotion(request);
        } catch (err) {
          log.warn('auto-promotion not started', { ...next, error: String(err) });
        }
      })();
      if (concurrently) starts.push(started);
      else await started;
    }
    await Promise.all(starts);
  };

  // --- handlers

  setHandler(pipelineStatusQuery, () => state);

  setHandler(
    applySpecUpdate,
    (spec) => {
      applySpec(state, spec, now());
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

  /** Freight the catalogue must keep: what stages and promotions refer to, and what is about to be promoted. */
  const inUse = (): Set<string> => referencedFreight(state, [...pendingAutoPromotions.map((p) => p.freight)]);

  setHandler(
    addFreightUpdate,
    async (freight: Freight) => {
      const existing = findFreight(freight.id);
      if (existing) return { id: existing.id, created: false };
      const entry: FreightEntry = { ...freight, createdAt: now(), verifiedIn: [] };
      addFreight(state, entry, inUse());
      events.emit(
        'dev.ferry.freight.registered',
        { pipeline: name, freight: { id: entry.id, artifacts: entry.artifacts } },
        { change: `freight.registered/${entry.id}` },
      );
      queueAutoPromotions(entry);
      showDetails();
      // The auto-promotions this freight triggers exist by the time the caller hears back, so it can look them
      // up at once. Pipelines that ran before this started them from the main loop, a moment later.
      if (patched('start-auto-promotions-before-freight-answer')) await startPendingAutoPromotions();
      return { id: entry.id, created: true };
    },
    {
      validator: (freight) => {
        // The same checks and messages as the edges: every bad artifact with its path, in the failure's details.
        const errors = validateFreight(state.spec, freight.artifacts);
        if (errors.length > 0) {
          throw ApplicationFailure.create({
            message: `freight does not match the artifacts of pipeline "${name}"`,
            type: RefusalType.InvalidArgument,
            nonRetryable: true,
            details: [{ errors }],
          });
        }
        if (!FREIGHT_ID.test(freight.id))
          refuse(RefusalType.InvalidArgument, `freight id "${freight.id}" is not a content hash`);
        if (findFreight(freight.id)) return;
        const full = catalogueRefusal(state, inUse());
        if (full) refuse(RefusalType.Conflict, full);
      },
    },
  );

  setHandler(requestPromotionUpdate, (request) => startPromotion(request), {
    validator: validatePromotionRequest,
  });

  setHandler(stageLockRequestedSignal, ({ id, runId, stage }) => {
    const s = stageStateOf(state, stage);
    const known = s.active.find((p) => p.id === id);
    const ref: PromotionRef = known
      ? { ...known, runId }
      : { id, runId, freight: id.split('/').pop() ?? '', requestedBy: 'unknown', requestedAt: now() };
    if (requestLock(s, ref)) pendingGrants.push(id);
    showDetails();
  });

  setHandler(promotionFinishedSignal, (finished) => promotionEnded(finished));

  upsertSearchAttributes([
    { key: FerryPipeline, value: name },
    { key: FerryPhase, value: 'Active' },
  ]);
  showDetails();

  const shortHistory = patched('short-pipeline-history');
  const continueAsNewDue = (): boolean =>
    workflowInfo().continueAsNewSuggested || (shortHistory && workflowInfo().historyLength > MAX_HISTORY_EVENTS);
  /**
   * Lock holders started by an earlier run of this pipeline: their end does not reach us, so we look. A holder
   * without a runId is being started by this run right now (granted at start): it will be watched, and probing it
   * before its start is processed could find no workflow and free a stage that is in use.
   */
  const unwatchedHolders = (): PromotionRef[] =>
    shortHistory
      ? state.stages.flatMap((s) =>
          s.running?.runId !== undefined && !watched.has(s.running.runId) ? [s.running] : [],
        )
      : [];

  const probeInBatches = shortHistory && patched('probe-holders-in-batches');
  let probeOffset = 0;
  /** The holders this look probes: all of them, or the next batch in turn. */
  const holdersToProbe = (): PromotionRef[] => {
    const holders = unwatchedHolders();
    if (!probeInBatches) return holders;
    const next = nextProbeBatch(holders, probeOffset, HOLDER_PROBE_BATCH);
    probeOffset = next.offset;
    return next.batch;
  };

  // --- main loop: carry out grants and auto-promotions; continue as new when the history grows
  for (;;) {
    const due = (): boolean => pendingGrants.length > 0 || pendingAutoPromotions.length > 0 || continueAsNewDue();
    if (unwatchedHolders().length > 0) {
      if (!(await condition(due, HOLDER_PROBE_INTERVAL))) {
        for (const holder of holdersToProbe()) {
          // A signal to a run that has ended fails: that holder is gone, its stage goes to the next promotion.
          // (The signal itself is harmless: a holder was granted already.)
          try {
            await getExternalWorkflowHandle(holder.id, holder.runId).signal(stageGrantedSignal);
          } catch {
            const stage = state.stages.find((s) => s.running === holder);
            if (stage && stage.running === holder)
              promotionEndedOutside({
                id: holder.id,
                ...(holder.runId ? { runId: holder.runId } : {}),
                stage: stage.name,
                freight: holder.freight,
                phase: 'Failed',
                finishedAt: now(),
                error: 'the promotion workflow ended outside Ferry without reporting',
                reason: Reason.EndedOutside,
              });
          }
        }
      }
    } else {
      await condition(due);
    }
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
          const next = releaseLock(s, id, undefined);
          if (next) pendingGrants.push(next.id);
        }
      }
    }
    await startPendingAutoPromotions();
    if (continueAsNewDue() && pendingGrants.length === 0 && pendingAutoPromotions.length === 0) {
      await condition(allHandlersFinished);
      await events.started();
      await continueAsNew<typeof pipelineWorkflow>({ spec: state.spec, carried: { ...state, spec: undefined } });
    }
  }
}
