// `ferry promote PIPELINE STAGE FREIGHT [--wait] [--force]`: requests a promotion and prints its id; with --wait,
// follows it to the end. Promoting freight that is already current in the stage, or already being promoted there,
// gives that promotion (which --wait then follows) unless --force asks for a new run.
import type { PromotionStatus } from '../../workflows/messages';
import { call, jsonBody, waitForPromotion } from '../api';
import { expect } from '../args';
import type { Command } from '../command';
import { printJson } from '../output';

export const promote: Command = {
  name: 'promote',
  usage: 'ferry promote PIPELINE STAGE FREIGHT [--wait] [--force]',
  help: ['ferry promote PIPELINE STAGE FREIGHT [--wait]', 'promote freight into a stage; prints the promotion id'],
  async run(args, io, api) {
    expect(args, { count: 3, allow: ['wait', 'force', 'json'] });
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
    if (!args.json) io.out(data.id);
    const final = await waitForPromotion(io, api, data.id, (phase) => {
      if (!args.json) io.out(`phase: ${phase}`);
    });
    if (args.json) printJson(io, final);
    if (final.phase === 'Succeeded') return 0;
    const why =
      final.error ??
      decisionText(final.rejectedBy ?? final.abortedBy, final.phase === 'Rejected' ? 'rejected' : 'aborted');
    io.err(`error: promotion ${final.id} ended ${final.phase}${why ? `: ${why}` : ''}`);
    return 1;
  },
};

function decisionText(decision: PromotionStatus['rejectedBy'], verb: string): string | undefined {
  if (!decision) return undefined;
  return `${verb} by ${decision.user}${decision.comment ? ` (${JSON.stringify(decision.comment)})` : ''}`;
}
