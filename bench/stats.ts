// What every benchmark prints: medians with their spread, ratios against the floor, and the machine's load, so a
// number can be judged by the conditions it was taken in.
import { availableParallelism, loadavg } from 'node:os';

export function sorted(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** The q-quantile (0..1) by linear interpolation between closest ranks. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = sorted(xs);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export const median = (xs: readonly number[]): number => quantile(xs, 0.5);

/** "412 ms (398–455)": the median with the range (min–max) in the same unit; seconds from 10 s up. */
export function formatSample(xs: readonly number[]): string {
  if (xs.length === 0) return 'no runs';
  const s = sorted(xs);
  const scale = s[s.length - 1]!;
  const fmt = (ms: number) => formatMs(ms, scale);
  if (s.length === 1) return fmt(s[0]!);
  const bare = (ms: number) => fmt(ms).replace(/ (ms|s)$/, '');
  return `${fmt(median(s))} (${bare(s[0]!)}–${bare(scale)})`;
}

/** Milliseconds below 10 s (one decimal under 10 ms), seconds with two decimals above. */
export function formatMs(ms: number, scale: number = ms): string {
  if (!Number.isFinite(ms)) return '—';
  if (scale >= 10_000) return `${(ms / 1000).toFixed(2)} s`;
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

export function formatRatio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(1)}×` : '—';
}

/** Load averages (1, 5, 15 min) and the core count, as one line. */
export function loadLine(): string {
  const [one, five, fifteen] = loadavg().map((x) => x.toFixed(2));
  return `load ${one} / ${five} / ${fifteen} (1/5/15 min) on ${availableParallelism()} cores`;
}

/** A plain-text table: the first column left-aligned, the others too (they hold mixed text). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Reads `--name value` as a positive integer, or `fallback`. */
export function intOption(argv: readonly string[], name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(argv[i + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}
