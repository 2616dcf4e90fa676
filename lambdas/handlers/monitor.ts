/**
 * The drift monitor Lambda. On its schedule (an EventBridge rule, no model in the event) it runs the monitor
 * once for every model with a current.json under models/, each on its own (one model's failure does not
 * stop the others; the invocation fails at the end so that the Errors alarm sees it); invoked with
 * `{"model": "<name>"}` (`tandem monitor run --stack`) it runs that model only and returns its report.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { dynamoClient, s3Client } from '../adapters/aws-clients.ts';
import { DynamoDbPredictionStore } from '../adapters/dynamodb-prediction-store.ts';
import { modelSourceFor, parseModelsUri } from '../adapters/model-source.ts';
import { S3ObjectStore } from '../adapters/s3-object-store.ts';
import {
  monitoredModels,
  runMonitor,
  type MonitorDeps,
  type MonitorOutcome,
} from '../core/monitoring/monitor-run.ts';
import { monitorQuality } from '../core/monitoring/monitor-quality.ts';
import { isPackageName } from '../core/names.ts';
import { readMonitorConfig } from './monitor/monitor-env.ts';
import { publishDriftMetrics } from './monitor/monitor-metrics.ts';
import { publishQualityMetrics } from './quality-metrics.ts';

const config = readMonitorConfig(process.env);
const logger = new Logger({ serviceName: 'tandem-monitor' });
const metrics = new Metrics({ namespace: 'Tandem', serviceName: 'tandem-monitor' });
const models = parseModelsUri(config.modelsUri);
if (models.kind !== 's3' || models.bucket !== config.dataBucket)
  throw new Error(
    `MODELS_URI must be the models/ folder of DATA_BUCKET (${config.dataBucket}), got ${config.modelsUri}`,
  );
const source = modelSourceFor(config.modelsUri);
const objects = new S3ObjectStore(s3Client());
// Live quality per version goes into each report and out as metrics of its own (model, version).
const qualityMetrics = new Metrics({ namespace: 'Tandem', serviceName: 'tandem-monitor' });
const deps: MonitorDeps = {
  objects,
  bucket: config.dataBucket,
  modelsPrefix: models.prefix,
  models: source,
  quality: (model, live, toMs) =>
    monitorQuality(
      {
        objects,
        bucket: config.dataBucket,
        modelsPrefix: models.prefix,
        ...(config.tableName
          ? { predictions: new DynamoDbPredictionStore(dynamoClient(), config.tableName) }
          : {}),
        publish: (list) => publishQualityMetrics(qualityMetrics, list),
      },
      model,
      live,
      toMs,
    ),
};

export interface MonitorEvent {
  readonly model?: unknown;
}

export interface MonitorResult {
  readonly reports: readonly {
    readonly model: string;
    readonly key: string;
    readonly status: string;
    readonly message: string;
  }[];
  /** The report itself, when one model was asked for. */
  readonly report?: MonitorOutcome['report'];
}

export async function handler(event: MonitorEvent | undefined): Promise<MonitorResult> {
  const asked = event?.model;
  if (asked !== undefined && (typeof asked !== 'string' || !isPackageName(asked)))
    throw new Error(`"model" must be a model name, got ${JSON.stringify(asked)}`);
  const names = asked !== undefined ? [asked] : await monitoredModels(source);
  const reports: MonitorResult['reports'][number][] = [];
  const failed: string[] = [];
  let single: MonitorOutcome | undefined;
  let stored = false;
  try {
    for (const model of names) {
      try {
        const outcome = await runMonitor(model, deps, config);
        single = outcome;
        stored = publishDriftMetrics(metrics, outcome.report) || stored;
        const { status, message, records } = outcome.report;
        logger.info('monitor run', { model, status, summary: message, records, key: outcome.key });
        reports.push({ model, key: outcome.key, status, message });
      } catch (error) {
        logger.error('monitor run failed', { model, error: error as Error });
        failed.push(`${model}: ${(error as Error).message}`);
      }
    }
  } finally {
    if (stored) metrics.publishStoredMetrics();
  }
  if (failed.length > 0)
    throw new Error(`monitor failed for ${failed.length} model(s): ${failed.join('; ')}`);
  return { reports, ...(asked !== undefined && single ? { report: single.report } : {}) };
}
