/**
 * Logs and counts what the model registry reports about promotions: one log line per change (a pointer
 * whose version cannot serve, with its code; a version that starts serving, or recovers), and the
 * `ModelPointerErrors` metric: 1 for a check that finds the pointer's version not serving, 0 for one that
 * finds it serving, per model, at each change and at most once a minute otherwise (an alarm on its
 * maximum stays raised until a check finds the pointer good again).
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { ModelRegistryEvents, ServingChange } from '../../core/model-registry.ts';
import type { PowertoolsMetrics } from './api-metrics.ts';

export const POINTER_ERRORS_METRIC = 'ModelPointerErrors';

export type ServingMetrics = Pick<PowertoolsMetrics, 'singleMetric' | 'publishes'>;

function logChange(logger: Logger, change: ServingChange): void {
  if (change.kind === 'failed') {
    const serving = change.servingVersion;
    logger.error(
      serving === undefined
        ? `model ${change.name}: no version serves (${change.problem.code})`
        : `model ${change.name}: the pointer's version is not serving (${change.problem.code}); ${serving} keeps serving`,
      {
        model: change.name,
        code: change.problem.code,
        reason: change.problem.message,
        pointerVersion: change.pointerVersion ?? null,
        servingVersion: serving ?? null,
      },
    );
    return;
  }
  const { name, version, previousVersion, recovered } = change;
  logger.info(
    recovered
      ? `model ${name}: ${version} serves, as the pointer says (recovered from ${recovered.code})`
      : previousVersion === undefined
        ? `model ${name}: ${version} serves`
        : `model ${name}: ${version} serves (was ${previousVersion})`,
    {
      model: name,
      version,
      previousVersion: previousVersion ?? null,
      ...(recovered ? { recovered: { code: recovered.code, reason: recovered.message } } : {}),
    },
  );
}

export function servingReporter(logger: Logger, metrics: ServingMetrics): ModelRegistryEvents {
  const publishes = metrics.publishes();
  return {
    changed: (change) => logChange(logger, change),
    checked(name, failing) {
      if (!publishes) return;
      // One record with two dimension sets: per model, and for the service (what the alarm watches).
      const single = metrics.singleMetric();
      single.addDimension('model', name);
      single.addDimensions({});
      single.addMetric(POINTER_ERRORS_METRIC, MetricUnit.Count, failing ? 1 : 0);
    },
  };
}
