/**
 * Scores one chunk of a batch run: streams its records, validates each row with the model's compiled
 * validator (the real-time lane's), scores valid rows in micro-batches with the same ONNX core, streams
 * the part file and the rejected rows to S3, upserts the table, and writes the chunk's report.
 * Every record read ends up scored or rejected; re-running a chunk writes the same keys and items.
 *
 * Plain ASCII CSV records take the fast path (csv-fast-path.ts: parsed from the bytes into the batch's
 * tensors); every other record, and any record the fast path is not sure about, takes the general path
 * (fields, FeatureValidator, FeatureRow). With a scoring thread (scoring-thread.ts) the session runs while
 * the next micro-batch is read and the previous one is written.
 */
import { PassThrough } from 'node:stream';
import { storedPrediction, type StoredPrediction } from '../cache-policy.ts';
import { DatasetError } from '../codecs/errors.ts';
import { parseJsonEntityId } from '../entity-id.ts';
import { ModelLoadError } from '../errors.ts';
import { readCsvSpans, readJsonlRecords, readParquetRows, type CsvRow } from '../codecs/readers.ts';
import type { FeatureIssue, FeatureRow } from '../features.ts';
import type { ModelSource, ObjectStore, PredictionStore } from '../ports.ts';
import { decodePredictions } from '../predictions.ts';
import { loadBatchModel, type BatchModel } from './batch-model.ts';
import {
  chunkReportKey,
  partKey,
  rejectedKey,
  type BatchPlan,
  type ChunkItem,
  type ChunkReport,
  type PlanChunk,
} from './contracts.ts';
import { BatchInputError, ModelUnavailableError } from './errors.ts';
import { CsvFastPath } from './csv-fast-path.ts';
import { objectRandomAccess } from './random-access.ts';
import { OutputEncoder } from './output-encoder.ts';
import { ScoringQueue } from './scoring-queue.ts';
import { resolveScoringThreads } from './scoring-thread.ts';

export interface ChunkScorerDeps {
  readonly objects: ObjectStore;
  readonly models: ModelSource;
  /** Absent: no table writes whatever the run's options say. */
  readonly predictions?: PredictionStore;
  /**
   * Threads that run onnxruntime beside the scorer's own (0: all runs inline), or `auto`: one per vCPU
   * but one, from 1.5 vCPUs (resolveScoringThreads). The output is the same either way.
   * @default 'auto'
   */
  readonly scoringThreads?: number | 'auto';
  /** On Lambda, the function's memory (it sets the vCPUs `auto` counts). */
  readonly lambdaMemoryMb?: number;
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

/** Runs in flight per chunk and scoring thread (one running, one queued), plus one inline. */
const RUNS_PER_THREAD = 2;

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

  async write(text: string | Uint8Array): Promise<void> {
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
  private readonly models = new Map<string, Promise<BatchModel>>();
  private readonly scoringThreads: number;

  constructor(private readonly deps: ChunkScorerDeps) {
    this.scoringThreads = resolveScoringThreads(deps.scoringThreads ?? 'auto', deps.lambdaMemoryMb);
  }

  async score(item: ChunkItem, attempt = 1): Promise<ChunkReport> {
    const started = performance.now();
    const plan = await this.plan(item);
    const chunk = plan.chunks[item.index];
    if (!chunk)
      throw new BatchInputError('NO_SUCH_CHUNK', `the plan of ${item.runId} has no chunk ${item.index}`);
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
    let writeMs = 0;
    let part: StreamedObject | undefined;
    let rejects: StreamedObject | undefined;
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

    const queue = new ScoringQueue(
      model,
      model.fixedBatchOne ? 1 : microBatch,
      model.runner.threads > 0 ? model.runner.threads * RUNS_PER_THREAD + 2 : 1,
      async (batch, outputs) => {
        const t0 = performance.now();
        const first = part === undefined;
        part ??= new StreamedObject(this.deps.objects, bucket, partObjectKey, encoder.contentType);
        await part.write(encoder.encodeOutputs(batch, outputs, model.outputPlan, first));
        if (writeTable) {
          const predictions = decodePredictions(model.outputPlan, outputs as never, batch.count);
          const items: StoredPrediction[] = predictions.map((prediction, i) =>
            storedPrediction(
              {
                model: plan.model,
                entityId: batch.id(i),
                prediction,
                modelVersion: plan.modelVersion,
                computedAt,
                runId: plan.runId,
                sourceRow: batch.rows[i]!,
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
        scored += batch.count;
        writeMs += performance.now() - t0;
      },
    );

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

    /** The general path: a validated record joins the batch, any other is rejected. */
    const take = async (record: SourceRecord) => {
      if (record.features && record.id !== undefined) {
        queue.batch.addFeatureRow(record.features, record.id, record.row, record.passThrough);
        if (queue.batch.full) await queue.dispatch();
      } else {
        await reject(record);
      }
    };

    const readStarted = performance.now();
    try {
      if (chunk.kind === 'bytes' && plan.format === 'csv') {
        const csv = this.csvRecords(plan, model);
        const fast = new CsvFastPath(
          model.manifest,
          model.inputPlans,
          model.dictionaries,
          csv.header,
          plan.options.delimiter,
          plan.options.passThroughColumns,
        );
        for await (const span of readCsvSpans(this.byteRange(plan, chunk), {
          delimiter: plan.options.delimiter,
          firstRow: chunk.firstRow,
          firstLine: chunk.firstLine,
        })) {
          const ascii = span.isAscii;
          const plain = span.plain;
          for (let k = 0; k < span.count; k++) {
            read++;
            if (ascii && plain[k] === 1 && fast.tryFill(span, k, queue.batch)) {
              if (queue.batch.full) await queue.dispatch();
            } else {
              await take(csv.record(span.row(k)));
            }
          }
        }
      } else {
        for await (const batch of this.records(plan, chunk, model)) {
          for (const record of batch) {
            read++;
            await take(record);
          }
        }
      }
      await queue.finish();
      await part?.close();
      await rejects?.close();
    } catch (error) {
      part?.abort(error as Error);
      rejects?.abort(error as Error);
      if (!model.runner.healthy) this.evict(plan);
      if (error instanceof DatasetError)
        throw new BatchInputError(error.code, `chunk ${chunk.index}: ${error.message}`, { cause: error });
      throw error;
    }
    const scoreMs = queue.scoreMs;
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
      readMs: Math.round(performance.now() - readStarted - queue.waitMs - writeMs),
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

  /** Forgets a model whose runner broke (a scoring thread that died), so that a retry loads it again. */
  private evict(plan: BatchPlan): void {
    const key = `${plan.model}@${plan.modelVersion}`;
    const model = this.models.get(key);
    this.models.delete(key);
    void model?.then((m) => m.close()).catch(() => undefined);
  }

  private model(plan: BatchPlan): Promise<BatchModel> {
    const key = `${plan.model}@${plan.modelVersion}`;
    let model = this.models.get(key);
    if (!model) {
      model = loadBatchModel(this.deps.models, plan.model, plan.modelVersion, this.scoringThreads).catch(
        (error: unknown) => {
          this.models.delete(key);
          // The model store being unreachable is worth a retry; a missing or broken package is not.
          if (error instanceof ModelLoadError && error.code === 'MODEL_STORE_UNAVAILABLE') throw error;
          throw new ModelUnavailableError(
            'MODEL_UNAVAILABLE',
            `${key} (pinned by the plan) cannot be loaded: ${(error as Error).message}`,
            { cause: error },
          );
        },
      );
      this.models.set(key, model);
    }
    return model;
  }

  private byteRange(plan: BatchPlan, chunk: PlanChunk & { kind: 'bytes' }): AsyncIterable<Uint8Array> {
    const { source } = plan;
    return this.deps.objects.read(source.bucket, source.key, {
      start: chunk.start,
      end: chunk.end,
      ...(source.versionId ? { versionId: source.versionId } : {}),
    });
  }

  /** The general path of a CSV record: its fields checked by the model's validator. */
  private csvRecords(
    plan: BatchPlan,
    model: BatchModel,
  ): { header: readonly string[]; record: (r: CsvRow) => SourceRecord } {
    const header = plan.header ?? [];
    const columns = model.validator.names.map((name) => header.indexOf(name));
    const idColumn = header.indexOf(model.manifest.idField);
    const passColumns = plan.options.passThroughColumns.map((c) => header.indexOf(c));
    const record = (r: CsvRow): SourceRecord => {
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
      // CSV has no null: an empty field is a missing id.
      const id = recordId(r.fields[idColumn] || undefined, undefined, model.manifest.idField, issues);
      return {
        row: r.row,
        line: r.line,
        id,
        features: id === undefined ? undefined : features,
        issues,
        original,
        passThrough: passColumns.map((c) => r.fields[c] ?? null),
      };
    };
    return { header, record };
  }

  /** JSON Lines and Parquet records. */
  private records(plan: BatchPlan, chunk: PlanChunk, model: BatchModel): AsyncIterable<SourceRecord[]> {
    const { source } = plan;
    if (chunk.kind === 'row-groups') {
      const rows = readParquetRows(
        objectRandomAccess(this.deps.objects, source.bucket, source.key, source.size, source.versionId),
        chunk,
      );
      return mapBatches(rows, (r) =>
        objectRecord(model, plan, r.row, undefined, r.value, undefined, () => r.value),
      );
    }
    const rows = readJsonlRecords(this.byteRange(plan, chunk), {
      firstRow: chunk.firstRow,
      firstLine: chunk.firstLine,
    });
    return mapBatches(rows, (r) => {
      if (r.error !== undefined) return problemRecord(r.row, r.line, r.error, () => r.text);
      return objectRecord(model, plan, r.row, r.line, r.value, r.text, () => r.text);
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
  model: Pick<BatchModel, 'validator' | 'manifest'>,
  plan: BatchPlan,
  row: number,
  line: number | undefined,
  value: unknown,
  /** The JSON Lines line the value was parsed from (numeric ids are read from it). */
  jsonText: string | undefined,
  original: () => unknown,
): SourceRecord {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return problemRecord(row, line, 'the record is not an object', original);
  }
  const record = value as Record<string, unknown>;
  const issues: FeatureIssue[] = [];
  const features = model.validator.fromObject(record, issues, '', { ignoreUnknown: true });
  const idField = model.manifest.idField;
  const rawId = Object.hasOwn(record, idField) ? record[idField] : undefined;
  const id = recordId(rawId, jsonText, idField, issues);
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

/** A row's id by the one entity-id rule; a row without one is rejected. */
function recordId(
  raw: unknown,
  jsonText: string | undefined,
  idField: string,
  issues: FeatureIssue[],
): string | undefined {
  const { id, problem } = parseJsonEntityId(raw, jsonText, [idField]);
  if (id === undefined) issues.push({ field: idField, message: problem ?? 'is required' });
  return id;
}

async function* mapBatches<T>(
  source: AsyncIterable<T[]>,
  map: (item: T) => SourceRecord,
): AsyncGenerator<SourceRecord[]> {
  for await (const batch of source) yield batch.map(map);
}
