/**
 * A version's per-version API metrics over a window, from CloudWatch (namespace `Tandem`, dimensions
 * `model` and `version`, as lambdas/handlers/api/route-support.ts publishes them): ListMetrics finds the
 * label and class metrics the version has (their names hold the label), GetMetricData sums them over the
 * window and takes the p99 of ModelLatency.
 */
import {
  GetMetricDataCommand,
  ListMetricsCommand,
  type CloudWatchClient,
  type MetricDataQuery,
} from '@aws-sdk/client-cloudwatch';
import type { VersionMetricsSource } from '../core/lifecycle/rollout.ts';
import type { VersionWindow } from '../core/lifecycle/rollout-checks.ts';

export const API_METRICS_NAMESPACE = 'Tandem';

/** GetMetricData takes at most 500 queries; a model with more labels is cut (the shift check sees fewer). */
const MAX_QUERIES = 500;

export class CloudWatchVersionMetrics implements VersionMetricsSource {
  constructor(
    private readonly client: Pick<CloudWatchClient, 'send'>,
    private readonly namespace = API_METRICS_NAMESPACE,
  ) {}

  async window(model: string, version: string, fromMs: number, toMs: number): Promise<VersionWindow> {
    const dimensions = [
      { Name: 'model', Value: model },
      { Name: 'version', Value: version },
    ];
    const names = new Set<string>();
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListMetricsCommand({ Namespace: this.namespace, Dimensions: dimensions, NextToken: token }),
      );
      for (const metric of page.Metrics ?? []) {
        // Only the metrics with exactly these two dimensions (ListMetrics also matches supersets).
        if (metric.MetricName && (metric.Dimensions ?? []).length === 2) names.add(metric.MetricName);
      }
      token = page.NextToken;
    } while (token);
    // One period over the whole window, in whole minutes (the API's records are per second or coarser).
    const start = new Date(Math.floor(fromMs / 60_000) * 60_000);
    const end = new Date(Math.ceil(Math.max(toMs, fromMs + 1) / 60_000) * 60_000);
    const period = Math.max(60, Math.round((end.getTime() - start.getTime()) / 1000));
    const summed = [...names].filter(
      (n) =>
        n === 'Instances' ||
        n === 'Errors' ||
        n === 'ValueSum' ||
        n.startsWith('Label.') ||
        n.startsWith('ProbabilitySum.'),
    );
    const queries: MetricDataQuery[] = summed.slice(0, MAX_QUERIES - 1).map((name, i) => ({
      Id: `m${i}`,
      Label: name,
      MetricStat: {
        Metric: { Namespace: this.namespace, MetricName: name, Dimensions: dimensions },
        Period: period,
        Stat: 'Sum',
      },
    }));
    if (names.has('ModelLatency')) {
      queries.push({
        Id: 'latency',
        Label: 'ModelLatency',
        MetricStat: {
          Metric: { Namespace: this.namespace, MetricName: 'ModelLatency', Dimensions: dimensions },
          Period: period,
          Stat: 'p99',
        },
      });
    }
    const values = new Map<string, number[]>();
    for (let token: string | undefined, first = true; first || token; first = false) {
      if (queries.length === 0) break;
      const page = await this.client.send(
        new GetMetricDataCommand({
          MetricDataQueries: queries,
          StartTime: start,
          EndTime: end,
          NextToken: token,
        }),
      );
      for (const result of page.MetricDataResults ?? []) {
        const label = result.Id === 'latency' ? 'ModelLatency' : (result.Label ?? '');
        values.set(label, [...(values.get(label) ?? []), ...(result.Values ?? [])]);
      }
      token = page.NextToken;
    }
    const sum = (name: string) => (values.get(name) ?? []).reduce((a, b) => a + b, 0);
    const labels: Record<string, number> = {};
    const probabilitySums: Record<string, number> = {};
    for (const name of summed) {
      if (name.startsWith('Label.')) labels[name.slice('Label.'.length)] = sum(name);
      else if (name.startsWith('ProbabilitySum.'))
        probabilitySums[name.slice('ProbabilitySum.'.length)] = sum(name);
    }
    const latency = values.get('ModelLatency') ?? [];
    return {
      instances: sum('Instances'),
      errors: sum('Errors'),
      ...(latency.length > 0 ? { latencyP99Ms: Math.max(...latency) } : {}),
      labels,
      probabilitySums,
      ...(names.has('ValueSum') ? { valueSum: sum('ValueSum') } : {}),
    };
  }
}
