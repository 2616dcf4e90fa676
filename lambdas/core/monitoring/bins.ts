/**
 * How the monitor reads and bins values (no schema library: the batch finalizer and scorer bundle this,
 * not zod). The baseline's schema and computation are in baseline.ts.
 */
import type { FeatureSpec } from '../manifest.ts';
import type { Prediction } from '../predictions.ts';

/** One feature value as the monitor sees it: a number, a category (booleans as "true"/"false"), or missing. */
export type MonitoredValue = number | string | undefined;

const BOOLEAN_TEXT: Record<string, string> = { true: 'true', false: 'false', '1': 'true', '0': 'false' };

/** Reads a raw value (JSON or CSV text) of a feature; undefined when missing or unreadable. */
export function monitoredValue(feature: Pick<FeatureSpec, 'type'>, raw: unknown): MonitoredValue {
  if (raw === undefined || raw === null) return undefined;
  if (feature.type === 'number' || feature.type === 'integer') {
    const value =
      typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
    return Number.isFinite(value) ? value : undefined;
  }
  if (feature.type === 'boolean') {
    if (typeof raw === 'boolean') return raw ? 'true' : 'false';
    return BOOLEAN_TEXT[String(raw).trim().toLowerCase()];
  }
  const text = typeof raw === 'string' ? raw : typeof raw === 'number' ? String(raw) : undefined;
  return text === undefined || text === '' ? undefined : text;
}

/**
 * The bin of a number: 0 below edges[0], i for [edges[i-1], edges[i]) (the last inner bin, k, also takes
 * edges[k]), k+1 above the last edge, where k = edges.length - 1.
 */
export function binOf(edgesOf: readonly number[], x: number): number {
  const k = edgesOf.length - 1;
  if (x < edgesOf[0]!) return 0;
  if (x > edgesOf[k]!) return k + 1;
  if (x === edgesOf[k]) return Math.max(k, 1);
  // The count of edges <= x (binary search).
  let lo = 0;
  let hi = edgesOf.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edgesOf[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The value at quantile q of sorted values (linear interpolation between closest ranks). */
export function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const below = Math.floor(at);
  const above = Math.ceil(at);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (at - below);
}

/** The probability a classifier's histogram bins: the second class's for two classes, else the top one. */
export function scoreName(classes: readonly (string | number)[] | undefined): string {
  return classes && classes.length === 2 ? `probability of ${String(classes[1])}` : 'top probability';
}

export function scoreOf(
  prediction: Prediction,
  classes: readonly (string | number)[] | undefined,
): number | undefined {
  if (!('label' in prediction) || !prediction.probabilities) return undefined;
  const p = prediction.probabilities;
  if (classes && classes.length === 2) return p[String(classes[1])];
  const values = Object.values(p);
  return values.length > 0 ? Math.max(...values) : undefined;
}

export function predictionValue(prediction: Prediction): number | undefined {
  return 'value' in prediction ? prediction.value : undefined;
}
