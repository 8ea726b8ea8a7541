// The outbound event types: one per state change Ferry reports. Dependency-free, so the schema (which validates
// a subscriber's `events` filter against it) and workflow code (which builds the events) share one list.
// Names follow `dev.ferry.<thing>.<what happened>`, the past tense or the state it is waiting in.
export const EVENT_TYPES = [
  'dev.ferry.freight.registered',
  'dev.ferry.promotion.started',
  'dev.ferry.approval.requested',
  'dev.ferry.promotion.approved',
  'dev.ferry.promotion.rejected',
  'dev.ferry.promotion.succeeded',
  'dev.ferry.promotion.failed',
  'dev.ferry.promotion.aborted',
  'dev.ferry.gate.waiting',
] as const;
export type FerryEventType = (typeof EVENT_TYPES)[number];

/**
 * Whether an event type matches one filter entry: an exact type, or a glob where `*` stands for any run of
 * characters (`dev.ferry.promotion.*`, `*.failed`, `*`).
 */
export function eventTypeMatches(type: string, pattern: string): boolean {
  if (!pattern.includes('*')) return type === pattern;
  const parts = pattern.split('*');
  if (!type.startsWith(parts[0]) || !type.endsWith(parts[parts.length - 1])) return false;
  let at = parts[0].length;
  const end = type.length - parts[parts.length - 1].length;
  for (const part of parts.slice(1, -1)) {
    const found = type.indexOf(part, at);
    if (found < 0 || found + part.length > end) return false;
    at = found + part.length;
  }
  return at <= end;
}

/** Whether a subscriber's filter (absent or empty: every event) lets an event type through. */
export function filterAccepts(filter: readonly string[] | undefined, type: string): boolean {
  return !filter || filter.length === 0 || filter.some((pattern) => eventTypeMatches(type, pattern));
}
