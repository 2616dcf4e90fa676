/**
 * The drift report's figures as CloudWatch metrics (Powertools EMF, namespace Tandem): FeaturePSI per model
 * and feature, PredictionPSI per model, and MaxFeaturePSI over every model (the service dimension only),
 * which the drift alarm watches. A report without figures (no data, too few records, no baseline)
 * publishes none: missing data is not drift.
 */
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { DriftReport } from '../../core/monitoring/monitor-run.ts';

export type DriftMetrics = Pick<Metrics, 'singleMetric' | 'addMetric'>;

/** Adds the report's metrics; returns whether there were any. */
export function publishDriftMetrics(metrics: DriftMetrics, report: DriftReport): boolean {
  const drift = report.drift;
  if (!drift) return false;
  let max: number | undefined;
  for (const feature of drift.features) {
    if (feature.psi === undefined) continue;
    const single = metrics.singleMetric();
    single.addDimensions({ model: report.model, feature: feature.name });
    single.addMetric('FeaturePSI', MetricUnit.NoUnit, feature.psi);
    max = Math.max(max ?? 0, feature.psi);
  }
  if (drift.prediction.psi !== undefined) {
    const single = metrics.singleMetric();
    single.addDimension('model', report.model);
    single.addMetric('PredictionPSI', MetricUnit.NoUnit, drift.prediction.psi);
  }
  if (max === undefined) return false;
  metrics.addMetric('MaxFeaturePSI', MetricUnit.NoUnit, max);
  return true;
}
