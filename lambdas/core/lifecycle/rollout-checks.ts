/**
 * The health checks between two steps of an automatic rollout, as pure functions of the two versions'
 * per-version metrics over a window (the API's `Instances`, `Errors`, `ModelLatency`, `Label.<label>`,
 * `ProbabilitySum.<class>` and `ValueSum`, docs/api.md). Each verdict names the metric, its value and the
 * threshold it was held to, so that the history says why a rollout went on or was rolled back.
 */
import { readEnv, SETTINGS } from '../settings.ts';
import type { RolloutVerdict } from './lifecycle.ts';

/** One version's metrics summed over a window. */
export interface VersionWindow {
  /** Instances the version answered. */
  readonly instances: number;
  /** Requests that failed in the version. */
  readonly errors: number;
  /** p99 of ModelLatency (ms) over the window; undefined when the model never ran (all cache hits). */
  readonly latencyP99Ms?: number;
  /** Instances predicted with each label (classifiers). */
  readonly labels: Readonly<Record<string, number>>;
  /** Sum of each class's probability (classifiers with probabilities). */
  readonly probabilitySums: Readonly<Record<string, number>>;
  /** Sum of the predicted values (single-output regressors). */
  readonly valueSum?: number;
}

export interface RolloutThresholds {
  readonly maxErrorRate: number;
  readonly maxLatencyMs: number;
  readonly maxShift: number;
  readonly minInstances: number;
}

/** The thresholds from the environment (ROLLOUT_*; lambdas/core/settings.ts), defaults for those unset. */
export function rolloutThresholdsFromEnv(
  env: Readonly<Record<string, string | undefined>>,
): RolloutThresholds {
  return {
    maxErrorRate: readEnv(SETTINGS.rolloutMaxErrorRate, env),
    maxLatencyMs: readEnv(SETTINGS.rolloutMaxLatencyMs, env),
    maxShift: readEnv(SETTINGS.rolloutMaxShift, env),
    minInstances: readEnv(SETTINGS.rolloutMinInstances, env),
  };
}

export const EMPTY_WINDOW: VersionWindow = { instances: 0, errors: 0, labels: {}, probabilitySums: {} };

const round = (value: number): number => Math.round(value * 1e6) / 1e6;

/**
 * The verdicts of one step: the candidate's traffic, errors and latency over the step's window, and its
 * prediction distribution against the live version's (over the whole rollout: at 100 % the live version
 * answers nothing in the step itself).
 */
export function checkStep(
  candidate: VersionWindow,
  live: VersionWindow,
  versions: { readonly candidate: string; readonly live: string },
  thresholds: RolloutThresholds,
): RolloutVerdict[] {
  const c = versions.candidate;
  const verdicts: RolloutVerdict[] = [];
  const trafficOk = candidate.instances >= thresholds.minInstances;
  verdicts.push({
    check: 'traffic',
    metric: `Instances of ${c}`,
    value: candidate.instances,
    threshold: thresholds.minInstances,
    passed: trafficOk,
    message: trafficOk
      ? `${c} answered ${candidate.instances} instance(s) (at least ${thresholds.minInstances})`
      : `${c} answered ${candidate.instances} instance(s), fewer than the ${thresholds.minInstances} a step needs to prove anything (ROLLOUT_MIN_INSTANCES; the API takes a pointer change up within MODEL_REFRESH_SECONDS)`,
  });

  const attempts = candidate.errors + candidate.instances;
  const errorRate = attempts === 0 ? 0 : round(candidate.errors / attempts);
  const errorsOk = errorRate <= thresholds.maxErrorRate;
  verdicts.push({
    check: 'errors',
    metric: `Errors / (Errors + Instances) of ${c}`,
    value: errorRate,
    threshold: thresholds.maxErrorRate,
    passed: errorsOk,
    message: `${c}: ${candidate.errors} failed request(s) for ${candidate.instances} instance(s) answered, rate ${errorRate} ${errorsOk ? '<=' : '>'} ${thresholds.maxErrorRate}`,
  });

  if (candidate.latencyP99Ms === undefined) {
    verdicts.push({
      check: 'latency',
      metric: `ModelLatency p99 of ${c}`,
      threshold: thresholds.maxLatencyMs,
      passed: true,
      message:
        candidate.instances === 0
          ? `${c} answered nothing in the window: no latency to hold`
          : `${c} ran no model in the window (every answer came from the cache): no latency to hold`,
    });
  } else {
    const p99 = round(candidate.latencyP99Ms);
    const latencyOk = p99 <= thresholds.maxLatencyMs;
    verdicts.push({
      check: 'latency',
      metric: `ModelLatency p99 of ${c} (ms)`,
      value: p99,
      threshold: thresholds.maxLatencyMs,
      passed: latencyOk,
      message: `${c}: p99 model latency ${p99} ms ${latencyOk ? '<=' : '>'} ${thresholds.maxLatencyMs} ms`,
    });
  }

  verdicts.push(shiftVerdict(candidate, live, versions, thresholds.maxShift));
  return verdicts;
}

/** The largest difference between the two versions' prediction distributions. */
function shiftVerdict(
  candidate: VersionWindow,
  live: VersionWindow,
  versions: { readonly candidate: string; readonly live: string },
  maxShift: number,
): RolloutVerdict {
  const { candidate: c, live: l } = versions;
  if (candidate.instances === 0 || live.instances === 0) {
    return {
      check: 'shift',
      metric: `prediction shift ${c} vs ${l}`,
      threshold: maxShift,
      passed: true,
      message: `${candidate.instances === 0 ? c : l} answered nothing in the window: no distributions to compare`,
    };
  }
  // A difference counts beyond what sampling alone gives: two standard errors of the difference of two
  // proportions (label shares; mean probabilities, whose variance is at most p(1 - p)) are added to the
  // threshold, so that 20 instances that happen to differ do not roll back a good candidate, while a
  // large sample is held to the threshold itself.
  const nc = candidate.instances;
  const nl = live.instances;
  const margin = (pc: number, pl: number): number => {
    const pooled = (pc * nc + pl * nl) / (nc + nl);
    return 2 * Math.sqrt(Math.max(0, pooled * (1 - pooled)) * (1 / nc + 1 / nl));
  };
  let worst: { metric: string; value: number; threshold: number; detail: string } | undefined;
  const consider = (metric: string, value: number, threshold: number, detail: string): void => {
    if (worst === undefined || value - threshold > worst.value - worst.threshold) {
      worst = { metric, value: round(value), threshold: round(threshold), detail };
    }
  };
  const share = (w: VersionWindow, label: string) => (w.labels[label] ?? 0) / w.instances;
  for (const label of new Set([...Object.keys(candidate.labels), ...Object.keys(live.labels)])) {
    const [sc, sl] = [share(candidate, label), share(live, label)];
    consider(
      `|share of label ${label}: ${c} - ${l}|`,
      Math.abs(sc - sl),
      maxShift + margin(sc, sl),
      `${round(sc)} of ${nc} vs ${round(sl)} of ${nl}`,
    );
  }
  const mean = (w: VersionWindow, cls: string) => (w.probabilitySums[cls] ?? 0) / w.instances;
  for (const cls of new Set([
    ...Object.keys(candidate.probabilitySums),
    ...Object.keys(live.probabilitySums),
  ])) {
    const [mc, ml] = [mean(candidate, cls), mean(live, cls)];
    consider(
      `|mean probability of ${cls}: ${c} - ${l}|`,
      Math.abs(mc - ml),
      maxShift + margin(mc, ml),
      `${round(mc)} of ${nc} vs ${round(ml)} of ${nl}`,
    );
  }
  if (candidate.valueSum !== undefined && live.valueSum !== undefined) {
    // No variance is published for values: the threshold alone.
    const [mc, ml] = [candidate.valueSum / nc, live.valueSum / nl];
    consider(
      `|mean value: ${c} - ${l}| / |mean value of ${l}|`,
      Math.abs(mc - ml) / Math.max(Math.abs(ml), Number.EPSILON),
      maxShift,
      `${round(mc)} of ${nc} vs ${round(ml)} of ${nl}`,
    );
  }
  if (worst === undefined) {
    return {
      check: 'shift',
      metric: `prediction shift ${c} vs ${l}`,
      threshold: maxShift,
      passed: true,
      message: 'neither version reported a prediction distribution (labels, probabilities or values)',
    };
  }
  const { metric, value, threshold, detail } = worst;
  const passed = value <= threshold;
  const sampling =
    threshold > maxShift
      ? ` (ROLLOUT_MAX_SHIFT ${maxShift} + ${round(threshold - maxShift)} for sampling)`
      : '';
  return {
    check: 'shift',
    metric,
    value,
    threshold,
    passed,
    message: `${metric} = ${value} (${detail}) ${passed ? '<=' : '>'} ${threshold}${sampling}`,
  };
}

/** p99 of a list of values (nearest rank); undefined for none. */
export function p99(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)];
}
