// The `webhook` target: the CloudEvent as the body of a signed POST (structured mode,
// `Content-Type: application/cloudevents+json`). Any 2xx is a delivery; see http.ts for the rest.
import type { FerryEvent } from '../../workflows/events';
import { excerpt, failureFor, httpCall } from './http';
import { SIGNATURE_HEADER, signPayload, TIMESTAMP_HEADER } from './signature';

export const CLOUDEVENTS_CONTENT_TYPE = 'application/cloudevents+json';

export interface WebhookDelivery {
  url: string;
  /** The HMAC key (the subscriber's credential). */
  secret: string;
  event: FerryEvent;
  where: string;
  timeoutMs: number;
  userAgent: string;
  nowSeconds?: number;
}

export async function deliverWebhook(delivery: WebhookDelivery): Promise<string> {
  const body = JSON.stringify(delivery.event);
  const timestamp = delivery.nowSeconds ?? Math.floor(Date.now() / 1000);
  const call = {
    method: 'POST' as const,
    url: delivery.url,
    headers: {
      'Content-Type': CLOUDEVENTS_CONTENT_TYPE,
      'User-Agent': delivery.userAgent,
      [SIGNATURE_HEADER]: signPayload(delivery.secret, timestamp, body),
      [TIMESTAMP_HEADER]: String(timestamp),
    },
    body,
    where: delivery.where,
    timeoutMs: delivery.timeoutMs,
  };
  const answer = await httpCall(call);
  if (answer.status >= 200 && answer.status < 300) return `HTTP ${answer.status}`;
  throw failureFor(call, answer, excerpt(answer.text));
}
