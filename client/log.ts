// The one logger of Ferry's HTTP API process: JSON lines on stderr, so stdout stays free for
// what a user or a script reads (the API's "listening on" line, the CLI's output). Callers pass fields, never
// secrets: no tokens, no Authorization headers, no credential values.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  /** Where lines go; default process.stderr. */
  write?: (line: string) => void;
  /** Lowest level written; default from FERRY_LOG_LEVEL, else "info". */
  level?: LogLevel;
  /** Fields added to every line (e.g. `{ component: 'api' }`). */
  base?: LogFields;
}

function isLogLevel(value: string | undefined): value is LogLevel {
  return value !== undefined && Object.prototype.hasOwnProperty.call(LEVEL_ORDER, value);
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const envLevel = process.env.FERRY_LOG_LEVEL?.toLowerCase();
  const minimum = LEVEL_ORDER[options.level ?? (isLogLevel(envLevel) ? envLevel : 'info')];
  const base = options.base ?? {};

  const log = (level: LogLevel, message: string, fields?: LogFields): void => {
    if (LEVEL_ORDER[level] < minimum) return;
    let line: string;
    try {
      line = JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...base, ...fields }, errorReplacer);
    } catch {
      // A field that cannot be serialized (a cycle) must not take the process down with it.
      line = JSON.stringify({
        time: new Date().toISOString(),
        level,
        msg: message,
        ...base,
        note: 'fields not serializable',
      });
    }
    write(line + '\n');
  };

  return {
    debug: (message, fields) => log('debug', message, fields),
    info: (message, fields) => log('info', message, fields),
    warn: (message, fields) => log('warn', message, fields),
    error: (message, fields) => log('error', message, fields),
  };
}

/** Errors serialize as `{}` by default; keep the name and message (and the stack, which stays on the server). */
function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  return value;
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** The process-wide logger. */
export const logger: Logger = createLogger();
