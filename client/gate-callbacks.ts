// Callback gates' one-time URLs. The token in `POST /api/v1/callbacks/<token>` is derived, never stored: an
// HMAC-SHA256, under the key FERRY_CALLBACK_KEY that the API and the worker share, over the promotion id, the run
// id and the gate name, carried next to them in the token. So the API checks a token without any storage (in
// constant time) and knows which gate of which run it opens, and the token never passes through the workflow: the
// workflow's history holds the gate's name and result only. What makes the URL one-time is the workflow: a gate
// takes one decision, and the run id in the token means a token of an earlier run opens nothing in a later one.
//
// Used by the HTTP API (checking tokens, the admin route that shows a waiting gate's URL) and by the worker's event
// delivery (callbackUrl, to put the URL into the `dev.ferry.gate.waiting` event at delivery time).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PROMOTION_ID } from '../pipeline/ids';
import { localApiUrl } from './api-url';

/** Which gate of which promotion run a token opens. */
export interface GateRef {
  promotionId: string;
  runId: string;
  gate: string;
}

export const CALLBACK_KEY_ENV = 'FERRY_CALLBACK_KEY';
export const PUBLIC_URL_ENV = 'FERRY_PUBLIC_URL';
/** The route's prefix, below the API's base URL. */
export const CALLBACK_PATH = '/api/v1/callbacks/';
/** A key shorter than this is refused: the tokens are only as strong as the key. */
export const MIN_KEY_LENGTH = 32;
/** Tokens are far shorter (about 250 characters); anything longer is refused before any work. */
export const MAX_TOKEN_LENGTH = 1024;

const VERSION = 'v1';
const GATE_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const RUN_ID = /^[A-Za-z0-9-]{1,128}$/;

/** The key from FERRY_CALLBACK_KEY, or undefined when it is unset; a key that is too short is an error. */
export function callbackKeyFromEnv(env: NodeJS.ProcessEnv = process.env): Buffer | undefined {
  const value = env[CALLBACK_KEY_ENV]?.trim();
  if (!value) return undefined;
  if (value.length < MIN_KEY_LENGTH) {
    // Never the value: it is a secret, however weak.
    throw new Error(
      `${CALLBACK_KEY_ENV} must be at least ${MIN_KEY_LENGTH} characters (e.g. \`openssl rand -base64 32\`)`,
    );
  }
  return Buffer.from(value, 'utf8');
}

function mac(key: Buffer, payload: string): Buffer {
  return createHmac('sha256', key).update(`ferry-gate-callback.${VERSION}.${payload}`).digest();
}

/** The gate's token: `v1.<payload>.<mac>`, both base64url; the payload is `[promotionId, runId, gate]` as JSON. */
export function callbackToken(key: Buffer, ref: GateRef): string {
  const payload = Buffer.from(JSON.stringify([ref.promotionId, ref.runId, ref.gate]), 'utf8').toString('base64url');
  return `${VERSION}.${payload}.${mac(key, payload).toString('base64url')}`;
}

/**
 * The gate a token opens, or undefined when it is not a token this key made (malformed, altered, another key's).
 * The MAC is compared in constant time before anything in the payload is read.
 */
export function verifyCallbackToken(key: Buffer, token: string): GateRef | undefined {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return undefined;
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== VERSION) return undefined;
  const [, payload, signature] = parts;
  if (!/^[A-Za-z0-9_-]+$/.test(payload) || !/^[A-Za-z0-9_-]+$/.test(signature)) return undefined;
  const expected = mac(key, payload);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  let fields: unknown;
  try {
    fields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(fields) || fields.length !== 3 || !fields.every((f) => typeof f === 'string')) return undefined;
  const [promotionId, runId, gate] = fields as [string, string, string];
  if (!PROMOTION_ID.test(promotionId) || !RUN_ID.test(runId) || !GATE_NAME.test(gate)) return undefined;
  return { promotionId, runId, gate };
}

/**
 * The base URL external systems reach the API at: FERRY_PUBLIC_URL, else where the API listens
 * (`http://$FERRY_HOST:$FERRY_PORT`, default http://127.0.0.1:8234; a wildcard host is reached on loopback).
 */
export function publicBaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env[PUBLIC_URL_ENV]?.trim();
  return configured ? configured.replace(/\/+$/, '') : localApiUrl(env);
}

/** The callback URL of a gate under a base URL. */
export function callbackUrlFor(key: Buffer, baseUrl: string, ref: GateRef): string {
  return `${baseUrl.replace(/\/+$/, '')}${CALLBACK_PATH}${callbackToken(key, ref)}`;
}

/**
 * The hook for event delivery: the callback URL of a gate, from this process's FERRY_CALLBACK_KEY and
 * FERRY_PUBLIC_URL (or FERRY_HOST/FERRY_PORT). Call it when the event is sent, and never return or log what it
 * gives: the URL is the gate's credential and must stay out of workflow history and logs. Throws when the key is
 * not configured.
 */
export function callbackUrl(ref: GateRef, env: NodeJS.ProcessEnv = process.env): string {
  const key = callbackKeyFromEnv(env);
  if (!key) {
    throw new Error(
      `${CALLBACK_KEY_ENV} is not set on this process: callback gates need the key the API checks their URLs with`,
    );
  }
  return callbackUrlFor(key, publicBaseUrl(env), ref);
}

/**
 * For `npm start`: the key in `<home>/callback.key` (mode 0600), created with 32 random bytes when missing, so the
 * API and the worker it starts share one key and callback URLs keep working across restarts.
 */
export function ensureCallbackKey(home: string): string {
  const file = path.join(home, 'callback.key');
  if (fs.existsSync(file)) {
    fs.chmodSync(file, 0o600);
    const existing = fs.readFileSync(file, 'utf8').trim();
    if (existing.length >= MIN_KEY_LENGTH) return existing;
  }
  const key = randomBytes(32).toString('base64url');
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, `${key}\n`, { mode: 0o600 });
  fs.chmodSync(temporary, 0o600);
  fs.renameSync(temporary, file);
  return key;
}
