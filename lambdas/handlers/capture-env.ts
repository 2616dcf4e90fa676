/**
 * The data capture of the stream consumer and the batch scorer, from their environment (the settings of
 * lambdas/core/settings.ts): undefined without CAPTURE_BUCKET or with a rate of 0. A write that fails is
 * reported to `lost` (counted and logged by the handler), never thrown.
 */
import { ObjectStoreCaptureSink } from '../adapters/s3-capture-sink.ts';
import { CaptureBuffer } from '../core/capture/capture-buffer.ts';
import type { ObjectStore } from '../core/ports.ts';
import { readEnv, SETTINGS } from '../core/settings.ts';

const RATE_SETTING = {
  stream: SETTINGS.captureStreamRate,
  batch: SETTINGS.captureBatchRate,
} as const;

/** Names this execution environment in capture keys (two environments never write the same key). */
export function captureWriterName(env: NodeJS.ProcessEnv): string {
  const stream = env['AWS_LAMBDA_LOG_STREAM_NAME']?.slice(-12).replace(/[^A-Za-z0-9]/g, '');
  return `${stream || 'local'}${process.pid}`;
}

export function captureFromEnv(
  source: keyof typeof RATE_SETTING,
  env: NodeJS.ProcessEnv,
  objects: ObjectStore,
  lost: (count: number, error: unknown) => void,
  /** Batch: a chunk flushes its own captures before it returns, whatever their number. */
  options: { maxRecords?: number } = {},
): CaptureBuffer | undefined {
  const bucket = readEnv(SETTINGS.captureBucket, env);
  const rate = readEnv(RATE_SETTING[source], env);
  if (bucket === undefined || rate <= 0) return undefined;
  return new CaptureBuffer(new ObjectStoreCaptureSink(objects, bucket), {
    rates: { [source]: rate },
    maxAgeMs: readEnv(SETTINGS.captureFlushSeconds, env) * 1000,
    maxRecords: options.maxRecords ?? readEnv(SETTINGS.captureMaxRecords, env),
    writer: captureWriterName(env),
    onError: (error, count) => lost(count, error),
  });
}
