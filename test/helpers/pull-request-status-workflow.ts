// A workflow that asks for a pull request's state through the real activity with a fast retry policy, so a test
// on a real server can see how Temporal retries it: any wait longer than the policy's 50 ms between two attempts
// came from the activity's own `nextRetryDelay` (the host's Retry-After). Bundled by a test worker.
import { proxyActivities } from '@temporalio/workflow';
import type {
  createPullRequestActivities,
  PullRequestStatusInput,
  PullRequestStatusResult,
} from '../../activities/pull-request';

const { pullRequestStatus } = proxyActivities<
  Pick<ReturnType<typeof createPullRequestActivities>, 'pullRequestStatus'>
>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '50ms', backoffCoefficient: 1, maximumAttempts: 5 },
});

export async function readPullRequestStatus(input: PullRequestStatusInput): Promise<PullRequestStatusResult> {
  return pullRequestStatus(input);
}
