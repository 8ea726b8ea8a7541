// What a command may touch of the world: its output streams, environment, working directory and stdin. The process
// entry (main.ts) passes the real ones; tests pass their own and read what was written.
import fs from 'node:fs';

export interface Io {
  /** One line to stdout (what the command produces: an id, a table, JSON). */
  out(line?: string): void;
  /** One line to stderr (errors, notes, warnings). */
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  /** Where relative paths (`apply -f FILE`, the default FERRY_HOME) are resolved. */
  cwd: string;
  /** The whole of stdin (`apply -f -`). */
  readStdin(): string;
}

export function processIo(): Io {
  return {
    out: (line = '') => void process.stdout.write(line + '\n'),
    err: (line) => void process.stderr.write(line + '\n'),
    env: process.env,
    cwd: process.cwd(),
    readStdin: () => fs.readFileSync(0, 'utf8'),
  };
}
