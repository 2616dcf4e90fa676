import { describe, it, expect } from '@jest/globals';
import type { DriftReport } from '../../lambdas/core/monitoring/monitor-run.ts';
import { publishDriftMetrics, type DriftMetrics } from '../../lambdas/handlers/monitor/monitor-metrics.ts';

/** Records what the handler hands to Powertools: each single metric with its dimensions, and stored ones. */
function recorder() {
  const published: { name: string; value: number; dimensions: Record<string, string> }[] = [];
  const stored: { name: string; value: number }[] = [];
  const metrics = {
    singleMetric() {
      const dimensions: Record<string, string> = {};
      return {
        addDimensions: (d: Record<string, string>) => Object.assign(dimensions, d),
        addDimension: (k: string, v: string) => (dimensions[k] = v),
        addMetric: (name: string, _unit: string, value: number) =>
          published.push({ name, value, dimensions }),
      };
    },
    addMetric: (name: string, _unit: string, value: number) => stored.push({ name, value }),
  } as unknown as DriftMetrics;
  return { metrics, published, stored };
}

const report = (drift?: Partial<NonNullable<DriftReport['drift']>>): DriftReport =>
  ({
    model: 'm',
    status: drift ? 'drift' : 'no-data',
    ...(drift
      ? {
          drift: {
            features: [
              { name: 'amount', psi: 3.2 },
              { name: 'channel', psi: 0.01 },
              { name: 'empty', psi: undefined },
            ],
            prediction: { psi: 0.4 },
            ...drift,
          },
        }
      : {}),
  }) as unknown as DriftReport;

describe('drift metrics', () => {
  it('publishes FeaturePSI per model and feature, PredictionPSI per model and the run maximum', () => {
    const { metrics, published, stored } = recorder();
    expect(publishDriftMetrics(metrics, report({}))).toBe(true);
    expect(published).toEqual([
      { name: 'FeaturePSI', value: 3.2, dimensions: { model: 'm', feature: 'amount' } },
      { name: 'FeaturePSI', value: 0.01, dimensions: { model: 'm', feature: 'channel' } },
      { name: 'PredictionPSI', value: 0.4, dimensions: { model: 'm' } },
    ]);
    expect(stored).toEqual([{ name: 'MaxFeaturePSI', value: 3.2 }]);
  });

  it('publishes nothing for a report without figures (no data is not drift)', () => {
    const { metrics, published, stored } = recorder();
    expect(publishDriftMetrics(metrics, report())).toBe(false);
    expect([...published, ...stored]).toEqual([]);
  });
});
