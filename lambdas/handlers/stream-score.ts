/**
 * The stream consumer Lambda (Kinesis event source mapping with ReportBatchItemFailures): scores each
 * micro-batch of `tandem-events` into the table and `tandem-predictions`. Set up once at init.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { batchDynamoClient, kinesisClient, s3Client } from '../adapters/aws-clients.ts';
import { cachePolicyFromEnv, withCachePolicy } from '../adapters/cache-policy-override.ts';
import { DynamoDbPredictionStore } from '../adapters/dynamodb-prediction-store.ts';
import { KinesisStream } from '../adapters/kinesis-stream.ts';
import { modelSourceFor } from '../adapters/model-source.ts';
import { S3ObjectStore } from '../adapters/s3-object-store.ts';
import { ModelRegistry } from '../core/model-registry.ts';
import type { MicroBatchOutcome } from '../core/stream/micro-batch.ts';
import { readEnv, requireEnv, SETTINGS } from '../core/settings.ts';
import { readStreamSettings } from '../core/settings.ts';
import { captureFromEnv } from './capture-env.ts';
import { createStreamHandler } from './stream/stream-handler.ts';

const settings = readStreamSettings(process.env);
const logger = new Logger({ serviceName: 'tandem-stream' });
const metrics = new Metrics({ namespace: 'Tandem', serviceName: 'tandem-stream' });

const registry = new ModelRegistry(
  withCachePolicy(
    modelSourceFor(requireEnv(SETTINGS.modelsUri, process.env)),
    cachePolicyFromEnv(process.env),
  ),
  {
    defaultModel: requireEnv(SETTINGS.modelName, process.env),
    refreshSeconds: readEnv(SETTINGS.modelRefreshSeconds, process.env),
    retryFailedSeconds: 10,
  },
);

function observe(outcome: MicroBatchOutcome): void {
  metrics.addMetric('StreamRecordsScored', MetricUnit.Count, outcome.counts.scored);
  metrics.addMetric('StreamRecordsRejected', MetricUnit.Count, outcome.counts.rejected);
  metrics.addMetric('StreamBatchSize', MetricUnit.Count, outcome.counts.records);
  metrics.addMetric('StreamModelLatency', MetricUnit.Milliseconds, outcome.modelLatencyMs);
  if (outcome.eventLatencyMs.length > 0) {
    metrics.addMetric(
      'StreamEventToScoredMaxMs',
      MetricUnit.Milliseconds,
      Math.max(...outcome.eventLatencyMs),
    );
    metrics.addMetric(
      'StreamArrivalToScoredMaxMs',
      MetricUnit.Milliseconds,
      Math.max(...outcome.arrivalLatencyMs),
    );
  }
  if (outcome.retryFrom !== undefined) metrics.addMetric('StreamBatchRetries', MetricUnit.Count, 1);
  metrics.publishStoredMetrics();
}

const objects = new S3ObjectStore(s3Client());
/** Sampled scored events (capture/<model>/stream/); written in the background, never failing a batch. */
export const capture = captureFromEnv('stream', process.env, objects, (lost, error) => {
  logger.warn('captured predictions not written', { lost, error: (error as Error).message });
  metrics.addMetric('CaptureWriteFailures', MetricUnit.Count, lost);
});

export const handler = createStreamHandler({
  models: registry,
  store: new DynamoDbPredictionStore(batchDynamoClient(), requireEnv(SETTINGS.tableName, process.env)),
  publisher: new KinesisStream(await kinesisClient(), settings.outputStreamName),
  objects,
  bucket: requireEnv(SETTINGS.dataBucket, process.env),
  maxEventBytes: settings.maxEventBytes,
  log: logger,
  observe,
  ...(capture ? { capture } : {}),
});
