/** Helpers shared by the API's route modules. */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { ValidationError } from '../../core/errors.ts';
import { checkContentEncoding, checkContentType } from '../../core/predict-request.ts';
import type { VersionOutcome } from '../../core/canary-serving.ts';
import type { PredictOutcome } from '../../core/prediction-service.ts';
import { cacheReadCounts } from '../../core/refresh/staleness.ts';
import type { ApiMetrics } from './api-metrics.ts';

function decodeBody(event: APIGatewayProxyEventV2): string | undefined {
  if (event.body === undefined || !event.isBase64Encoded) return event.body;
  return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(event.body, 'base64'));
}

/**
 * The text of a JSON request's body, after its content type and encoding are checked (415); a body that
 * is not UTF-8 is a 400 INVALID_ENCODING. Every route that reads a JSON body starts here.
 */
export function jsonBodyText(event: APIGatewayProxyEventV2): string | undefined {
  const headers = event.headers ?? {};
  checkContentType(headers['content-type']);
  checkContentEncoding(headers['content-encoding']);
  try {
    return decodeBody(event);
  } catch {
    throw new ValidationError('INVALID_ENCODING', 'the body is not valid UTF-8');
  }
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
 * The model's cache reads, whichever version read them, with the model as the only dimension:
 * `CacheReads` (ids looked up) and `CacheOutdated` (of them: stale, expired or another version's), the
 * two terms of the staleness alarm's share (lib/model-refresh.ts).
 */
export function recordModelCacheMetrics(metrics: ApiMetrics, model: string, outcome: PredictOutcome): void {
  const { reads, outdated } = cacheReadCounts(outcome.stats.verdicts);
  metrics.countForModel('CacheReads', reads, model);
  metrics.countForModel('CacheOutdated', outdated, model);
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
