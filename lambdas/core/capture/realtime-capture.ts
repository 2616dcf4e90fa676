/** The captures of one real-time prediction: one record per sampled instance. */
import type { PredictRequest } from '../predict-request.ts';
import type { PredictOutcome } from '../prediction-service.ts';
import type { CaptureBuffer } from './capture-buffer.ts';

export function captureRealtime(
  capture: CaptureBuffer,
  request: PredictRequest,
  outcome: PredictOutcome,
  requestId: string,
  timeMs: number,
): void {
  // Most requests capture nothing at a deployed rate (5%): the time string is made for the first sampled one.
  let time: string | undefined;
  outcome.results.forEach((result, i) => {
    if (!capture.sample('realtime')) return;
    time ??= new Date(timeMs).toISOString();
    capture.add({
      model: result.model.name,
      version: result.model.version,
      source: 'realtime',
      id: result.id,
      features: request.instances[i]?.features ?? null,
      prediction: result.prediction,
      servedBy: result.source,
      cacheStatus: result.cacheStatus,
      requestId,
      time,
    });
  });
}
