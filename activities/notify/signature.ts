// The signature on Ferry's outbound webhooks, and the one on the generic inbound webhook: HMAC-SHA256 over
// `<timestamp>.<raw body>` with the shared secret, sent as `X-Ferry-Signature: sha256=<hex>` beside
// `X-Ferry-Timestamp: <unix seconds>`. Signing the timestamp with the body lets a receiver refuse old deliveries
// (a replay) as well as forged ones.
import { timingSafeEqual } from 'node:crypto';
import {
  signFerryPayload,
  SIGNATURE_HEADER,
  SIGNATURE_TOLERANCE_SECONDS,
  TIMESTAMP_HEADER,
} from '../../client/ferry-signature';

export { SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECONDS, TIMESTAMP_HEADER };

/** `sha256=<hex>` for a body sent at `timestamp` (unix seconds): client/ferry-signature.ts's scheme. */
export const signPayload = (secret: string, timestamp: number, body: string | Buffer): string =>
  signFerryPayload(secret, timestamp, body);

export type SignatureCheck = { ok: true } | { ok: false; problem: string };

/** Checks a delivery's signature and timestamp the way a receiver should (constant-time comparison). */
export function verifySignature(
  secret: string,
  headers: { signature?: string; timestamp?: string },
  body: string | Buffer,
  nowSeconds = Math.floor(Date.now() / 1000),
): SignatureCheck {
  if (!headers.signature) return { ok: false, problem: `missing ${SIGNATURE_HEADER} header` };
  if (!headers.timestamp || !/^\d+$/.test(headers.timestamp))
    return { ok: false, problem: `missing or non-numeric ${TIMESTAMP_HEADER} header` };
  const timestamp = Number(headers.timestamp);
  if (Math.abs(nowSeconds - timestamp) > SIGNATURE_TOLERANCE_SECONDS)
    return { ok: false, problem: `${TIMESTAMP_HEADER} is more than ${SIGNATURE_TOLERANCE_SECONDS}s from now` };
  const expected = Buffer.from(signPayload(secret, timestamp, body));
  const given = Buffer.from(headers.signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given))
    return { ok: false, problem: `${SIGNATURE_HEADER} does not match the body` };
  return { ok: true };
}
