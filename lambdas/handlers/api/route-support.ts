/** Helpers shared by the API's route modules. */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { VersionOutcome } from '../../core/canary-serving.ts';
import type { PredictOutcome } from '../../core/prediction-service.ts';
import type { ApiMetrics } from './api-metrics.ts';

export function decodeBody(event: APIGatewayProxyEventV2): string | undefined {
  if (event.body === undefined || !event.isBase64Encoded) return event.body;
  return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(event.body, 'base64'));
}

export function recordMetrics(metrics: ApiMetrics, outcome: PredictOutcome, instances: number): void {
  const { verdicts, servedAges, modelLatencyMs } = outcome.stats;
  metrics.value('InstancesPerRequest', MetricUnit.Count, instances);
  metrics.count('CacheHit', verdicts.hit);
  metrics.count('CacheMiss', verdicts.miss);
  metrics.count('CacheStale', verdicts.stale + verdicts.expired);
  metrics.count('CacheVersionMismatch', verdicts['version-mismatch']);
  metrics.count('CacheSkipped', outcome.cache.status === 'skipped' ? 1 : 0);
  for (const age of servedAges) metrics.value('CacheEntryAgeSeconds', MetricUnit.Seconds, age);
  if (modelLatencyMs !== undefined) {
    metrics.value('ModelLatency', MetricUnit.Milliseconds, modelLatencyMs);
    metrics.count('ModelInstances', outcome.stats.modelInstances);
  }
}

/**
 * Each answering version's metrics, with the model and version as dimensions, so a canary's candidate can
 * be compared with the live version: `Instances`, `ModelLatency`, `CacheHit`, and the distribution of its
 * predictions as sums (a dashboard divides by `Instances`): `Label.<label>` (instances predicted with that
 * label), `ProbabilitySum.<class>` (sum of that class's probability), `ValueSum` (regression value).
 */
export function recordVersionMetrics(metrics: ApiMetrics, answered: readonly VersionOutcome[]): void {
  for (const { model, outcome, instances } of answered) {
    const version = model.ref;
    metrics.count('Instances', instances, version);
    metrics.count('CacheHit', outcome.stats.verdicts.hit, version);
    if (outcome.stats.modelLatencyMs !== undefined) {
      metrics.value('ModelLatency', MetricUnit.Milliseconds, outcome.stats.modelLatencyMs, version);
    }
    for (const { prediction } of outcome.results) {
      if ('label' in prediction) {
        metrics.count(`Label.${metricSuffix(prediction.label)}`, 1, version);
        if (prediction.probabilities) {
          for (const [label, p] of Object.entries(prediction.probabilities)) {
            metrics.count(`ProbabilitySum.${metricSuffix(label)}`, p, version);
          }
        }
      } else if ('value' in prediction) {
        metrics.count('ValueSum', prediction.value, version);
      } else {
        prediction.values.forEach((v, i) => metrics.count(`ValueSum.${i}`, v, version));
      }
    }
  }
}

/** A class label as part of a metric name: printable ASCII, at most 100 characters. */
function metricSuffix(label: string | number): string {
  return String(label)
    .replace(/[^\x21-\x7e]/g, '_')
    .slice(0, 100);
}
