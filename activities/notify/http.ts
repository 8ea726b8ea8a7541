// The one HTTP call every notify target (and every pull-request provider, activities/pull-request) makes, and the
// one place that decides what an answer means: 2xx done; 408, 429, 5xx and network errors retried (after the
// receiver's Retry-After or rate-limit reset when it gives one); 401/403 and other 4xx non-retryable, because
// asking again cannot help. Messages name the subscriber and the target but never a secret: a Slack webhook URL is
// itself the secret, so callers pass a `where` that is safe to show.
import { ApplicationFailure } from '@temporalio/common';
import { activityContext } from '../context';

/** Failure types of a delivery attempt: retried unless marked non-retryable. */
export const DeliveryFailure = {
  Unreachable: 'DeliveryUnreachable',
  Refused: 'DeliveryRefused',
  Unauthorized: 'DeliveryUnauthorized',
  NotFound: 'DeliveryNotFound',
  RateLimited: 'DeliveryRateLimited',
  ServerError: 'DeliveryServerError',
} as const;

export interface HttpAnswer {
  status: number;
  headers: Headers;
  text: string;
}

export interface HttpCall {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH';
  url: string;
  headers: Record<string, string>;
  body?: string;
  /** Safe to show (no secret): "subscriber ci-hook (webhook https://ci.example.com/hook)". */
  where: string;
  timeoutMs: number;
  /** The failure type when there is no answer at all (default DeliveryUnreachable). */
  unreachableType?: string;
}

export async function httpCall(call: HttpCall): Promise<HttpAnswer> {
  const signals = [AbortSignal.timeout(call.timeoutMs)];
  const cancelled = activityContext()?.cancellationSignal;
  if (cancelled) signals.push(cancelled);
  try {
    const res = await fetch(call.url, {
      method: call.method,
      headers: call.headers,
      ...(call.body !== undefined ? { body: call.body } : {}),
      signal: AbortSignal.any(signals),
      redirect: 'manual',
    });
    return { status: res.status, headers: res.headers, text: await res.text() };
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    const what =
      err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')
        ? `no answer within ${call.timeoutMs} ms`
        : `${err instanceof Error ? err.message : String(err)}${cause}`;
    throw ApplicationFailure.retryable(
      `${call.where}: ${call.method} failed: ${what}`,
      call.unreachableType ?? DeliveryFailure.Unreachable,
    );
  }
}

/** Seconds the answer asks us to wait before the next attempt (Retry-After, or a rate limit's reset time). */
export function retryDelayMs(answer: HttpAnswer, nowMs = Date.now()): number | undefined {
  const after = answer.headers.get('retry-after');
  if (after !== null) {
    if (/^\d+$/.test(after.trim())) return Number(after.trim()) * 1000;
    const at = Date.parse(after);
    if (!Number.isNaN(at)) return Math.max(at - nowMs, 0);
  }
  if (answer.headers.get('x-ratelimit-remaining') === '0') {
    const reset = answer.headers.get('x-ratelimit-reset');
    if (reset !== null && /^\d+$/.test(reset)) return Math.max(Number(reset) * 1000 - nowMs, 0);
  }
  return undefined;
}

/** What an answer that is not a success means for the caller, and how long it asks to be left alone. */
export interface AnswerClass {
  kind: 'rate-limited' | 'server-error' | 'unauthorized' | 'not-found' | 'refused';
  /** Milliseconds to wait before the next attempt (Retry-After or the rate limit's reset), when the answer says. */
  wait?: number;
}

export function classifyAnswer(answer: HttpAnswer, nowMs = Date.now()): AnswerClass {
  const wait = retryDelayMs(answer, nowMs);
  const withWait = (kind: AnswerClass['kind']): AnswerClass => (wait !== undefined ? { kind, wait } : { kind });
  const rateLimited =
    answer.status === 429 ||
    (answer.status === 403 && (answer.headers.get('x-ratelimit-remaining') === '0' || wait !== undefined));
  if (rateLimited) return withWait('rate-limited');
  if (answer.status >= 500 || answer.status === 408) return withWait('server-error');
  if (answer.status === 401 || answer.status === 403) return { kind: 'unauthorized' };
  if (answer.status === 404 || answer.status === 410) return { kind: 'not-found' };
  return { kind: 'refused' };
}

/** Temporal's wait before retrying a rate-limited or failing call: at least a second, so a reset time that has
 * just passed is not retried in a tight loop. */
export function nextRetryDelayFor(wait: number | undefined): { nextRetryDelay: number } | Record<string, never> {
  return wait !== undefined ? { nextRetryDelay: Math.max(wait, 1000) } : {};
}

/** The failure for an answer that is not a success; `detail` is a short, secret-free excerpt of the answer. */
export function failureFor(
  call: Pick<HttpCall, 'method' | 'where'>,
  answer: HttpAnswer,
  detail: string,
): ApplicationFailure {
  const message = `${call.where}: ${call.method} answered ${answer.status}${detail ? ` (${detail})` : ''}`;
  const { kind, wait } = classifyAnswer(answer);
  switch (kind) {
    case 'rate-limited':
      return ApplicationFailure.create({
        message: `${message}; rate limited, retrying${wait !== undefined ? ` in ${Math.ceil(wait / 1000)}s` : ''}`,
        type: DeliveryFailure.RateLimited,
        ...nextRetryDelayFor(wait),
      });
    case 'server-error':
      return ApplicationFailure.create({ message, type: DeliveryFailure.ServerError, ...nextRetryDelayFor(wait) });
    case 'unauthorized':
      return ApplicationFailure.nonRetryable(
        `${message}: the credential was refused; check the subscriber's secret on the worker`,
        DeliveryFailure.Unauthorized,
      );
    case 'not-found':
      return ApplicationFailure.nonRetryable(
        `${message}: the target does not exist (or the credential cannot see it)`,
        DeliveryFailure.NotFound,
      );
    default:
      return ApplicationFailure.nonRetryable(message, DeliveryFailure.Refused);
  }
}

/** At most `max` characters of a receiver's answer, on one line, for an error message. */
export function excerpt(text: string, max = 200): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max)}…` : line;
}
