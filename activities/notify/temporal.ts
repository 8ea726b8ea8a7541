// The `temporal` target: a signal carrying the CloudEvent to a workflow the pipeline names, so a release train
// that is itself a Temporal workflow can wait for Ferry (`condition(() => succeeded)` on a `ferry.event` handler).
// Sent with the worker's own client; a workflow that does not exist (yet) is retried until the deadline.
import { ApplicationFailure } from '@temporalio/common';
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import type { FerryEvent } from '../../workflows/events';
import { DEFAULT_EVENT_SIGNAL } from '../../workflows/events';
import { DeliveryFailure } from './http';
import type { TemporalTarget } from './types';

export interface TemporalDelivery {
  target: TemporalTarget;
  event: FerryEvent;
  where: string;
  /** The worker's client (the activity context's). */
  client: Client;
}

export async function deliverTemporalSignal(delivery: TemporalDelivery): Promise<string> {
  const { target } = delivery;
  const client =
    target.namespace && target.namespace !== delivery.client.options.namespace
      ? new Client({ connection: delivery.client.connection, namespace: target.namespace })
      : delivery.client;
  const signal = target.signal ?? DEFAULT_EVENT_SIGNAL;
  try {
    await client.workflow.getHandle(target.workflowId).signal(signal, delivery.event);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      // A workflow that ran and closed will never listen again; one that does not exist yet may be started later.
      const closed = await client.workflow
        .getHandle(target.workflowId)
        .describe()
        .then((d) => d.status.name)
        .catch(() => undefined);
      if (closed) {
        throw ApplicationFailure.nonRetryable(
          `${delivery.where}: workflow "${target.workflowId}" has closed (${closed}); nothing listens for the event`,
          DeliveryFailure.NotFound,
        );
      }
      throw ApplicationFailure.retryable(
        `${delivery.where}: no running workflow "${target.workflowId}" in namespace ${client.options.namespace}; retrying until it exists or the deadline passes`,
        DeliveryFailure.NotFound,
      );
    }
    throw err;
  }
  return `signal ${signal} to ${target.workflowId}`;
}
