// The promotion's core: its status and the rules that change it, as plain functions with no Temporal wiring
// (promotion.ts calls them from its handlers and steps; test/unit/promotion-core.test.ts tests them without a
// server). Sections: the status and its steps · the approval rules (who may approve, reject, abort, and when a
// decision is final) · gates (their status and the callback's one-time rule) · failures (message and reason).
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
  type GateDecision,
  type GateStatus,
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
export function stepsOf(stage: PromotionInput['stage'], withPreflight: boolean, withGates = false): StepName[] {
  const pullRequest = stage.render.strategy === 'pull-request';
  // With approvalOnHost, the approvals are the pull request's reviews, counted once it is merged.
  const approvalFirst = stage.approval && !(pullRequest && stage.render.pullRequest?.approvalOnHost);
  return [
    ...(approvalFirst ? (['approval'] as const) : []),
    'queue',
    ...(withPreflight ? (['preflight'] as const) : []),
    'render',
    ...(pullRequest ? (['pull-request', 'merge'] as const) : []),
    ...(stage.argocd ? (['sync', 'health'] as const) : []),
    ...(withGates && hasGates(stage) ? (['gates'] as const) : []),
  ];
}

export function newPromotionStatus(
  input: PromotionInput,
  id: string,
  startedAt: string,
  withPreflight: boolean,
  withGates = false,
): PromotionStatus {
  const { stage } = input;
  const gates = withGates && hasGates(stage) ? { gates: stage.gates.map(newGateStatus) } : {};
  return {
    id,
    pipeline: input.pipeline,
    stage: stage.name,
    freight: input.freight,
    phase: 'Pending',
    steps: stepsOf(stage, withPreflight, withGates).map((name): PromotionStep => ({ name, status: 'Pending' })),
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
    ...gates,
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
  settleGates(status, phase, at);
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
// Gates
//
// A stage's gates run in order after health (or after the git write without Argo CD). A callback gate is decided
// by one Update, `decideGate`, which the HTTP API sends after checking the gate's one-time token: only a waiting
// gate takes it, so a second callback (or one for a gate that is not waiting yet) is refused as a Conflict and the
// callback URL works once.

type StageSpec = PromotionInput['stage'];

function hasGates(stage: StageSpec): stage is StageSpec & { gates: NonNullable<StageSpec['gates']> } {
  return (stage.gates?.length ?? 0) > 0;
}

function newGateStatus(gate: NonNullable<StageSpec['gates']>[number]): GateStatus {
  return { name: gate.name, type: gate.http ? 'http' : 'callback', phase: 'Pending' };
}

export function findGate(status: PromotionStatus, name: string): GateStatus | undefined {
  return status.gates?.find((g) => g.name === name);
}

/** What decided a gate, in words, for step messages and refusals: `passed (callback by ci-e2e): all green`. */
export function gateOutcome(gate: GateStatus, withTime = false): string {
  const verb = { Passed: 'passed', Failed: 'failed', TimedOut: 'timed out', Cancelled: 'was cancelled' }[
    gate.phase as 'Passed' | 'Failed' | 'TimedOut' | 'Cancelled'
  ];
  if (!verb) return gate.phase.toLowerCase();
  const by = gate.decidedBy && gate.phase !== 'TimedOut' ? ` (${gate.decidedBy})` : '';
  return `${verb}${by}${withTime && gate.at ? ` at ${gate.at}` : ''}${gate.message ? `: ${gate.message}` : ''}`;
}

/** Why a callback gate's result is refused, or undefined when the gate takes it. */
export function gateDecisionRefusal(
  status: PromotionStatus,
  decision: GateDecision,
  ending?: PromotionPhase,
): ApplicationFailure | undefined {
  const gate = findGate(status, decision.gate);
  if (!gate) {
    const names = (status.gates ?? []).map((g) => g.name);
    return refusal(
      RefusalType.NotFound,
      `promotion ${status.id} has no gate "${decision.gate}"${names.length > 0 ? ` (gates: ${names.join(', ')})` : ''}`,
    );
  }
  if (gate.type !== 'callback') {
    return refusal(
      RefusalType.Conflict,
      `gate "${gate.name}" of promotion ${status.id} is an ${gate.type} gate: Ferry decides it by polling`,
    );
  }
  if (gate.phase === 'Waiting' && !ending && !status.abortedBy) return undefined;
  if (gate.phase === 'Pending' && !ending && !status.abortedBy) {
    return refusal(
      RefusalType.Conflict,
      `gate "${gate.name}" of promotion ${status.id} is not waiting yet (promotion phase: ${status.phase}); ` +
        'post the result once the gate waits',
    );
  }
  const outcome =
    gate.phase === 'Pending' || gate.phase === 'Waiting' || gate.phase === 'Skipped'
      ? (decisionTaken(status, ending) ?? 'the promotion is ending')
      : `it already ${gateOutcome(gate, true)}`;
  return refusal(RefusalType.Conflict, `gate "${gate.name}" of promotion ${status.id} cannot be decided: ${outcome}`);
}

/** Records a callback gate's result (after gateDecisionRefusal allowed it). */
export function decideGate(status: PromotionStatus, decision: GateDecision, at: string): GateStatus {
  const gate = findGate(status, decision.gate);
  if (!gate) throw new Error(`promotion ${status.id} has no gate ${decision.gate}`); // checked by the validator
  gate.phase = decision.result === 'pass' ? 'Passed' : 'Failed';
  gate.at = at;
  gate.decidedBy = decision.by ? `callback by ${decision.by}` : 'callback';
  if (decision.reason) gate.message = decision.reason;
  if (gate.phase === 'Failed') gate.reason = Reason.GateFailed;
  return gate;
}

/** A promotion that ended: a gate still waiting was cancelled with it, gates never reached are Skipped. */
export function settleGates(status: PromotionStatus, phase: PromotionPhase, at: string): void {
  for (const gate of status.gates ?? []) {
    if (gate.phase === 'Pending') gate.phase = 'Skipped';
    else if (gate.phase === 'Waiting') {
      gate.phase = phase === 'Aborted' ? 'Cancelled' : 'Failed';
      gate.at = at;
      if (status.abortedBy) gate.decidedBy = `aborted by ${status.abortedBy.user}`;
      if (status.reason) gate.reason = status.reason;
      if (status.error && !gate.message) gate.message = status.error;
    }
  }
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
