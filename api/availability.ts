// Answers quickly when Temporal is unreachable. The Temporal client retries an unreachable server for about 20 s
// before it gives up, and an update may legitimately wait on a busy worker for longer than that, so a deadline on
// every call would be wrong. Instead, while a call is pending, the API asks Temporal a cheap question with a short
// deadline (the health probe); when that gets no answer, the caller gets 503 Unavailable at once. Once a probe has
// failed, every call is preceded by a probe until one succeeds, so the API recovers by itself when Temporal is back.
import { FerryError } from '../client/errors';
import type { Logger } from '../client/log';
import type { FerryApi } from '../client/types';

export interface AvailabilityOptions {
  /** How long a call may run before the API checks that Temporal still answers (default 1 s). */
  checkAfterMs?: number;
  logger?: Logger;
}

const unavailable = (): FerryError =>
  new FerryError(
    'Unavailable',
    'Temporal is not reachable, so the request may not have taken effect; retry it once GET /healthz answers 200',
  );

/** A FerryApi whose calls fail with Unavailable within a few seconds while Temporal does not answer. */
export function guardAvailability(ferry: FerryApi, options: AvailabilityOptions = {}): FerryApi {
  const checkAfterMs = options.checkAfterMs ?? 1000;
  let reachable = true;
  let probing: Promise<boolean> | undefined;

  /** One probe at a time, shared by every caller that needs an answer now. */
  const probe = (): Promise<boolean> => {
    probing ??= ferry
      .health()
      .catch(() => false)
      .then((ok) => {
        if (ok !== reachable) {
          if (ok) options.logger?.info('Temporal is reachable again');
          else options.logger?.warn('Temporal is not reachable; answering 503 until it is');
        }
        reachable = ok;
        return ok;
      })
      .finally(() => {
        probing = undefined;
      });
    return probing;
  };

  // At once, not on the first request: the first call on a new connection pays for setting it up, which on a busy
  // machine takes longer than a health check may.
  void probe();

  const guarded = async <T>(call: () => Promise<T>): Promise<T> => {
    if (!reachable && !(await probe())) throw unavailable();
    const result = call();
    result.catch((err: unknown) => {
      // The client's own verdict (e.g. it gave up connecting): the next call probes first. A call that finishes
      // after its caller got a 503 ends here too, unobserved.
      if (err instanceof FerryError && err.code === 'Unavailable') reachable = false;
    });
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<'tick'>((resolve) => {
        timer = setTimeout(() => resolve('tick'), checkAfterMs);
      });
      try {
        const first = await Promise.race([result.then(() => 'done' as const), tick]);
        if (first === 'done') return result;
      } finally {
        clearTimeout(timer);
      }
      if (!(await probe())) throw unavailable();
    }
  };

  return {
    health: probe,
    applyPipeline: (spec) => guarded(() => ferry.applyPipeline(spec)),
    listPipelines: () => guarded(() => ferry.listPipelines()),
    getPipeline: (name) => guarded(() => ferry.getPipeline(name)),
    addFreight: (pipeline, artifacts) => guarded(() => ferry.addFreight(pipeline, artifacts)),
    pullRequestMerged: (merge) => guarded(() => ferry.pullRequestMerged(merge)),
    promote: (pipeline, stage, freight, requestedBy, promoteOptions) =>
      guarded(() => ferry.promote(pipeline, stage, freight, requestedBy, promoteOptions)),
    getPromotion: (id) => guarded(() => ferry.getPromotion(id)),
    approve: (id, decision) => guarded(() => ferry.approve(id, decision)),
    reject: (id, decision) => guarded(() => ferry.reject(id, decision)),
    abort: (id, decision) => guarded(() => ferry.abort(id, decision)),
    decideGate: (ref, decision) => guarded(() => ferry.decideGate(ref, decision)),
    waitingGate: (id, gate) => guarded(() => ferry.waitingGate(id, gate)),
  };
}
