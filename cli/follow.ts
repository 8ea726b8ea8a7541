// What `ferry promote … --wait` prints while it follows a promotion: one line for each thing that changed between
// two reads of its status (phase, a step's status, message or retry, the approval it waits for and each decision,
// a gate), so a CI log reads as the promotion's story. Pure: the polling is in api.ts.
import type { Approval, GateStatus, PromotionStatus, PromotionStep } from '../workflows/messages';

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

function gateLine(gate: GateStatus): string {
  const name = gate.name;
  const details = [
    gate.phase === 'Waiting' && gate.deadline ? `until ${gate.deadline}` : undefined,
    gate.consecutive !== undefined && gate.phase === 'Waiting' ? `${gate.consecutive} in a row` : undefined,
    gate.decidedBy ? `by ${gate.decidedBy}` : undefined,
  ].filter((d): d is string => d !== undefined);
  return (
    `gate ${name} (${gate.type}): ${gate.phase}` +
    `${gate.message ? `: ${gate.message}` : ''}${details.length > 0 ? ` (${details.join(', ')})` : ''}` +
    `${gate.reason && gate.phase !== 'Passed' ? ` [${gate.reason}]` : ''}`
  );
}

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

  for (const gate of now.gates ?? []) {
    const previous = before?.gates?.find((g) => g.name === gate.name);
    const line = gateLine(gate);
    if (!previous || gateLine(previous) !== line) lines.push(line);
  }

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
  if (now.phase === 'AwaitingMerge' && now.pullRequest && before?.phase !== 'AwaitingMerge') {
    lines.push(
      `waiting for ${now.pullRequest.url} to be merged (${now.pullRequest.head} into ${now.pullRequest.base})`,
    );
  }
  return lines;
}
