/**
 * Publishes live quality figures (lambdas/core/monitoring/quality.ts) as CloudWatch metrics through
 * Powertools Metrics (EMF): namespace Tandem, one record per version with the dimensions `model` and
 * `version`, so that each version's Accuracy, RocAuc, LogLoss, Mae, Rmse and QualityMatched can be
 * graphed and alarmed on.
 */
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { QualityMetric } from '../core/monitoring/quality.ts';

export type QualityMetricsSink = Pick<Metrics, 'addDimensions' | 'addMetric' | 'publishStoredMetrics'>;

const UNITS: Readonly<Record<QualityMetric['name'], 'None' | 'Count'>> = {
  Accuracy: 'None',
  RocAuc: 'None',
  LogLoss: 'None',
  Mae: 'None',
  Rmse: 'None',
  QualityMatched: 'Count',
};

export function publishQualityMetrics(sink: QualityMetricsSink, metrics: readonly QualityMetric[]): void {
  const byVersion = new Map<string, QualityMetric[]>();
  for (const m of metrics) {
    const key = `${m.model}\0${m.version}`;
    const list = byVersion.get(key);
    if (list) list.push(m);
    else byVersion.set(key, [m]);
  }
  for (const list of byVersion.values()) {
    sink.addDimensions({ model: list[0]!.model, version: list[0]!.version });
    for (const m of list) sink.addMetric(m.name, UNITS[m.name], m.value);
    // Each version is its own record: dimensions apply to a whole record.
    sink.publishStoredMetrics();
  }
}
