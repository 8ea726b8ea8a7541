// How webhook deliveries prove where they come from. Pure functions over the raw body, so the unit tests check
// them against known vectors and the router only wires headers to them.
//
// - Ferry's generic webhook: `X-Ferry-Timestamp: <unix seconds>` and `X-Ferry-Signature: sha256=<hex>`, the
//   HMAC-SHA256 under the pipeline's secret of the bytes `<timestamp>.<raw body>` (the timestamp as sent, a dot,
//   the body exactly as sent). Covering the timestamp makes a captured delivery useless after the replay window.
// - GitHub: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the raw body under the hook's secret.
// - GitLab: `X-Gitlab-Token: <secret>`, the secret itself, compared in constant time.
// - Gitea (and Forgejo): `X-Gitea-Signature: <hex>` (Forgejo also `X-Forgejo-Signature`), the HMAC-SHA256 of the
//   raw body under the hook's secret, without GitHub's `sha256=` prefix.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { signFerryPayload } from '../../client/ferry-signature';

export const SIGNATURE_PREFIX = 'sha256=';
const SIGNATURE = /^sha256=([0-9a-f]{64})$/i;

/** The X-Ferry-Signature value for a generic delivery: client/ferry-signature.ts's scheme. */
export const signGenericDelivery = (secret: string, timestamp: string, body: Buffer | string): string =>
  signFerryPayload(secret, timestamp, body);

/** The X-Hub-Signature-256 value GitHub sends: `sha256=` + hex HMAC-SHA256(secret, body). */
export function signGitHubDelivery(secret: string, body: Buffer | string): string {
  return SIGNATURE_PREFIX + createHmac('sha256', secret).update(body).digest('hex');
}

/** The 32 bytes of a well-formed `sha256=<64 lowercase hex>` header, or undefined. */
export function parseSignature(header: string | undefined): Buffer | undefined {
  const match = header === undefined ? null : SIGNATURE.exec(header.trim());
  return match ? Buffer.from(match[1], 'hex') : undefined;
}

/** Whether a parsed signature is the expected one; constant time in the signature's content. */
export function signatureMatches(given: Buffer, expected: string): boolean {
  const want = parseSignature(expected);
  return want !== undefined && given.length === want.length && timingSafeEqual(given, want);
}

/** The X-Gitea-Signature value Gitea sends: the hex HMAC-SHA256(secret, body), no prefix. */
export function signGiteaDelivery(secret: string, body: Buffer | string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/** The 32 bytes of a well-formed Gitea signature header (64 hex digits), or undefined. */
export function parseGiteaSignature(header: string | undefined): Buffer | undefined {
  const match = header === undefined ? null : /^([0-9a-f]{64})$/i.exec(header.trim());
  return match ? Buffer.from(match[1], 'hex') : undefined;
}

export function verifyGiteaDelivery(secret: string, body: Buffer, signature: Buffer): boolean {
  return signatureMatches(signature, SIGNATURE_PREFIX + signGiteaDelivery(secret, body));
}

export function verifyGenericDelivery(secret: string, timestamp: string, body: Buffer, signature: Buffer): boolean {
  return signatureMatches(signature, signGenericDelivery(secret, timestamp, body));
}

export function verifyGitHubDelivery(secret: string, body: Buffer, signature: Buffer): boolean {
  return signatureMatches(signature, signGitHubDelivery(secret, body));
}

/**
 * Whether GitLab's X-Gitlab-Token is the secret. Both sides are hashed first, so the comparison takes the same time
 * whatever the token's length or content.
 */
export function gitLabTokenMatches(secret: string, token: string): boolean {
  const digest = (value: string): Buffer => createHmac('sha256', 'ferry-gitlab-token').update(value).digest();
  return timingSafeEqual(digest(secret), digest(token));
}

/** A timestamp header: whole seconds since the epoch, as digits only. */
export function parseTimestamp(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d{1,12}$/.test(header.trim())) return undefined;
  return Number(header.trim());
}
