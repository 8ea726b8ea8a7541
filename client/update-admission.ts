// Temporal admits at most 10 updates in flight per workflow execution (the server's `history.maxInFlightUpdates`)
// and aborts the updates in flight when a workflow continues as new. Every freight registration and promote request
// is an update of its pipeline's workflow, so a burst from CI (200 promote calls at once) would otherwise come back
// as errors. The typed client therefore queues its own updates per workflow, a few at a time, and retries the ones
// the server turned away for those two reasons: both mean "not taken", and every Ferry update is idempotent.
import { FerryError } from './errors';

/** Updates one client process keeps in flight per workflow: below the server's 10, leaving room for others. */
export const UPDATES_IN_FLIGHT_PER_WORKFLOW = 6;
/** How long a request may wait to be admitted before the caller hears 503 (default). */
export const ADMISSION_DEADLINE_MS = 60_000;

const RESOURCE_EXHAUSTED = 8;

/** The server refused the update for now: too many in flight, or the run it targeted continued as new. */
export function isUpdateBackpressure(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === RESOURCE_EXHAUSTED && /update/i.test(e.message)) return true;
    if (/in-flight updates|update was aborted|workflow is closing|continued as new/i.test(e.message)) return true;
  }
  return false;
}

interface Gate {
  active: number;
  waiting: Array<() => void>;
}

export interface UpdateAdmission {
  /** Runs `update` for workflow `key` once a place is free, retrying it while the server pushes back. */
  run<T>(key: string, what: string, update: () => Promise<T>): Promise<T>;
}

export function createUpdateAdmission(
  options: { perWorkflow?: number; deadlineMs?: number; sleep?: (ms: number) => Promise<void> } = {},
): UpdateAdmission {
  const perWorkflow = options.perWorkflow ?? UPDATES_IN_FLIGHT_PER_WORKFLOW;
  const deadlineMs = options.deadlineMs ?? ADMISSION_DEADLINE_MS;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const gates = new Map<string, Gate>();

  const acquire = async (key: string): Promise<void> => {
    let gate = gates.get(key);
    if (!gate) {
      gate = { active: 0, waiting: [] };
      gates.set(key, gate);
    }
    if (gate.active < perWorkflow) {
      gate.active++;
      return;
    }
    await new Promise<void>((resolve) => gate.waiting.push(resolve));
  };
  const release = (key: string): void => {
    const gate = gates.get(key);
    if (!gate) return;
    const next = gate.waiting.shift();
    if (next)
      next(); // the place passes straight to the next in line
    else if (--gate.active === 0) gates.delete(key);
  };

  return {
    async run(key, what, update) {
      const deadline = Date.now() + deadlineMs;
      await acquire(key);
      try {
        for (let attempt = 1; ; attempt++) {
          try {
            return await update();
          } catch (err) {
            if (!isUpdateBackpressure(err)) throw err;
            if (Date.now() >= deadline) {
              throw new FerryError(
                'Unavailable',
                `${what} is busy: Temporal kept refusing the request for ${Math.round(deadlineMs / 1000)} s (too many requests in flight); try again`,
              );
            }
            // Jittered exponential backoff, 25 ms doubling to at most 1 s.
            const ceiling = Math.min(1000, 25 * 2 ** Math.min(attempt, 6));
            await sleep(ceiling / 2 + Math.random() * (ceiling / 2));
          }
        }
      } finally {
        release(key);
      }
    },
  };
}
