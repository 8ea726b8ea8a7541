// The http gate: poll a URL until it gives `successes` passing answers in a row, or fail with GateTimedOut and
// the last answer seen. One heartbeating activity does the whole wait (promotion.ts says why): each poll and each
// pause stays well inside the heartbeat timeout, the heartbeat carries the clock and the count so a retried attempt
// (a worker that died) keeps the gate's deadline, and cancellation (an abort) arrives with the next heartbeat and
// stops the pause or the request at once. Whether an answer passes is judgeAnswer's, a pure function.
import { ApplicationFailure } from '@temporalio/common';
import { parseJsonPath, valueAtJsonPath } from '../../pipeline/json-path';
import { Reason } from '../../pipeline/reasons';
import type { HttpGateSpec } from '../../pipeline/schema';
import { activityContext, heartbeatIfActivity } from '../context';
import type { SecretResolver } from '../secrets';
import { pause } from '../pause';

export interface HttpGateInput {
  pipeline: string;
  stage: string;
  promotionId: string;
  gate: string;
  http: HttpGateSpec;
}

export interface HttpGateResult {
  /** Answers read (or polls that got none), in all attempts of the activity. */
  attempts: number;
  /** Passing answers in a row at the end (= the gate's `successes`). */
  consecutive: number;
  /** The last answer, in words: `HTTP 200, $.status = "ok"`. */
  last: string;
  waitedMs: number;
}

export interface GateActivitiesOptions {
  secrets: SecretResolver;
  /** Timeout of each poll (default 5 s); keep it well below the activity's heartbeat timeout (10 s). */
  requestTimeoutMs?: number;
}

/** How much of an answer's body is read: enough for any status document, bounded against a huge one. */
const MAX_BODY_BYTES = 256 * 1024;
/** How much of a failing answer's body is quoted in the gate's message. */
const BODY_EXCERPT = 160;

export function durationToMs(text: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!match) throw ApplicationFailure.nonRetryable(`invalid duration "${text}"`, 'InvalidArgument');
  return Number(match[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
}

/** Whether one answer passes the gate's `expect`, and the answer in words for the status. */
export function judgeAnswer(
  expect: HttpGateSpec['expect'],
  answer: { status: number; body: string },
): { pass: boolean; summary: string } {
  const excerpt = (): string => {
    const text = answer.body.replace(/\s+/g, ' ').trim();
    if (text === '') return '';
    return `: ${text.length > BODY_EXCERPT ? `${text.slice(0, BODY_EXCERPT)}…` : text}`;
  };
  if (answer.status !== expect.status) {
    return { pass: false, summary: `HTTP ${answer.status} (expected ${expect.status})${excerpt()}` };
  }
  if (expect.jsonPath === undefined) return { pass: true, summary: `HTTP ${answer.status}` };
  const parsed = parseJsonPath(expect.jsonPath);
  if ('problem' in parsed) return { pass: false, summary: `jsonPath ${expect.jsonPath} ${parsed.problem}` };
  let document: unknown;
  try {
    document = JSON.parse(answer.body);
  } catch {
    return { pass: false, summary: `HTTP ${answer.status}, the body is not JSON${excerpt()}` };
  }
  const found = valueAtJsonPath(document, parsed.segments);
  if (!found.found) return { pass: false, summary: `HTTP ${answer.status}, ${expect.jsonPath} is not in the body` };
  const shown = JSON.stringify(found.value) ?? String(found.value);
  if (found.value !== expect.equals) {
    return {
      pass: false,
      summary: `HTTP ${answer.status}, ${expect.jsonPath} = ${shown.slice(0, BODY_EXCERPT)} (expected ${JSON.stringify(expect.equals)})`,
    };
  }
  return { pass: true, summary: `HTTP ${answer.status}, ${expect.jsonPath} = ${shown}` };
}

/** How long one slice of a pause between polls may be: a heartbeat goes out between slices. */
const PAUSE_SLICE_MS = 1_000;

/**
 * Waits `ms` (an interval may be far longer than the heartbeat timeout) in slices with a heartbeat between them,
 * and rejects with the cancellation's reason as soon as the signal aborts.
 */
async function pauseWithHeartbeats(ms: number, signal: AbortSignal | undefined, details: unknown): Promise<void> {
  const until = Date.now() + ms;
  for (let left = ms; left > 0; left = until - Date.now()) {
    heartbeatIfActivity(details);
    await pause(Math.min(left, PAUSE_SLICE_MS), signal);
  }
}

async function readBounded(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= MAX_BODY_BYTES) {
      await reader.cancel();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8');
}

interface Progress {
  startedAt: number;
  attempts: number;
  consecutive: number;
  last: string;
}

/** The heartbeat of the attempt before, when this is a retry: the gate's clock and count go on from there. */
function previousProgress(): Partial<Progress> | undefined {
  const details: unknown = activityContext()?.info.heartbeatDetails;
  return typeof details === 'object' && details !== null ? (details as Partial<Progress>) : undefined;
}

export function createGateActivities(options: GateActivitiesOptions) {
  const { secrets } = options;
  const requestTimeoutMs = options.requestTimeoutMs ?? 5_000;

  function authorization(input: HttpGateInput): string | undefined {
    const name = input.http.credentials;
    if (!name) return undefined;
    const credential = secrets.resolve(name);
    if (credential.token) return `Bearer ${credential.token}`;
    if (credential.username !== undefined && credential.password !== undefined) {
      return `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`;
    }
    throw ApplicationFailure.nonRetryable(
      `gate ${input.gate} of stage ${input.stage}: credential "${name}" has neither a token nor a username and ` +
        'password to send',
      'CredentialNotFound',
    );
  }

  async function pollHttpGate(input: HttpGateInput): Promise<HttpGateResult> {
    const { http } = input;
    const timeoutMs = durationToMs(http.timeout);
    const intervalMs = durationToMs(http.interval);
    const previous = previousProgress();
    const progress: Progress = {
      startedAt: typeof previous?.startedAt === 'number' ? previous.startedAt : Date.now(),
      attempts: typeof previous?.attempts === 'number' ? previous.attempts : 0,
      // Answers in a row must be in a row: a gap of unknown length (the worker died) starts the count again.
      consecutive: 0,
      last: typeof previous?.last === 'string' ? previous.last : 'no answer yet',
    };
    const deadline = progress.startedAt + timeoutMs;
    const signal = activityContext()?.cancellationSignal;
    const auth = authorization(input);
    const target = `${http.method} ${http.url}`;

    for (;;) {
      heartbeatIfActivity(progress);
      let summary: string;
      let pass = false;
      try {
        const response = await fetch(http.url, {
          method: http.method,
          headers: { Accept: 'application/json', ...(auth ? { Authorization: auth } : {}) },
          redirect: 'manual',
          signal: signal
            ? AbortSignal.any([signal, AbortSignal.timeout(requestTimeoutMs)])
            : AbortSignal.timeout(requestTimeoutMs),
        });
        const body = http.method === 'HEAD' ? '' : await readBounded(response);
        ({ pass, summary } = judgeAnswer(http.expect, { status: response.status, body }));
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        const why =
          err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')
            ? `within ${requestTimeoutMs / 1000}s`
            : (cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err)));
        summary = `no answer (${why})`;
      }
      progress.attempts += 1;
      progress.consecutive = pass ? progress.consecutive + 1 : 0;
      progress.last = secrets.redact(summary);
      if (progress.consecutive >= http.successes) {
        return {
          attempts: progress.attempts,
          consecutive: progress.consecutive,
          last: progress.last,
          waitedMs: Date.now() - progress.startedAt,
        };
      }
      const now = Date.now();
      if (now >= deadline) {
        const needed = http.successes === 1 ? 'pass' : `pass ${http.successes} times in a row`;
        throw ApplicationFailure.create({
          message:
            `gate ${input.gate}: ${target} did not ${needed} within ${http.timeout} ` +
            `(${progress.attempts} answer${progress.attempts === 1 ? '' : 's'}; last: ${progress.last})`,
          type: Reason.GateTimedOut,
          nonRetryable: true,
          details: [{ attempts: progress.attempts, consecutive: progress.consecutive, last: progress.last }],
        });
      }
      await pauseWithHeartbeats(Math.min(intervalMs, deadline - now), signal, progress);
    }
  }

  return { pollHttpGate };
}
