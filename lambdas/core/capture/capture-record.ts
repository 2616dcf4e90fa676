/**
 * Data capture: what is kept of a prediction (its features and answer) so that drift and quality can be
 * computed later, and where it is kept:
 *
 *   capture/<model>/<source>/dt=<yyyy-mm-dd>/hr=<hh>/<time>-<writer>-<seq>.jsonl.gz
 *
 * one gzipped JSON Lines object per flush of one writer (an execution environment), per partition.
 * `source` is the lane that served: `realtime` (the API), `stream` (the stream consumer), `batch` (a batch
 * run's chunk), every one with the same record format and layout; or `shadow`: a comparison of the live
 * answer with a shadow version's on the same input (lambdas/core/shadow).
 */
export type CaptureSource = 'realtime' | 'batch' | 'stream' | 'shadow';

export const CAPTURE_SOURCES: readonly CaptureSource[] = ['realtime', 'batch', 'stream', 'shadow'];

export interface CaptureRecord {
  readonly model: string;
  readonly version: string;
  readonly source: CaptureSource;
  /** The entity id, when the request gave one. */
  readonly id: string | null;
  readonly features: unknown;
  readonly prediction: unknown;
  /** Where the answer came from: `model` or `cache` (realtime), `model` (stream, batch). */
  readonly servedBy: 'model' | 'cache';
  /** The cache's verdict for the instance (realtime), e.g. hit, miss, stale, bypassed. */
  readonly cacheStatus?: string;
  /** The API request id, the stream record's sequence number, or the batch run id. */
  readonly requestId: string;
  /** Batch: the run that scored the row. */
  readonly runId?: string;
  /** ISO 8601, when the prediction was served. */
  readonly time: string;
  /** Source `shadow`: the shadow version and its answer to the same features (`version`/`prediction`: live). */
  readonly shadowVersion?: string;
  readonly shadowPrediction?: unknown;
  /** Source `shadow`, classifiers: the two labels are equal. */
  readonly agreement?: boolean;
  /** Source `shadow`: |live - shadow| of the live label's probability, or of the value; null when none. */
  readonly absDifference?: number | null;
}

export const CAPTURE_ROOT = 'capture/';

/** The folder of one hour of one model's captures from one source. */
export function capturePartition(model: string, source: CaptureSource, timeMs: number): string {
  const iso = new Date(timeMs).toISOString();
  return `${CAPTURE_ROOT}${model}/${source}/dt=${iso.slice(0, 10)}/hr=${iso.slice(11, 13)}/`;
}

/**
 * One flush's object: the time first (so keys sort by time within an hour), then the writer and a
 * sequence number, so two environments, or two flushes of one, never write the same key.
 */
export function captureObjectKey(partition: string, timeMs: number, writer: string, seq: number): string {
  const stamp = new Date(timeMs).toISOString().replace(/[-:.]/g, '');
  return `${partition}${stamp}-${writer}-${String(seq).padStart(6, '0')}.jsonl.gz`;
}

/** The hour partitions from `fromMs` to `toMs` (inclusive), for reading captures since a time. */
export function partitionsBetween(
  model: string,
  source: CaptureSource,
  fromMs: number,
  toMs: number,
): string[] {
  const hour = 3_600_000;
  const out: string[] = [];
  for (let t = Math.floor(fromMs / hour) * hour; t <= toMs; t += hour)
    out.push(capturePartition(model, source, t));
  return out;
}
