// The `slack` target: a message to a Slack incoming webhook that a person reads at a glance: what happened, where,
// which freight, who, and a link to the run. The webhook URL is the subscriber's secret; it never appears in a
// message or an error.
import type { FerryEvent, FerryEventType } from '../../workflows/events';
import { excerpt, failureFor, httpCall } from './http';

const HEADLINE: Record<FerryEventType, { emoji: string; what: string }> = {
  'dev.ferry.freight.registered': { emoji: ':package:', what: 'New freight registered' },
  'dev.ferry.promotion.started': { emoji: ':arrow_forward:', what: 'Promotion started' },
  'dev.ferry.approval.requested': { emoji: ':raised_hand:', what: 'Approval needed' },
  'dev.ferry.promotion.approved': { emoji: ':ballot_box_with_check:', what: 'Promotion approved' },
  'dev.ferry.promotion.rejected': { emoji: ':no_entry:', what: 'Promotion rejected' },
  'dev.ferry.promotion.succeeded': { emoji: ':white_check_mark:', what: 'Promotion succeeded' },
  'dev.ferry.promotion.failed': { emoji: ':x:', what: 'Promotion failed' },
  'dev.ferry.promotion.aborted': { emoji: ':octagonal_sign:', what: 'Promotion aborted' },
  'dev.ferry.gate.waiting': { emoji: ':hourglass_flowing_sand:', what: 'Waiting for a gate' },
};

/** Slack's mrkdwn needs &, < and > escaped; everything else is shown as written. */
function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export interface SlackMessage {
  text: string;
  blocks: Array<Record<string, unknown>>;
}

/** The message for one event: `text` is the notification line, `blocks` the message people see. */
export function slackMessage(event: FerryEvent): SlackMessage {
  const { data } = event;
  const head = HEADLINE[event.type] ?? { emoji: ':information_source:', what: event.type };
  const where = data.stage ? `${data.pipeline}/${data.stage}` : data.pipeline;
  const versions = Object.entries(data.freight.artifacts)
    .map(([name, version]) => `${name}:${version}`)
    .join(', ');
  const who =
    event.type === 'dev.ferry.approval.requested' && data.approval
      ? `needs ${data.approval.required} of ${data.approval.approvers.join(', ')}`
      : data.actor
        ? `${data.actor.user}${data.actor.comment ? ` — “${data.actor.comment}”` : ''}`
        : undefined;

  const text = `${head.emoji} ${head.what}: ${where} ← ${versions} (freight ${data.freight.id})${who ? `, ${who}` : ''}`;
  const fields = [
    { type: 'mrkdwn', text: `*Where*\n${esc(where)}` },
    { type: 'mrkdwn', text: `*Freight*\n\`${esc(data.freight.id)}\` ${esc(versions)}` },
    ...(who ? [{ type: 'mrkdwn', text: `*${data.approval && !data.actor ? 'Approvers' : 'Who'}*\n${esc(who)}` }] : []),
    ...(data.commit
      ? [
          {
            type: 'mrkdwn',
            text: `*Commit*\n\`${data.commit.slice(0, 12)}\`${data.branch ? ` on \`${esc(data.branch)}\`` : ''}`,
          },
        ]
      : []),
  ];
  const blocks: Array<Record<string, unknown>> = [
    {
      type: 'section',
      text: { type: 'mrkdwn', text: `${head.emoji} *${esc(head.what)}*: *${esc(where)}* ← ${esc(versions)}` },
    },
    { type: 'section', fields },
  ];
  if (data.error) {
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: `*${esc(data.reason ?? 'Error')}*: ${esc(excerpt(data.error, 500))}` },
    });
  }
  // A gate's callback URL is a one-time credential: never posted to a channel.
  const links = data.run.url ? [`<${data.run.url}|Open the run in the Temporal UI>`] : [];
  blocks.push({
    type: 'context',
    elements: [{ type: 'mrkdwn', text: [...links, `\`${event.type}\``].join(' · ') }],
  });
  return { text, blocks };
}

export interface SlackDelivery {
  /** The incoming webhook URL (the subscriber's credential). */
  webhookUrl: string;
  event: FerryEvent;
  where: string;
  timeoutMs: number;
  userAgent: string;
}

export async function deliverSlack(delivery: SlackDelivery): Promise<string> {
  const call = {
    method: 'POST' as const,
    url: delivery.webhookUrl,
    headers: { 'Content-Type': 'application/json', 'User-Agent': delivery.userAgent },
    body: JSON.stringify(slackMessage(delivery.event)),
    where: delivery.where,
    timeoutMs: delivery.timeoutMs,
  };
  const answer = await httpCall(call);
  if (answer.status >= 200 && answer.status < 300) return `HTTP ${answer.status}`;
  // Slack answers errors as a short code in plain text (invalid_payload, no_service, channel_is_archived).
  throw failureFor(call, answer, excerpt(answer.text, 80));
}
