// The promotion's core: its status and the rules that change it, as plain functions with no Temporal wiring
// (promotion.ts calls them from its handlers and steps; test/unit/promotion-core.test.ts tests them without a
// server). Sections: the status and its steps · the approval rules (who may approve, reject, abort, and when a
// decision is final) · failures (message and reason).
import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  TemporalFailure,
  TimeoutFailure,
} from '@temporalio/common';
import { AUTO_PROMOTER } from '../pipeline/ids';
import { Reason } from '../pipeline/reasons';
import {
  RefusalType,
  refusal,
  TERMINAL_PHASES,
  type Approval,
  type Decision,
  type PromotionInput,
  type PromotionPhase,
  type PromotionStatus,
  type PromotionStep,
  type Role,
  type StepName,
} from './messages';

// ---------------------------------------------------------------------------------------------------------------
// The status and its steps

/** The steps a promotion into this stage goes through, in order. */
export function stepsOf(stage: PromotionInput['stage'], withPreflight: boolean): StepName[] {
  return [
    ...(stage.approval ? (['approval'] as const) : []),
    'queue',
    ...(withPreflight ? (['preflight'] as const) : []),
    'render',
    ...(stage.argocd ? (['sync', 'health'] as const) : []),
  ];
}

export function newPromotionStatus(
  input: PromotionInput,
  id: string,
  startedAt: string,
  withPreflight: boolean,
): PromotionStatus {
  const { stage } = input;
  return {
    id,
    pipeline: input.pipeline,
    stage: stage.name,
    freight: input.freight,
    phase: 'Pending',
    steps: stepsOf(stage, withPreflight).map((name): PromotionStep => ({ name, status: 'Pending' })),
    ...(stage.approval
      ? {
          approval: {
            required: stage.approval.required,
            approvers: stage.approval.approvers,
            // Only when it differs from the default, so statuses of stages that do not use it read as before.
            ...(stage.approval.allowSelfApproval === false ? { allowSelfApproval: false } : {}),
          },
        }
      : {}),
    approvals: [],
    requestedBy: input.requestedBy,
    startedAt,
  };
}

export function findStep(status: PromotionStatus, name: StepName): PromotionStep {
  const found = status.steps.find((s) => s.name === name);
  if (!found) throw new Error(`promotion ${status.id} has no step ${name}`); // steps are derived from the stage
  return found;
}

export function startStep(status: PromotionStatus, name: StepName, at: string, message?: string): void {
  const step = findStep(status, name);
  step.status = 'Running';
  step.startedAt = at;
  if (message) step.message = message;
}

export function endStep(
  status: PromotionStatus,
  name: StepName,
  result: 'Succeeded' | 'Failed' | 'Cancelled' | 'Skipped',
  at: string,
  message?: string,
  reason?: string,
): void {
  const step = findStep(status, name);
  step.status = result;
  step.finishedAt = at;
  if (message !== undefined) step.message = message;
  if (reason !== undefined) step.reason = reason;
}

/**
 * Ends the promotion's status after its steps stopped with `err` (or without, on success): the terminal phase,
 * the error and its reason, the running step's outcome. Pending steps become Skipped.
 */
export function settle(status: PromotionStatus, err: unknown, cancelled: boolean, at: string): PromotionPhase {
  const running = status.steps.find((s) => s.status === 'Running');
  let phase: PromotionPhase;
  if (err === undefined) {
    phase = 'Succeeded';
  } else if (status.rejectedBy) {
    status.error = `rejected by ${status.rejectedBy.user}${status.rejectedBy.comment ? `: ${status.rejectedBy.comment}` : ''}`;
    status.reason = Reason.Rejected;
    if (running) endStep(status, running.name, 'Failed', at, status.error, status.reason);
    phase = 'Rejected';
  } else if (status.abortedBy || cancelled) {
    const by = status.abortedBy ? `aborted by ${status.abortedBy.user}` : 'cancelled';
    status.error = `${by}${status.abortedBy?.comment ? `: ${status.abortedBy.comment}` : ''}`;
    status.reason = status.abortedBy ? Reason.Aborted : Reason.Cancelled;
    if (running) endStep(status, running.name, 'Cancelled', at, status.error, status.reason);
    phase = 'Aborted';
  } else {
    status.error = failureMessage(err);
    status.reason = failureReason(err);
    if (running) endStep(status, running.name, 'Failed', at, status.error, status.reason);
    phase = 'Failed';
  }
  for (const s of status.steps) if (s.status === 'Pending') s.status = 'Skipped';
  return phase;
}

// ---------------------------------------------------------------------------------------------------------------
// The approval rules
//
// A promotion into a stage with `approval` waits at its gate until `required` distinct approvers approved. A
// decision that ends the gate is final: once it was rejected, aborted, or got its approvals, every later approve
// or reject is refused (409) naming the decision already taken, so of two racing decisions exactly one is
// accepted and the record never contradicts the outcome.
//
// Who may approve or reject: a user on the stage's `approval.approvers` who, when the decision carries roles
// (Decision.roles, filled by the HTTP API), holds role approver on the stage (admin includes it). With
// `approval.allowSelfApproval: false`, the user who requested the promotion may not approve it (rejecting stays
// allowed).
//
// Who may abort, in roles: an admin; an approver of the stage (role approver, and on `approval.approvers` when the
// stage has a gate); the promotion's requester with role promoter (unless the system requested it: an automatic
// promotion). Decisions without roles (recorded before roles existed) keep the rule they were taken under: the
// requester, the stage's approvers, and admins (Decision.admin). Abort works at any step until the promotion ends.

/** The decision that already ended the promotion or its approval gate, in words; undefined while it is open. */
export function decisionTaken(status: PromotionStatus, ending?: PromotionPhase): string | undefined {
  if (status.rejectedBy) return `it was rejected by ${status.rejectedBy.user}`;
  if (status.abortedBy) return `it was aborted by ${status.abortedBy.user}`;
  const phase = ending ?? status.phase;
  if (TERMINAL_PHASES.includes(phase)) return `it has already finished (phase: ${phase})`;
  const required = status.approval?.required;
  if (required !== undefined && status.approvals.length >= required) {
    return `its approval gate is closed: approved by ${status.approvals.map((a) => a.user).join(', ')}`;
  }
  return undefined;
}

const holds = (decision: Decision, role: Role): boolean =>
  decision.roles === undefined ? false : decision.roles.includes(role) || decision.roles.includes('admin');

/** Why an approval (or, with `reject`, a rejection) is refused, or undefined when it is allowed. */
export function approvalRefusal(
  status: PromotionStatus,
  decision: Decision,
  action: 'approve' | 'reject' = 'approve',
  ending?: PromotionPhase,
): ApplicationFailure | undefined {
  if (!status.approval) {
    const hint = action === 'reject' ? '; use abort to stop it' : '';
    return refusal(
      RefusalType.Conflict,
      `promotion ${status.id} has no approval gate: stage "${status.stage}" needs no approval${hint}`,
    );
  }
  const taken = decisionTaken(status, ending);
  if (taken) {
    const hint =
      action === 'reject' && !TERMINAL_PHASES.includes(ending ?? status.phase) ? '; use abort to stop it' : '';
    return refusal(RefusalType.Conflict, `promotion ${status.id} cannot be ${action}d: ${taken}${hint}`);
  }
  if (decision.roles !== undefined && !holds(decision, 'approver')) {
    return refusal(
      RefusalType.Forbidden,
      `user "${decision.user}" needs role approver on ${status.pipeline}/${status.stage} to ${action} promotion ${status.id}`,
    );
  }
  const approvers = status.approval.approvers;
  if (!approvers.includes(decision.user)) {
    const may = action === 'reject' ? ' and may not reject' : '';
    return refusal(
      RefusalType.Forbidden,
      `user "${decision.user}" is not an approver of stage "${status.stage}"${may} (approvers: ${approvers.join(', ')})`,
    );
  }
  if (action === 'approve' && status.approval.allowSelfApproval === false && decision.user === status.requestedBy) {
    return refusal(
      RefusalType.Forbidden,
      `user "${decision.user}" requested promotion ${status.id} and may not approve it: stage "${status.stage}" ` +
        'forbids approving your own promotion (approval.allowSelfApproval: false); another approver must approve',
    );
  }
  if (action === 'approve' && status.approvals.some((a) => a.user === decision.user)) {
    return refusal(RefusalType.Conflict, `user "${decision.user}" already approved promotion ${status.id}`);
  }
  return undefined;
}

/** Who may abort this promotion, in words (for the Forbidden refusal and the docs). */
export function whoMayAbort(status: PromotionStatus, withRoles = false): string {
  const who: string[] = [];
  if (status.requestedBy !== AUTO_PROMOTER) {
    who.push(`its requester (${status.requestedBy})${withRoles ? ' with role promoter' : ''}`);
  }
  const approvers = status.approval?.approvers ?? [];
  if (approvers.length > 0) {
    who.push(
      `the approvers of stage "${status.stage}" (${approvers.join(', ')})${withRoles ? ' with role approver' : ''}`,
    );
  } else if (withRoles) {
    who.push(`a user with role approver on ${status.pipeline}/${status.stage}`);
  }
  who.push('an admin');
  return who.length === 1 ? who[0] : `${who.slice(0, -1).join(', ')} or ${who[who.length - 1]}`;
}

/** Why an abort is refused, or undefined when it is allowed. */
export function abortRefusal(
  status: PromotionStatus,
  decision: Decision,
  ending?: PromotionPhase,
): ApplicationFailure | undefined {
  const approvers = status.approval?.approvers;
  const isRequester = decision.user === status.requestedBy && status.requestedBy !== AUTO_PROMOTER;
  const allowed =
    decision.roles === undefined
      ? decision.admin === true || isRequester || (approvers ?? []).includes(decision.user)
      : holds(decision, 'admin') ||
        (holds(decision, 'approver') && (approvers === undefined || approvers.includes(decision.user))) ||
        (holds(decision, 'promoter') && isRequester);
  if (!allowed) {
    return refusal(
      RefusalType.Forbidden,
      `user "${decision.user}" may not abort promotion ${status.id}: only ${whoMayAbort(status, decision.roles !== undefined)} may`,
    );
  }
  if (status.rejectedBy || status.abortedBy || ending || TERMINAL_PHASES.includes(status.phase)) {
    return refusal(
      RefusalType.Conflict,
      `promotion ${status.id} cannot be aborted: ${decisionTaken(status, ending) ?? 'it is ending'}`,
    );
  }
  return undefined;
}

/** Who decided, when, and why: the record kept for approvals, rejections and aborts. */
export function recordOf(decision: Decision, at: string): Approval {
  return { user: decision.user, at, ...(decision.comment ? { comment: decision.comment } : {}) };
}

// ---------------------------------------------------------------------------------------------------------------
// Failures

/** The innermost failure: an activity's or child's failure is only a wrapper around what really went wrong. */
function rootCause(err: unknown): unknown {
  let current = err;
  // Bounded: a failure chain longer than this is not one Temporal builds.
  for (let depth = 0; depth < 20; depth++) {
    if (!(current instanceof ActivityFailure || current instanceof ChildWorkflowFailure)) return current;
    if (current.cause === undefined || current.cause === current) return current;
    current = current.cause;
  }
  return current;
}

/** The human message of a failure: the innermost cause's message, never the wrapper's. */
export function failureMessage(err: unknown): string {
  const cause = rootCause(err);
  if (cause instanceof TemporalFailure || cause instanceof Error) return cause.message;
  return String(cause);
}

/** The machine-readable reason of a failure: the ApplicationFailure's type, or what kind of failure it was. */
export function failureReason(err: unknown): string {
  const cause = rootCause(err);
  if (cause instanceof ApplicationFailure && cause.type) return cause.type;
  if (cause instanceof TimeoutFailure) return Reason.Timeout;
  return Reason.Failed;
}
