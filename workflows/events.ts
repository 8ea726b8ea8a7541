// Outbound events: what Ferry tells the outside world at every state change, as CloudEvents 1.0 (structured mode,
// JSON). This module only *builds* events and decides who receives them: plain, deterministic functions, so the
// pipeline and promotion workflows can call them and tests can check them without a server. Sending is done by
// the delivery workflow (delivery.ts) and the notify activities (activities/notify/).
//
// An event's id is a hash of the workflow id, the run id and the state change, so a replay, a retried workflow
// task or a second emit of the same change always gives the same id; a delivery's workflow id is built from it,
// and Temporal refuses a second start of the same id. Nothing secret is ever part of an event: subscribers name
// their credentials, and values the receiver needs that must not sit in workflow history (a gate's one-time
// callback URL) are added at delivery time by the worker's enrich hook.
import { EVENT_TYPES, eventTypeMatches, filterAccepts, type FerryEventType } from '../pipeline/event-types';
import type { Subscriber } from '../pipeline/schema';
import type { Approval, Freight, PromotionPhase } from './messages';

export { EVENT_TYPES, eventTypeMatches, filterAccepts, type FerryEventType };
export type { Subscriber };

export const CLOUDEVENTS_SPEC_VERSION = '1.0';
/** The signal a `temporal` subscriber's workflow receives when its target names none. */
export const DEFAULT_EVENT_SIGNAL = 'ferry.event';

/** The terminal event of each end of a promotion. */
export const TERMINAL_EVENT: Record<'Succeeded' | 'Failed' | 'Rejected' | 'Aborted', FerryEventType> = {
  Succeeded: 'dev.ferry.promotion.succeeded',
  Failed: 'dev.ferry.promotion.failed',
  Rejected: 'dev.ferry.promotion.rejected',
  Aborted: 'dev.ferry.promotion.aborted',
};

/** The `data` of every Ferry event. Fields that do not apply to an event type are absent. */
export interface FerryEventData {
  pipeline: string;
  /** The stage (absent on freight events). */
  stage?: string;
  /** The freight: its id and the version of each artifact. */
  freight: Freight;
  /** The promotion the event is about (absent on freight events). */
  promotion?: {
    id: string;
    runId: string;
    phase: PromotionPhase;
    requestedBy: string;
    startedAt: string;
    finishedAt?: string;
  };
  /** The stage's rendered branch. */
  branch?: string;
  /** The commit written to `branch` (once the promotion has written it). */
  commit?: string;
  /** The commit of the sources it was rendered from. */
  sourceCommit?: string;
  /** Who caused the change: the requester (started), the approver (approved), the rejecter, the aborter. */
  actor?: { user: string; comment?: string };
  /** The approval gate (approval.requested, approved). */
  approval?: { required: number; approvers: string[]; approvals: Approval[] };
  /** Machine-readable reason and human message of a failed, rejected or aborted promotion (pipeline/reasons.ts). */
  reason?: string;
  error?: string;
  /** A gate the promotion waits on (dev.ferry.gate.waiting); its fields are the gate's own. */
  gate?: { name: string; type: string } & Record<string, unknown>;
  /**
   * The workflow run the event comes from. `url` (its page in the Temporal UI) is added at delivery, from the
   * worker's FERRY_TEMPORAL_UI_URL.
   */
  run: { namespace: string; workflowId: string; runId: string; url?: string };
}

/** A CloudEvents 1.0 event in structured JSON mode. */
export interface FerryEvent {
  specversion: typeof CLOUDEVENTS_SPEC_VERSION;
  id: string;
  source: string;
  type: FerryEventType;
  /** `<pipeline>/<stage>`, or `<pipeline>` for events about the pipeline itself. */
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  data: FerryEventData;
}

/** 128-bit FNV-1a of a string, as 32 hex digits: deterministic, dependency-free, fine for ids (not for secrets). */
export function fnv1a128(text: string): string {
  const prime = 0x0000000001000000000000000000013bn;
  const mask = (1n << 128n) - 1n;
  let hash = 0x6c62272e07bb014262b821756295c58dn;
  for (let i = 0; i < text.length; i++) {
    hash ^= BigInt(text.charCodeAt(i));
    hash = (hash * prime) & mask;
  }
  return hash.toString(16).padStart(32, '0');
}

/** The id of the event for one state change of one workflow run: the same inputs always give the same id. */
export function eventId(workflowId: string, runId: string, change: string): string {
  return fnv1a128(`${workflowId}\n${runId}\n${change}`);
}

export interface BuildEventInput {
  type: FerryEventType;
  /**
   * Names the state change inside its run, for the id. Defaults to the type, which is enough for changes that
   * happen once per run; pass more when one can repeat (a freight id, a gate's name).
   */
  change?: string;
  time: string;
  data: Omit<FerryEventData, 'run'>;
  run: FerryEventData['run'];
}

export function buildEvent(input: BuildEventInput): FerryEvent {
  const { pipeline, stage } = input.data;
  return {
    specversion: CLOUDEVENTS_SPEC_VERSION,
    id: eventId(input.run.workflowId, input.run.runId, input.change ?? input.type),
    source: `/ferry/pipelines/${pipeline}`,
    type: input.type,
    subject: stage ? `${pipeline}/${stage}` : pipeline,
    time: input.time,
    datacontenttype: 'application/json',
    data: { ...input.data, run: input.run },
  };
}

/**
 * Event types a target acts on. A GitHub deployment follows a promotion from its start to its end; every other
 * target takes every event its subscriber's filter lets through.
 */
export function targetTakes(target: Subscriber['target']['type'], type: FerryEventType): boolean {
  if (target !== 'github-deployment') return true;
  return type === 'dev.ferry.promotion.started' || Object.values(TERMINAL_EVENT).includes(type);
}

/** Targets whose deliveries for one promotion must arrive in the order of the events (GitHub statuses). */
export function targetIsOrdered(target: Subscriber['target']['type']): boolean {
  return target === 'github-deployment';
}

/** The subscribers that receive an event of this type. */
export function subscribersFor(notify: readonly Subscriber[] | undefined, type: FerryEventType): Subscriber[] {
  return (notify ?? []).filter((s) => filterAccepts(s.events, type) && targetTakes(s.target.type, type));
}

/**
 * The workflow id of one event's delivery to one subscriber. Temporal refuses a second workflow with this id, so
 * an event is delivered to a subscriber under one id, once.
 */
export function deliveryWorkflowId(pipeline: string, subscriber: string, id: string): string {
  return `event/${pipeline}/${subscriber}/${id}`;
}

/** Parses a duration the schema validated (`\d+(ms|s|m|h)`) into milliseconds; undefined for anything else. */
export function parseDurationMs(text: string): number | undefined {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
}

/** How a subscriber's deliveries are retried when its `retry` leaves a value out. */
export const DEFAULT_DELIVERY_RETRY = { deadline: '24h', initialInterval: '1s', maximumInterval: '5m' } as const;

/** The input of one delivery workflow (and of the deliverEvent activity, without `after`). */
export interface DeliveryInput {
  pipeline: string;
  /** The subscriber as the pipeline declares it: its target and the *name* of its credential, never a value. */
  subscriber: Subscriber;
  event: FerryEvent;
  /** Workflow id of the delivery that must finish first (the previous event of the same promotion, ordered targets). */
  after?: string;
}

export interface DeliveryResult {
  subscriber: string;
  eventId: string;
  /** What the target did: `delivered`, or `skipped` with why (e.g. a GitHub deployment with nothing to report). */
  outcome: 'delivered' | 'skipped';
  /** A short, secret-free note for the workflow result (HTTP status, deployment id). */
  detail: string;
  attempts: number;
}
