/**
 * Scores one chunk of a batch run: streams its records, validates each row with the model's compiled
 * validator (the real-time lane's), scores valid rows in micro-batches with the same ONNX core, streams
 * the part file and the rejected rows to S3, upserts the table, and writes the chunk's report.
 * Every record read ends up scored or rejected; re-running a chunk writes the same keys and items.
 *
 * Plain ASCII CSV records take the fast path (csv-fast-path.ts: parsed from the bytes into the batch's
 * tensors); every other record, and any record the fast path is not sure about, takes the general path
 * (source-records.ts). With a scoring thread (scoring-thread.ts) the session runs while the next
 * micro-batch is read and the previous one is written. Table writes go through the TableWriter, which
 * adapts to a throttling table and stops at the invocation's deadline: the chunk then continues in
 * another invocation (contracts.ts ChunkResume).
 */
import { storedPrediction, type StoredPrediction } from '../cache-policy.ts';
import type { CaptureBuffer } from '../capture/capture-buffer.ts';
import { readCsvSpans } from '../codecs/csv-reader.ts';
import { DatasetError } from '../codecs/errors.ts';
import { readJsonlRecords } from '../codecs/jsonl-reader.ts';
import { TOO_LARGE_PREVIEW_BYTES, recordTooLarge } from '../codecs/spans.ts';
import { readParquetRows } from '../codecs/parquet-reader.ts';
import { ModelLoadError } from '../errors.ts';
import type { ModelSource, ObjectStore, PredictionStore } from '../ports.ts';
import { decodePredictions, type Prediction } from '../predictions.ts';
import { loadBatchModel, type BatchModel } from './batch-model.ts';
import { ChunkDrift } from './chunk-drift.ts';
import {
  MAX_CHUNK_INVOCATIONS,
  chunkReportKey,
  chunkView,
  partKey,
  rejectedKey,
  type BatchPlan,
  type ChunkItem,
  type ChunkReport,
  type PlanChunk,
} from './contracts.ts';
import { BatchInputError, ModelUnavailableError } from './errors.ts';
import { CsvFastPath } from './csv-fast-path.ts';
import { StreamedObject, WrittenObject, type OutputObject } from './output-object.ts';
import { objectRandomAccess } from './random-access.ts';
import { OutputEncoder } from './output-encoder.ts';
import { ScoringQueue } from './scoring-queue.ts';
import type { FeedBatch } from './feed-batch.ts';
import { resolveScoringThreads } from './scoring-thread.ts';
import {
  csvRecordReader,
  mapBatches,
  objectRecord,
  problemRecord,
  type SourceRecord,
} from './source-records.ts';
import { TableWriter, systemClock, type Clock } from './table-writer.ts';

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
  /** Paces table writes and tells the deadline. @default the system's monotonic clock */
  readonly clock?: Clock;
  /**
   * Data capture of sampled scored rows (source `batch`), flushed before a chunk's run returns; a capture
   * that cannot be written is counted by the buffer, never failing the chunk. Absent: off.
   */
  readonly capture?: CaptureBuffer;
}

export interface ChunkRunOptions {
  /** 1-based attempt, for the report. @default 1 */
  readonly attempt?: number;
  /** On the deps' clock: no table write starts after it. @default none: the chunk completes */
  readonly deadline?: number;
}

/** A chunk either completed (its report is written) or stopped at its deadline: `next` continues it. */
export type ChunkOutcome =
  { readonly done: true; readonly report: ChunkReport } | { readonly done: false; readonly next: ChunkItem };

/** Runs in flight per chunk and scoring thread (one running, one queued), plus one inline. */
const RUNS_PER_THREAD = 2;

const utf8 = new TextDecoder();

export class ChunkScorer {
  private readonly plans = new Map<string, Promise<BatchPlan>>();
  private readonly models = new Map<string, Promise<BatchModel>>();
  private readonly scoringThreads: number;
  private readonly clock: Clock;

  constructor(private readonly deps: ChunkScorerDeps) {
    this.scoringThreads = resolveScoringThreads(deps.scoringThreads ?? 'auto', deps.lambdaMemoryMb);
    this.clock = deps.clock ?? systemClock;
  }

  /** Scores the whole chunk, however long its table writes take. */
  async score(item: ChunkItem, attempt = 1): Promise<ChunkReport> {
    const outcome = await this.run(item, { attempt });
    if (!outcome.done) throw new Error(`chunk ${item.index} stopped without a deadline`);
    return outcome.report;
  }

  /** Scores the chunk; stops writing the table at the deadline, and says how to continue. */
  async run(item: ChunkItem, options: ChunkRunOptions = {}): Promise<ChunkOutcome> {
    const attempt = options.attempt ?? 1;
    const started = performance.now();
    const runPlan = await this.plan(item);
    const chunk = runPlan.chunks[item.index];
    if (!chunk)
      throw new BatchInputError('NO_SUCH_CHUNK', `the plan of ${item.runId} has no chunk ${item.index}`);
    // A folder run's chunk reads its own file; its rejected rows name it.
    const plan = chunkView(runPlan, chunk);
    const fileKey = chunk.file === undefined ? undefined : runPlan.files?.[chunk.file]?.key;
    const resume = item.resume;
    const invocations = (resume?.invocations ?? 0) + 1;
    if (invocations > MAX_CHUNK_INVOCATIONS)
      throw new Error(
        `[TABLE_WRITES_STALLED] chunk ${chunk.index}: the table accepted ${resume?.tableRows ?? 0} of its writes in ${MAX_CHUNK_INVOCATIONS} invocations`,
      );
    const model = await this.model(plan);
    const encoder = new OutputEncoder(plan.options.outputFormat, model, plan.options.passThroughColumns, {
      csvFormulas: plan.options.csvFormulas,
    });
    const computedAt = Date.parse(plan.createdAt);
    const table =
      plan.options.tableWrites === 'all' && this.deps.predictions !== undefined
        ? new TableWriter({
            store: this.deps.predictions,
            ceilingPerSecond: plan.options.maxTableWritesPerSecond,
            clock: this.clock,
            ...(options.deadline === undefined ? {} : { deadline: options.deadline }),
            ...(resume ? { resume } : {}),
          })
        : undefined;
    // Every invocation of a chunk reads all its rows; the one that completes it reports their drift counts.
    const drift =
      plan.drift && 'baseline' in plan.drift ? new ChunkDrift(plan.drift.baseline, model) : undefined;
    const microBatch = plan.options.microBatchRows;
    const capture = this.deps.capture;
    const { bucket } = item;
    const partObjectKey = partKey(plan.resultsPrefix, chunk.index, plan.options.outputFormat);
    const rejectedObjectKey = rejectedKey(plan.resultsPrefix, chunk.index);
    // A continued chunk's part and rejected files were finished by the invocation that stopped.
    const open = (key: string, contentType: string): OutputObject =>
      resume ? new WrittenObject() : new StreamedObject(this.deps.objects, bucket, key, contentType);

    let read = 0;
    let scored = 0;
    let rejected = 0;
    let writeMs = 0;
    let part: OutputObject | undefined;
    let rejects: OutputObject | undefined;

    const queue = new ScoringQueue(
      model,
      model.fixedBatchOne ? 1 : microBatch,
      model.runner.threads > 0 ? model.runner.threads * RUNS_PER_THREAD + 2 : 1,
      async (batch, outputs) => {
        const t0 = performance.now();
        const first = part === undefined;
        part ??= open(partObjectKey, encoder.contentType);
        await part.write(encoder.encodeOutputs(batch, outputs, model.outputPlan, first));
        // Decoded once, for whichever of the table, the drift counts and the capture needs them.
        let decoded: Prediction[] | undefined;
        const predictions = (): Prediction[] =>
          (decoded ??= decodePredictions(model.outputPlan, outputs as never, batch.count));
        if (capture) captureBatch(capture, plan, model, batch, predictions);
        drift?.add(batch, predictions());
        if (table) {
          const items: StoredPrediction[] = predictions().map((prediction, i) =>
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
          await table.write(items);
        }
        scored += batch.count;
        writeMs += performance.now() - t0;
      },
    );

    const reject = async (record: SourceRecord) => {
      rejected++;
      rejects ??= open(rejectedObjectKey, 'application/x-ndjson');
      const reason =
        record.problem ??
        `invalid features: ${record.issues.map((i) => `${i.field} ${i.message}`).join('; ')}`;
      await rejects.write(
        `${JSON.stringify({
          ...(fileKey === undefined ? {} : { file: fileKey }),
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
        const csvRecord = csvRecordReader(plan, model);
        const { maxRecordBytes } = plan.options;
        const fast = new CsvFastPath(
          model.manifest,
          model.inputPlans,
          model.dictionaries,
          plan.header ?? [],
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
            const bytes = span.ends[k]! - span.starts[k]!;
            if (bytes > maxRecordBytes) {
              const start = span.start(k);
              const preview = span.bytes.toString('utf8', start, start + TOO_LARGE_PREVIEW_BYTES);
              const problem = recordTooLarge(bytes, maxRecordBytes);
              await reject(problemRecord(span.firstRow + k, span.line(k), problem, () => preview));
            } else if (ascii && plain[k] === 1 && fast.tryFill(span, k, queue.batch)) {
              if (queue.batch.full) await queue.dispatch();
            } else {
              await take(csvRecord(span.row(k)));
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
        throw new BatchInputError(
          error.code,
          `chunk ${chunk.index}${fileKey === undefined ? '' : ` (${fileKey})`}: ${error.message}`,
          { cause: error },
        );
      throw error;
    }
    if (read !== scored + rejected)
      throw new Error(`chunk ${chunk.index}: read ${read} != scored ${scored} + rejected ${rejected}`);
    // Never rejects: a write that fails is counted and reported by the buffer.
    await capture?.flush();
    if (table?.stopped) {
      return {
        done: false,
        next: {
          runId: item.runId,
          bucket: item.bucket,
          planKey: item.planKey,
          index: item.index,
          resume: {
            ...table.position,
            tableWritten: table.written,
            tableSkipped: table.skipped,
            invocations,
          },
        },
      };
    }
    const scoreMs = queue.scoreMs;
    const totalMs = performance.now() - started;
    const report: ChunkReport = {
      index: chunk.index,
      ...(fileKey === undefined ? {} : { file: fileKey }),
      read,
      scored,
      rejected,
      tableWritten: table?.written ?? 0,
      tableSkipped: table?.skipped ?? 0,
      ...(table && table.throttled > 0 ? { tableThrottled: table.throttled } : {}),
      ...(invocations > 1 ? { invocations } : {}),
      ...(drift ? { drift: drift.counts } : {}),
      partKey: part ? partObjectKey : undefined,
      rejectedKey: rejects ? rejectedObjectKey : undefined,
      readMs: Math.round(performance.now() - readStarted - queue.waitMs - writeMs),
      scoreMs: Math.round(scoreMs),
      writeMs: Math.round(writeMs),
      totalMs: Math.round(totalMs),
      attempt,
    };
    await this.deps.objects.writeBytes(
      bucket,
      chunkReportKey(plan.runId, chunk.index),
      JSON.stringify(report),
      'application/json',
    );
    return { done: true, report };
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
      maxRecordBytes: plan.options.maxRecordBytes,
    });
    return mapBatches(rows, (r) => {
      if (r.error !== undefined) return problemRecord(r.row, r.line, r.error, () => r.text);
      return objectRecord(model, plan, r.row, r.line, r.value, r.text, () => r.text, r.invalidUtf8);
    });
  }
}

/** Buffers the sampled rows of one scored micro-batch (their features read back from its tensors). */
function captureBatch(
  capture: CaptureBuffer,
  plan: BatchPlan,
  model: BatchModel,
  batch: FeedBatch,
  predictions: () => readonly Prediction[],
): void {
  let time: string | undefined;
  for (let i = 0; i < batch.count; i++) {
    if (!capture.sample('batch')) continue;
    time ??= new Date().toISOString();
    capture.add({
      model: plan.model,
      version: plan.modelVersion,
      source: 'batch',
      id: batch.id(i),
      features: batch.features(i, model.manifest),
      prediction: predictions()[i]!,
      servedBy: 'model',
      requestId: plan.runId,
      runId: plan.runId,
      time,
    });
  }
}
