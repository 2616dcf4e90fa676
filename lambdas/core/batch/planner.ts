/**
 * Plans a batch run: pins the model version, inspects the upload once (record boundaries and row counts
 * for CSV / JSON Lines, row groups for Parquet; a gzip upload is decompressed once to a staging object
 * while it is scanned, since a gzip stream cannot be split) and writes the plan and the map's items.
 */
import { PassThrough } from 'node:stream';
import { DatasetError } from '../codecs/errors.ts';
import { gunzipStream } from '../codecs/gzip.ts';
import { readJsonlRecords } from '../codecs/jsonl-reader.ts';
import { planParquet } from '../codecs/parquet-reader.ts';
import { ManifestError, ModelLoadError, ModelNotFoundError } from '../errors.ts';
import { parseManifest, type Manifest } from '../manifest.ts';
import { inspectModel } from '../onnx-graph.ts';
import { checkPackagePath, readModelPackage } from '../model-package.ts';
import { BASELINE_FILE, parseBaseline } from '../monitoring/baseline.ts';
import { isPackageName } from '../names.ts';
import type { ModelSource, ObjectInfo, ObjectStore } from '../ports.ts';
import {
  CHUNK_WRITE_SECONDS,
  MAX_CHUNKS,
  folderDatasetName,
  folderFiles,
  itemsKey,
  parseIncomingKey,
  planKey,
  resultsPrefix,
  type BatchOptions,
  type BatchPlan,
  type ByteRangeChunk,
  type ChunkItem,
  type DatasetFormat,
  type PlanFile,
  type RowGroupChunk,
  type PlanChunk,
  type PlanDrift,
  type RunInput,
} from './contracts.ts';
import { scanCsv, scanJsonl } from './dataset-scan.ts';
import { BatchInputError, ModelUnavailableError } from './errors.ts';
import { recordHardLimit, resolveOptions } from './options.ts';
import { objectRandomAccess } from './random-access.ts';

export { resolveOptions };

export interface PlanResult {
  readonly bucket: string;
  readonly planKey: string;
  readonly itemsKey: string;
  readonly chunks: number;
  readonly totalRows: number;
  readonly modelVersion: string;
  readonly resultsPrefix: string;
}

export interface PlannerDeps {
  readonly objects: ObjectStore;
  readonly models: ModelSource;
  readonly now?: () => number;
}

/**
 * The most rows a chunk may hold: maxChunkRows, and, when table writes are paced, what the pace writes
 * in CHUNK_WRITE_SECONDS (a chunk with more would still be writing when its Express child is stopped).
 */
export function chunkRowLimit(options: BatchOptions): number {
  const limits = [options.maxChunkRows > 0 ? options.maxChunkRows : Infinity];
  if (options.tableWrites === 'all' && options.maxTableWritesPerSecond > 0)
    limits.push(Math.max(1, Math.floor(options.maxTableWritesPerSecond * CHUNK_WRITE_SECONDS)));
  return Math.min(...limits);
}

/** Model store failures that a retry may fix: not a reason to fail the run (Plan is retried). */
function isTransient(error: unknown): boolean {
  return error instanceof ModelLoadError && error.code === 'MODEL_STORE_UNAVAILABLE';
}

/**
 * Pins the live version and checks its package before the upload is read, so that a run with a
 * missing or unreadable model fails in seconds, not after a scan: the manifest is parsed and checked
 * against the package path, and model.onnx must be there and parse as an ONNX graph. (Whether the
 * graph matches the manifest is checked by the workers, which load it into onnxruntime.)
 */
/**
 * The pinned version's drift baseline for the run's manifest: a missing or malformed one is a notice in
 * the manifest (the run scores all the same); an unreachable store fails the plan like the package does.
 */
async function planDrift(models: ModelSource, manifest: Manifest): Promise<PlanDrift> {
  const where = `${manifest.name}/${manifest.version}/${BASELINE_FILE}`;
  let bytes: Uint8Array;
  try {
    bytes = await models.read(manifest.name, manifest.version, BASELINE_FILE);
  } catch (error) {
    if (error instanceof ModelLoadError && error.code === 'MODEL_FILE_MISSING')
      return { notice: `${manifest.name}@${manifest.version} has no ${BASELINE_FILE}: no drift figures` };
    throw error;
  }
  let baseline;
  try {
    baseline = parseBaseline(bytes, where);
  } catch (error) {
    return { notice: `${(error as Error).message}: no drift figures` };
  }
  if (baseline.model !== manifest.name || baseline.version !== manifest.version)
    return { notice: `${where} is the baseline of ${baseline.model}@${baseline.version}: no drift figures` };
  return { baseline };
}

async function pinModel(models: ModelSource, name: string, requested: string): Promise<Manifest> {
  try {
    const version = requested === '' ? await models.currentVersion(name) : requested;
    const pkg = await readModelPackage(models, name, version);
    const manifest = parseManifest(pkg.manifest, `${name}/${version}/manifest.json`);
    checkPackagePath(manifest, name, version);
    inspectModel(pkg.modelBytes);
    return manifest;
  } catch (error) {
    if (isTransient(error)) throw error;
    if (error instanceof ModelNotFoundError) {
      throw new ModelUnavailableError(
        'MODEL_NOT_FOUND',
        `${error.message}: upload to incoming/<model>/ of a served model`,
        { cause: error },
      );
    }
    const code =
      error instanceof ModelLoadError || error instanceof ManifestError ? error.code : 'MODEL_LOAD_FAILED';
    throw new ModelUnavailableError(code, `model ${name} cannot be used: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Columns every row needs: the id and each required feature without a default. */
function checkColumns(manifest: Manifest, columns: readonly string[], options: BatchOptions): void {
  const present = new Set(columns);
  const needed = new Set([
    manifest.idField,
    ...manifest.features.map((f) => f.name),
    ...options.passThroughColumns,
  ]);
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const column of columns) {
    if (seen.has(column) && needed.has(column)) twice.add(column);
    seen.add(column);
  }
  if (twice.size > 0) {
    throw new BatchInputError(
      'DUPLICATE_COLUMNS',
      `the dataset has more than one column named ${[...twice].map((c) => `"${c}"`).join(', ')}: which one to use is ambiguous`,
    );
  }
  const missing = [
    manifest.idField,
    ...manifest.features.filter((f) => f.required && f.default === undefined).map((f) => f.name),
  ].filter((name) => !present.has(name));
  if (missing.length > 0) {
    throw new BatchInputError(
      'MISSING_COLUMNS',
      `the dataset has no column ${missing.map((m) => `"${m}"`).join(', ')} (it has: ${columns.slice(0, 50).join(', ')})`,
    );
  }
  const unknown = options.passThroughColumns.filter((c) => !present.has(c));
  if (unknown.length > 0) {
    throw new BatchInputError(
      'UNKNOWN_PASS_THROUGH',
      `passThroughColumns not in the dataset: ${unknown.join(', ')}`,
    );
  }
}

/**
 * JSON Lines has no header: passThroughColumns are checked against the keys of the first record that is
 * an object (its own keys: "constructor" is not a key of {}), as CSV ones are against the header. A
 * later record without one of them passes null.
 */
async function checkJsonlPassThrough(
  objects: ObjectStore,
  source: BatchPlan['source'],
  first: {
    readonly start: number;
    readonly end: number;
    readonly firstRow: number;
    readonly firstLine: number;
  },
  options: BatchOptions,
): Promise<void> {
  const bytes = objects.read(source.bucket, source.key, {
    start: first.start,
    end: first.end,
    ...(source.versionId ? { versionId: source.versionId } : {}),
  });
  let record: object | undefined;
  for await (const batch of readJsonlRecords(bytes, { ...first, maxRecordBytes: options.maxRecordBytes })) {
    record = batch.find((r) => r.value !== undefined)?.value as object | undefined;
    break;
  }
  if (record === undefined) return;
  const unknown = options.passThroughColumns.filter((c) => !Object.hasOwn(record, c));
  if (unknown.length > 0) {
    throw new BatchInputError(
      'UNKNOWN_PASS_THROUGH',
      `passThroughColumns not in the dataset's first record: ${unknown.join(', ')}`,
    );
  }
}

/**
 * Yields the decompressed upload while writing it to the staging object, with backpressure: the scan
 * and the upload advance together, so memory stays bounded whatever the file size.
 */
async function* decompressToStaging(
  source: AsyncIterable<Uint8Array>,
  write: (body: AsyncIterable<Uint8Array>) => Promise<void>,
  uploaded: { done?: Promise<void> },
  maxBytes: number,
  file: string,
): AsyncGenerator<Uint8Array> {
  const pass = new PassThrough({ highWaterMark: 8 * 1024 * 1024 });
  uploaded.done = write(pass);
  uploaded.done.catch(() => undefined);
  let total = 0;
  try {
    for await (const chunk of gunzipStream(source)) {
      total += chunk.length;
      // A gzip bomb stops here, before the staging copy grows past the limit.
      if (total > maxBytes) {
        throw new BatchInputError(
          'INPUT_TOO_LARGE',
          `${file} decompresses to more than ${maxBytes} bytes (maxInputBytes)`,
        );
      }
      if (!pass.write(chunk)) await new Promise((resolve) => pass.once('drain', resolve));
      yield chunk;
    }
    pass.end();
  } catch (error) {
    pass.destroy(error as Error);
    throw error;
  }
}

function datasetFailure(error: unknown): never {
  if (error instanceof DatasetError) throw new BatchInputError(error.code, error.message, { cause: error });
  throw error;
}

/**
 * The upload as notified. S3 notifications URL-encode keys ("+" for spaces); EventBridge events are
 * not documented to, so an encoded-looking key that does not exist is tried decoded.
 */
/**
 * The version a run scores with: the `modelVersion` option, else the upload's `model-version` metadata
 * (`aws s3 cp ... --metadata model-version=2.0.0`: a candidate precomputed through the upload lane), else
 * '' (the live version).
 */
function modelVersionOf(options: BatchOptions, head: ObjectInfo | undefined): string {
  if (options.modelVersion !== '') return options.modelVersion;
  const requested = head?.metadata?.['model-version'];
  if (requested === undefined || requested === '') return '';
  const shown = requested.slice(0, 80);
  if (!isPackageName(requested)) {
    throw new BatchInputError(
      'INVALID_OPTIONS',
      `the upload's model-version metadata must be a version (letters, digits, ".", "_" or "-"), got "${shown}"`,
    );
  }
  return requested;
}

async function findInput(objects: ObjectStore, input: RunInput) {
  const head = await objects.head(input.bucket, input.key, input.versionId);
  if (head) return { key: input.key, head };
  let decoded: string;
  try {
    decoded = decodeURIComponent(input.key.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
  if (decoded === input.key) return undefined;
  const decodedHead = await objects.head(input.bucket, decoded, input.versionId);
  return decodedHead ? { key: decoded, head: decodedHead } : undefined;
}

type ScannedChunk = Omit<ByteRangeChunk, 'index'> | Omit<RowGroupChunk, 'index'>;

interface ScannedFile {
  readonly source: BatchPlan['source'];
  readonly header?: string[];
  readonly chunks: ScannedChunk[];
  readonly totalRows: number;
}

interface FileToScan {
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
  readonly size: number;
  readonly format: DatasetFormat;
  readonly gzip: boolean;
  /** The name used in messages. */
  readonly file: string;
  /** Where a gzip file is decompressed to. */
  readonly stagingKey: string;
}

/**
 * Finds one file's chunks: record boundaries and row counts for CSV / JSON Lines (a gzip file is
 * decompressed to its staging object while it is scanned), row groups for Parquet. Checks its columns.
 */
async function scanFile(
  objects: ObjectStore,
  manifest: Manifest,
  options: BatchOptions,
  file: FileToScan,
): Promise<ScannedFile> {
  const { versionId } = file;
  const read = () => objects.read(file.bucket, file.key, versionId ? { versionId } : {});
  let source: BatchPlan['source'] = {
    bucket: file.bucket,
    key: file.key,
    ...(versionId ? { versionId } : {}),
    size: file.size,
  };
  let chunks: ScannedChunk[];
  let totalRows: number;
  let header: string[] | undefined;
  try {
    if (file.format === 'parquet') {
      const parquet = await planParquet(
        objectRandomAccess(objects, file.bucket, file.key, file.size, versionId),
        { chunkBytes: options.chunkBytes, maxChunkRows: chunkRowLimit(options) },
      );
      checkColumns(manifest, parquet.columns, options);
      const large = parquet.rowGroups.findIndex((group) => group.rows > options.maxRowGroupRows);
      if (large >= 0) {
        throw new BatchInputError(
          'ROW_GROUP_TOO_LARGE',
          `row group ${large} of ${file.file} has ${parquet.rowGroups[large]!.rows} rows; a worker decodes a whole row group, and the limit is ${options.maxRowGroupRows} (maxRowGroupRows): write smaller row groups`,
        );
      }
      chunks = parquet.chunks.map((c) => ({ kind: 'row-groups', ...c }));
      totalRows = parquet.totalRows;
    } else {
      const uploaded: { done?: Promise<void> } = {};
      const { stagingKey } = file;
      const bytes = file.gzip
        ? decompressToStaging(
            read(),
            (body) => objects.write(file.bucket, stagingKey, body, 'application/octet-stream'),
            uploaded,
            options.maxInputBytes,
            file.file,
          )
        : read();
      const limits = {
        chunkBytes: options.chunkBytes,
        maxChunkRows: chunkRowLimit(options),
        maxRecordBytes: recordHardLimit(options),
      };
      const scan =
        file.format === 'csv'
          ? await scanCsv(bytes, { ...limits, delimiter: options.delimiter })
          : { ...(await scanJsonl(bytes, limits)), header: undefined };
      await uploaded.done;
      if (file.gzip) source = { bucket: file.bucket, key: stagingKey, size: scan.bytes };
      header = scan.header;
      if (header) checkColumns(manifest, header, options);
      else if (options.passThroughColumns.length > 0 && scan.chunks[0])
        await checkJsonlPassThrough(objects, source, scan.chunks[0], options);
      chunks = scan.chunks.map((c) => ({ kind: 'bytes', ...c }));
      totalRows = scan.totalRows;
    }
  } catch (error) {
    datasetFailure(error);
  }
  return { source, chunks, totalRows, ...(header ? { header } : {}) };
}

export async function planRun(input: RunInput, deps: PlannerDeps): Promise<PlanResult> {
  if (input.folder) return planFolder(input, deps);
  const started = performance.now();
  const now = deps.now ?? Date.now;
  const incoming = parseIncomingKey(input.key);
  if (!incoming) throw new BatchInputError('NOT_A_DATASET', `${input.key} is not under incoming/`);
  const options = resolveOptions(input.options);
  if (!incoming.model) {
    throw new BatchInputError(
      'NO_MODEL_FOLDER',
      `upload datasets to incoming/<model>/<file>, not ${input.key}`,
    );
  }
  if (!incoming.format) {
    throw new BatchInputError(
      'UNSUPPORTED_FORMAT',
      `${incoming.file}: supported are .csv, .jsonl (.ndjson), .parquet, and .csv.gz / .jsonl.gz`,
    );
  }
  const found = await findInput(deps.objects, input);
  const manifest = await pinModel(deps.models, incoming.model, modelVersionOf(options, found?.head));
  if (!found)
    throw new BatchInputError('INPUT_MISSING', `s3://${input.bucket}/${input.key} no longer exists`);
  const { head } = found;
  input = { ...input, key: found.key };
  if (head.size === 0) throw new BatchInputError('EMPTY_FILE', `${incoming.file} is empty (0 bytes)`);
  if (head.size > options.maxInputBytes) {
    throw new BatchInputError(
      'INPUT_TOO_LARGE',
      `${incoming.file} is ${head.size} bytes; the limit is ${options.maxInputBytes} (maxInputBytes)`,
    );
  }
  const versionId = input.versionId ?? head.versionId;
  const scanned = await scanFile(deps.objects, manifest, options, {
    bucket: input.bucket,
    key: input.key,
    ...(versionId ? { versionId } : {}),
    size: head.size,
    format: incoming.format,
    gzip: incoming.gzip,
    file: incoming.file,
    stagingKey: `runs/${input.runId}/staging/${incoming.dataset}.${incoming.format}`,
  });
  const { source, header, totalRows } = scanned;
  const chunks: PlanChunk[] = scanned.chunks.map((c, index) => ({ ...c, index }));
  if (chunks.length > MAX_CHUNKS) {
    throw new BatchInputError(
      'TOO_MANY_CHUNKS',
      `${incoming.file} makes ${chunks.length} chunks of chunkBytes ${options.chunkBytes}; at most ${MAX_CHUNKS} are allowed (raise chunkBytes, or the rows a chunk may hold: maxChunkRows, maxTableWritesPerSecond × ${CHUNK_WRITE_SECONDS} s)`,
    );
  }

  const prefix = resultsPrefix(manifest.name, incoming.dataset, input.runId);
  const plan: BatchPlan = {
    runId: input.runId,
    model: manifest.name,
    modelVersion: manifest.version,
    drift: await planDrift(deps.models, manifest),
    dataset: incoming.dataset,
    input: {
      bucket: input.bucket,
      key: input.key,
      ...(versionId ? { versionId } : {}),
      etag: head.etag,
      size: head.size,
      ...(input.trigger ? { trigger: input.trigger } : {}),
    },
    source,
    format: incoming.format,
    gzip: incoming.gzip,
    ...(header ? { header } : {}),
    options,
    chunks,
    totalRows,
    resultsPrefix: prefix,
    createdAt: new Date(now()).toISOString(),
    planMs: Math.round(performance.now() - started),
  };
  return writePlan(deps.objects, plan);
}

async function writePlan(objects: ObjectStore, plan: BatchPlan): Promise<PlanResult> {
  const { runId } = plan;
  const bucket = plan.input.bucket;
  const items: ChunkItem[] = plan.chunks.map((c) => ({
    runId,
    bucket,
    planKey: planKey(runId),
    index: c.index,
  }));
  await objects.writeBytes(bucket, planKey(runId), JSON.stringify(plan), 'application/json');
  await objects.writeBytes(bucket, itemsKey(runId), JSON.stringify(items), 'application/json');
  return {
    bucket,
    planKey: planKey(runId),
    itemsKey: itemsKey(runId),
    chunks: plan.chunks.length,
    totalRows: plan.totalRows,
    modelVersion: plan.modelVersion,
    resultsPrefix: plan.resultsPrefix,
  };
}

/**
 * Plans a folder run: every data file under the prefix (folderFiles), all of one format, gzipped or
 * not, each scanned as an upload is and cut into its own chunks, numbered across the run. A folder with
 * no data files is a plan with no chunks: the run succeeds and its manifest says the folder was empty.
 */
async function planFolder(input: RunInput, deps: PlannerDeps): Promise<PlanResult> {
  const started = performance.now();
  const now = deps.now ?? Date.now;
  const options = resolveOptions(input.options);
  const prefix = input.key;
  if (!prefix.endsWith('/') || prefix.startsWith('/') || prefix.split('/').includes('..')) {
    throw new BatchInputError('INVALID_PREFIX', `a folder run needs a prefix ending in "/", got "${prefix}"`);
  }
  if (!isPackageName(input.model)) {
    throw new BatchInputError('NO_MODEL_FOLDER', `"${input.model}" is not a model name`);
  }
  const manifest = await pinModel(deps.models, input.model, options.modelVersion);
  const listing = folderFiles(await deps.objects.list(input.bucket, prefix));
  if (listing.unknown.length > 0) {
    throw new BatchInputError(
      'UNSUPPORTED_FORMAT',
      `${listing.unknown.length} files under ${prefix} are not .csv, .jsonl (.ndjson, .json), .parquet or a gzip of csv/jsonl: ${listing.unknown.slice(0, 5).join(', ')}`,
    );
  }
  const formats = [...new Set(listing.files.map((f) => f.format))];
  if (formats.length > 1) {
    const example = (format: DatasetFormat) => listing.files.find((f) => f.format === format)!.key;
    throw new BatchInputError(
      'MIXED_FORMATS',
      `the files under ${prefix} mix formats (${formats.map((f) => `${f}: ${example(f)}`).join('; ')}); a folder run reads one format`,
    );
  }
  const format = formats[0] ?? 'csv';
  const files: PlanFile[] = [];
  const chunks: PlanChunk[] = [];
  let totalRows = 0;
  let totalBytes = 0;
  for (const [fileIndex, entry] of listing.files.entries()) {
    const head = await deps.objects.head(input.bucket, entry.key);
    if (!head)
      throw new BatchInputError('INPUT_MISSING', `s3://${input.bucket}/${entry.key} no longer exists`);
    totalBytes += head.size;
    if (totalBytes > options.maxInputBytes) {
      throw new BatchInputError(
        'INPUT_TOO_LARGE',
        `the files under ${prefix} are more than ${options.maxInputBytes} bytes (maxInputBytes)`,
      );
    }
    const name = entry.key.slice(prefix.length);
    let scanned: ScannedFile = {
      source: { bucket: input.bucket, key: entry.key, size: 0 },
      chunks: [],
      totalRows: 0,
    };
    // An empty part file (Spark writes one per empty partition) holds no rows.
    if (head.size > 0) {
      try {
        scanned = await scanFile(deps.objects, manifest, options, {
          bucket: input.bucket,
          key: entry.key,
          ...(head.versionId ? { versionId: head.versionId } : {}),
          size: head.size,
          format,
          gzip: entry.gzip,
          file: name,
          stagingKey: `runs/${input.runId}/staging/${String(fileIndex).padStart(5, '0')}.${format}`,
        });
      } catch (error) {
        if (error instanceof BatchInputError)
          throw new BatchInputError(error.code, `${name}: ${error.message}`, { cause: error });
        throw error;
      }
    }
    files.push({
      key: entry.key,
      ...(head.versionId ? { versionId: head.versionId } : {}),
      etag: head.etag,
      size: head.size,
      gzip: entry.gzip,
      source: scanned.source,
      ...(scanned.header ? { header: scanned.header } : {}),
      rows: scanned.totalRows,
    });
    for (const c of scanned.chunks) chunks.push({ ...c, index: chunks.length, file: fileIndex });
    totalRows += scanned.totalRows;
    if (chunks.length > MAX_CHUNKS) {
      throw new BatchInputError(
        'TOO_MANY_CHUNKS',
        `the files under ${prefix} make more than ${MAX_CHUNKS} chunks of chunkBytes ${options.chunkBytes} (a chunk never spans two files): raise chunkBytes or write fewer, larger files`,
      );
    }
  }
  const first = files[0];
  const dataset = folderDatasetName(prefix);
  const plan: BatchPlan = {
    runId: input.runId,
    model: manifest.name,
    modelVersion: manifest.version,
    drift: await planDrift(deps.models, manifest),
    dataset,
    input: {
      bucket: input.bucket,
      key: prefix,
      etag: '',
      size: totalBytes,
      folder: true,
      ...(input.trigger ? { trigger: input.trigger } : {}),
    },
    files,
    source: first?.source ?? { bucket: input.bucket, key: prefix, size: 0 },
    format,
    gzip: first?.gzip ?? false,
    ...(first?.header ? { header: first.header } : {}),
    options,
    chunks,
    totalRows,
    resultsPrefix: resultsPrefix(manifest.name, dataset, input.runId),
    createdAt: new Date(now()).toISOString(),
    planMs: Math.round(performance.now() - started),
  };
  return writePlan(deps.objects, plan);
}
