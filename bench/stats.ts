/**
 * Small statistics for the benchmarks: percentiles (linear interpolation between closest ranks),
 * summaries with spread, and formatting helpers. No timing assertions anywhere: figures are reported.
 */

export interface Summary {
  readonly n: number;
  readonly min: number;
  readonly p25: number;
  readonly p50: number;
  readonly p75: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** The p-th percentile (0..100) of ascending-sorted values; NaN when empty. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (n === 1) return sorted[0]!;
  const rank = (Math.min(100, Math.max(0, p)) / 100) * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(n - 1, lo + 1);
  const weight = rank - lo;
  return sorted[lo]! * (1 - weight) + sorted[hi]! * weight;
}

export function sortedCopy(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

export function percentile(values: ArrayLike<number>, p: number): number {
  return percentileSorted(sortedCopy(values), p);
}

export function median(values: ArrayLike<number>): number {
  return percentile(values, 50);
}

export function summarize(values: ArrayLike<number>): Summary {
  const sorted = sortedCopy(values);
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    n: sorted.length,
    min: sorted.length > 0 ? sorted[0]! : NaN,
    p25: percentileSorted(sorted, 25),
    p50: percentileSorted(sorted, 50),
    p75: percentileSorted(sorted, 75),
    p99: percentileSorted(sorted, 99),
    max: sorted.length > 0 ? sorted[sorted.length - 1]! : NaN,
    mean: sorted.length > 0 ? sum / sorted.length : NaN,
  };
}

/** a / b, or null when either is missing or b is 0. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !b)
    return null;
  return a / b;
}

/** Rounds for the JSON line: 3 significant decimals below 10, 2 below 1000, integers above. */
export function round(value: number | null | undefined): number | null {
  if (value === null || value === undefined || !Number.isFinite(value)) return null;
  const abs = Math.abs(value);
  const digits = abs >= 1000 ? 0 : abs >= 10 ? 2 : 3;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function fmt(value: number | null | undefined, unit = ''): string {
  const r = round(value);
  if (r === null) return 'n/a';
  const text = Math.abs(r) >= 1000 ? Math.round(r).toLocaleString('en-US') : String(r);
  return unit ? `${text} ${unit}` : text;
}

/** "lo-hi" spread text, e.g. of p25-p75 or min-max. */
export function spread(lo: number | null | undefined, hi: number | null | undefined, unit = ''): string {
  if (round(lo) === null || round(hi) === null) return '';
  return `${fmt(lo)}-${fmt(hi)}${unit ? ` ${unit}` : ''}`;
}

/** Nanoseconds (bigint differences from process.hrtime.bigint) to microseconds. */
export function nsToUs(ns: bigint): number {
  return Number(ns) / 1000;
}
