// Ferry's HMAC signature, one scheme for both directions: the generic inbound webhook (api/webhooks) and the
// outbound event webhooks (activities/notify). HMAC-SHA256 under the shared secret over `<timestamp>.<raw body>`
// (the timestamp exactly as sent, a dot, the body's bytes), sent as `X-Ferry-Signature: sha256=<hex>` beside
// `X-Ferry-Timestamp: <unix seconds>`. Signing the timestamp with the body makes a captured delivery useless once
// it is older than the receiver's window.
import { createHmac } from 'node:crypto';

export const SIGNATURE_HEADER = 'X-Ferry-Signature';
export const TIMESTAMP_HEADER = 'X-Ferry-Timestamp';
/** How far a timestamp may be from the receiver's clock (either way) before a delivery counts as a replay. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/** `sha256=<hex>` for a body sent at `timestamp` (unix seconds, as the header carries it). */
export function signFerryPayload(secret: string, timestamp: string | number, body: string | Buffer): string {
  const mac = createHmac('sha256', secret);
  mac.update(`${timestamp}.`);
  mac.update(body);
  return `sha256=${mac.digest('hex')}`;
}
