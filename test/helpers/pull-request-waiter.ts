// A workflow that waits on a pull request the way the pull-request strategy's promotions will: it marks itself with
// the FerryPullRequest search attribute and waits for the pullRequestMerged signal (the contract the webhooks
// fulfil). Used by test/e2e/webhooks.test.ts as a real workflow on a real server.
import { condition, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { pullRequestMergedSignal, type PullRequestMerged } from '../../workflows/messages';
import { FerryPullRequest } from '../../workflows/search-attributes';

export async function waitForPullRequestMerge(input: { pullRequest: string }): Promise<PullRequestMerged> {
  let merged: PullRequestMerged | undefined;
  // A redelivered webhook signals again: the first merge is the one that counts.
  setHandler(pullRequestMergedSignal, (merge) => {
    merged ??= merge;
  });
  upsertSearchAttributes([{ key: FerryPullRequest, value: input.pullRequest }]);
  await condition(() => merged !== undefined);
  return merged!;
}
