/** The per-version metrics a request adds: instances, cache hits, latency and the prediction distribution. */
import { describe, expect, it } from '@jest/globals';
import type { VersionOutcome } from '../../lambdas/core/canary-serving.ts';
import type { ServedModel } from '../../lambdas/core/model-loader.ts';
import type { Prediction } from '../../lambdas/core/predictions.ts';
import type { PredictOutcome } from '../../lambdas/core/prediction-service.ts';
import { ApiMetrics, type MetricsSink } from '../../lambdas/handlers/api/api-metrics.ts';
import { recordVersionMetrics } from '../../lambdas/handlers/api/route-support.ts';

function sink() {
  const records: { dimensions?: Record<string, string>; metrics: Record<string, number[]> }[] = [];
  let current: (typeof records)[number] = { metrics: {} };
  const s: MetricsSink = {
    publishes: () => true,
    setTimestamp: () => s as never,
    addDimensions(d) {
      current.dimensions = { ...d };
      return s as never;
    },
    addMetric(name, _unit, value) {
      (current.metrics[name] ??= []).push(value);
      return s as never;
    },
    publishStoredMetrics() {
      if (Object.keys(current.metrics).length > 0) records.push(current);
      current = { metrics: {} };
      return s as never;
    },
  };
  return { s, records };
}

function answered(
  version: string,
  predictions: Prediction[],
  hits: number,
  latency?: number,
): VersionOutcome {
  const outcome = {
    results: predictions.map((prediction) => ({ prediction })),
    cache: { status: 'not-needed' },
    stats: {
      verdicts: { hit: hits, miss: 0, stale: 0, expired: 0, 'version-mismatch': 0 },
      servedAges: [],
      modelInstances: predictions.length - hits,
      modelLatencyMs: latency,
      writeThrough: undefined,
    },
  } as unknown as PredictOutcome;
  return { model: { ref: { name: 'm', version } } as ServedModel, outcome, instances: predictions.length };
}

describe('recordVersionMetrics', () => {
  it('adds label counts and probability sums per version, each version in its own record', () => {
    const { s, records } = sink();
    const metrics = new ApiMetrics(s, 0, () => 1);
    metrics.begin();
    recordVersionMetrics(metrics, [
      answered(
        '1',
        [
          { label: 'yes', probabilities: { yes: 0.75, no: 0.25 } },
          { label: 'no', probabilities: { yes: 0.25, no: 0.75 } },
          { label: 'yes', probabilities: { yes: 0.5, no: 0.5 } },
        ],
        1,
        3,
      ),
      answered('2', [{ label: 'a b\n' }], 0, 2),
    ]);
    metrics.end();
    expect(records).toEqual([
      {
        dimensions: { model: 'm', version: '1' },
        metrics: {
          Instances: [3],
          CacheHit: [1],
          'Label.yes': [2],
          'Label.no': [1],
          'ProbabilitySum.yes': [1.5],
          'ProbabilitySum.no': [1.5],
          ModelLatency: [3],
        },
      },
      {
        dimensions: { model: 'm', version: '2' },
        metrics: { Instances: [1], 'Label.a_b_': [1], ModelLatency: [2] },
      },
    ]);
  });

  it('adds the sum of regression values (per output for several)', () => {
    const { s, records } = sink();
    const metrics = new ApiMetrics(s, 0, () => 1);
    metrics.begin();
    recordVersionMetrics(metrics, [
      answered('1', [{ value: 2.5 }, { value: -0.5 }], 2),
      answered('2', [{ values: [1, 2] }, { values: [3, 4] }], 2),
    ]);
    metrics.end();
    expect(records.map((r) => [r.dimensions?.['version'], r.metrics])).toEqual([
      ['1', { Instances: [2], CacheHit: [2], ValueSum: [2] }],
      ['2', { Instances: [2], CacheHit: [2], 'ValueSum.0': [4], 'ValueSum.1': [6] }],
    ]);
  });
});
