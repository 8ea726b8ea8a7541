// The worker's log lines: an expected activity failure is one line without a task token; an unexpected error keeps
// its stack.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import type { LogEntry } from '@temporalio/worker';
import { formatLogEntry } from '../../worker/log';

/** The metadata the SDK attaches to "Activity failed" (activity log attributes, then error and duration). */
function activityFailed(error: unknown): LogEntry {
  return {
    level: 'WARN',
    message: 'Activity failed',
    timestampNanos: 1_764_300_000_000_000_000n,
    meta: {
      isLocal: false,
      attempt: 1,
      namespace: 'default',
      taskToken: 'CiQ5ZjE4YzNlNi1hYmNkLTQ0ZWYtOTk5OS0xMjM0NTY3ODkwYWISBXByb21vdGlvbi9ndWVzdGJvb2svZGV2',
      activityId: '3',
      activityType: 'preflightPromotion',
      taskQueue: 'ferry',
      workflowId: 'promotion/guestbook/dev/3f9a2c',
      workflowRunId: 'run-1',
      workflowType: 'promotionWorkflow',
      error,
      durationMs: 12,
    },
  };
}

describe('worker log', () => {
  test('a non-retryable ApplicationFailure is one line naming the activity, workflow, reason code and message', () => {
    const failure = ApplicationFailure.nonRetryable(
      'stage dev: argocd app "guestbook-dev" at https://argocd.example.com: reading the app: invalid session (HTTP 401); check the token in credential "argocd"',
      'ArgoCdUnauthorized',
    );
    const line = formatLogEntry(activityFailed(failure));
    assert.equal(
      line,
      '2025-11-28T03:20:00.000Z [WARN] Activity failed: preflightPromotion, in promotion/guestbook/dev/3f9a2c, attempt 1: ' +
        'ArgoCdUnauthorized (not retried): stage dev: argocd app "guestbook-dev" at https://argocd.example.com: reading ' +
        'the app: invalid session (HTTP 401); check the token in credential "argocd"',
    );
    assert.ok(!line.includes('\n'));
  });

  test('a retryable ApplicationFailure is one line too, saying it will be retried', () => {
    const line = formatLogEntry(
      activityFailed(ApplicationFailure.retryable('git fetch: network error', 'GitNetworkError')),
    );
    assert.match(line, /attempt 1: GitNetworkError \(will retry\): git fetch: network error$/);
  });

  test('an unexpected error keeps its stack; no line carries the task token', () => {
    const line = formatLogEntry(activityFailed(new TypeError("Cannot read properties of undefined (reading 'sha')")));
    assert.match(line, /TypeError: Cannot read properties of undefined/);
    assert.match(line, /\n\s+at /, 'the stack is kept');
    assert.ok(!line.includes('CiQ5ZjE4'), 'no task token');
    assert.match(line, /activityType: 'preflightPromotion'/);
  });
});
