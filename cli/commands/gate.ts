// `ferry gate url ID GATE`: the one-time callback URL of a callback gate that is waiting now (admins only). Prints
// the URL alone, for a script to hand to the system that decides the gate; it is a credential, so treat it as one.
import { call, promotionPath } from '../api';
import { expect } from '../args';
import type { Command } from '../command';
import { printJson, UsageError } from '../output';

export const gate: Command = {
  name: 'gate',
  usage: 'ferry gate url ID GATE',
  help: ['ferry gate url ID GATE', "a waiting callback gate's one-time URL (admins)"],
  async run(args, io, api) {
    const sub = args.positionals[0];
    if (sub !== 'url') {
      throw new UsageError(
        sub === undefined ? 'gate needs a subcommand: url' : `unknown gate subcommand "${sub}"`,
        'gate',
      );
    }
    args.positionals = args.positionals.slice(1);
    expect(args, { count: 2, allow: ['json'] });
    const [id, name] = args.positionals;
    const { data } = await call<{ promotion: string; gate: string; url: string }>(
      api,
      'GET',
      `${promotionPath(id)}/gates/${encodeURIComponent(name)}/callback-url`,
    );
    if (args.json) printJson(io, data);
    else io.out(data.url);
    return 0;
  },
};
