/**
 * The batch lane's contracts: what the trigger starts, what the planner writes, what each chunk worker
 * reads and reports, and the S3 layout they share. Payloads between states stay small (ids and keys);
 * data only moves through S3.
 *
 *   incoming/<model>/<file>                          the upload that starts a run
 *   runs/<runId>/plan.json                           the plan (BatchPlan)
 *   runs/<runId>/items.json                          the Distributed Map's items (ChunkItem[], ItemReader)
 *   runs/<runId>/staging/<file>                      a gzip upload, decompressed once so it can be split
 *   runs/<runId>/chunks/<index>.json                 each chunk's report (ChunkReport)
 *   runs/<runId>/failures/<index>-<ms>-<nonce>.json  one failed attempt of a chunk (ChunkFailure)
 *   results/<model>/<dataset>/<runId>/part-<index>.<ext>        predictions
 *   results/<model>/<dataset>/<runId>/rejected/part-<index>.jsonl  rejected rows with reasons
 *   results/<model>/<dataset>/<runId>/_manifest.json            the run's manifest (RunManifest)
 */
import { isPackageName } from '../names.ts';

export type DatasetFormat = 'csv' | 'jsonl' | 'parquet';
export type OutputFormat = 'jsonl' | 'csv';

/** Per-run options (from the trigger's configuration; defaults in DEFAULT_BATCH_OPTIONS). */
export interface BatchOptions {
  /** CSV field delimiter. */
  readonly delimiter: string;
  /** Input columns copied into each prediction row (like SageMaker's join-with-input). */
  readonly passThroughColumns: readonly string[];
  /** Write predictions to the table (`all`), or S3 only (`none`). Table writes dominate batch cost. */
  readonly tableWrites: 'all' | 'none';
  /** At most this many table writes per second per worker (0 = no limit). */
  readonly maxTableWritesPerSecond: number;
  /** Target chunk size in bytes for CSV / JSON Lines (Parquet: whole row groups). */
  readonly chunkBytes: number;
  /**
   * At most this many rows in one chunk (0 = no limit but chunkBytes). With table writes paced by
   * maxTableWritesPerSecond, chunks are also cut so that their writes fit a chunk's time
   * (CHUNK_WRITE_SECONDS), whatever this says.
   */
  readonly maxChunkRows: number;
  readonly outputFormat: OutputFormat;
  /** Rows scored per ONNX run. */
  readonly microBatchRows: number;
  /**
   * The largest upload accepted, in bytes; for a gzip upload, also the largest it may decompress to
   * (a run fails with INPUT_TOO_LARGE beyond it).
   */
  readonly maxInputBytes: number;
  /** The longest CSV / JSON Lines record accepted, in bytes (a run fails with RECORD_TOO_LARGE beyond it). */
  readonly maxRecordBytes: number;
  /**
   * The most rows in one Parquet row group (ROW_GROUP_TOO_LARGE beyond it): a worker decodes a whole
   * row group at once, about 0.75 KB per row of the demo schema (measured: 744 MB for 1,000,000 rows).
   */
  readonly maxRowGroupRows: number;
  /**
   * The model version to score with; '' scores with the live one (its current.json). A version not yet
   * promoted fills the table with its own entries, so that its promotion finds them there.
   */
  readonly modelVersion: string;
}

/** The most chunks one run may have: every worker reads the plan, which lists them all. */
export const MAX_CHUNKS = 10_000;
/**
 * The time a chunk's table writes may take: a Distributed Map child runs as an Express execution, which
 * Step Functions stops after 300 s, and scoring, reading and retries need the rest.
 */
export const CHUNK_WRITE_SECONDS = 240;
/** Ids longer than this are rejected (as in the real-time lane); a DynamoDB key holds at most 2048 bytes. */
export const MAX_ID_LENGTH = 256;

export const DEFAULT_BATCH_OPTIONS: BatchOptions = {
  delimiter: ',',
  passThroughColumns: [],
  tableWrites: 'all',
  maxTableWritesPerSecond: 0,
  chunkBytes: 64 * 1024 * 1024,
  maxChunkRows: 0,
  outputFormat: 'jsonl',
  microBatchRows: 1024,
  maxInputBytes: 50 * 1024 ** 3,
  maxRecordBytes: 1024 * 1024,
  // pyarrow's default row group size.
  maxRowGroupRows: 1024 * 1024,
  modelVersion: '',
};

/** The input of one execution (what the trigger passes to StartExecution). */
export interface RunInput {
  readonly runId: string;
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
  readonly etag?: string;
  readonly model: string;
  readonly options?: Partial<BatchOptions>;
}

/** One byte range of a CSV / JSON Lines object: exactly the records that start in [start, end). */
export interface ByteRangeChunk {
  readonly kind: 'bytes';
  readonly index: number;
  readonly start: number;
  readonly end: number;
  /** 1-based data row number (header excluded) of the chunk's first record. */
  readonly firstRow: number;
  /** 1-based line number in the file of the chunk's first record, for messages. */
  readonly firstLine: number;
  readonly rows: number;
}

/** Whole Parquet row groups. */
export interface RowGroupChunk {
  readonly kind: 'row-groups';
  readonly index: number;
  /** Row groups [rowGroupStart, rowGroupEnd). */
  readonly rowGroupStart: number;
  readonly rowGroupEnd: number;
  /** 0-based row offset of the first row in the file; its row number is rowStart + 1. */
  readonly rowStart: number;
  readonly rows: number;
  readonly firstRow: number;
}

export type PlanChunk = ByteRangeChunk | RowGroupChunk;

export interface BatchPlan {
  readonly runId: string;
  readonly model: string;
  /** The model version pinned for the whole run (read once, at plan time). */
  readonly modelVersion: string;
  readonly dataset: string;
  /** The uploaded object. */
  readonly input: { bucket: string; key: string; versionId?: string; etag: string; size: number };
  /** What the workers read: the upload itself, or its decompressed staging copy. */
  readonly source: { bucket: string; key: string; versionId?: string; size: number };
  readonly format: DatasetFormat;
  readonly gzip: boolean;
  /** CSV: the header fields (workers map columns by name). */
  readonly header?: readonly string[];
  readonly options: BatchOptions;
  readonly chunks: readonly PlanChunk[];
  readonly totalRows: number;
  readonly resultsPrefix: string;
  readonly createdAt: string;
  readonly planMs: number;
}

/** One Distributed Map item: small, so 10,000 of them stay far under every payload limit. */
export interface ChunkItem {
  readonly runId: string;
  readonly bucket: string;
  readonly planKey: string;
  readonly index: number;
}

export interface ChunkReport {
  readonly index: number;
  readonly read: number;
  readonly scored: number;
  readonly rejected: number;
  readonly tableWritten: number;
  /** Table writes skipped because a fresher item was there. */
  readonly tableSkipped: number;
  readonly partKey: string | undefined;
  readonly rejectedKey: string | undefined;
  /** Reading, validating and filling micro-batches (the scorer's thread). */
  readonly readMs: number;
  /**
   * Time in session.run, summed over runs: on scoring threads it overlaps the other figures (and, with
   * several threads, can exceed totalMs).
   */
  readonly scoreMs: number;
  /** Writing the part file (encoding included) and the table. */
  readonly writeMs: number;
  readonly totalMs: number;
  readonly attempt: number;
}

/** What a worker records when a chunk attempt fails, so that the run's manifest can say why. */
export interface ChunkFailure {
  readonly index: number;
  /** 1-based; recorded as 0 when the worker is not told (deployed), numbered when read. */
  readonly attempt: number;
  /** The error's name (what Step Functions matches on), e.g. BatchInputError, TimeoutError. */
  readonly name: string;
  readonly code: string;
  readonly message: string;
  /** False for errors the state machine does not retry (bad input, model unavailable). */
  readonly retryable: boolean;
  readonly at: string;
}

export interface RunManifest {
  readonly runId: string;
  readonly status: 'SUCCEEDED' | 'FAILED';
  /**
   * Why the run failed: the failing chunk's reason when there is one (a Distributed Map only reports
   * that its failure threshold was exceeded); `state` keeps the Step Functions error name.
   */
  readonly error?: { readonly code: string; readonly message: string; readonly state?: string };
  readonly model: { readonly name: string; readonly version: string | undefined };
  readonly dataset: string;
  readonly input: { bucket: string; key: string; versionId?: string; etag?: string; size?: number };
  readonly format?: DatasetFormat;
  readonly gzip?: boolean;
  readonly counts: {
    /** Data rows the plan found in the file (0 when the run failed before it was planned). */
    readonly planned: number;
    readonly read: number;
    readonly scored: number;
    readonly rejected: number;
    readonly writtenToTable: number;
    readonly tableSkipped: number;
  };
  readonly chunks: {
    readonly planned: number;
    readonly completed: number;
    readonly failed: number;
    /** The chunks without a report: their rows (not read, not in any output) and their last error. */
    readonly failures?: readonly {
      readonly index: number;
      readonly firstRow: number;
      readonly rows: number;
      readonly error?: { readonly code: string; readonly message: string };
    }[];
  };
  readonly outputs: { readonly parts: string[]; readonly rejected: string[] };
  readonly timings: { readonly startedAt?: string; readonly finishedAt: string; readonly planMs?: number };
  readonly chunkStats: readonly ChunkReport[];
}

/** The completion event (EventBridge detail-type `Tandem Batch Run Completed`). */
export interface RunCompletedEvent {
  readonly runId: string;
  readonly status: RunManifest['status'];
  readonly model: string;
  readonly modelVersion: string | undefined;
  readonly dataset: string;
  readonly manifest: { readonly bucket: string; readonly key: string };
  readonly counts: RunManifest['counts'];
  readonly error?: RunManifest['error'];
}

export function resultsPrefix(model: string, dataset: string, runId: string): string {
  return `results/${model}/${dataset}/${runId}/`;
}

export function planKey(runId: string): string {
  return `runs/${runId}/plan.json`;
}

export function itemsKey(runId: string): string {
  return `runs/${runId}/items.json`;
}

export function chunkReportKey(runId: string, index: number): string {
  return `runs/${runId}/chunks/${String(index).padStart(5, '0')}.json`;
}

export function chunkFailuresPrefix(runId: string): string {
  return `runs/${runId}/failures/`;
}

/**
 * One record per failed attempt, never overwritten: a worker writes its record without reading the
 * others (its role may write there, not read), and two attempts of a chunk cannot race on one key.
 */
export function chunkFailureKey(runId: string, index: number, atMs: number, nonce: string): string {
  return `${chunkFailuresPrefix(runId)}${String(index).padStart(5, '0')}-${String(atMs).padStart(15, '0')}-${nonce}.json`;
}

export function partKey(prefix: string, index: number, format: OutputFormat): string {
  return `${prefix}part-${String(index).padStart(5, '0')}.${format}`;
}

export function rejectedKey(prefix: string, index: number): string {
  return `${prefix}rejected/part-${String(index).padStart(5, '0')}.jsonl`;
}

export interface IncomingObject {
  /** The model named by the key's first folder; undefined when the key has none. */
  readonly model: string | undefined;
  /** The file name without its format and `.gz` extensions, made safe for S3 keys. */
  readonly dataset: string;
  /** Undefined when the extension is not a supported format. */
  readonly format: DatasetFormat | undefined;
  readonly gzip: boolean;
  readonly file: string;
}

/**
 * Reads an `incoming/<model>/<file>` key. Keys outside `incoming/` are not datasets (undefined);
 * inside it, a missing model folder or an unsupported extension still starts a run, which fails with the
 * reason in its manifest, so that nothing uploaded is silently ignored.
 */
export function parseIncomingKey(key: string): IncomingObject | undefined {
  if (!key.startsWith('incoming/') || key.endsWith('/')) return undefined;
  const parts = key.slice('incoming/'.length).split('/');
  const file = parts[parts.length - 1]!;
  const model = parts.length >= 2 && isPackageName(parts[0]) ? parts[0] : undefined;
  const gzip = /\.gz$/i.test(file);
  const base = gzip ? file.slice(0, -3) : file;
  const ext = /\.(csv|jsonl|ndjson|parquet)$/i.exec(base);
  const kind = ext?.[1]?.toLowerCase();
  const format: DatasetFormat | undefined =
    kind === undefined || (kind === 'parquet' && gzip)
      ? undefined
      : kind === 'ndjson'
        ? 'jsonl'
        : (kind as DatasetFormat);
  const stem = ext ? base.slice(0, -ext[0].length) : base.replace(/\.[^.]*$/, '');
  const dataset = stem.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 200) || 'dataset';
  return { model, dataset, format, gzip, file };
}
