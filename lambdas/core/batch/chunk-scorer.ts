/**
 * Scores one chunk of a batch run: streams its records, validates each row with the model's compiled
 * validator (the real-time lane's), scores valid rows in micro-batches with the same ONNX core, streams
 * the part file and the rejected rows to S3, upserts the table, and writes the chunk's report.
 * Every record read ends up scored or rejected; re-running a chunk writes the same keys and items.
 */
import { PassThrough } from 'node:stream';
import { storedPrediction, type StoredPrediction } from '../cache-policy.ts';
import { DatasetError } from '../codecs/errors.ts';
import { ModelLoadError } from '../errors.ts';
import { readCsvRecords, readJsonlRecords, readParquetRows } from '../codecs/readers.ts';
import type { FeatureIssue, FeatureRow } from '../features.ts';
import { loadModelVersion } from '../model-registry.ts';
import type { ServedModel } from '../model-loader.ts';
import type { ModelSource, ObjectStore, PredictionStore } from '../ports.ts';
import type { Prediction } from '../predictions.ts';
import {
  MAX_ID_LENGTH,
  chunkReportKey,
  partKey,
  rejectedKey,
  type BatchPlan,
  type ChunkItem,
  type ChunkReport,
  type PlanChunk,
} from './contracts.ts';
import { BatchInputError, ModelUnavailableError } from './errors.ts';
import { objectRandomAccess } from './random-access.ts';
import { OutputEncoder } from './output-encoder.ts';

export interface ChunkScorerDeps {
  readonly objects: ObjectStore;
  readonly models: ModelSource;
  /** Absent: no table writes whatever the run's options say. */
  readonly predictions?: PredictionStore;
}

/** One record of any format, reduced to what scoring needs. */
export interface SourceRecord {
  readonly row: number;
  readonly line?: number;
  readonly id: string | undefined;
  /** Validated features, or undefined when `issues` say why not. */
  readonly features: FeatureRow | undefined;
  readonly issues: FeatureIssue[];
  /** A reason that is not about one field (ragged row, invalid JSON, invalid UTF-8). */
  readonly problem?: string;
  /** The original record, for the rejected file (built only for rejected rows). */
  readonly original: () => unknown;
  /** Pass-through values, in the plan's passThroughColumns order. */
  readonly passThrough: readonly unknown[];
}

interface PendingRow {
  readonly record: SourceRecord;
  readonly id: string;
  readonly features: FeatureRow;
}

const utf8 = new TextDecoder();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Writes text to an object through a stream, with backpressure. */
class StreamedObject {
  private readonly pass = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
  private readonly done: Promise<void>;

  constructor(objects: ObjectStore, bucket: string, key: string, contentType: string) {
    this.done = objects.write(bucket, key, this.pass, contentType);
    this.done.catch(() => undefined);
  }

  async write(text: string): Promise<void> {
    if (text.length > 0 && !this.pass.write(text))
      await new Promise((resolve) => this.pass.once('drain', resolve));
  }

  async close(): Promise<void> {
    this.pass.end();
    await this.done;
  }

  abort(error: Error): void {
    this.pass.destroy(error);
  }
}

export class ChunkScorer {
  private readonly plans = new Map<string, Promise<BatchPlan>>();
  private readonly models = new Map<string, Promise<ServedModel>>();

  constructor(private readonly deps: ChunkScorerDeps) {}

  async score(item: ChunkItem, attempt = 1): Promise<ChunkReport> {
    const started = performance.now();
    const plan = await this.plan(item);
    const chunk = plan.chunks[item.index];
    if (!chunk)
      throw new BatchInputError(
        `[NO_SUCH_CHUNK] the plan of ${item.runId} has no chunk ${item.index}`,
        'NO_SUCH_CHUNK',
      );
    const model = await this.model(plan);
    const encoder = new OutputEncoder(plan.options.outputFormat, model, plan.options.passThroughColumns);
    const computedAt = Date.parse(plan.createdAt);
    const writeTable = plan.options.tableWrites === 'all' && this.deps.predictions !== undefined;
    const microBatch = plan.options.microBatchRows;
    const { bucket } = item;
    const partObjectKey = partKey(plan.resultsPrefix, chunk.index, plan.options.outputFormat);
    const rejectedObjectKey = rejectedKey(plan.resultsPrefix, chunk.index);

    let read = 0;
    let scored = 0;
    let rejected = 0;
    let tableWritten = 0;
    let tableSkipped = 0;
    let scoreMs = 0;
    let writeMs = 0;
    let part: StreamedObject | undefined;
    let rejects: StreamedObject | undefined;
    const pending: PendingRow[] = [];
    let writesThisSecond = { at: performance.now(), count: 0 };

    const throttleTableWrites = async (count: number) => {
      const limit = plan.options.maxTableWritesPerSecond;
      if (limit <= 0) return;
      writesThisSecond.count += count;
      const elapsed = performance.now() - writesThisSecond.at;
      const needed = (writesThisSecond.count / limit) * 1000;
      if (needed > elapsed) await sleep(needed - elapsed);
      if (performance.now() - writesThisSecond.at > 1000)
        writesThisSecond = { at: performance.now(), count: 0 };
    };

    const flush = async () => {
      if (pending.length === 0) return;
      const t0 = performance.now();
      const predictions: Prediction[] = await model.score(pending.map((p) => p.features));
      const t1 = performance.now();
      scoreMs += t1 - t0;
      const first = part === undefined;
      part ??= new StreamedObject(this.deps.objects, bucket, partObjectKey, encoder.contentType);
      await part.write(encoder.encode(pending, predictions, first));
      if (writeTable) {
        const items: StoredPrediction[] = pending.map((p, i) =>
          storedPrediction(
            {
              model: plan.model,
              entityId: p.id,
              prediction: predictions[i]!,
              modelVersion: plan.modelVersion,
              computedAt,
              runId: plan.runId,
              sourceRow: p.record.row,
              source: 'batch',
            },
            model.manifest.cache.ttlSeconds,
          ),
        );
        const result = await this.deps.predictions!.putMany(items);
        tableWritten += result.written;
        tableSkipped += result.skipped;
        await throttleTableWrites(items.length);
      }
      scored += pending.length;
      pending.length = 0;
      writeMs += performance.now() - t1;
    };

    const reject = async (record: SourceRecord) => {
      rejected++;
      rejects ??= new StreamedObject(this.deps.objects, bucket, rejectedObjectKey, 'application/x-ndjson');
      const reason =
        record.problem ??
        `invalid features: ${record.issues.map((i) => `${i.field} ${i.message}`).join('; ')}`;
      await rejects.write(
        `${JSON.stringify({
          row: record.row,
          ...(record.line === undefined ? {} : { line: record.line }),
          reason,
          ...(record.issues.length > 0 ? { details: record.issues } : {}),
          record: record.original(),
        })}\n`,
      );
    };

    const readStarted = performance.now();
    try {
      for await (const batch of this.records(plan, chunk, model)) {
        for (const record of batch) {
          read++;
          if (record.features && record.id !== undefined) {
            pending.push({ record, id: record.id, features: record.features });
            if (pending.length >= microBatch) await flush();
          } else {
            await reject(record);
          }
        }
      }
      await flush();
      await part?.close();
      await rejects?.close();
    } catch (error) {
      part?.abort(error as Error);
      rejects?.abort(error as Error);
      if (error instanceof DatasetError)
        throw new BatchInputError(`[${error.code}] chunk ${chunk.index}: ${error.message}`, error.code, {
          cause: error,
        });
      throw error;
    }
    const totalMs = performance.now() - started;
    const report: ChunkReport = {
      index: chunk.index,
      read,
      scored,
      rejected,
      tableWritten,
      tableSkipped,
      partKey: part ? partObjectKey : undefined,
      rejectedKey: rejects ? rejectedObjectKey : undefined,
      readMs: Math.round(performance.now() - readStarted - scoreMs - writeMs),
      scoreMs: Math.round(scoreMs),
      writeMs: Math.round(writeMs),
      totalMs: Math.round(totalMs),
      attempt,
    };
    if (read !== scored + rejected)
      throw new Error(`chunk ${chunk.index}: read ${read} != scored ${scored} + rejected ${rejected}`);
    await this.deps.objects.writeBytes(
      bucket,
      chunkReportKey(plan.runId, chunk.index),
      JSON.stringify(report),
      'application/json',
    );
    return report;
  }

  async close(): Promise<void> {
    for (const model of this.models.values()) await (await model.catch(() => undefined))?.close();
    this.models.clear();
    this.plans.clear();
  }

  private plan(item: ChunkItem): Promise<BatchPlan> {
    const key = `${item.bucket}/${item.planKey}`;
    let plan = this.plans.get(key);
    if (!plan) {
      plan = this.deps.objects
        .readBytes(item.bucket, item.planKey)
        .then((bytes) => JSON.parse(utf8.decode(bytes)) as BatchPlan);
      plan.catch(() => this.plans.delete(key));
      this.plans.set(key, plan);
    }
    return plan;
  }

  private model(plan: BatchPlan): Promise<ServedModel> {
    const key = `${plan.model}@${plan.modelVersion}`;
    let model = this.models.get(key);
    if (!model) {
      model = loadModelVersion(this.deps.models, plan.model, plan.modelVersion).catch((error: unknown) => {
        this.models.delete(key);
        // The model store being unreachable is worth a retry; a missing or broken package is not.
        if (error instanceof ModelLoadError && error.code === 'MODEL_STORE_UNAVAILABLE') throw error;
        throw new ModelUnavailableError(
          `[MODEL_UNAVAILABLE] ${key} (pinned by the plan) cannot be loaded: ${(error as Error).message}`,
          'MODEL_UNAVAILABLE',
          { cause: error },
        );
      });
      this.models.set(key, model);
    }
    return model;
  }

  private records(plan: BatchPlan, chunk: PlanChunk, model: ServedModel): AsyncIterable<SourceRecord[]> {
    const { source } = plan;
    const version = source.versionId ? { versionId: source.versionId } : {};
    if (chunk.kind === 'row-groups') {
      const rows = readParquetRows(
        objectRandomAccess(this.deps.objects, source.bucket, source.key, source.size, source.versionId),
        chunk,
      );
      return mapBatches(rows, (r) => objectRecord(model, plan, r.row, undefined, r.value, () => r.value));
    }
    const bytes = this.deps.objects.read(source.bucket, source.key, {
      start: chunk.start,
      end: chunk.end,
      ...version,
    });
    if (plan.format === 'csv') {
      const header = plan.header ?? [];
      const columns = model.validator.names.map((name) => header.indexOf(name));
      const idColumn = header.indexOf(model.manifest.idField);
      const passColumns = plan.options.passThroughColumns.map((c) => header.indexOf(c));
      const rows = readCsvRecords(bytes, {
        delimiter: plan.options.delimiter,
        firstRow: chunk.firstRow,
        firstLine: chunk.firstLine,
      });
      return mapBatches(rows, (r) => {
        const original = () => Object.fromEntries(header.map((name, i) => [name, r.fields[i] ?? null]));
        if (r.error !== undefined) return problemRecord(r.row, r.line, r.error, () => r.text ?? r.fields);
        if (r.fields.length !== header.length) {
          return problemRecord(
            r.row,
            r.line,
            `expected ${header.length} fields (the header's), got ${r.fields.length}`,
            () => r.fields,
          );
        }
        const issues: FeatureIssue[] = [];
        const features = model.validator.fromText(r.fields, columns, issues);
        let id = r.fields[idColumn] || undefined;
        if (id === undefined) issues.push({ field: model.manifest.idField, message: 'is required' });
        else if (id.length > MAX_ID_LENGTH) {
          issues.push({ field: model.manifest.idField, message: idTooLong(id) });
          id = undefined;
        }
        return {
          row: r.row,
          line: r.line,
          id,
          features: id === undefined ? undefined : features,
          issues,
          original,
          passThrough: passColumns.map((c) => r.fields[c] ?? null),
        };
      });
    }
    const rows = readJsonlRecords(bytes, { firstRow: chunk.firstRow, firstLine: chunk.firstLine });
    return mapBatches(rows, (r) => {
      if (r.error !== undefined) return problemRecord(r.row, r.line, r.error, () => r.text);
      return objectRecord(model, plan, r.row, r.line, r.value, () => r.text);
    });
  }
}

function problemRecord(
  row: number,
  line: number | undefined,
  problem: string,
  original: () => unknown,
): SourceRecord {
  return {
    row,
    ...(line === undefined ? {} : { line }),
    id: undefined,
    features: undefined,
    issues: [],
    problem,
    original,
    passThrough: [],
  };
}

function objectRecord(
  model: ServedModel,
  plan: BatchPlan,
  row: number,
  line: number | undefined,
  value: unknown,
  original: () => unknown,
): SourceRecord {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return problemRecord(row, line, 'the record is not an object', original);
  }
  const record = value as Record<string, unknown>;
  const issues: FeatureIssue[] = [];
  const features = model.validator.fromObject(record, issues, '', { ignoreUnknown: true });
  const rawId = Object.hasOwn(record, model.manifest.idField) ? record[model.manifest.idField] : undefined;
  let id =
    typeof rawId === 'string' && rawId !== ''
      ? rawId
      : typeof rawId === 'number' && Number.isFinite(rawId)
        ? String(rawId)
        : undefined;
  if (id === undefined) {
    const missing = rawId === undefined || rawId === null || rawId === '';
    issues.push({
      field: model.manifest.idField,
      message: missing ? 'is required' : `must be a string or a number, got ${describeId(rawId)}`,
    });
  } else if (id.length > MAX_ID_LENGTH) {
    issues.push({ field: model.manifest.idField, message: idTooLong(id) });
    id = undefined;
  }
  return {
    row,
    ...(line === undefined ? {} : { line }),
    id,
    features: id === undefined ? undefined : features,
    issues,
    original,
    passThrough: plan.options.passThroughColumns.map((c) => record[c] ?? null),
  };
}

/** A DynamoDB key holds at most 2048 bytes: a longer id would fail the chunk's table writes. */
function idTooLong(id: string): string {
  return `must be at most ${MAX_ID_LENGTH} characters, got ${id.length}`;
}

function describeId(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object' && value !== null) return 'an object';
  return String(value);
}

async function* mapBatches<T>(
  source: AsyncIterable<T[]>,
  map: (item: T) => SourceRecord,
): AsyncGenerator<SourceRecord[]> {
  for await (const batch of source) yield batch.map(map);
}
