// The `ferry` CLI: a client of the HTTP API and nothing else (no Temporal connection), so it works wherever the API
// is reachable. Output is part of the contract: scripts and the README run these commands verbatim.
//
// stdout: what the command produces (an id, a table, JSON with --json). stderr: errors (`error: ...`) and notes.
// Exit codes: 0 done, 1 the API refused (or could not be reached), 2 the command line is wrong; `promote --wait` adds
// one code per way a promotion can end without succeeding (WAIT_EXIT_CODES in commands/promote.ts).
//
// `run(argv, io)` is the whole CLI as a function: main.ts calls it with the process's streams, tests with their own.
import { apiFromEnv } from './api';
import { parseArgs } from './args';
import type { Command } from './command';
import { abort } from './commands/abort';
import { apply } from './commands/apply';
import { approve } from './commands/approve';
import { freight } from './commands/freight';
import { gate } from './commands/gate';
import { get } from './commands/get';
import { promote, WAIT_EXIT_CODES } from './commands/promote';
import { reject } from './commands/reject';
import { status } from './commands/status';
import { token } from './commands/token';
import type { Io } from './io';
import { CliError, UsageError } from './output';

const COMMANDS: readonly Command[] = [apply, freight, promote, approve, reject, abort, status, get, gate, token];

function usage(): string {
  const rows: Array<[string, string]> = [...COMMANDS.map((c) => c.help), ['ferry help', 'this text']];
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return `usage: ferry <command> [arguments]

commands:
${rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`).join('\n')}

options:
  --json      print the API's JSON (apply, freight add, promote, approve, reject, abort, status, get, gate url)
  --wait      promote: follow the promotion until it ends, a line per change (phase, step, approval, gate);
              exit 0 succeeded, ${WAIT_EXIT_CODES.Failed} failed, ${WAIT_EXIT_CODES.Rejected} rejected, ${WAIT_EXIT_CODES.Aborted} aborted, ${WAIT_EXIT_CODES.TimedOut} still running after --timeout
  --timeout DURATION
              promote --wait: stop waiting after DURATION (90s, 10m, 1h); the promotion goes on
  --force     promote: start a new run even when the freight is already current in the stage or being promoted
  -m COMMENT  approve, reject, abort: a comment recorded with the decision
  -h, --help  this text

environment:
  FERRY_URL    the Ferry API (default http://$FERRY_HOST:$FERRY_PORT, i.e. http://127.0.0.1:8234)
  FERRY_TOKEN  the bearer token (default: the file $FERRY_HOME/token; FERRY_HOME defaults to .ferry)`;
}

const commandNamed = (name: string): Command | undefined => COMMANDS.find((c) => c.name === name);

async function dispatch(argv: string[], io: Io): Promise<number> {
  const args = parseArgs(argv);
  if (args.command === 'help' || (args.help && args.command === '')) {
    io.out(usage());
    return 0;
  }
  if (args.command === '') throw new UsageError('missing command');
  const command = commandNamed(args.command);
  if (!command) throw new UsageError(`unknown command "${args.command}"`);
  if (args.help) {
    io.out(`usage: ${command.usage}`);
    for (const line of command.details ?? []) io.out(line);
    return 0;
  }
  return command.run(args, io, apiFromEnv(io.env, io.cwd));
}

function report(io: Io, error: unknown): number {
  if (error instanceof UsageError) {
    io.err(`error: ${error.message}`);
    const command = error.command ? commandNamed(error.command) : undefined;
    io.err(command ? `usage: ${command.usage}` : usage());
    if (command) io.err("run 'ferry help' for all commands");
    return 2;
  }
  if (error instanceof CliError) {
    io.err(`error: ${error.message}`);
    for (const e of error.errors) io.err(`${e.path}: ${e.message}`);
    if (error.hint) io.err(`hint: ${error.hint}`);
    return 1;
  }
  io.err(`error: ${error instanceof Error ? error.message : String(error)}`);
  return 1;
}

/** Runs one `ferry` command line; resolves to its exit code and never rejects. */
export async function run(argv: string[], io: Io): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (error) {
    return report(io, error);
  }
}
