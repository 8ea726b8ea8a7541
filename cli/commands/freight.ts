// `ferry freight add PIPELINE NAME=VERSION...`: registers freight and prints its id.
import { call, jsonBody } from '../api';
import { expect } from '../args';
import type { Command } from '../command';
import { printJson, UsageError } from '../output';

export const freight: Command = {
  name: 'freight',
  usage: 'ferry freight add PIPELINE NAME=VERSION...',
  help: ['ferry freight add PIPELINE NAME=VERSION...', 'register freight; prints its id'],
  async run(args, io, api) {
    const sub = args.positionals[0];
    if (sub !== 'add') {
      throw new UsageError(
        sub === undefined ? 'freight needs a subcommand: add' : `unknown freight subcommand "${sub}"`,
        'freight',
      );
    }
    args.positionals = args.positionals.slice(1);
    expect(args, { count: [2, Infinity], allow: ['json'] });
    const [pipeline, ...pairs] = args.positionals;
    const artifacts: Record<string, string> = {};
    for (const pair of pairs) {
      const eq = pair.indexOf('=');
      if (eq <= 0 || eq === pair.length - 1) throw new UsageError(`"${pair}" is not NAME=VERSION`, 'freight');
      const name = pair.slice(0, eq);
      if (Object.prototype.hasOwnProperty.call(artifacts, name))
        throw new UsageError(`artifact "${name}" is given twice`, 'freight');
      artifacts[name] = pair.slice(eq + 1);
    }
    const { data } = await call<{ id: string; created: boolean }>(
      api,
      'POST',
      `/api/v1/pipelines/${encodeURIComponent(pipeline)}/freight`,
      jsonBody({ artifacts }),
    );
    if (args.json) printJson(io, data);
    else io.out(data.id);
    return 0;
  },
};
