/**
 * Data capture in the local stack and the `tandem runs` command: the functions' own reader
 * (captureFromEnv) with the local rates, so that the monitoring loop can be tried end to end. Each rate
 * can be set with its variable (CAPTURE_STREAM_RATE, CAPTURE_BATCH_RATE) before `npm start`.
 */
import type { CaptureBuffer } from '../lambdas/core/capture/capture-buffer.ts';
import type { ObjectStore } from '../lambdas/core/ports.ts';
import { captureFromEnv } from '../lambdas/handlers/capture-env.ts';

/** Every real-time request and stream event is captured locally; a tenth of batch rows (docs/monitoring.md). */
export const LOCAL_CAPTURE_RATES = { realtime: '1', stream: '1', batch: '0.1' } as const;

export function localCapture(
  source: 'stream' | 'batch',
  objects: ObjectStore,
  bucket: string,
  log: (line: string) => void,
): CaptureBuffer | undefined {
  const env = process.env;
  return captureFromEnv(
    source,
    {
      AWS_LAMBDA_LOG_STREAM_NAME: `${source}`,
      CAPTURE_BUCKET: bucket,
      CAPTURE_STREAM_RATE: env['CAPTURE_STREAM_RATE'] ?? LOCAL_CAPTURE_RATES.stream,
      CAPTURE_BATCH_RATE: env['CAPTURE_BATCH_RATE'] ?? LOCAL_CAPTURE_RATES.batch,
      CAPTURE_FLUSH_SECONDS: env['CAPTURE_FLUSH_SECONDS'] ?? '5',
    },
    objects,
    (lost, error) => log(`[capture] ${lost} ${source} captures not written: ${(error as Error).message}`),
    source === 'batch' ? { maxRecords: 50_000 } : {},
  );
}
