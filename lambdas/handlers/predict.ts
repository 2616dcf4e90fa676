/**
 * The API Lambda: POST /predict, GET /models, GET /models/{name}, GET /health, GET /ready.
 * Clients and the default model are set up at init (top-level await), once per execution environment.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { cachePolicyFromEnv, withCachePolicy } from '../adapters/cache-policy-override.ts';
import { dynamoClient } from '../adapters/clients/dynamodb.ts';
import { DynamoDbPredictionStore } from '../adapters/dynamodb-prediction-store.ts';
import { modelSourceFor } from '../adapters/model-source.ts';
import { ModelRegistry } from '../core/model-registry.ts';
import { PredictionService } from '../core/prediction-service.ts';
import { createApiHandler } from './api/api-handler.ts';
import { ApiMetrics, PowertoolsMetrics } from './api/api-metrics.ts';
import { readApiConfig } from './config.ts';

const config = readApiConfig(process.env);
const logger = new Logger({ serviceName: 'tandem-api' });
const metrics = new ApiMetrics(
  new PowertoolsMetrics({ namespace: 'Tandem', serviceName: 'tandem-api' }),
  config.metricsFlushMs,
);

const store = config.tableName ? new DynamoDbPredictionStore(dynamoClient(), config.tableName) : undefined;
const registry = new ModelRegistry(
  withCachePolicy(modelSourceFor(config.modelsUri), cachePolicyFromEnv(process.env)),
  {
    defaultModel: config.defaultModel,
    refreshSeconds: config.modelRefreshSeconds,
    retryFailedSeconds: 10,
  },
);
const service = new PredictionService(store, {
  cacheBudgetMs: config.cacheBudgetMs,
  writeThrough: config.writeThrough,
});

await registry.warm();
const status = registry.status();
if (status.ready) logger.info('model loaded', { model: status.name, version: status.version });
else logger.error('model not loaded', { model: status.name, error: status.error });

export const handler = createApiHandler({
  registry,
  service,
  limits: config.limits,
  logger,
  metrics,
  logPayloads: config.logPayloads,
  sampleDebugLogs: config.sampleDebugLogs,
});
