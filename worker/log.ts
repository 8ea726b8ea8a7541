// The worker's log lines. Ferry's activities fail with ApplicationFailures whose message already says what is wrong
// and what to do (a wrong token, a refused push): those are one line in the log, not a stack trace. Anything else
// (a bug, an unexpected error) keeps its stack. Task tokens never reach the log: they are a handle on the activity.
import { inspect } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import type { LogEntry } from '@temporalio/worker';

/** Fields of the SDK's activity log attributes left out of every line. */
const DROPPED = new Set(['taskToken']);

function timestamp(entry: LogEntry): string {
  return new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
}

/** One log entry as the text the worker writes (without the trailing newline). */
export function formatLogEntry(entry: LogEntry): string {
  const meta = Object.fromEntries(Object.entries(entry.meta ?? {}).filter(([key]) => !DROPPED.has(key)));
  const head = `${timestamp(entry)} [${entry.level}] ${entry.message}`;
  const error = meta.error;
  if (error instanceof ApplicationFailure) {
    const what = [
      typeof meta.activityType === 'string' ? meta.activityType : undefined,
      typeof meta.workflowId === 'string' ? `in ${meta.workflowId}` : undefined,
      typeof meta.attempt === 'number' ? `attempt ${meta.attempt}` : undefined,
    ].filter((part) => part !== undefined);
    const retry = error.nonRetryable ? 'not retried' : 'will retry';
    return `${head}: ${what.join(', ')}${what.length > 0 ? ': ' : ''}${error.type ?? 'Error'} (${retry}): ${error.message.replace(/\s*\n\s*/g, ' ')}`;
  }
  if (Object.keys(meta).length === 0) return head;
  return `${head} ${inspect(meta, { depth: 4, breakLength: Infinity })}`;
}

export function writeLogEntry(entry: LogEntry): void {
  process.stderr.write(`${formatLogEntry(entry)}\n`);
}
