// `ferry token create USER`: an operator's command on the API's machine. It adds a new random token for USER to the
// tokens file the API reads (FERRY_TOKENS_FILE, default $FERRY_HOME/tokens.json), which stores only its sha256
// digest, and prints the token once: it exists nowhere else. The API accepts it at once, without a restart; what
// USER may do is the server configuration's roles. Unlike the other commands it talks to no API: it writes the file.
import path from 'node:path';
import { createToken, resolveFerryHome, resolveTokensFile } from '../../client/auth';
import { expect } from '../args';
import type { Command } from '../command';
import { CliError, UsageError } from '../output';

export const token: Command = {
  name: 'token',
  usage: 'ferry token create USER',
  help: ['ferry token create USER', "add a static API token for USER (on the API's machine); prints it once"],
  async run(args, io) {
    const sub = args.positionals[0];
    if (sub !== 'create') {
      throw new UsageError(
        sub === undefined ? 'token needs a subcommand: create' : `unknown token subcommand "${sub}"`,
        'token',
      );
    }
    args.positionals = args.positionals.slice(1);
    expect(args, { count: 1 });
    const user = args.positionals[0].trim();
    if (!/^[^\s,=]+$/.test(user)) {
      throw new UsageError(`"${user}" is not a user name (no spaces, commas or "=")`, 'token');
    }
    const file = resolveTokensFile(io.env, resolveFerryHome(io.env, io.cwd));
    let created: string;
    try {
      created = createToken(path.resolve(io.cwd, file), user);
    } catch (err) {
      throw new CliError(`cannot add a token to ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    io.out(created);
    io.err(`added a token for "${user}" to ${file} (only its sha256 is stored); keep it now, it is not shown again`);
    return 0;
  },
};
