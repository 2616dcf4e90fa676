/**
 * The API Lambda: POST /predict, GET /models, GET /models/{name}, GET /health, GET /ready.
 * Clients and the default model are set up at init (top-level await), once per execution environment.
 * The SDK packages are imported only when the configuration needs them (a table, models in S3).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { cachePolicyFromEnv, withCachePolicy } from '../adapters/cache-policy-override.ts';
import { loadDynamoClient } from '../adapters/clients/lazy.ts';
import { DynamoDbPredictionStore } from '../adapters/dynamodb-prediction-store.ts';
import { openModelSource } from '../adapters/open-model-source.ts';
import type { PredictionStore } from '../core/ports.ts';
import { ModelRegistry } from '../core/model-registry.ts';
import { PredictionService } from '../core/prediction-service.ts';
import { createApiHandler } from './api/api-handler.ts';
import { ApiMetrics, PowertoolsMetrics } from './api/api-metrics.ts';
import { servingReporter } from './api/serving-reporter.ts';
import { readApiConfig } from './config.ts';

const config = readApiConfig(process.env);
const logger = new Logger({ serviceName: 'tandem-api' });
const powertoolsMetrics = new PowertoolsMetrics({ namespace: 'Tandem', serviceName: 'tandem-api' });
const metrics = new ApiMetrics(powertoolsMetrics, config.metricsFlushMs);

async function predictionStore(tableName: string): Promise<PredictionStore> {
  return new DynamoDbPredictionStore(await loadDynamoClient(), tableName);
}

const [source, store] = await Promise.all([
  openModelSource(config.modelsUri),
  config.tableName ? predictionStore(config.tableName) : undefined,
]);
const registry = new ModelRegistry(withCachePolicy(source, cachePolicyFromEnv(process.env)), {
  defaultModel: config.defaultModel,
  refreshSeconds: config.modelRefreshSeconds,
  retryFailedSeconds: 10,
  events: servingReporter(logger, powertoolsMetrics),
});
const service = new PredictionService(store, {
  cacheBudgetMs: config.cacheBudgetMs,
  writeThrough: config.writeThrough,
});

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
});
