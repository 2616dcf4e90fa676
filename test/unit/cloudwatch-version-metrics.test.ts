/**
 * The deployed rollout's metrics reader: which CloudWatch calls it makes for a version's window (the
 * metrics ListMetrics finds with exactly the model and version dimensions, summed, and ModelLatency's p99
 * over one period covering the window in whole minutes), and how it folds the answers into a window.
 */
import { describe, expect, it } from '@jest/globals';
import {
  GetMetricDataCommand,
  ListMetricsCommand,
  type GetMetricDataCommandInput,
} from '@aws-sdk/client-cloudwatch';
import { CloudWatchVersionMetrics } from '../../lambdas/adapters/cloudwatch-version-metrics.ts';

const dims = [
  { Name: 'model', Value: 'fraud-detector' },
  { Name: 'version', Value: '2.0.0' },
];

function fakeCloudWatch(names: string[], values: Record<string, number[]>) {
  const sent: unknown[] = [];
  return {
    sent,
    client: {
      send: async (command: unknown) => {
        sent.push(command);
        if (command instanceof ListMetricsCommand) {
          return {
            Metrics: [
              ...names.map((MetricName) => ({ MetricName, Dimensions: dims })),
              // The service-level record of the same name (more dimensions) is not the version's.
              { MetricName: 'Errors', Dimensions: [...dims, { Name: 'service', Value: 'x' }] },
            ],
          };
        }
        if (command instanceof GetMetricDataCommand) {
          return {
            MetricDataResults: (command.input.MetricDataQueries ?? []).map((q) => ({
              Id: q.Id,
              Label: q.Label,
              Values: values[q.Label!] ?? [],
            })),
          };
        }
        throw new Error('unexpected command');
      },
    },
  };
}

describe('CloudWatchVersionMetrics', () => {
  it('sums the counts, takes the p99 of ModelLatency, and reads labels and classes from the metric names', async () => {
    const { client, sent } = fakeCloudWatch(
      ['Instances', 'Errors', 'ModelLatency', 'Label.0', 'Label.1', 'ProbabilitySum.1', 'CacheHit'],
      {
        Instances: [300, 20],
        Errors: [2],
        ModelLatency: [41.5],
        'Label.0': [250, 10],
        'Label.1': [50, 10],
        'ProbabilitySum.1': [61.25],
      },
    );
    const from = Date.parse('2026-12-06T04:00:30Z');
    const to = Date.parse('2026-12-06T04:05:10Z');
    const window = await new CloudWatchVersionMetrics(client).window('fraud-detector', '2.0.0', from, to);
    expect(window).toEqual({
      instances: 320,
      errors: 2,
      latencyP99Ms: 41.5,
      labels: { '0': 260, '1': 60 },
      probabilitySums: { '1': 61.25 },
    });
    const query = (sent[1] as GetMetricDataCommand).input as GetMetricDataCommandInput;
    expect(query.StartTime).toEqual(new Date('2026-12-06T04:00:00Z'));
    expect(query.EndTime).toEqual(new Date('2026-12-06T04:06:00Z'));
    const stats = Object.fromEntries(
      query.MetricDataQueries!.map((q) => [q.MetricStat!.Metric!.MetricName, q.MetricStat!.Stat]),
    );
    expect(stats).toEqual({
      Instances: 'Sum',
      Errors: 'Sum',
      'Label.0': 'Sum',
      'Label.1': 'Sum',
      'ProbabilitySum.1': 'Sum',
      ModelLatency: 'p99',
    });
    expect(query.MetricDataQueries!.every((q) => q.MetricStat!.Period === 360)).toBe(true);
    expect(query.MetricDataQueries!.every((q) => q.MetricStat!.Metric!.Dimensions!.length === 2)).toBe(true);
  });

  it('gives an empty window for a version that published nothing, without asking for data', async () => {
    const { client, sent } = fakeCloudWatch([], {});
    const window = await new CloudWatchVersionMetrics(client).window('fraud-detector', '2.0.0', 0, 60_000);
    expect(window).toEqual({ instances: 0, errors: 0, labels: {}, probabilitySums: {} });
    expect(sent).toHaveLength(1);
  });
});
