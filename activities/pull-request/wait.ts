// Waiting for a pull request to be merged or closed, inside one heartbeating activity: a promotion may wait days,
// and a workflow loop of one status activity and one timer per poll would fill its history with thousands of
// events. The activity keeps its count in its heartbeat (a retry after a worker crash goes on from there) and stops
// within a heartbeat of a cancellation, which is how the workflow ends the wait when a webhook says "merged".
import { ApplicationFailure } from '@temporalio/common';
import { activityContext, heartbeatIfActivity } from '../context';
import { pause } from '../pause';
import type { PullRequestStatusInput } from './activities';
import type { PullRequestState } from './types';

export interface WaitForPullRequestInput extends PullRequestStatusInput {
  /** How long between two looks (the stage's pullRequest.pollInterval), in milliseconds. */
  pollIntervalMs: number;
  /** When to stop looking and answer with the state as it is (ISO time: the stage's pullRequest.timeout). */
  deadline: string;
}

export interface WaitForPullRequestResult extends PullRequestState {
  /** How many times the host was asked, over every attempt of this activity. */
  polls: number;
}

/** Heartbeats go out at least this often while waiting (well inside the workflow's heartbeat timeout). */
const SLICE_MS = 5_000;

export function createPullRequestWait(statusOf: (input: PullRequestStatusInput) => Promise<PullRequestState>) {
  async function waitForPullRequest(input: WaitForPullRequestInput): Promise<WaitForPullRequestResult> {
    const signal = activityContext()?.cancellationSignal;
    const previous = activityContext()?.info.heartbeatDetails as { polls?: number } | undefined;
    let polls = typeof previous?.polls === 'number' ? previous.polls : 0;
    const deadline = Date.parse(input.deadline);
    let lastError: string | undefined;
    for (;;) {
      let state: PullRequestState | undefined;
      try {
        state = await statusOf(input);
        lastError = undefined;
      } catch (err) {
        // A host that fails for a while (5xx, rate limit, network) is asked again at the next look; a refusal that
        // asking again cannot change (a revoked token, a deleted repository) ends the wait.
        if (err instanceof ApplicationFailure && err.nonRetryable) throw err;
        lastError = err instanceof Error ? err.message : String(err);
      }
      polls++;
      if (state && state.state !== 'open') return { ...state, polls };
      const now = Date.now();
      if (now >= deadline) {
        if (state) return { ...state, polls };
        throw ApplicationFailure.retryable(
          `the host did not answer before the deadline: ${lastError}`,
          'PullRequestHostUnreachable',
        );
      }
      const next = Math.min(now + input.pollIntervalMs, deadline);
      for (let left = next - Date.now(); left > 0; left = next - Date.now()) {
        heartbeatIfActivity({ polls, state: state?.state ?? 'unknown', ...(lastError ? { lastError } : {}) });
        await pause(Math.min(left, SLICE_MS), signal);
      }
    }
  }
  return { waitForPullRequest };
}
