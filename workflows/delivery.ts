// Event delivery: one workflow per event and subscriber (`event/<pipeline>/<subscriber>/<eventId>`), started by the
// workflow where the state change happened and left to run on its own (parent close policy ABANDON). The emitting
// workflow never waits for a delivery: a receiver that is down, slow or wrong cannot slow or fail a promotion.
// The delivery retries with backoff until the subscriber's deadline; a second start of the same id is refused by
// Temporal, so an event reaches a subscriber under one id. For targets that need the events of one promotion in
// order (GitHub deployment statuses), each delivery first waits for the previous one of that promotion to end.
import {
  ApplicationFailure,
  CancellationScope,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError, WorkflowIdReusePolicy } from '@temporalio/common';
import type { FerryActivities } from '../activities';
import {
  buildEvent,
  DEFAULT_DELIVERY_RETRY,
  deliveryWorkflowId,
  parseDurationMs,
  subscribersFor,
  targetIsOrdered,
  type DeliveryInput,
  type DeliveryResult,
  type FerryEvent,
  type FerryEventData,
  type FerryEventType,
  type Subscriber,
} from './events';
import { RefusalType } from './messages';
import { FerryPipeline, FerryStage } from './search-attributes';

function durationOf(text: string, field: string): number {
  const ms = parseDurationMs(text);
  if (ms === undefined) {
    throw ApplicationFailure.nonRetryable(`invalid duration "${text}" in ${field}`, RefusalType.InvalidArgument);
  }
  return ms;
}

export async function deliveryWorkflow(input: DeliveryInput): Promise<DeliveryResult> {
  const retry = { ...DEFAULT_DELIVERY_RETRY, ...input.subscriber.retry };
  const deadlineMs = durationOf(retry.deadline, `subscriber "${input.subscriber.name}" retry.deadline`);
  const started = Date.now();

  if (input.after) {
    const order = proxyActivities<FerryActivities>({
      startToCloseTimeout: deadlineMs,
      heartbeatTimeout: '30s',
      retry: { initialInterval: '1s', maximumInterval: '30s' },
    });
    await order.awaitDelivery({ workflowId: input.after });
  }

  const remaining = Math.max(deadlineMs - (Date.now() - started), 1000);
  const send = proxyActivities<FerryActivities>({
    // One attempt may take as long as the receiver's answer (the activity bounds each request itself).
    startToCloseTimeout: '2 minutes',
    scheduleToCloseTimeout: remaining,
    retry: {
      initialInterval: durationOf(retry.initialInterval, `subscriber "${input.subscriber.name}" retry.initialInterval`),
      backoffCoefficient: 2,
      maximumInterval: durationOf(retry.maximumInterval, `subscriber "${input.subscriber.name}" retry.maximumInterval`),
    },
  });
  const { after: _after, ...delivery } = input;
  return send.deliverEvent(delivery);
}

export interface EmitOptions {
  /** Names the state change inside this run when it can happen more than once (see buildEvent). */
  change?: string;
}

export interface Emitter {
  /**
   * Builds the event of a state change and starts its delivery to every subscriber that takes it, without
   * waiting for the deliveries. Returns the event (undefined when no subscriber takes it).
   */
  emit(type: FerryEventType, data: Omit<FerryEventData, 'run'>, options?: EmitOptions): FerryEvent | undefined;
  /** Waits until the delivery workflows started so far exist (not until they deliver). Call before the run ends. */
  started(): Promise<void>;
}

/**
 * The emitter of one workflow run. `notify` is read at each emit, so a pipeline applied with new subscribers is
 * heard at once. Runs that started before events existed have no subscribers and emit nothing; the first emit that
 * has a subscriber is behind `patched('outbound-events')`.
 */
export function createEmitter(
  pipeline: string,
  /**
   * The emitting workflow's id as its input determines it (pipelineWorkflowId, promotionWorkflowId), not
   * workflowInfo(): a replay outside a worker (test/workflows/replay.test.ts) runs under a made-up workflow id, and
   * the delivery ids built from this one must come out the same there.
   */
  workflowId: string,
  notify: () => readonly Subscriber[] | undefined,
): Emitter {
  const pending: Promise<void>[] = [];
  /** The last delivery per subscriber in this run, for targets that take the events of a promotion in order. */
  const previous = new Map<string, string>();
  const chains = new Map<string, Promise<void>>();
  let enabled: boolean | undefined;
  const now = (): string => new Date().toISOString();

  return {
    emit(type, data, options = {}) {
      const subscribers = subscribersFor(notify(), type);
      if (subscribers.length === 0) return undefined;
      enabled ??= patched('outbound-events');
      if (!enabled) return undefined;
      const { namespace, runId } = workflowInfo();
      const event = buildEvent({
        type,
        ...(options.change ? { change: options.change } : {}),
        time: now(),
        data,
        run: { namespace, workflowId, runId },
      });
      for (const subscriber of subscribers) {
        const id = deliveryWorkflowId(pipeline, subscriber.name, event.id);
        const ordered = targetIsOrdered(subscriber.target.type);
        const after = ordered ? previous.get(subscriber.name) : undefined;
        if (ordered) previous.set(subscriber.name, id);
        // Started outside the caller's cancellation scope: a delivery is its own workflow, and a rejection or abort
        // that cancels the promotion's steps must not cancel the deliveries (approval requested, …) started in them.
        const startDelivery = (): Promise<void> =>
          CancellationScope.nonCancellable(() =>
            startChild(deliveryWorkflow, {
              workflowId: id,
              args: [{ pipeline, subscriber, event, ...(after ? { after } : {}) }],
              parentClosePolicy: ParentClosePolicy.ABANDON,
              workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
              typedSearchAttributes: [
                { key: FerryPipeline, value: pipeline },
                ...(data.stage ? [{ key: FerryStage, value: data.stage }] : []),
              ],
              staticSummary: `Deliver ${type} (${event.subject}) to ${subscriber.name} (${subscriber.target.type})`,
            }),
          ).then(
            () => undefined,
            (err: unknown) => {
              // Already started (or delivered): the event has its one delivery.
              if (err instanceof WorkflowExecutionAlreadyStartedError) return;
              log.warn('event delivery not started', { subscriber: subscriber.name, type, error: String(err) });
            },
          );
        // An ordered delivery is started once the one before it exists, so it finds that one to wait for.
        const start = ordered
          ? (chains.get(subscriber.name) ?? Promise.resolve()).then(startDelivery)
          : startDelivery();
        if (ordered) chains.set(subscriber.name, start);
        pending.push(start);
      }
      return event;
    },
    async started() {
      while (pending.length > 0) await Promise.all(pending.splice(0));
    },
  };
}
