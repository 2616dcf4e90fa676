/**
 * Drift of what a model sees against its baseline (baseline.ts): the population stability index (PSI) per
 * feature and for the predictions, the change of each feature's missing rate, and the categories never
 * seen in the baseline.
 *
 *   PSI = sum over bins of (current share - baseline share) * ln(current share / baseline share)
 *
 * over the baseline's bins (numbers: its quantile bins plus under/overflow; categories: its values plus
 * `other`, where unseen values also go). Missing values are not a bin: they are the missing rate. A share
 * of 0 (an empty bin on either side) counts as PSI_EPSILON, so that a bin the baseline never filled gives a
 * large, finite term instead of infinity. Rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 drift.
 *
 * DriftCounts are plain JSON (bin counts), so a batch run's chunks count cheaply and the finalizer sums.
 */
import type { Prediction } from '../predictions.ts';
import type { Baseline, CategoricalStats, FeatureStats, NumericStats } from './baseline.ts';
import { binOf, monitoredValue, predictionValue, scoreOf } from './bins.ts';

type FeatureType = NonNullable<FeatureStats['type']>;

/** The share an empty bin counts as in PSI (0.01 %). */
export const PSI_EPSILON = 1e-4;
/** Unseen category values listed per feature (the most frequent first). */
const MAX_UNSEEN_LISTED = 20;

/** The counts of one feature against its baseline's bins. */
export interface FeatureCounts {
  n: number;
  missing: number;
  /** Numbers: one count per baseline bin. Categories: baseline values then `other` last. */
  bins: number[];
  /** Categories: values never seen in the baseline, with their counts. */
  unseen?: Record<string, number>;
}

export interface DriftCounts {
  /** The baseline version these counts were binned against. */
  readonly baselineVersion: string;
  records: number;
  features: Record<string, FeatureCounts>;
  /** Predictions: classifiers' probability bins (or regressors' value bins). */
  prediction: { n: number; bins: number[]; labels: Record<string, number> };
}

function emptyCounts(stats: FeatureStats): FeatureCounts {
  return stats.kind === 'numeric'
    ? { n: 0, missing: 0, bins: new Array<number>(stats.counts.length).fill(0) }
    : { n: 0, missing: 0, bins: new Array<number>(Object.keys(stats.counts).length + 1).fill(0), unseen: {} };
}

function predictionHistogram(baseline: Baseline): NumericStats | undefined {
  const p = baseline.prediction;
  return p.kind === 'regressor' ? p.value : p.probability;
}

/** Counts feature values and predictions into a baseline's bins. */
export class DriftAccumulator {
  readonly counts: DriftCounts;
  private readonly categoryIndex = new Map<string, Map<string, number>>();
  private readonly monitored: { name: string; type: FeatureType; stats: FeatureStats }[] = [];
  private readonly classes: readonly (string | number)[] | undefined;

  constructor(private readonly baseline: Baseline) {
    const features: Record<string, FeatureCounts> = {};
    for (const [name, stats] of Object.entries(baseline.features)) {
      features[name] = emptyCounts(stats);
      this.monitored.push({ name, type: stats.type ?? 'number', stats });
      if (stats.kind === 'categorical')
        this.categoryIndex.set(name, new Map(Object.keys(stats.counts).map((v, i) => [v, i])));
    }
    this.classes = baseline.prediction.kind === 'classifier' ? baseline.prediction.classes : undefined;
    const histogram = predictionHistogram(baseline);
    this.counts = {
      baselineVersion: baseline.version,
      records: 0,
      features,
      prediction: { n: 0, bins: new Array<number>(histogram?.counts.length ?? 0).fill(0), labels: {} },
    };
  }

  /** One record's raw features (JSON values or CSV text, by name). */
  addFeatures(get: (name: string) => unknown): void {
    this.counts.records++;
    for (const { name, type, stats } of this.monitored) {
      const c = this.counts.features[name]!;
      c.n++;
      const value = monitoredValue({ type }, get(name));
      if (value === undefined) {
        c.missing++;
      } else if (stats.kind === 'numeric') {
        if (typeof value === 'number') c.bins[binOf(stats.edges, value)]!++;
        else c.missing++;
      } else {
        const text = String(value);
        const at = this.categoryIndex.get(name)!.get(text);
        if (at !== undefined) c.bins[at]!++;
        else {
          c.bins[c.bins.length - 1]!++;
          c.unseen![text] = (c.unseen![text] ?? 0) + 1;
        }
      }
    }
  }

  addPrediction(prediction: Prediction): void {
    const p = this.counts.prediction;
    p.n++;
    if ('label' in prediction)
      p.labels[String(prediction.label)] = (p.labels[String(prediction.label)] ?? 0) + 1;
    const histogram = predictionHistogram(this.baseline);
    const x =
      this.baseline.prediction.kind === 'regressor'
        ? predictionValue(prediction)
        : scoreOf(prediction, this.classes);
    if (histogram && x !== undefined) p.bins[binOf(histogram.edges, x)]!++;
  }
}

/** Adds `more` into `into` (same baseline): how a batch run's finalizer sums its chunks. */
export function mergeDriftCounts(into: DriftCounts, more: DriftCounts): void {
  into.records += more.records;
  for (const [name, c] of Object.entries(more.features)) {
    const target = into.features[name];
    if (!target) continue;
    target.n += c.n;
    target.missing += c.missing;
    c.bins.forEach((v, i) => (target.bins[i] = (target.bins[i] ?? 0) + v));
    if (c.unseen) {
      target.unseen ??= {};
      for (const [v, k] of Object.entries(c.unseen)) target.unseen[v] = (target.unseen[v] ?? 0) + k;
    }
  }
  into.prediction.n += more.prediction.n;
  more.prediction.bins.forEach((v, i) => (into.prediction.bins[i] = (into.prediction.bins[i] ?? 0) + v));
  for (const [label, k] of Object.entries(more.prediction.labels))
    into.prediction.labels[label] = (into.prediction.labels[label] ?? 0) + k;
}

function shares(counts: readonly number[]): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => (total === 0 ? 0 : c / total));
}

/** PSI of two distributions over the same bins (counts or shares); empty bins count as PSI_EPSILON. */
export function psi(baseline: readonly number[], current: readonly number[]): number {
  const b = shares(baseline);
  const c = shares(current);
  let sum = 0;
  for (let i = 0; i < b.length; i++) {
    const bi = Math.max(b[i]!, PSI_EPSILON);
    const ci = Math.max(c[i] ?? 0, PSI_EPSILON);
    sum += (ci - bi) * Math.log(ci / bi);
  }
  return sum;
}

const round = (x: number, digits = 4): number => Number(x.toFixed(digits));

export interface FeatureDrift {
  readonly name: string;
  readonly kind: 'numeric' | 'categorical';
  /** Records with a value (not missing). */
  readonly n: number;
  /** Undefined when no record had a value. */
  readonly psi: number | undefined;
  readonly drifted: boolean;
  readonly missingRate: { readonly baseline: number; readonly current: number; readonly change: number };
  /** Categories: values never seen in the baseline (most frequent first). */
  readonly unseen?: readonly { readonly value: string; readonly count: number }[];
  /** The bins (numbers: their bounds; categories: values, then "(other)"), with shares on both sides. */
  readonly bins: readonly { readonly bin: string; readonly baseline: number; readonly current: number }[];
}

export interface PredictionDrift {
  readonly n: number;
  /** Classifiers: of the binned probability; regressors: of the value. */
  readonly psi: number | undefined;
  /** Classifiers: what the histogram bins (e.g. "probability of 1"). */
  readonly score?: string;
  readonly labelPsi?: number;
  readonly labels?: { readonly baseline: Record<string, number>; readonly current: Record<string, number> };
  readonly bins: FeatureDrift['bins'];
}

export interface DriftFigures {
  readonly baselineVersion: string;
  readonly threshold: number;
  readonly records: number;
  /** Sorted by PSI, highest first. */
  readonly features: readonly FeatureDrift[];
  readonly prediction: PredictionDrift;
  /** The features whose PSI passes the threshold. */
  readonly drifted: readonly string[];
}

function binLabels(stats: NumericStats): string[] {
  const e = stats.edges;
  const k = e.length - 1;
  const f = (x: number) => String(Number(x.toPrecision(4)));
  const labels = [`< ${f(e[0]!)}`];
  for (let i = 1; i <= k; i++) labels.push(`[${f(e[i - 1]!)}, ${f(e[i]!)}${i === k ? ']' : ')'}`);
  labels.push(`> ${f(e[k]!)}`);
  return labels;
}

function binTable(labels: readonly string[], baseline: readonly number[], current: readonly number[]) {
  const b = shares(baseline);
  const c = shares(current);
  return labels.map((bin, i) => ({ bin, baseline: round(b[i] ?? 0), current: round(c[i] ?? 0) }));
}

function featureDrift(name: string, stats: FeatureStats, c: FeatureCounts, threshold: number): FeatureDrift {
  const baselineCounts =
    stats.kind === 'numeric' ? stats.counts : [...Object.values(stats.counts), stats.other];
  const labels = stats.kind === 'numeric' ? binLabels(stats) : [...Object.keys(stats.counts), '(other)'];
  const present = c.n - c.missing;
  const value = present > 0 ? round(psi(baselineCounts, c.bins)) : undefined;
  const baselineMissing = stats.n === 0 ? 0 : stats.missing / stats.n;
  const currentMissing = c.n === 0 ? 0 : c.missing / c.n;
  const unseen = Object.entries(c.unseen ?? {})
    .sort((a, b) => b[1] - a[1])
    .slice(0, MAX_UNSEEN_LISTED)
    .map(([v, count]) => ({ value: v, count }));
  return {
    name,
    kind: stats.kind,
    n: present,
    psi: value,
    drifted: value !== undefined && value > threshold,
    missingRate: {
      baseline: round(baselineMissing),
      current: round(currentMissing),
      change: round(currentMissing - baselineMissing),
    },
    ...(stats.kind === 'categorical' ? { unseen } : {}),
    bins: binTable(labels, baselineCounts, c.bins),
  };
}

function predictionDrift(baseline: Baseline, c: DriftCounts['prediction']): PredictionDrift {
  const p = baseline.prediction;
  const histogram = p.kind === 'regressor' ? p.value : p.probability;
  const binned = c.bins.reduce((a, b) => a + b, 0);
  const value = histogram && binned > 0 ? round(psi(histogram.counts, c.bins)) : undefined;
  const bins = histogram ? binTable(binLabels(histogram), histogram.counts, c.bins) : [];
  if (p.kind === 'regressor') return { n: c.n, psi: value, bins };
  const labels = [...new Set([...Object.keys(p.labels), ...Object.keys(c.labels)])].sort();
  const labelShares = (counts: Record<string, number>) => {
    const s = shares(labels.map((l) => counts[l] ?? 0));
    return Object.fromEntries(labels.map((l, i) => [l, round(s[i]!)]));
  };
  return {
    n: c.n,
    psi: value,
    score: p.score,
    ...(c.n > 0
      ? {
          labelPsi: round(
            psi(
              labels.map((l) => p.labels[l] ?? 0),
              labels.map((l) => c.labels[l] ?? 0),
            ),
          ),
        }
      : {}),
    labels: { baseline: labelShares(p.labels), current: labelShares(c.labels) },
    bins,
  };
}

/** The drift figures of counts against their baseline. */
export function driftFigures(baseline: Baseline, counts: DriftCounts, threshold: number): DriftFigures {
  const features = Object.entries(counts.features)
    .map(([name, c]) => featureDrift(name, baseline.features[name]!, c, threshold))
    .sort((a, b) => (b.psi ?? -1) - (a.psi ?? -1) || (a.name < b.name ? -1 : 1));
  return {
    baselineVersion: baseline.version,
    threshold,
    records: counts.records,
    features,
    prediction: predictionDrift(baseline, counts.prediction),
    drifted: features.filter((f) => f.drifted).map((f) => f.name),
  };
}

export type { CategoricalStats };
