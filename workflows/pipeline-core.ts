// The pipeline's core: its state (stages, freight catalogue) and the rules that change it, as plain functions with
// no Temporal wiring (pipeline.ts calls them from its handlers; test/unit/pipeline-core.test.ts tests them without
// a server). Sections: the freight catalogue · which freight a stage takes · the stage lock · promotion results.
import { promotionWorkflowId } from '../pipeline/ids';
import type { Pipeline, Stage } from '../pipeline/schema';
import type {
  FreightEntry,
  PipelineStatus,
  PromotionFinished,
  PromotionRef,
  StageHistoryEntry,
  StageState,
} from './messages';

/** Unreferenced freight kept in the catalogue (the oldest is dropped beyond this). */
export const MAX_FREIGHT = 100;
/**
 * Freight the catalogue holds at most, referenced or not. Freight that a stage holds, or that a promotion (running,
 * queued, awaiting approval, or about to start) refers to, is never dropped; beyond this bound new freight is
 * refused with a clear error instead.
 */
export const MAX_FREIGHT_KEPT = 1000;
export const MAX_STAGE_HISTORY = 20;

export function newStageState(name: string): StageState {
  return { name, queue: [], active: [], history: [] };
}

export function newPipelineState(spec: Pipeline, appliedAt: string): PipelineStatus {
  return {
    name: spec.metadata.name,
    spec,
    appliedAt,
    stages: spec.spec.stages.map((s) => newStageState(s.name)),
    freight: [],
  };
}

export function stageStateOf(state: PipelineStatus, stage: string): StageState {
  let found = state.stages.find((s) => s.name === stage);
  if (!found) {
    found = newStageState(stage);
    state.stages.push(found);
  }
  return found;
}

/** Applies a new spec: stages in the spec's order; stages removed disappear once nothing runs in them. */
export function applySpec(state: PipelineStatus, spec: Pipeline, at: string): void {
  state.spec = spec;
  state.appliedAt = at;
  for (const s of spec.spec.stages) stageStateOf(state, s.name);
  state.stages = state.stages.filter(
    (s) => spec.spec.stages.some((x) => x.name === s.name) || s.active.length > 0 || s.running !== undefined,
  );
  const order = (name: string): number => spec.spec.stages.findIndex((s) => s.name === name);
  state.stages.sort((a, b) => order(a.name) - order(b.name));
}

// ---------------------------------------------------------------------------------------------------------------
// The freight catalogue

/** Freight ids something still refers to: a stage's current freight, its promotions, and `pending` ones. */
export function referencedFreight(state: PipelineStatus, pending: Iterable<string> = []): Set<string> {
  const ids = new Set<string>(pending);
  for (const s of state.stages) {
    if (s.current) ids.add(s.current.freight);
    if (s.running) ids.add(s.running.freight);
    for (const p of s.active) ids.add(p.freight);
    for (const p of s.queue) ids.add(p.freight);
  }
  return ids;
}

/** Why new freight cannot be kept, or undefined when it can. */
export function catalogueRefusal(state: PipelineStatus, referenced: Set<string>): string | undefined {
  const unreferenced = state.freight.filter((f) => !referenced.has(f.id)).length;
  if (state.freight.length - unreferenced < MAX_FREIGHT_KEPT) return undefined;
  return (
    `pipeline "${state.name}" keeps at most ${MAX_FREIGHT_KEPT} freight that promotions still refer to, and all ` +
    `${state.freight.length - unreferenced} are in use; finish, reject or abort waiting promotions first`
  );
}

/** Adds freight at the head of the catalogue and drops the oldest unreferenced freight beyond MAX_FREIGHT. */
export function addFreight(state: PipelineStatus, entry: FreightEntry, referenced: Set<string>): string[] {
  state.freight.unshift(entry);
  const dropped: string[] = [];
  let unreferenced = state.freight.filter((f) => !referenced.has(f.id)).length;
  for (let i = state.freight.length - 1; i >= 0 && unreferenced > MAX_FREIGHT; i--) {
    if (referenced.has(state.freight[i].id)) continue;
    dropped.push(state.freight[i].id);
    state.freight.splice(i, 1);
    unreferenced--;
  }
  return dropped;
}

// ---------------------------------------------------------------------------------------------------------------
// Which freight a stage takes

/** A stage takes freight that succeeded in all of the stages it comes after, or any freight when it has none. */
export function isFreightAvailable(stage: Stage, freight: FreightEntry): boolean {
  return stage.after.every((upstream) => freight.verifiedIn.includes(upstream));
}

/** The `promotion: auto` stages this freight should now be promoted into. */
export function autoPromotionsFor(spec: Pipeline, freight: FreightEntry): Array<{ stage: string; freight: string }> {
  const due: Array<{ stage: string; freight: string }> = [];
  for (const stage of spec.spec.stages) {
    if (stage.promotion !== 'auto' || !isFreightAvailable(stage, freight)) continue;
    if (stage.after.length === 0 && freight.verifiedIn.length > 0) continue; // only when the freight is new
    if (freight.verifiedIn.includes(stage.name)) continue;
    due.push({ stage: stage.name, freight: freight.id });
  }
  return due;
}

/**
 * The promotion a request for this freight in this stage joins instead of starting a new run: the unfinished one,
 * or the one that made the freight current. Undefined when a new run is due.
 */
export function existingPromotion(stage: StageState, pipeline: string, freight: string): string | undefined {
  const id = promotionWorkflowId(pipeline, stage.name, freight);
  if (stage.active.some((p) => p.id === id) || stage.running?.id === id || stage.queue.some((p) => p.id === id))
    return id;
  if (stage.current?.freight === freight) return stage.current.promotion;
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// The stage lock
//
// At most one promotion writes a stage at a time: the lock holder is `running`, the others wait in `queue` in the
// order they asked. A stage that is free when a promotion without an approval gate starts is granted with the
// start (no request, no grant signal); a promotion that passed its approval gate asks by signal. The holder
// releases the lock by reporting its end; one that ended without reporting (terminated, timed out) is noticed by
// the pipeline and released the same way.

/** Is this message about the run we know (or about a promotion we know no run of)? */
export function sameRun(ref: PromotionRef | undefined, id: string, runId: string | undefined): boolean {
  return ref !== undefined && ref.id === id && (ref.runId === undefined || runId === undefined || ref.runId === runId);
}

export function isStageFree(stage: StageState): boolean {
  return stage.running === undefined && stage.queue.length === 0;
}

/** A promotion asks for the lock: true when it holds it now (grant it), false when it waits (or already asked). */
export function requestLock(stage: StageState, ref: PromotionRef): boolean {
  if (sameRun(stage.running, ref.id, ref.runId) || stage.queue.some((p) => sameRun(p, ref.id, ref.runId))) return false;
  if (!stage.running) {
    stage.running = ref;
    return true;
  }
  stage.queue.push(ref);
  return false;
}

/** Releases the lock if this run holds it and hands it to the next in the queue, which the caller then grants. */
export function releaseLock(stage: StageState, id: string, runId: string | undefined): PromotionRef | undefined {
  stage.queue = stage.queue.filter((p) => !sameRun(p, id, runId));
  if (!sameRun(stage.running, id, runId)) return undefined;
  stage.running = stage.queue.shift();
  return stage.running;
}

// ---------------------------------------------------------------------------------------------------------------
// Promotion results

/** How a promotion ended, as the pipeline records it; an ended run we never knew the run id of has none. */
export type PromotionEnded = Omit<PromotionFinished, 'runId'> & { runId?: string };

/** Is this run still known to the stage (active, queued or holding the lock)? */
export function isKnownRun(stage: StageState, id: string, runId: string | undefined): boolean {
  return (
    stage.active.some((p) => sameRun(p, id, runId)) ||
    stage.queue.some((p) => sameRun(p, id, runId)) ||
    sameRun(stage.running, id, runId)
  );
}

/**
 * Is exactly this run still known to the stage? Unlike isKnownRun, a ref without a run id (a newer run of the same
 * promotion id, still starting) is not this run: the ended run must not be taken for it.
 */
export function isExactRunKnown(stage: StageState, id: string, runId: string): boolean {
  const exact = (p: PromotionRef | undefined): boolean => p !== undefined && p.id === id && p.runId === runId;
  return stage.active.some(exact) || stage.queue.some(exact) || exact(stage.running);
}

/**
 * Records a promotion's end: drops it from the stage, releases the lock, keeps the history, and on success makes
 * its freight current. Returns the next lock holder (to grant) and the freight newly verified in the stage.
 */
export function recordEnd(
  state: PipelineStatus,
  ended: PromotionEnded,
): { next?: PromotionRef; verified?: FreightEntry } {
  const stage = stageStateOf(state, ended.stage);
  stage.active = stage.active.filter((p) => !sameRun(p, ended.id, ended.runId));
  const next = releaseLock(stage, ended.id, ended.runId);
  const entry: StageHistoryEntry = {
    id: ended.id,
    freight: ended.freight,
    phase: ended.phase,
    finishedAt: ended.finishedAt,
    ...(ended.commit ? { commit: ended.commit } : {}),
    ...(ended.error ? { error: ended.error } : {}),
    ...(ended.reason ? { reason: ended.reason } : {}),
  };
  stage.history.unshift(entry);
  stage.history.splice(MAX_STAGE_HISTORY);
  if (ended.phase !== 'Succeeded') return { ...(next ? { next } : {}) };
  stage.current = {
    freight: ended.freight,
    promotion: ended.id,
    at: ended.finishedAt,
    ...(ended.commit ? { commit: ended.commit } : {}),
  };
  const freight = state.freight.find((f) => f.id === ended.freight);
  if (!freight || freight.verifiedIn.includes(ended.stage)) return { ...(next ? { next } : {}) };
  freight.verifiedIn.push(ended.stage);
  return { ...(next ? { next } : {}), verified: freight };
}

/**
 * The lock holders one look probes, `size` at a time in turn, so that every holder is probed within
 * ceil(holders / size) looks however many there are; `offset` is where the previous look stopped.
 */
export function nextProbeBatch<T>(holders: readonly T[], offset: number, size: number): { batch: T[]; offset: number } {
  if (holders.length <= size) return { batch: [...holders], offset: 0 };
  const start = offset % holders.length;
  return { batch: [...holders, ...holders].slice(start, start + size), offset: start + size };
}
