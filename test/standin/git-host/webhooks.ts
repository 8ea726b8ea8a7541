// Webhook deliveries from a git-host stand-in, as the host makes them: a POST of the event's JSON with the host's
// headers, after the API call that caused it has been answered (hosts deliver asynchronously). Every delivery is
// recorded with the answer it got; `settled()` waits for those under way, so a test can look at them.
import { randomUUID } from 'node:crypto';

export interface HookDelivery {
  hook: number;
  url: string;
  event: string;
  /** The delivery's id (GitHub's X-GitHub-Delivery, GitLab's X-Gitlab-Event-UUID). */
  id: string;
  headers: Record<string, string>;
  payload: unknown;
  /** The receiver's status, once answered; undefined while under way or when it could not be reached. */
  status?: number;
  response?: string;
  error?: string;
}

export interface WebhookSender {
  deliveries: HookDelivery[];
  /** Sends later (after the current request's answer); the headers are made from the raw body. */
  send(
    hook: { id: number; url: string },
    event: string,
    payload: unknown,
    headersFor: (body: string, id: string) => Record<string, string>,
  ): void;
  settled(): Promise<void>;
}

export function createWebhookSender(): WebhookSender {
  const deliveries: HookDelivery[] = [];
  const underWay = new Set<Promise<void>>();
  return {
    deliveries,
    send(hook, event, payload, headersFor) {
      const id = randomUUID();
      const body = JSON.stringify(payload);
      const headers = { 'content-type': 'application/json', ...headersFor(body, id) };
      const delivery: HookDelivery = { hook: hook.id, url: hook.url, event, id, headers, payload };
      deliveries.push(delivery);
      const sending = (async () => {
        await new Promise((resolve) => setImmediate(resolve));
        try {
          const res = await fetch(hook.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(30_000) });
          delivery.response = await res.text();
          delivery.status = res.status;
        } catch (err) {
          delivery.error = err instanceof Error ? err.message : String(err);
        }
      })();
      underWay.add(sending);
      void sending.finally(() => underWay.delete(sending));
    },
    async settled() {
      while (underWay.size > 0) await Promise.all([...underWay]);
    },
  };
}
