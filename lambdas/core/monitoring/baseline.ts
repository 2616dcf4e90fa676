/**
 * A model version's baseline: what its inputs and predictions looked like on a reference dataset (usually
 * its training data), stored beside the package as `models/<name>/<version>/baseline.json`. Drift is
 * measured against it (drift.ts). Counts, not shares, are stored, so that figures are exact and partial
 * counts (a batch run's chunks) can be summed.
 *
 * Numbers (number, integer): bin edges are the data's minimum, deciles and maximum (duplicates dropped),
 * plus an underflow bin below the minimum and an overflow bin above the maximum, both empty in the
 * baseline. Categories and booleans: a count per value for the most frequent `MAX_CATEGORIES`, the rest
 * in one `other` count. Every feature also counts its missing values (absent, null, "" or not a number).
 */
import * as z from 'zod';
import type { Manifest } from '../manifest.ts';
import type { Prediction } from '../predictions.ts';
import { MonitoringError } from './errors.ts';
import { binOf, monitoredValue, predictionValue, quantile, scoreName, scoreOf } from './bins.ts';

export {
  binOf,
  monitoredValue,
  predictionValue,
  quantile,
  scoreName,
  scoreOf,
  type MonitoredValue,
} from './bins.ts';

export const BASELINE_SCHEMA_VERSION = 1;
export const BASELINE_FILE = 'baseline.json';
/** Quantile bins of a number's histogram (deciles). */
export const DEFAULT_BINS = 10;
/** Category values kept by name; the rest share one `other` count. */
export const MAX_CATEGORIES = 50;

const count = z.number().int().nonnegative();
/** Strictly increasing; one distinct value in the data gives [v, v]. */
const edges = z
  .array(z.number())
  .min(2)
  .refine((e) => (e.length === 2 && e[0] === e[1]) || e.every((x, i) => i === 0 || x > e[i - 1]!), {
    message: 'edges must be strictly increasing',
  });

/** Numbers: `counts[0]` below edges[0], `counts[i]` in [edges[i-1], edges[i]) (the last inner bin includes its upper edge), `counts[k+1]` above the last edge. */
const numericStats = z
  .object({
    kind: z.literal('numeric'),
    /** The manifest's feature type (absent for prediction histograms). */
    type: z.enum(['number', 'integer']).optional(),
    n: count,
    missing: count,
    edges,
    counts: z.array(count),
    min: z.number().optional(),
    max: z.number().optional(),
    mean: z.number().optional(),
  })
  .refine((s) => s.counts.length === s.edges.length + 1, {
    message: 'counts must have one entry more than edges (underflow, bins, overflow)',
    path: ['counts'],
  });

const categoricalStats = z.object({
  kind: z.literal('categorical'),
  type: z.enum(['boolean', 'category', 'string']),
  n: count,
  missing: count,
  counts: z.record(z.string(), count),
  other: count,
});

const featureStats = z.union([numericStats, categoricalStats]);

const predictionStats = z.union([
  z.object({
    kind: z.literal('classifier'),
    n: count,
    labels: z.record(z.string(), count),
    /** The classes in probability order (the score of a binary classifier is the second's). */
    classes: z.array(z.union([z.string(), z.number()])).optional(),
    /** Which probability is binned: a class's (binary: the second class) or the top one (multiclass). */
    score: z.string(),
    probability: numericStats.optional(),
  }),
  z.object({ kind: z.literal('regressor'), n: count, value: numericStats }),
]);

export const baselineSchema = z.object({
  schemaVersion: z.literal(BASELINE_SCHEMA_VERSION),
  model: z.string(),
  version: z.string(),
  createdAt: z.string(),
  dataset: z.object({ description: z.string(), rows: count, scored: count, rejected: count }),
  features: z.record(z.string(), featureStats),
  prediction: predictionStats,
});

export type Baseline = z.output<typeof baselineSchema>;
export type NumericStats = z.output<typeof numericStats>;
export type CategoricalStats = z.output<typeof categoricalStats>;
export type FeatureStats = z.output<typeof featureStats>;
export type PredictionStats = z.output<typeof predictionStats>;

/** Parses baseline.json; a malformed one is INVALID_BASELINE naming the field and the file. */
export function parseBaseline(bytes: Uint8Array | string, where: string): Baseline {
  let json: unknown;
  try {
    json = JSON.parse(typeof bytes === 'string' ? bytes : new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new MonitoringError('INVALID_BASELINE', `${where} is not valid JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
  const parsed = baselineSchema.safeParse(json);
  if (!parsed.success) {
    const details = parsed.error.issues.map((i) => ({ field: i.path.join('.'), message: i.message }));
    throw new MonitoringError(
      'INVALID_BASELINE',
      `${where} is not a baseline (schemaVersion ${BASELINE_SCHEMA_VERSION}): ${details
        .slice(0, 3)
        .map((d) => `${d.field || '(root)'}: ${d.message}`)
        .join('; ')}`,
      { details },
    );
  }
  return parsed.data;
}

/**
 * Edges from the data: minimum, the `bins - 1` inner quantiles, maximum, duplicates dropped. A number with
 * at most `bins + 1` distinct values (small counts, flags) gets its distinct values as edges instead, so
 * that each value but the top two has a bin of its own.
 */
export function quantileEdges(values: readonly number[], bins = DEFAULT_BINS): number[] {
  const sorted = Float64Array.from(values).sort();
  const distinct: number[] = [];
  for (const x of sorted) {
    if (distinct.length > bins + 1) break;
    if (distinct.length === 0 || x > distinct[distinct.length - 1]!) distinct.push(x);
  }
  if (distinct.length <= bins + 1) return distinct.length === 1 ? [distinct[0]!, distinct[0]!] : distinct;
  const out: number[] = [];
  for (let i = 0; i <= bins; i++) {
    const edge = quantile(sorted as unknown as number[], i / bins);
    if (out.length === 0 || edge > out[out.length - 1]!) out.push(edge);
  }
  return out;
}

/** Means are stored with 12 significant digits: no float noise in the JSON. */
function roundMean(x: number): number {
  return Number(x.toPrecision(12));
}

export function numericStatsOf(
  values: readonly number[],
  missing: number,
  bins = DEFAULT_BINS,
): NumericStats {
  if (values.length === 0) return { kind: 'numeric', n: missing, missing, edges: [0, 0], counts: [0, 0, 0] };
  const e = quantileEdges(values, bins);
  const counts = new Array<number>(e.length + 1).fill(0);
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const x of values) {
    counts[binOf(e, x)]!++;
    sum += x;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return {
    kind: 'numeric',
    n: values.length + missing,
    missing,
    edges: e,
    counts,
    min,
    max,
    mean: roundMean(sum / values.length),
  };
}

export function categoricalStatsOf(
  values: readonly string[],
  missing: number,
  type: CategoricalStats['type'] = 'category',
): CategoricalStats {
  const all = new Map<string, number>();
  for (const v of values) all.set(v, (all.get(v) ?? 0) + 1);
  const ranked = [...all].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const counts: Record<string, number> = {};
  let other = 0;
  ranked.forEach(([value, n], i) => {
    if (i < MAX_CATEGORIES) counts[value] = n;
    else other += n;
  });
  return { kind: 'categorical', type, n: values.length + missing, missing, counts, other };
}

export interface BaselineInput {
  readonly manifest: Manifest;
  readonly classes: readonly (string | number)[] | undefined;
  /** Where the rows came from, for the record. */
  readonly description: string;
  /** Raw feature objects (JSON values or CSV text) of the rows that were scored. */
  readonly rows: readonly Record<string, unknown>[];
  readonly predictions: readonly Prediction[];
  /** Rows of the dataset that could not be scored. */
  readonly rejected: number;
  readonly createdAt: string;
  readonly bins?: number;
}

/** The baseline of a version from scored rows. */
export function computeBaseline(input: BaselineInput): Baseline {
  const { manifest, rows, predictions } = input;
  if (rows.length === 0)
    throw new MonitoringError(
      'EMPTY_DATASET',
      `no row of ${input.description} could be scored (${input.rejected} rejected): a baseline needs scored rows`,
    );
  const features: Record<string, FeatureStats> = {};
  for (const feature of manifest.features) {
    let missing = 0;
    const numbers: number[] = [];
    const categories: string[] = [];
    for (const row of rows) {
      const value = monitoredValue(feature, row[feature.name]);
      if (value === undefined) missing++;
      else if (typeof value === 'number') numbers.push(value);
      else categories.push(value);
    }
    features[feature.name] =
      feature.type === 'number' || feature.type === 'integer'
        ? { ...numericStatsOf(numbers, missing, input.bins), type: feature.type }
        : categoricalStatsOf(categories, missing, feature.type);
  }
  return {
    schemaVersion: BASELINE_SCHEMA_VERSION,
    model: manifest.name,
    version: manifest.version,
    createdAt: input.createdAt,
    dataset: {
      description: input.description,
      rows: rows.length + input.rejected,
      scored: rows.length,
      rejected: input.rejected,
    },
    features,
    prediction: predictionStatsOf(manifest, input.classes, predictions, input.bins),
  };
}

function predictionStatsOf(
  manifest: Manifest,
  classes: readonly (string | number)[] | undefined,
  predictions: readonly Prediction[],
  bins?: number,
): PredictionStats {
  if (manifest.task === 'regression') {
    const values = predictions.map(predictionValue).filter((v): v is number => v !== undefined);
    return {
      kind: 'regressor',
      n: predictions.length,
      value: numericStatsOf(values, predictions.length - values.length, bins),
    };
  }
  const labels: Record<string, number> = {};
  const scores: number[] = [];
  for (const p of predictions) {
    if ('label' in p) labels[String(p.label)] = (labels[String(p.label)] ?? 0) + 1;
    const s = scoreOf(p, classes);
    if (s !== undefined) scores.push(s);
  }
  return {
    kind: 'classifier',
    n: predictions.length,
    labels,
    ...(classes ? { classes: [...classes] } : {}),
    score: scoreName(classes),
    ...(scores.length > 0
      ? { probability: numericStatsOf(scores, predictions.length - scores.length, bins) }
      : {}),
  };
}
