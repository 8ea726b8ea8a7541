// `ferry promote PIPELINE STAGE FREIGHT [--wait [--timeout DURATION]] [--force]`: requests a promotion and prints its
// id; with --wait, follows it live (a line per change: phase, steps, the approval it waits for, Argo CD's state,
// gates) and exits with a code that says how it ended, so a CI job can gate on it. Promoting freight that is already
// current in the stage, or already being promoted there, gives that promotion (which --wait then follows) unless
// --force asks for a new run.
import type { PromotionPhase, PromotionStatus } from '../../workflows/messages';
import { call, jsonBody, waitForPromotion } from '../api';
import { durationMs, expect, type Args } from '../args';
import type { Command } from '../command';
import { progressLines } from '../follow';
import type { Io } from '../io';
import { printJson, UsageError } from '../output';

/**
 * How `promote --wait` ends. 1 (the API refused, or could not be reached) and 2 (usage) are every command's; these
 * are promote --wait's own, one per way a promotion can end without succeeding.
 */
export const WAIT_EXIT_CODES = {
  Succeeded: 0,
  Failed: 3,
  Rejected: 4,
  Aborted: 5,
  TimedOut: 6,
} as const satisfies Partial<Record<PromotionPhase | 'TimedOut', number>>;

const USAGE = 'ferry promote PIPELINE STAGE FREIGHT [--wait [--timeout DURATION]] [--force]';

export const promote: Command = {
  name: 'promote',
  usage: USAGE,
  help: ['ferry promote PIPELINE STAGE FREIGHT [--wait]', 'promote freight into a stage; prints the promotion id'],
  details: [
    '',
    'Prints the promotion id. With --wait, follows the promotion and prints a line for each change: its phase,',
    "each step's status and message (Argo CD's state while it waits for health, a retry's attempt and last error),",
    'the approval it waits for (how many, from whom) and each decision, and its gates. Exit codes:',
    `  ${WAIT_EXIT_CODES.Succeeded}  the promotion succeeded`,
    '  1  the API refused the request or could not be reached (the message says why)',
    '  2  the command line is wrong',
    `  ${WAIT_EXIT_CODES.Failed}  the promotion failed (its error and reason are printed)`,
    `  ${WAIT_EXIT_CODES.Rejected}  an approver rejected it`,
    `  ${WAIT_EXIT_CODES.Aborted}  it was aborted`,
    `  ${WAIT_EXIT_CODES.TimedOut}  --timeout DURATION (90s, 10m, 1h) passed first; the promotion goes on`,
    '--force starts a new run of freight already current in the stage; --json prints the final status as JSON.',
  ],
  async run(args, io, api) {
    expect(args, { count: 3, allow: ['wait', 'force', 'json', 'timeout'] });
    if (args.timeout !== undefined && !args.wait) throw new UsageError('--timeout needs --wait', 'promote');
    const timeoutMs = args.timeout === undefined ? undefined : durationMs(args.timeout, '--timeout', 'promote');
    const [pipeline, stage, freightId] = args.positionals;
    const { data } = await call<{ id: string; existing: boolean }>(
      api,
      'POST',
      `/api/v1/pipelines/${encodeURIComponent(pipeline)}/stages/${encodeURIComponent(stage)}/promotions`,
      jsonBody({ freight: freightId, ...(args.force ? { force: true } : {}) }),
    );
    if (data.existing) {
      io.err(
        `note: ${freightId} is already current in ${stage} or being promoted there; this is that promotion ` +
          '(--force starts a new one)',
      );
    }
    if (!args.wait) {
      if (args.json) printJson(io, data);
      else io.out(data.id);
      return 0;
    }
    return follow(io, api, data.id, args, timeoutMs);
  },
};

async function follow(
  io: Io,
  api: Parameters<Command['run']>[2],
  id: string,
  args: Args,
  timeoutMs: number | undefined,
): Promise<number> {
  if (!args.json) io.out(id);
  const result = await waitForPromotion(io, api, id, {
    timeoutMs,
    onChange: (status, before) => {
      if (!args.json) for (const line of progressLines(before, status)) io.out(line);
    },
  });
  if (result.timedOut) {
    if (args.json && result.status) printJson(io, result.status);
    io.err(
      `error: promotion ${id} is still ${result.status?.phase ?? 'unknown'} after --timeout ${args.timeout}; it ` +
        `goes on without this command (ferry get ${id}, ferry abort ${id})`,
    );
    return WAIT_EXIT_CODES.TimedOut;
  }
  const final = result.status;
  if (args.json) printJson(io, final);
  if (final.phase === 'Succeeded') return WAIT_EXIT_CODES.Succeeded;
  io.err(`error: promotion ${final.id} ended ${final.phase}${endedBecause(final)}`);
  return final.phase === 'Rejected' || final.phase === 'Aborted'
    ? WAIT_EXIT_CODES[final.phase]
    : WAIT_EXIT_CODES.Failed;
}

function endedBecause(final: PromotionStatus): string {
  const decision = final.rejectedBy ?? final.abortedBy;
  const by = decision
    ? `${final.phase === 'Rejected' ? 'rejected' : 'aborted'} by ${decision.user}` +
      `${decision.comment ? ` (${JSON.stringify(decision.comment)})` : ''}`
    : undefined;
  const why = by ?? final.error;
  return `${why ? `: ${why}` : ''}${final.reason && !by ? ` [${final.reason}]` : ''}`;
}
