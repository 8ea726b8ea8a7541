// `ferry get ID`: one promotion: phase, who asked and decided, commit, error, and its steps.
import type { PromotionStatus } from '../../workflows/messages';
import { call, promotionPath } from '../api';
import { expect } from '../args';
import type { Command } from '../command';
import { artifactList, decisionLine, orDash, printJson, table } from '../output';

export const get: Command = {
  name: 'get',
  usage: 'ferry get ID',
  help: ['ferry get ID', 'a promotion: phase, steps, gates, approvals, commit, error'],
  async run(args, io, api) {
    expect(args, { count: 1, allow: ['json'] });
    const [id] = args.positionals;
    const { data } = await call<PromotionStatus>(api, 'GET', promotionPath(id));
    if (args.json) {
      printJson(io, data);
      return 0;
    }
    const versions = artifactList(data.freight.artifacts, ', ');
    const fields: Array<[string, string]> = [
      ['promotion', data.id],
      ['pipeline', data.pipeline],
      ['stage', data.stage],
      ['freight', `${data.freight.id}${versions ? ` (${versions})` : ''}`],
      ['phase', data.phase],
      ['requested', `by ${data.requestedBy} at ${data.startedAt}`],
      ['finished', orDash(data.finishedAt)],
      ['commit', orDash(data.commit)],
    ];
    if (data.sourceCommit) fields.push(['source', data.sourceCommit]);
    if (data.pullRequest) {
      const pr = data.pullRequest;
      fields.push(['pull request', `${pr.url} (${pr.state}; ${pr.head} into ${pr.base})`]);
    }
    if (data.approval) {
      fields.push([
        'approvals',
        `${data.approvals.length} of ${data.approval.required} (approvers: ${data.approval.approvers.join(', ')})`,
      ]);
    } else if (data.approvals.length > 0) {
      fields.push(['approvals', String(data.approvals.length)]);
    }
    const approvalLines = data.approvals.map(
      (a) => `${a.user} at ${a.at}${a.comment ? ` ${JSON.stringify(a.comment)}` : ''}`,
    );
    if (data.rejectedBy) fields.push(['rejected', decisionLine(data.rejectedBy)]);
    if (data.abortedBy) fields.push(['aborted', decisionLine(data.abortedBy)]);
    if (data.error) fields.push(['error', data.error]);

    const width = Math.max(...fields.map(([key]) => key.length)) + 2;
    for (const [key, value] of fields) {
      io.out(`${`${key}:`.padEnd(width)}${value}`);
      if (key === 'approvals') for (const line of approvalLines) io.out(`${''.padEnd(width)}${line}`);
    }
    if (data.steps.length > 0) {
      io.out();
      const rows = data.steps.map((s) => [
        s.name,
        s.status,
        orDash(s.startedAt),
        orDash(s.finishedAt),
        s.message ?? '',
      ]);
      for (const line of table([['STEP', 'STATUS', 'STARTED', 'FINISHED', 'MESSAGE'], ...rows])) io.out(line);
    }
    if (data.gates && data.gates.length > 0) {
      io.out();
      const rows = data.gates.map((g) => [
        g.name,
        g.type,
        g.phase,
        orDash(g.phase === 'Waiting' ? (g.deadline ? `until ${g.deadline}` : undefined) : g.decidedBy),
        g.attempts === undefined ? '-' : String(g.attempts),
        [g.reason, g.message].filter((part) => part).join(': '),
      ]);
      for (const line of table([['GATE', 'TYPE', 'PHASE', 'DECIDED BY', 'ANSWERS', 'MESSAGE'], ...rows])) io.out(line);
    }
    return 0;
  },
};
