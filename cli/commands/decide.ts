// What approve, reject and abort share: a decision on a promotion, sent as the token's user, and the promotion's
// state after it (the API answers with the state the decision led to).
import type { PromotionStatus } from '../../workflows/messages';
import { call, jsonBody, promotionPath } from '../api';
import { expect } from '../args';
import type { Command } from '../command';
import { printJson } from '../output';

type Action = 'approve' | 'reject' | 'abort';
const PAST: Record<Action, string> = { approve: 'approved', reject: 'rejected', abort: 'aborted' };

export function decisionCommand(action: Action, summary: string): Command {
  return {
    name: action,
    usage: `ferry ${action} ID [-m COMMENT]`,
    help: [`ferry ${action} ID [-m COMMENT]`, summary],
    async run(args, io, api) {
      expect(args, { count: 1, allow: ['message', 'json'] });
      const [id] = args.positionals;
      const body = args.message !== undefined ? { comment: args.message } : {};
      const { data } = await call<PromotionStatus>(api, 'POST', `${promotionPath(id)}/${action}`, jsonBody(body));
      if (args.json) {
        printJson(io, data);
        return 0;
      }
      const approvals =
        data.approval && action === 'approve'
          ? `, ${data.approvals.length} of ${data.approval.required} approvals`
          : '';
      io.out(`${PAST[action]} ${data.id}: phase ${data.phase}${approvals}`);
      return 0;
    },
  };
}
