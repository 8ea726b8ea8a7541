// The shape of a CLI command: its usage line, a one-line summary for `ferry help`, and what it does.
import type { Api } from './api';
import type { Args } from './args';
import type { Io } from './io';

export interface Command {
  name: string;
  /** e.g. `ferry promote PIPELINE STAGE FREIGHT [--wait] [--force]`, printed on a usage error. */
  usage: string;
  /** The line in `ferry help`; the usage shown there may be shorter than `usage`. */
  help: [string, string];
  /** More lines for `ferry COMMAND --help`, after the usage. */
  details?: string[];
  /** Resolves to the exit code: 0 done, 1 refused or unsuccessful. */
  run(args: Args, io: Io, api: Api): Promise<number>;
}
