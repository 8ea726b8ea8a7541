// The notify activities: deliver one event to one subscriber (`deliverEvent`), and wait for an earlier delivery
// to end (`awaitDelivery`, for targets that need a promotion's events in order). One module per target; this file
// resolves the subscriber's credential, adds what only the worker knows (the run's Temporal UI link, and whatever
// the `enrich` hook adds), and dispatches.
//
// Extension point: `enrich(event, context)` runs on every event right before it is sent. It may return a changed
// copy (e.g. add a gate's one-time callback URL to a `dev.ferry.gate.waiting` event), so values that must not
// sit in workflow history reach the receiver anyway. It must be deterministic for a given event: a retried
// delivery of the same id should carry the same content.
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { DeliveryInput, DeliveryResult, FerryEvent } from '../../workflows/events';
import { activityContext } from '../context';
import type { SecretResolver } from '../secrets';
import { deliverGitHubDeployment } from './github-deployment';
import { deliverSlack } from './slack';
import { deliverTemporalSignal } from './temporal';
import type { Subscriber } from './types';
import { deliverWebhook } from './webhook';

export type EventEnricher = (
  event: FerryEvent,
  context: { pipeline: string; subscriber: Subscriber },
) => FerryEvent | Promise<FerryEvent>;

export const DEFAULT_TEMPORAL_UI_URL = 'http://localhost:8233';
export const DEFAULT_NOTIFY_TIMEOUT_MS = 10_000;

export interface NotifyConfig {
  secrets: SecretResolver;
  /** Base URL of the Temporal UI, for the run link in every event (worker: FERRY_TEMPORAL_UI_URL). */
  temporalUiUrl?: string;
  /** How long one HTTP request of a delivery may take (worker: FERRY_NOTIFY_TIMEOUT_MS). */
  requestTimeoutMs?: number;
  enrich?: EventEnricher;
}

/** The run's page in the Temporal UI. */
export function temporalUiRunUrl(base: string, namespace: string, workflowId: string, runId: string): string {
  return `${base.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}/history`;
}

/** Where a delivery goes, in words safe to log: never a secret (a Slack target's URL is one). */
export function describeTarget(subscriber: Subscriber): string {
  const t = subscriber.target;
  const where =
    t.type === 'webhook'
      ? `webhook ${t.url.split('?')[0]}`
      : t.type === 'slack'
        ? 'slack incoming webhook'
        : t.type === 'github-deployment'
          ? `github-deployment ${t.repository}`
          : `temporal workflow ${t.workflowId}`;
  return `subscriber "${subscriber.name}" (${where})`;
}

export function createNotifyActivities(config: NotifyConfig) {
  const uiBase = config.temporalUiUrl ?? DEFAULT_TEMPORAL_UI_URL;
  const timeoutMs = config.requestTimeoutMs ?? DEFAULT_NOTIFY_TIMEOUT_MS;
  const userAgent = 'ferry-notify/1';

  const secretOf = (subscriber: Subscriber, field: 'token'): string => {
    if (!subscriber.secret) {
      throw ApplicationFailure.nonRetryable(`${describeTarget(subscriber)} names no secret`, 'InvalidArgument');
    }
    const value =
      config.secrets.resolve(subscriber.secret)[field] ?? config.secrets.resolve(subscriber.secret).password;
    if (!value) {
      throw ApplicationFailure.nonRetryable(
        `credential "${subscriber.secret}" of ${describeTarget(subscriber)} has no ${field}`,
        'CredentialNotFound',
      );
    }
    return value;
  };

  async function deliverEvent(input: Omit<DeliveryInput, 'after'>): Promise<DeliveryResult> {
    const { subscriber, pipeline } = input;
    const { run } = input.event.data;
    let event: FerryEvent = {
      ...input.event,
      data: {
        ...input.event.data,
        run: { ...run, url: temporalUiRunUrl(uiBase, run.namespace, run.workflowId, run.runId) },
      },
    };
    if (config.enrich) event = await config.enrich(event, { pipeline, subscriber });
    const where = describeTarget(subscriber);
    const attempts = activityContext()?.info.attempt ?? 1;
    const result = (outcome: DeliveryResult['outcome'], detail: string): DeliveryResult => ({
      subscriber: subscriber.name,
      eventId: event.id,
      outcome,
      detail,
      attempts,
    });
    try {
      const target = subscriber.target;
      switch (target.type) {
        case 'webhook':
          return result(
            'delivered',
            await deliverWebhook({
              url: target.url,
              secret: secretOf(subscriber, 'token'),
              event,
              where,
              timeoutMs,
              userAgent,
            }),
          );
        case 'slack':
          return result(
            'delivered',
            await deliverSlack({ webhookUrl: secretOf(subscriber, 'token'), event, where, timeoutMs, userAgent }),
          );
        case 'github-deployment': {
          const done = await deliverGitHubDeployment({
            target,
            token: secretOf(subscriber, 'token'),
            event,
            where,
            timeoutMs,
            userAgent,
          });
          return result(done.outcome, done.detail);
        }
        case 'temporal': {
          const context = activityContext();
          if (!context)
            throw ApplicationFailure.nonRetryable(`${where}: needs a Temporal activity context for its client`);
          return result('delivered', await deliverTemporalSignal({ target, event, where, client: context.client }));
        }
      }
    } catch (err) {
      // Whatever a target threw, a secret it handled never leaves in the message.
      if (err instanceof ApplicationFailure) {
        throw ApplicationFailure.create({
          message: config.secrets.redact(err.message),
          type: err.type ?? undefined,
          nonRetryable: err.nonRetryable ?? false,
          ...(err.nextRetryDelay ? { nextRetryDelay: err.nextRetryDelay } : {}),
        });
      }
      throw new Error(config.secrets.redact(err instanceof Error ? err.message : String(err)));
    }
  }

  /** Ends when the delivery workflow `workflowId` has ended, however it ended (or never existed). */
  async function awaitDelivery(input: { workflowId: string }): Promise<void> {
    const context = activityContext();
    if (!context) return;
    const beat = setInterval(() => context.heartbeat(), 5_000);
    try {
      await context.client.workflow.getHandle(input.workflowId).result();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return;
      if (context.cancellationSignal.aborted) throw err;
      // Failed, timed out or terminated: it has ended, which is all the next delivery waits for.
    } finally {
      clearInterval(beat);
    }
  }

  return { deliverEvent, awaitDelivery };
}
