// What the worker adds to events at delivery: the one-time callback URL of a callback gate, in its
// `dev.ferry.gate.waiting` event. The workflow emits the event with the gate's name only; the URL is derived here
// from FERRY_CALLBACK_KEY (the key the API checks it with) and FERRY_PUBLIC_URL, so it reaches the subscriber
// without ever entering workflow history or a log.
import type { EventEnricher } from '../activities/notify';
import { callbackKeyFromEnv, callbackUrlFor, publicBaseUrl } from '../client/gate-callbacks';

/** The enricher, or undefined when this worker has no FERRY_CALLBACK_KEY (events then carry no URL). */
export function gateCallbackEnricher(env: NodeJS.ProcessEnv = process.env): EventEnricher | undefined {
  const key = callbackKeyFromEnv(env);
  if (!key) return undefined;
  const base = publicBaseUrl(env);
  return (event) => {
    const { gate, promotion } = event.data;
    if (event.type !== 'dev.ferry.gate.waiting' || gate?.type !== 'callback' || !promotion) return event;
    const callbackUrl = callbackUrlFor(key, base, {
      promotionId: promotion.id,
      runId: promotion.runId,
      gate: gate.name,
    });
    return { ...event, data: { ...event.data, gate: { ...gate, callbackUrl } } };
  };
}
