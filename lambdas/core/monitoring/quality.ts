/**
 * Live quality per model version: outcomes (POST /feedback) joined with the predictions made for the
 * same entities, and the figures computed per version. Pure: no I/O (quality-inputs.ts gathers the
 * inputs, `measureQuality` there is the entry point).
 *
 * The join: outcomes are taken one per id (the latest observed; of equal times the one received last).
 * Each outcome is matched, for every version, to that version's latest prediction of the id made at or
 * before the outcome's `observedAt` (a prediction made after the outcome was known is not a forecast of
 * it). An outcome with no such prediction for any version is counted as unmatched.
 *
 * Classifiers: accuracy (predicted label = outcome), ROC AUC (binary: the probability of the positive
 * class, the second of the model's classes, as scikit-learn's; multi-class: one-vs-rest, the mean over
 * the classes that have both positive and negative outcomes), log loss (the probability given to the
 * observed class, clipped to [1e-15, 1 - 1e-15]). AUC and log loss need probabilities: predictions
 * without them count for accuracy only. Regressors: MAE and RMSE. A figure that cannot be computed (no
 * pair, one class only) is null.
 */
import type { ClassLabel, Task } from '../manifest.ts';
import type { Prediction } from '../predictions.ts';

export const LOG_LOSS_EPSILON = 1e-15;

/** Where a prediction was found: a capture of a lane, or the table (precomputed). */
export type PredictionOrigin = 'realtime' | 'stream' | 'batch' | 'table' | (string & {});

export interface OutcomeInput {
  readonly id: string;
  readonly label?: ClassLabel;
  readonly value?: number;
  readonly observedAtMs: number;
  /** Ties of observedAt: the later received wins. @default 0 */
  readonly receivedAtMs?: number;
}

export interface PredictionInput {
  readonly id: string;
  readonly version: string;
  readonly prediction: Prediction;
  /** When it was made (served, scored or computed), epoch ms. */
  readonly timeMs: number;
  readonly origin: PredictionOrigin;
}

export interface QualityInputs {
  readonly model: string;
  readonly task: Task;
  /** In probability order; undefined: taken from the first prediction's probabilities. */
  readonly classes?: readonly ClassLabel[];
  readonly window: { readonly fromMs: number; readonly toMs: number };
  readonly outcomes: readonly OutcomeInput[];
  readonly predictions: readonly PredictionInput[];
}

export interface ClassifierFigures {
  readonly kind: 'classification';
  /** Outcomes matched to a prediction of this version. */
  readonly count: number;
  readonly accuracy: number | null;
  /** Matched predictions that carry probabilities (AUC and log loss are over these). */
  readonly withProbabilities: number;
  readonly rocAuc: number | null;
  readonly logLoss: number | null;
}

export interface RegressorFigures {
  readonly kind: 'regression';
  readonly count: number;
  readonly mae: number | null;
  readonly rmse: number | null;
}

export interface VersionQuality {
  readonly version: string;
  /** Matched outcomes per origin of the prediction they were matched to. */
  readonly matchedBy: Readonly<Record<string, number>>;
  readonly figures: ClassifierFigures | RegressorFigures;
}

/** What `monitor quality` prints and the drift report carries: one entry per version with a match. */
export interface QualityReport {
  readonly model: string;
  readonly task: Task;
  readonly window: { readonly from: string; readonly to: string };
  /** `no data`: no outcome in the window, or none matched to a prediction. */
  readonly status: 'ok' | 'no data';
  /** Outcomes in the window (one per id). */
  readonly outcomes: number;
  /** Of those, matched to no version's prediction. */
  readonly unmatched: number;
  readonly versions: readonly VersionQuality[];
}

/**
 * ROC AUC from scores and 0/1 truths: the probability that a random positive scores above a random
 * negative, ties counting one half (the Mann-Whitney statistic with average ranks). Null when either
 * class is absent.
 */
export function rocAuc(scores: readonly number[], positives: readonly boolean[]): number | null {
  const order = scores.map((s, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let positiveCount = 0;
  let rankSum = 0;
  for (let start = 0; start < order.length;) {
    let end = start;
    while (end + 1 < order.length && scores[order[end + 1]!] === scores[order[start]!]) end++;
    const averageRank = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++) {
      if (positives[order[k]!]) {
        positiveCount++;
        rankSum += averageRank;
      }
    }
    start = end + 1;
  }
  const negativeCount = order.length - positiveCount;
  if (positiveCount === 0 || negativeCount === 0) return null;
  return (rankSum - (positiveCount * (positiveCount + 1)) / 2) / (positiveCount * negativeCount);
}

/** Mean of -ln(p of the observed class), each p clipped to [eps, 1 - eps]. Null for no pair. */
export function logLoss(observedProbabilities: readonly number[], epsilon = LOG_LOSS_EPSILON): number | null {
  if (observedProbabilities.length === 0) return null;
  let sum = 0;
  for (const p of observedProbabilities) sum -= Math.log(Math.min(1 - epsilon, Math.max(epsilon, p)));
  return sum / observedProbabilities.length;
}

export function classifierFigures(
  pairs: readonly { readonly truth: ClassLabel; readonly prediction: Prediction }[],
  classes: readonly ClassLabel[] | undefined,
): ClassifierFigures {
  let correct = 0;
  const withProbabilities: { truth: string; probabilities: Record<string, number> }[] = [];
  for (const { truth, prediction } of pairs) {
    if (!('label' in prediction)) continue;
    if (String(prediction.label) === String(truth)) correct++;
    if (prediction.probabilities)
      withProbabilities.push({ truth: String(truth), probabilities: prediction.probabilities });
  }
  const names = (classes ?? Object.keys(withProbabilities[0]?.probabilities ?? {})).map(String);
  let auc: number | null = null;
  if (withProbabilities.length > 0 && names.length === 2) {
    const positive = names[1]!;
    auc = rocAuc(
      withProbabilities.map((p) => p.probabilities[positive] ?? 0),
      withProbabilities.map((p) => p.truth === positive),
    );
  } else if (withProbabilities.length > 0 && names.length > 2) {
    const perClass = names
      .map((c) =>
        rocAuc(
          withProbabilities.map((p) => p.probabilities[c] ?? 0),
          withProbabilities.map((p) => p.truth === c),
        ),
      )
      .filter((a): a is number => a !== null);
    auc = perClass.length === 0 ? null : perClass.reduce((a, b) => a + b, 0) / perClass.length;
  }
  return {
    kind: 'classification',
    count: pairs.length,
    accuracy: pairs.length === 0 ? null : correct / pairs.length,
    withProbabilities: withProbabilities.length,
    rocAuc: auc,
    logLoss: logLoss(withProbabilities.map((p) => p.probabilities[p.truth] ?? 0)),
  };
}

export function regressorFigures(
  pairs: readonly { readonly truth: number; readonly prediction: Prediction }[],
): RegressorFigures {
  let absolute = 0;
  let squared = 0;
  let count = 0;
  for (const { truth, prediction } of pairs) {
    if (!('value' in prediction)) continue;
    const error = prediction.value - truth;
    absolute += Math.abs(error);
    squared += error * error;
    count++;
  }
  return {
    kind: 'regression',
    count,
    mae: count === 0 ? null : absolute / count,
    rmse: count === 0 ? null : Math.sqrt(squared / count),
  };
}

/** One outcome per id: the latest observed (then the latest received). */
function latestOutcomes(outcomes: readonly OutcomeInput[]): OutcomeInput[] {
  const byId = new Map<string, OutcomeInput>();
  for (const o of outcomes) {
    const seen = byId.get(o.id);
    if (
      seen === undefined ||
      o.observedAtMs > seen.observedAtMs ||
      (o.observedAtMs === seen.observedAtMs && (o.receivedAtMs ?? 0) >= (seen.receivedAtMs ?? 0))
    )
      byId.set(o.id, o);
  }
  return [...byId.values()];
}

export function qualityReport(inputs: QualityInputs): QualityReport {
  const { fromMs, toMs } = inputs.window;
  const outcomes = latestOutcomes(
    inputs.outcomes.filter((o) => o.observedAtMs >= fromMs && o.observedAtMs <= toMs),
  );
  // Per id, per version: its predictions, to find the latest at or before each outcome.
  const byIdVersion = new Map<string, Map<string, PredictionInput[]>>();
  for (const p of inputs.predictions) {
    let versions = byIdVersion.get(p.id);
    if (!versions) byIdVersion.set(p.id, (versions = new Map()));
    let list = versions.get(p.version);
    if (!list) versions.set(p.version, (list = []));
    list.push(p);
  }
  const matched = new Map<string, { outcome: OutcomeInput; prediction: PredictionInput }[]>();
  let unmatched = 0;
  for (const outcome of outcomes) {
    let any = false;
    for (const [version, list] of byIdVersion.get(outcome.id) ?? []) {
      let best: PredictionInput | undefined;
      for (const p of list)
        if (p.timeMs <= outcome.observedAtMs && (!best || p.timeMs > best.timeMs)) best = p;
      if (!best) continue;
      any = true;
      let pairs = matched.get(version);
      if (!pairs) matched.set(version, (pairs = []));
      pairs.push({ outcome, prediction: best });
    }
    if (!any) unmatched++;
  }
  const versions = [...matched]
    .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
    .map(([version, pairs]): VersionQuality => {
      const matchedBy: Record<string, number> = {};
      for (const { prediction } of pairs)
        matchedBy[prediction.origin] = (matchedBy[prediction.origin] ?? 0) + 1;
      const figures =
        inputs.task === 'regression'
          ? regressorFigures(
              pairs.flatMap(({ outcome, prediction }) =>
                outcome.value === undefined
                  ? []
                  : [{ truth: outcome.value, prediction: prediction.prediction }],
              ),
            )
          : classifierFigures(
              pairs.flatMap(({ outcome, prediction }) =>
                outcome.label === undefined
                  ? []
                  : [{ truth: outcome.label, prediction: prediction.prediction }],
              ),
              inputs.classes,
            );
      return { version, matchedBy, figures };
    });
  return {
    model: inputs.model,
    task: inputs.task,
    window: { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() },
    status: versions.length === 0 ? 'no data' : 'ok',
    outcomes: outcomes.length,
    unmatched,
    versions,
  };
}

/** One CloudWatch value: `Tandem` namespace, dimensions model and version. */
export interface QualityMetric {
  readonly name: 'Accuracy' | 'RocAuc' | 'LogLoss' | 'Mae' | 'Rmse' | 'QualityMatched';
  readonly value: number;
  readonly model: string;
  readonly version: string;
}

/** The report's figures as metrics (a null figure is not published). */
export function qualityMetrics(report: QualityReport): QualityMetric[] {
  const out: QualityMetric[] = [];
  for (const { version, figures } of report.versions) {
    const add = (name: QualityMetric['name'], value: number | null) => {
      if (value !== null) out.push({ name, value, model: report.model, version });
    };
    add('QualityMatched', figures.count);
    if (figures.kind === 'classification') {
      add('Accuracy', figures.accuracy);
      add('RocAuc', figures.rocAuc);
      add('LogLoss', figures.logLoss);
    } else {
      add('Mae', figures.mae);
      add('Rmse', figures.rmse);
    }
  }
  return out;
}
