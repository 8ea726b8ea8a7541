// Keyword search attributes on every Ferry workflow, so `FerryStage = "prod" AND FerryPhase = "AwaitingApproval"`
// works in the Temporal UI and CLI. The dev server registers them at start (dev/temporal.ts).
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const FerryPipeline = defineSearchAttributeKey('FerryPipeline', SearchAttributeType.KEYWORD);
export const FerryStage = defineSearchAttributeKey('FerryStage', SearchAttributeType.KEYWORD);
export const FerryFreight = defineSearchAttributeKey('FerryFreight', SearchAttributeType.KEYWORD);
export const FerryPhase = defineSearchAttributeKey('FerryPhase', SearchAttributeType.KEYWORD);

/**
 * Set by a promotion that waits on a pull request (pipeline/ids.ts `pullRequestKey`, e.g. `github:org/gitops#12`),
 * so the webhook for that pull request's merge finds it.
 */
export const FerryPullRequest = defineSearchAttributeKey('FerryPullRequest', SearchAttributeType.KEYWORD);

export const FERRY_SEARCH_ATTRIBUTES = [FerryPipeline, FerryStage, FerryFreight, FerryPhase, FerryPullRequest];
