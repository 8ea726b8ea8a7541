// What `ferry promote … --wait` prints while it follows a promotion: one line for each thing that changed between
// two reads of its status (phase, a step's status, message or retry, the approval it waits for and each decision,
// a gate), so a CI log reads as the promotion's story. Pure: the polling is in api.ts.
import type { Approval, PromotionStatus, PromotionStep } from '../workflows/messages';

/**
 * A gate as a promotion's status shows it (`status.gates`, for stages with `gates:`). Read loosely: the CLI prints
 * what is there and must not break on a field it does not know.
 */
interface GateView {
  name?: string;
  type?: string;
  phase?: string;
  message?: string;
  reason?: string;
  decidedBy?: string;
  deadline?: string;
  attempts?: number;
  consecutive?: number;
}

const quoted = (comment: string | undefined): string => (comment ? ` ${JSON.stringify(comment)}` : '');

function stepLine(step: PromotionStep): string {
  const retry =
    step.attempt !== undefined && step.attempt > 1
      ? ` (attempt ${step.attempt}${step.lastError ? `, last error: ${step.lastError}` : ''})`
      : '';
  const why = step.reason && step.status !== 'Succeeded' ? ` [${step.reason}]` : '';
  return `step ${step.name}: ${step.status}${retry}${step.message ? `: ${step.message}` : ''}${why}`;
}

const stepKey = (step: PromotionStep | undefined): string =>
  step ? JSON.stringify([step.status, step.message, step.reason, step.attempt, step.lastError]) : '';

function gateLine(gate: GateView, index: number): string {
  const name = gate.name ?? `#${index + 1}`;
  const details = [
    gate.phase === 'Waiting' && gate.deadline ? `until ${gate.deadline}` : undefined,
    gate.consecutive !== undefined && gate.phase === 'Waiting' ? `${gate.consecutive} in a row` : undefined,
    gate.decidedBy ? `by ${gate.decidedBy}` : undefined,
  ].filter((d): d is string => d !== undefined);
  return (
    `gate ${name}${gate.type ? ` (${gate.type})` : ''}: ${gate.phase ?? 'unknown'}` +
    `${gate.message ? `: ${gate.message}` : ''}${details.length > 0 ? ` (${details.join(', ')})` : ''}` +
    `${gate.reason && gate.phase !== 'Passed' ? ` [${gate.reason}]` : ''}`
  );
}

const gatesOf = (status: PromotionStatus | undefined): GateView[] => {
  const gates = (status as { gates?: unknown } | undefined)?.gates;
  return Array.isArray(gates) ? (gates.filter((g) => typeof g === 'object' && g !== null) as GateView[]) : [];
};

const decisionLine = (verb: string, d: Approval): string => `${verb} by ${d.user}${quoted(d.comment)}`;

/**
 * The lines that tell what changed from `before` (undefined: nothing seen yet) to `now`: decisions, steps and gates
 * first, then the phase they led to, then what the promotion now waits for.
 */
export function progressLines(before: PromotionStatus | undefined, now: PromotionStatus): string[] {
  const lines: string[] = [];
  const approval = now.approval;
  const newApprovals = now.approvals.slice(before?.approvals.length ?? 0);
  for (const a of newApprovals) {
    lines.push(
      `${decisionLine('approved', a)}${approval ? ` (${now.approvals.indexOf(a) + 1} of ${approval.required})` : ''}`,
    );
  }
  if (now.rejectedBy && !before?.rejectedBy) lines.push(decisionLine('rejected', now.rejectedBy));
  if (now.abortedBy && !before?.abortedBy) lines.push(decisionLine('aborted', now.abortedBy));

  for (const step of now.steps) {
    const previous = before?.steps.find((s) => s.name === step.name);
    // A step first seen as Pending says nothing yet; it is printed when it starts.
    if (!previous && step.status === 'Pending') continue;
    if (stepKey(previous) !== stepKey(step)) lines.push(stepLine(step));
  }

  const gatesBefore = gatesOf(before);
  gatesOf(now).forEach((gate, index) => {
    const previous = gatesBefore.find((g, i) => (gate.name !== undefined ? g.name === gate.name : i === index));
    const line = gateLine(gate, index);
    if (!previous || gateLine(previous, index) !== line) lines.push(line);
  });

  if (now.phase !== before?.phase) lines.push(`phase: ${now.phase}`);
  if (
    now.phase === 'AwaitingApproval' &&
    approval &&
    (before?.phase !== 'AwaitingApproval' || newApprovals.length > 0)
  ) {
    const missing = approval.required - now.approvals.length;
    const given = new Set(now.approvals.map((a) => a.user));
    const candidates = approval.approvers.filter((user) => !given.has(user));
    lines.push(
      `waiting for ${missing} more approval${missing === 1 ? '' : 's'} (${now.approvals.length} of ` +
        `${approval.required}) from: ${candidates.join(', ')}; ferry approve ${now.id}`,
    );
  }
  return lines;
}
