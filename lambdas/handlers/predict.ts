/**
 * The API Lambda: POST /predict, GET /models, GET /models/{name}, GET /health, GET /ready.
 * Clients and the default model are set up at init (top-level await), once per execution environment.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { cachePolicyFromEnv, withCachePolicy } from '../adapters/cache-policy-override.ts';
import { dynamoClient } from '../adapters/clients/dynamodb.ts';
import { DynamoDbPredictionStore } from '../adapters/dynamodb-prediction-store.ts';
import { modelSourceFor } from '../adapters/model-source.ts';
import { s3Client } from '../adapters/clients/s3.ts';
import { ObjectStoreCaptureSink } from '../adapters/s3-capture-sink.ts';
import { S3ObjectStore } from '../adapters/s3-object-store.ts';
import { CaptureBuffer } from '../core/capture/capture-buffer.ts';
import { RecentPredictions } from '../core/feedback/known-ids.ts';
import { ModelRegistry } from '../core/model-registry.ts';
import { PredictionService } from '../core/prediction-service.ts';
import { ShadowRunner } from '../core/shadow/shadow-runner.ts';
import { createApiHandler } from './api/api-handler.ts';
import { ApiMetrics, PowertoolsMetrics } from './api/api-metrics.ts';
import { servingReporter } from './api/serving-reporter.ts';
import { shadowSink } from './api/shadow-sink.ts';
import { readApiConfig } from './config.ts';
import { readStreamSettings } from '../core/settings.ts';

const config = readApiConfig(process.env);
const logger = new Logger({ serviceName: 'tandem-api' });
const powertoolsMetrics = new PowertoolsMetrics({ namespace: 'Tandem', serviceName: 'tandem-api' });
/** The API's metrics (the local stack taps its per-version values: local/version-metrics.ts). */
export const metrics = new ApiMetrics(powertoolsMetrics, config.metricsFlushMs);

const store = config.tableName ? new DynamoDbPredictionStore(dynamoClient(), config.tableName) : undefined;
const registry = new ModelRegistry(
  withCachePolicy(modelSourceFor(config.modelsUri), cachePolicyFromEnv(process.env)),
  {
    defaultModel: config.defaultModel,
    refreshSeconds: config.modelRefreshSeconds,
    retryFailedSeconds: 10,
    events: servingReporter(logger, powertoolsMetrics),
  },
);
const service = new PredictionService(store, {
  cacheBudgetMs: config.cacheBudgetMs,
  writeThrough: config.writeThrough,
});

/** Sampled predictions (drift monitoring) and shadow comparisons (lambdas/core/capture); undefined when off. */
export const capture =
  config.capture.bucket !== undefined && (config.capture.realtimeRate > 0 || config.capture.shadowRate > 0)
    ? new CaptureBuffer(new ObjectStoreCaptureSink(new S3ObjectStore(s3Client()), config.capture.bucket), {
        rates: { realtime: config.capture.realtimeRate, batch: 0, shadow: config.capture.shadowRate },
        maxAgeMs: config.capture.flushMs,
        maxRecords: config.capture.maxRecords,
        writer: `${process.env['AWS_LAMBDA_LOG_STREAM_NAME']?.slice(-12).replace(/[^A-Za-z0-9]/g, '') || 'local'}${process.pid}`,
        onError: (error, lost) => {
          logger.warn('captured predictions not written', { lost, error: (error as Error).message });
          powertoolsMetrics.addMetric('CaptureWriteFailures', 'Count', lost);
        },
      })
    : undefined;
/** Shadow versions' scoring after the response (lambdas/core/shadow); idle while no pointer names a shadow. */
export const shadow = new ShadowRunner(
  shadowSink(metrics, capture, (model, shadowVersion, code) =>
    logger.warn('shadow scoring failed', { model, shadowVersion, code }),
  ),
  { budgetMs: config.shadowBudgetMs, freezesBetweenInvocations: config.onLambda },
);
// POST /events: the Kinesis client is loaded only when the stream lane is on (not at every cold start).
const streamSettings = readStreamSettings(process.env);
const events = streamSettings.streamLane
  ? {
      sink: await import('../adapters/stream-sink.ts').then((m) =>
        m.inputStreamSink(streamSettings.inputStreamName),
      ),
      maxEventBytes: streamSettings.maxEventBytes,
    }
  : undefined;

/** POST /feedback: outcomes stored under the data bucket's feedback/, ids checked against the table. */
const feedback = config.dataBucket
  ? {
      objects: new S3ObjectStore(s3Client()),
      bucket: config.dataBucket,
      ...(store ? { predictions: store } : {}),
      recent: new RecentPredictions(),
      failed: (stage: 'check' | 'write', error: unknown) => {
        logger.error(stage === 'write' ? 'feedback not stored' : 'feedback ids not checked', {
          error: error as Error,
        });
        powertoolsMetrics.addMetric(
          stage === 'write' ? 'FeedbackWriteFailures' : 'FeedbackCheckFailures',
          'Count',
          1,
        );
      },
    }
  : undefined;

// The registry's reporter logs the outcome (the version that serves, or why none does).
await registry.warm();

export const handler = createApiHandler({
  registry,
  service,
  limits: config.limits,
  logger,
  metrics,
  logPayloads: config.logPayloads,
  sampleDebugLogs: config.sampleDebugLogs,
  ...(capture ? { capture } : {}),
  shadow,
  events,
  ...(feedback ? { feedback } : {}),
});
