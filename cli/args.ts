// The command line: words and options, and the check that a command got the ones it takes.
import { UsageError } from './output';

export interface Args {
  command: string;
  positionals: string[];
  json: boolean;
  wait: boolean;
  force: boolean;
  help: boolean;
  file?: string;
  message?: string;
  /** `--timeout DURATION`, as given (durationMs parses it). */
  timeout?: string;
}

type Option = 'file' | 'message' | 'wait' | 'force' | 'json' | 'timeout';

export function parseArgs(argv: string[]): Args {
  const args: Args = { command: '', positionals: [], json: false, wait: false, force: false, help: false };
  const words: string[] = [];
  const valueOf = (flag: string, inline: string | undefined, index: number): [string, number] => {
    if (inline !== undefined) return [inline, index];
    const next = argv[index + 1];
    if (next === undefined) throw new UsageError(`${flag} needs a value`);
    return [next, index + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--') {
      words.push(...argv.slice(i + 1));
      break;
    }
    if (!word.startsWith('-') || word === '-') {
      words.push(word);
      continue;
    }
    const eq = word.startsWith('--') ? word.indexOf('=') : -1;
    const flag = eq > 0 ? word.slice(0, eq) : word;
    const inline = eq > 0 ? word.slice(eq + 1) : undefined;
    switch (flag) {
      case '--json':
        args.json = true;
        break;
      case '--wait':
        args.wait = true;
        break;
      case '--force':
        args.force = true;
        break;
      case '-h':
      case '--help':
        args.help = true;
        break;
      case '-f':
      case '--file':
        [args.file, i] = valueOf(flag, inline, i);
        break;
      case '-m':
      case '--message':
        [args.message, i] = valueOf(flag, inline, i);
        break;
      case '--timeout':
        [args.timeout, i] = valueOf(flag, inline, i);
        break;
      default:
        throw new UsageError(`unknown option ${flag}`);
    }
  }
  args.command = words[0] ?? '';
  args.positionals = words.slice(1);
  return args;
}

/** Refuses options that do not belong to the command, and wrong numbers of arguments. */
export function expect(args: Args, options: { count: number | [number, number]; allow?: Option[] }): void {
  const allow = new Set(options.allow ?? []);
  const given: Array<[Option, boolean, string]> = [
    ['file', args.file !== undefined, '-f'],
    ['message', args.message !== undefined, '-m'],
    ['wait', args.wait, '--wait'],
    ['force', args.force, '--force'],
    ['json', args.json, '--json'],
    ['timeout', args.timeout !== undefined, '--timeout'],
  ];
  for (const [option, present, flag] of given) {
    if (present && !allow.has(option)) throw new UsageError(`${args.command} does not take ${flag}`, args.command);
  }
  const [min, max] = Array.isArray(options.count) ? options.count : [options.count, options.count];
  const n = args.positionals.length;
  if (n < min) throw new UsageError(`${args.command} is missing arguments`, args.command);
  if (n > max) throw new UsageError(`unexpected argument "${args.positionals[max]}"`, args.command);
}

const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** `90s`, `10m`, `1h`, `500ms` (the pipeline file's durations) in milliseconds; a usage error otherwise. */
export function durationMs(text: string, flag: string, command: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!match || Number(match[1]) === 0) {
    throw new UsageError(`${flag} must be a duration such as 90s, 10m or 1h, got "${text}"`, command);
  }
  return Number(match[1]) * DURATION_UNITS_MS[match[2] as keyof typeof DURATION_UNITS_MS];
}
