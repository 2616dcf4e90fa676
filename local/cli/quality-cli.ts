/**
 * `tandem monitor quality <model>`: live quality per version over a window, from the outcomes posted to
 * POST /feedback and the predictions captured and precomputed (lambdas/core/monitoring/quality-inputs.ts
 * `measureQuality`), on the local stack or a deployed one.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDbPredictionStore } from '../../lambdas/adapters/dynamodb-prediction-store.ts';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ModelStore } from '../../lambdas/adapters/s3-model-store.ts';
import { S3ObjectStore } from '../../lambdas/adapters/s3-object-store.ts';
import { loadModelVersion } from '../../lambdas/core/model-registry.ts';
import { measureQuality, type QualityWindow } from '../../lambdas/core/monitoring/quality-inputs.ts';
import type { QualityReport } from '../../lambdas/core/monitoring/quality.ts';
import { publishQualityMetrics } from '../../lambdas/handlers/quality-metrics.ts';
import type { Target } from './target.ts';

export async function qualityOf(
  target: Target,
  model: string,
  window: QualityWindow,
  options: { publishMetrics?: boolean } = {},
): Promise<QualityReport & { unreadableObjects: number }> {
  const source = new S3ModelSource(target.s3, target.bucket, target.prefix);
  const served = await loadModelVersion(source, model, await source.currentVersion(model));
  const task = served.manifest.task;
  const classes = served.classes;
  await served.close();
  const versions = await new S3ModelStore(target.s3, target.bucket, target.prefix).listVersions(model);
  const table = tablePredictions(target);
  try {
    const metrics = options.publishMetrics
      ? new Metrics({ namespace: 'Tandem', serviceName: 'tandem-monitor' })
      : undefined;
    return await measureQuality(
      {
        objects: new S3ObjectStore(target.s3),
        bucket: target.bucket,
        ...(table ? { predictions: table.store } : {}),
        ...(metrics ? { publish: (list) => publishQualityMetrics(metrics, list) } : {}),
      },
      { name: model, task, ...(classes ? { classes } : {}), versions },
      window,
    );
  } finally {
    table?.destroy();
  }
}

/** The target's prediction table as a store (local: the emulator's), or undefined when it has none. */
export function tablePredictions(
  target: Target,
): { readonly store: DynamoDbPredictionStore; destroy(): void } | undefined {
  if (target.table === undefined) return undefined;
  const dynamo = new DynamoDBClient(
    target.local
      ? {
          endpoint: target.local.dynamoEndpoint,
          region: target.local.region,
          credentials: target.local.credentials,
        }
      : target.region
        ? { region: target.region }
        : {},
  );
  return { store: new DynamoDbPredictionStore(dynamo, target.table), destroy: () => dynamo.destroy() };
}

const figure = (value: number | null, digits = 4): string => (value === null ? '-' : value.toFixed(digits));

/** The report as a table: one row per version. */
export function qualityTable(report: QualityReport & { unreadableObjects?: number }): string {
  const head = `${report.model} (${report.task}), outcomes observed ${report.window.from} .. ${report.window.to}: ${report.outcomes} outcomes, ${report.unmatched} matched to no prediction`;
  const notes = report.unreadableObjects
    ? [`(${report.unreadableObjects} objects could not be read and were skipped)`]
    : [];
  if (report.status === 'no data') {
    return [
      head,
      'no data: no outcome in the window was matched to a prediction (POST /feedback, docs/monitoring.md)',
      ...notes,
    ].join('\n');
  }
  const classifier = report.task !== 'regression';
  const columns = classifier
    ? ['VERSION', 'MATCHED', 'ACCURACY', 'ROC AUC', 'LOG LOSS', 'MATCHED BY']
    : ['VERSION', 'MATCHED', 'MAE', 'RMSE', 'MATCHED BY'];
  const rows = report.versions.map((v) => {
    const by = Object.entries(v.matchedBy)
      .map(([origin, n]) => `${origin} ${n}`)
      .join(', ');
    const f = v.figures;
    return f.kind === 'classification'
      ? [v.version, String(f.count), figure(f.accuracy), figure(f.rocAuc), figure(f.logLoss), by]
      : [v.version, String(f.count), figure(f.mae), figure(f.rmse), by];
  });
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [head, line(columns), ...rows.map(line), ...notes].join('\n');
}
