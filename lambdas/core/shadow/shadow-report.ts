/**
 * What the shadow captures say of a shadow version against the live one (`models shadow-report`), and the
 * agreement gate a promote of a version that has been a shadow must pass.
 */
import type { CaptureRecord } from '../capture/capture-record.ts';

/** A shadow capture record (source `shadow`). */
export type ShadowRecord = CaptureRecord & { readonly shadowVersion: string };

export interface ShadowReport {
  /** Comparisons. */
  readonly n: number;
  /** Comparisons that have labels (classifiers). */
  readonly labelled: number;
  /** Share of the labelled comparisons whose labels agree; null without any (regressors). */
  readonly agreement: number | null;
  /** Over the comparisons that have one; null without any. */
  readonly meanAbsDifference: number | null;
  /** Nearest-rank 99th percentile. */
  readonly p99AbsDifference: number | null;
  /** Comparisons per live version they were made against. */
  readonly against: Readonly<Record<string, number>>;
  readonly firstAt?: string;
  readonly lastAt?: string;
  /** The largest disagreements: different labels first, then by absolute difference, largest first. */
  readonly largest: readonly {
    readonly id: string | null;
    readonly features: unknown;
    readonly liveVersion: string;
    readonly live: unknown;
    readonly shadowVersion: string;
    readonly shadow: unknown;
    readonly agreement?: boolean;
    readonly absDifference: number | null;
  }[];
}

/** The nearest-rank percentile (q in (0, 1]) of values; null for none. */
export function percentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

const difference = (r: ShadowRecord): number | null =>
  typeof r.absDifference === 'number' && Number.isFinite(r.absDifference) ? r.absDifference : null;

/** Orders the worst comparison first: a label disagreement, then the larger difference. */
function worstFirst(a: ShadowRecord, b: ShadowRecord): number {
  const disagree = (r: ShadowRecord) => (r.agreement === false ? 1 : 0);
  if (disagree(a) !== disagree(b)) return disagree(b) - disagree(a);
  return (difference(b) ?? -1) - (difference(a) ?? -1);
}

export function summarizeShadow(records: readonly ShadowRecord[], top = 10): ShadowReport {
  const labelled = records.filter((r) => typeof r.agreement === 'boolean');
  const differences = records.map(difference).filter((d): d is number => d !== null);
  const against: Record<string, number> = {};
  for (const r of records) against[r.version] = (against[r.version] ?? 0) + 1;
  const times = records.map((r) => r.time).sort();
  const largest = [...records]
    .filter((r) => r.agreement === false || (difference(r) ?? 0) > 0)
    .sort(worstFirst)
    .slice(0, top)
    .map((r) => ({
      id: r.id,
      features: r.features,
      liveVersion: r.version,
      live: r.prediction,
      shadowVersion: r.shadowVersion,
      shadow: r.shadowPrediction,
      ...(typeof r.agreement === 'boolean' ? { agreement: r.agreement } : {}),
      absDifference: difference(r),
    }));
  return {
    n: records.length,
    labelled: labelled.length,
    agreement: labelled.length === 0 ? null : labelled.filter((r) => r.agreement).length / labelled.length,
    meanAbsDifference:
      differences.length === 0 ? null : differences.reduce((a, b) => a + b, 0) / differences.length,
    p99AbsDifference: percentile(differences, 0.99),
    against,
    ...(times.length > 0 ? { firstAt: times[0], lastAt: times.at(-1) } : {}),
    largest,
  };
}

/** The agreement gate's thresholds: documented defaults, overridden per model by the candidate's manifest. */
export interface ShadowGateThresholds {
  readonly minShadowComparisons: number;
  readonly minShadowAgreement: number;
}

export const DEFAULT_SHADOW_GATE: ShadowGateThresholds = {
  minShadowComparisons: 200,
  minShadowAgreement: 0.95,
};

export interface ShadowGateDecision {
  readonly passed: boolean;
  readonly n: number;
  readonly agreement: number | null;
  readonly thresholds: ShadowGateThresholds;
  /** Why it did not pass, in the operator's terms. */
  readonly reason?: string;
}

/**
 * Whether the comparisons of a candidate against the live version allow its promotion: at least
 * `minShadowComparisons` of them, and (classifiers) label agreement at or above `minShadowAgreement`.
 * Regressors have no labels: only the number of comparisons is gated.
 */
export function shadowGate(report: ShadowReport, thresholds: ShadowGateThresholds): ShadowGateDecision {
  const base = { n: report.n, agreement: report.agreement, thresholds };
  if (report.n < thresholds.minShadowComparisons) {
    return {
      ...base,
      passed: false,
      reason: `${report.n} shadow comparison(s), fewer than the ${thresholds.minShadowComparisons} required`,
    };
  }
  if (report.agreement !== null && report.agreement < thresholds.minShadowAgreement) {
    return {
      ...base,
      passed: false,
      reason: `label agreement ${report.agreement.toFixed(4)} over ${report.labelled} comparisons is below the ${thresholds.minShadowAgreement} required`,
    };
  }
  return { ...base, passed: true };
}
