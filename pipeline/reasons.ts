// Machine-readable reasons: every human `error` in a promotion's status, its steps and a stage's history has one
// of these beside it, so clients and events can branch on what happened without parsing the message (as Argo CD
// and Flux conditions carry a reason next to their message). Dependency-free, so workflow code may import it.
//
// A failed activity's reason is the `type` of the ApplicationFailure it threw (e.g. the preflight's check that
// failed), so the list below is open: these are the reasons the workflows themselves give.
export const Reason = {
  /** An approver rejected the promotion at its approval gate. */
  Rejected: 'Rejected',
  /** Someone allowed to aborted the promotion. */
  Aborted: 'Aborted',
  /** The workflow was cancelled from outside Ferry (Temporal UI or CLI). */
  Cancelled: 'Cancelled',
  /** The workflow was terminated or timed out from outside Ferry; it could not report itself. */
  EndedOutside: 'EndedOutside',
  /** A step failed with an error that carries no type of its own. */
  Failed: 'Failed',
  /** A step's activity ran out of time (start-to-close, heartbeat or schedule-to-close). */
  Timeout: 'Timeout',
  /** A gate's external system posted `fail` (the promotion's error carries its reason), or an http gate's check failed. */
  GateFailed: 'GateFailed',
  /** A gate got no result (callback) or not enough passing answers in a row (http) within its timeout. */
  GateTimedOut: 'GateTimedOut',
  /** The promotion's pull request was closed on the host without being merged. */
  PullRequestClosed: 'PullRequestClosed',
  /** The promotion's pull request was still open when `pullRequest.timeout` ran out. */
  PullRequestTimedOut: 'PullRequestTimedOut',
  /** With `approvalOnHost`: the pull request was merged with fewer approving reviews by approvers than required. */
  PullRequestNotApproved: 'PullRequestNotApproved',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];
