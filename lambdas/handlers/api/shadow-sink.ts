/**
 * Where the API's shadow comparisons go: metrics with the model, the live version and the shadow version as
 * dimensions, and (sampled at CAPTURE_SHADOW_RATE) capture records under capture/<model>/shadow/.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { CaptureBuffer } from '../../core/capture/capture-buffer.ts';
import { TandemError } from '../../core/errors.ts';
import type { ServedModel } from '../../core/model-loader.ts';
import type { ShadowSink } from '../../core/shadow/shadow-runner.ts';
import type { ApiMetrics, VersionDimensions } from './api-metrics.ts';

const dimensions = (live: ServedModel, shadow: ServedModel): VersionDimensions => ({
  name: live.name,
  version: live.version,
  shadowVersion: shadow.version,
});

/**
 * `ShadowComparisons` (instances compared), `ShadowAgreement` (of them, classifiers' with equal labels: a
 * dashboard divides by ShadowComparisons), `ShadowAbsDifference` (one value per comparison that has one),
 * `ShadowErrors` and `ShadowTimeouts` (instances whose shadow run failed or ran past its budget).
 */
export function shadowSink(
  metrics: ApiMetrics,
  capture: CaptureBuffer | undefined,
  /** Told of a shadow run that failed (its error's code; never the features). */
  onError?: (model: string, shadowVersion: string, code: string) => void,
): ShadowSink {
  return {
    compared(comparisons) {
      const first = comparisons[0];
      if (!first) return;
      const version = {
        name: first.model,
        version: first.liveVersion,
        shadowVersion: first.shadowVersion,
      };
      metrics.count('ShadowComparisons', comparisons.length, version);
      metrics.count('ShadowAgreement', comparisons.filter((c) => c.agreement === true).length, version);
      for (const c of comparisons) {
        if (c.absDifference !== null)
          metrics.value('ShadowAbsDifference', MetricUnit.NoUnit, c.absDifference, version);
      }
      if (!capture) return;
      let time: string | undefined;
      for (const c of comparisons) {
        if (!capture.sample('shadow')) continue;
        time ??= new Date(c.timeMs).toISOString();
        capture.add({
          model: c.model,
          version: c.liveVersion,
          source: 'shadow',
          id: c.id,
          features: c.features,
          prediction: c.live,
          servedBy: c.servedBy,
          requestId: c.requestId,
          time,
          shadowVersion: c.shadowVersion,
          shadowPrediction: c.shadow,
          ...(c.agreement !== undefined ? { agreement: c.agreement } : {}),
          absDifference: c.absDifference,
        });
      }
    },
    failed(live, shadow, instances, error) {
      metrics.count('ShadowErrors', instances, dimensions(live, shadow));
      onError?.(live.name, shadow.version, error instanceof TandemError ? error.code : 'INTERNAL');
    },
    timedOut(live, shadow, instances) {
      metrics.count('ShadowTimeouts', instances, dimensions(live, shadow));
    },
  };
}
