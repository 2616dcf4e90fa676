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
import type { Baseline } from '../monitoring/baseline.ts';
import type { DriftCounts, DriftFigures } from '../monitoring/drift.ts';
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
  /**
   * At most this many table writes per second per chunk (0 = no ceiling). Either way the rate adapts to
   * the table: halved when it throttles, raised while it does not (table-writer.ts).
   */
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
  /**
   * CSV output only. `neutralize`: an id or pass-through text that a spreadsheet would read as a formula
   * (it starts with =, +, -, @, a tab or a carriage return, and is not a number) is written with a
   * single quote before it, in a quoted field, as OWASP recommends for CSV files people open in
   * spreadsheets. `raw`: every value exactly as read.
   */
  readonly csvFormulas: 'neutralize' | 'raw';
  /** Rows scored per ONNX run. */
  readonly microBatchRows: number;
  /**
   * The largest upload accepted, in bytes; for a gzip upload, also the largest it may decompress to
   * (a run fails with INPUT_TOO_LARGE beyond it).
   */
  readonly maxInputBytes: number;
  /**
   * The longest CSV / JSON Lines record scored, in bytes: a longer one is a rejected row (RECORD_TOO_LARGE),
   * and one longer than 16 times this (capped at 256 MiB) fails the run, since a worker holds a record whole.
   */
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
 * With write pacing set (maxTableWritesPerSecond), the planner cuts chunks whose writes at that pace take
 * about this long, so that most chunks finish in one invocation of the score function (5 minutes).
 */
export const CHUNK_WRITE_SECONDS = 240;
/**
 * An invocation stops starting table writes this long before its function's timeout: reading and
 * scoring the rest of a chunk, its part file and its report need the time (seconds for a 64 MiB chunk).
 */
export const CHUNK_FINISH_RESERVE_MS = 60_000;
/**
 * The most invocations of one chunk: at about four minutes each, 1,000 are more than 60 hours of a table
 * admitting almost nothing, and stay far under a Standard execution's 25,000 history events.
 */
export const MAX_CHUNK_INVOCATIONS = 1000;

export const DEFAULT_BATCH_OPTIONS: BatchOptions = {
  delimiter: ',',
  passThroughColumns: [],
  tableWrites: 'all',
  maxTableWritesPerSecond: 0,
  chunkBytes: 64 * 1024 * 1024,
  maxChunkRows: 0,
  outputFormat: 'jsonl',
  csvFormulas: 'neutralize',
  microBatchRows: 1024,
  maxInputBytes: 50 * 1024 ** 3,
  maxRecordBytes: 1024 * 1024,
  // pyarrow's default row group size.
  maxRowGroupRows: 1024 * 1024,
  modelVersion: '',
};

/**
 * Why a run was started, when something other than an upload started it: recorded in the run's plan and
 * manifest (`input.trigger`). A refresh (lambdas/core/refresh/) re-scores a model's sources with a version:
 * on its push, its promotion (live, canary or shadow), or the live version when its cache went stale.
 */
export interface RunTrigger {
  readonly kind: 'refresh';
  readonly cause: 'push' | 'promote' | 'staleness';
  readonly model: string;
  readonly version: string;
  readonly source: string;
  /** Staleness: when the alarm (or the local evaluator) went into ALARM. */
  readonly at?: string;
}

/** The input of one execution (what the trigger passes to StartExecution). */
export interface RunInput {
  readonly runId: string;
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
  readonly etag?: string;
  readonly model: string;
  readonly options?: Partial<BatchOptions>;
  /**
   * `key` is a folder (a prefix ending in "/"): every data file under it (the part files Spark, Athena
   * or Glue write) is one dataset, planned and scored as one run with one manifest (folderFiles).
   */
  readonly folder?: boolean;
  /** Why the run was started (absent: an upload or a command). */
  readonly trigger?: RunTrigger;
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
  /** A folder run: the index of the file in plan.files (a chunk never spans two files). */
  readonly file?: number;
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
  /** A folder run: the index of the file in plan.files. */
  readonly file?: number;
}

/** One file of a folder run: what its chunks read, and its own header (each part file has one). */
export interface PlanFile {
  readonly key: string;
  readonly versionId?: string;
  readonly etag: string;
  readonly size: number;
  readonly gzip: boolean;
  /** What the workers read: the file itself, or its decompressed staging copy. */
  readonly source: { bucket: string; key: string; versionId?: string; size: number };
  readonly header?: readonly string[];
  readonly rows: number;
}

export type PlanChunk = ByteRangeChunk | RowGroupChunk;

/**
 * What a run's drift is measured against: the pinned version's baseline (read once, at plan time, so
 * that every chunk and the finalizer bin alike), or why there is none.
 */
export type PlanDrift = { readonly baseline: Baseline } | { readonly notice: string };

/** A run's input against the scoring version's baseline (docs/monitoring.md): counts summed over chunks. */
export type RunDrift =
  | ({ readonly status: 'ok' | 'drift'; readonly message: string } & DriftFigures)
  | {
      readonly status: 'too-few-records' | 'no-baseline';
      readonly message: string;
      readonly records?: number;
    };

export interface BatchPlan {
  readonly runId: string;
  readonly model: string;
  /** The model version pinned for the whole run (read once, at plan time). */
  readonly modelVersion: string;
  /** Absent in plans written before drift existed (no figures then). */
  readonly drift?: PlanDrift;
  readonly dataset: string;
  /** The uploaded object; for a folder run, the prefix (etag '', size the files' sum). */
  readonly input: {
    bucket: string;
    key: string;
    versionId?: string;
    etag: string;
    size: number;
    folder?: boolean;
    trigger?: RunTrigger;
  };
  /**
   * A folder run's files, in key order; `source`, `gzip` and `header` above are then the first file's
   * (absent when the folder has none), and each chunk reads its own file's (chunkView).
   */
  readonly files?: readonly PlanFile[];
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
  /** Set when an invocation ran out of time writing the table: the next one continues from here. */
  readonly resume?: ChunkResume;
}

/**
 * Where a chunk's table writes stopped. The next invocation reads and scores the chunk again (seconds),
 * does not rewrite its part and rejected files (the stopped invocation finished them), and writes the
 * table items it has not written yet. Items are numbered in scoring order, the same on every invocation.
 */
export interface ChunkResume {
  /** Items [0, tableRows) are in the table. */
  readonly tableRows: number;
  /** Items after tableRows that are in the table too (written just before the deadline). */
  readonly tableRowsAhead: readonly number[];
  readonly tableWritten: number;
  readonly tableSkipped: number;
  /** Invocations of this chunk so far. */
  readonly invocations: number;
}

export interface ChunkReport {
  readonly index: number;
  /** A folder run: the file the chunk read (its part file's `row`s count within it). */
  readonly file?: string;
  readonly read: number;
  readonly scored: number;
  readonly rejected: number;
  readonly tableWritten: number;
  /** Table writes skipped because a fresher item was there. */
  readonly tableSkipped: number;
  /** Times the table refused writes for throttling (the writes were slowed and sent again). */
  readonly tableThrottled?: number;
  /** Invocations the chunk took when its table writes did not fit one (absent: one). */
  readonly invocations?: number;
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
  /** The chunk's scored rows binned against the plan's baseline (the finalizer sums them). */
  readonly drift?: DriftCounts;
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
  readonly input: {
    bucket: string;
    key: string;
    versionId?: string;
    etag?: string;
    size?: number;
    folder?: boolean;
    /** Why the run was started (a refresh), when not by an upload or a command. */
    trigger?: RunTrigger;
  };
  /** A folder run: each file and the rows the plan found in it. */
  readonly files?: readonly { readonly key: string; readonly size: number; readonly rows: number }[];
  /** Something the run did not fail for but whoever reads it should know (EMPTY_FOLDER). */
  readonly notice?: { readonly code: string; readonly message: string };
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
      /** A folder run: the file the chunk is part of (firstRow counts from its first row). */
      readonly file?: string;
      readonly firstRow: number;
      readonly rows: number;
      readonly error?: { readonly code: string; readonly message: string };
    }[];
  };
  readonly outputs: { readonly parts: string[]; readonly rejected: string[] };
  readonly timings: { readonly startedAt?: string; readonly finishedAt: string; readonly planMs?: number };
  readonly chunkStats: readonly ChunkReport[];
  /** The input's drift against the scoring version's baseline: figures, or why there are none. */
  readonly drift?: RunDrift;
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
 * Reads an `incoming/<model>/<file>` key. Keys outside `incoming/` are not datasets (undefined); inside
 * it, `model` or `format` is undefined when the key has no model folder or an unsupported extension
 * (the trigger ignores those uploads, trigger.ts classifyUploadKey; the planner fails a run started
 * on one some other way with the reason).
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
  return { model, dataset: datasetName(stem), format, gzip, file };
}

/**
 * A dataset name that is always one safe path segment of `results/<model>/<dataset>/`: characters
 * outside [A-Za-z0-9._-] become `_`, and so do leading dots, so that `..csv` or `...csv` cannot name
 * `.` or `..` (which would put results beside `results/<model>/` rather than in it).
 */
export function datasetName(stem: string): string {
  const safe = stem
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^\.+/, (dots) => '_'.repeat(dots.length))
    .slice(0, 200);
  return safe || 'dataset';
}

/**
 * The plan as one chunk sees it: for a folder run, its own file's source, compression and header (row
 * and line numbers in a folder run count within each file); otherwise the plan itself.
 */
export function chunkView(plan: BatchPlan, chunk: PlanChunk): BatchPlan {
  if (chunk.file === undefined || !plan.files) return plan;
  const file = plan.files[chunk.file];
  if (!file) throw new Error(`chunk ${chunk.index} names file ${chunk.file}, which the plan does not have`);
  const { header: _header, ...rest } = plan;
  return { ...rest, source: file.source, gzip: file.gzip, ...(file.header ? { header: file.header } : {}) };
}

/** What folderFiles found under a prefix. */
export interface FolderListing {
  /** Data files, in key order. */
  readonly files: readonly { readonly key: string; readonly format: DatasetFormat; readonly gzip: boolean }[];
  /** Keys skipped: markers and checksums (_SUCCESS, _committed_*, .crc), "folders". */
  readonly skipped: readonly string[];
  /** Keys whose format cannot be told from their name. */
  readonly unknown: readonly string[];
}

/**
 * Sorts the keys under a folder into data files and the rest. Names starting with "_" or "." are the
 * markers and checksums Spark, Glue and Hadoop committers write beside their part files; `.json` is JSON
 * Lines here, since that is what Spark's and Glue's JSON writers produce.
 */
export function folderFiles(keys: readonly string[]): FolderListing {
  const files: { key: string; format: DatasetFormat; gzip: boolean }[] = [];
  const skipped: string[] = [];
  const unknown: string[] = [];
  for (const key of keys) {
    const name = key.slice(key.lastIndexOf('/') + 1);
    if (name === '' || name.startsWith('_') || name.startsWith('.') || /\.crc$/i.test(name)) {
      skipped.push(key);
      continue;
    }
    const gzip = /\.gz$/i.test(name);
    const base = gzip ? name.slice(0, -3) : name;
    const kind = /\.(csv|jsonl|ndjson|json|parquet)$/i.exec(base)?.[1]?.toLowerCase();
    if (kind === undefined || (kind === 'parquet' && gzip)) unknown.push(key);
    else files.push({ key, format: kind === 'csv' || kind === 'parquet' ? kind : 'jsonl', gzip });
  }
  return { files, skipped, unknown };
}

/**
 * The state machine input of a folder run (`tandem runs start <model> --prefix`, and each firing of a
 * schedule): every data file under `prefix` scored as one run.
 */
export function folderRunInput(run: {
  readonly runId: string;
  readonly bucket: string;
  readonly model: string;
  readonly prefix: string;
  readonly options?: Partial<BatchOptions>;
  readonly trigger?: RunTrigger;
}): RunInput {
  return {
    runId: run.runId,
    bucket: run.bucket,
    key: run.prefix.endsWith('/') ? run.prefix : `${run.prefix}/`,
    model: run.model,
    folder: true,
    ...(run.options ? { options: run.options } : {}),
    ...(run.trigger ? { trigger: run.trigger } : {}),
  };
}

/** The dataset name of a folder run: its last segment (results/<model>/<dataset>/<runId>/). */
export function folderDatasetName(prefix: string): string {
  const segments = prefix.split('/').filter((s) => s !== '');
  return datasetName(segments[segments.length - 1] ?? 'dataset');
}
