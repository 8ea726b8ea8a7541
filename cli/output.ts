// The shared output layer: how every command prints tables, JSON, decisions and errors, so they read alike.
import type { FieldError } from '../client/errors';
import type { Io } from './io';

export const printJson = (io: Io, value: unknown): void => io.out(JSON.stringify(value, null, 2));

/** Columns separated by two spaces, padded to the widest cell; the last column is not padded. */
export function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)));
  return rows.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column])))
      .join('  ')
      .trimEnd(),
  );
}

export const orDash = (value: string | undefined): string => (value === undefined || value === '' ? '-' : value);

export const decisionLine = (d: { user: string; at: string; comment?: string }): string =>
  `by ${d.user} at ${d.at}${d.comment ? ` ${JSON.stringify(d.comment)}` : ''}`;

export const artifactList = (artifacts: Record<string, string>, separator: string): string =>
  Object.entries(artifacts)
    .map(([name, version]) => `${name}=${version}`)
    .join(separator);

/** The command line is wrong: exit code 2, with the command's usage. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

/** A failure to report as `error: ...` with exit code 1 (the API said no, a file is unreadable, ...). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly errors: FieldError[] = [],
    readonly hint?: string,
  ) {
    super(message);
  }
}
