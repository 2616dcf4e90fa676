/** Helpers shared by the API's route modules. */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
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
