// The CLI's only connection to Ferry: the HTTP API, found through FERRY_URL (or FERRY_HOST and FERRY_PORT, as
// `npm start` and the API read them), with the bearer token from FERRY_TOKEN or $FERRY_HOME/token.
import fs from 'node:fs';
import path from 'node:path';
import type { PromotionPhase, PromotionStatus } from '../workflows/messages';
import { localApiUrl } from '../client/api-url';
import { resolveFerryHome } from '../client/auth';
import type { FieldError } from '../client/errors';
import type { Io } from './io';
import { CliError } from './output';

const REQUEST_TIMEOUT_MS = 60_000;
/** While waiting, how long the API may be unreachable (a restart) before --wait gives up. */
const WAIT_OUTAGE_MS = 60_000;
const TERMINAL: readonly PromotionPhase[] = ['Succeeded', 'Failed', 'Rejected', 'Aborted'];

export interface Api {
  baseUrl: string;
  token?: string;
  tokenSource: string;
}

/** Where the API is when FERRY_URL is unset: FERRY_HOST and FERRY_PORT (client/api-url.ts). */
export const defaultApiUrl = (env: NodeJS.ProcessEnv): string => localApiUrl(env);

export function apiFromEnv(env: NodeJS.ProcessEnv, cwd: string): Api {
  const raw = (env.FERRY_URL || defaultApiUrl(env)).replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(
      env.FERRY_URL ? `FERRY_URL is not a URL: "${raw}"` : `FERRY_HOST and FERRY_PORT do not make a URL: "${raw}"`,
    );
  }
  // fetch refuses such URLs, and every error message would repeat the password; say so without echoing it.
  if (url.username !== '' || url.password !== '') {
    throw new CliError(
      'FERRY_URL must not contain a user name or password',
      [],
      'the API takes a bearer token: set FERRY_TOKEN',
    );
  }
  if (env.FERRY_TOKEN) return { baseUrl: raw, token: env.FERRY_TOKEN.trim(), tokenSource: 'FERRY_TOKEN' };
  const tokenFile = path.join(resolveFerryHome(env, cwd), 'token');
  let token: string | undefined;
  try {
    token = fs.readFileSync(tokenFile, 'utf8').trim() || undefined;
  } catch {
    token = undefined;
  }
  return { baseUrl: raw, token, tokenSource: token ? tokenFile : '' };
}

interface ApiErrorBody {
  error?: { code?: string; message?: string; errors?: FieldError[] };
}

export class ApiError extends CliError {
  constructor(
    readonly status: number,
    message: string,
    errors: FieldError[],
    hint?: string,
  ) {
    super(message, errors, hint);
  }
}

/** Errors a waiting CLI should ride out: the API restarting, Temporal away, or a proxy in front of it. */
const isTransient = (error: unknown): boolean =>
  (error instanceof ApiError && [502, 503, 504].includes(error.status)) ||
  (error instanceof CliError && error.message.startsWith('cannot reach'));

export async function call<T>(
  api: Api,
  method: 'GET' | 'PUT' | 'POST',
  urlPath: string,
  body?: { text: string; type: string },
): Promise<{ status: number; data: T }> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (api.token) headers.Authorization = `Bearer ${api.token}`;
  if (body) headers['Content-Type'] = body.type;
  let response: Response;
  try {
    response = await fetch(api.baseUrl + urlPath, {
      method,
      headers,
      body: body?.text,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
    throw new CliError(
      `cannot reach the Ferry API at ${api.baseUrl} (${reason})`,
      [],
      'is it running? `npm start` starts it; FERRY_URL (or FERRY_HOST and FERRY_PORT) says where it is',
    );
  }
  const text = await response.text();
  let data: unknown;
  try {
    data = text === '' ? undefined : JSON.parse(text);
  } catch {
    data = undefined;
  }
  if (!response.ok) {
    const detail = (data as ApiErrorBody | undefined)?.error;
    const message = detail?.message ?? `${method} ${urlPath}: HTTP ${response.status} ${response.statusText}`.trim();
    let hint: string | undefined;
    if (response.status === 401) {
      hint = api.token
        ? `the token from ${api.tokenSource} was refused; check FERRY_TOKEN or $FERRY_HOME/token`
        : 'no token: set FERRY_TOKEN, or run `npm start`, which writes one to .ferry/token';
    }
    throw new ApiError(response.status, message, Array.isArray(detail?.errors) ? detail.errors : [], hint);
  }
  if (data === undefined)
    throw new CliError(`${method} ${urlPath}: the API answered HTTP ${response.status} without JSON`);
  return { status: response.status, data: data as T };
}

export const jsonBody = (value: unknown) => ({ text: JSON.stringify(value), type: 'application/json' });
export const promotionPath = (id: string): string => `/api/v1/promotions/${encodeURIComponent(id)}`;

export interface WaitOptions {
  /** Called with every status read that differs from the one before (the first read always). */
  onChange(status: PromotionStatus, before: PromotionStatus | undefined): void;
  /** Gives up after this many milliseconds; without it, waits until the promotion ends. */
  timeoutMs?: number;
}

export type WaitResult =
  { timedOut: false; status: PromotionStatus } | { timedOut: true; status: PromotionStatus | undefined };

/**
 * Polls until the promotion reaches a terminal phase or the timeout passes. Quick at first and after every change,
 * slower while nothing happens; rides out the API being unreachable for up to a minute.
 */
export async function waitForPromotion(io: Io, api: Api, id: string, options: WaitOptions): Promise<WaitResult> {
  const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
  let last: PromotionStatus | undefined;
  let lastJson = '';
  let delay = 200;
  let unreachableSince: number | undefined;
  for (;;) {
    let status: PromotionStatus | undefined;
    try {
      status = (await call<PromotionStatus>(api, 'GET', promotionPath(id))).data;
      unreachableSince = undefined;
    } catch (error) {
      if (!isTransient(error)) throw error;
      if (unreachableSince === undefined) {
        unreachableSince = Date.now();
        io.err(`warning: ${(error as Error).message}; retrying`);
      } else if (Date.now() - unreachableSince > WAIT_OUTAGE_MS) {
        throw error;
      }
    }
    if (status) {
      const json = JSON.stringify(status);
      if (json !== lastJson) {
        options.onChange(status, last);
        last = status;
        lastJson = json;
        delay = 200;
      }
      if (TERMINAL.includes(status.phase)) return { timedOut: false, status };
    }
    const left = deadline === undefined ? Infinity : deadline - Date.now();
    if (left <= 0) return { timedOut: true, status: last };
    await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
    delay = Math.min(Math.round(delay * 1.5), 2000);
  }
}
