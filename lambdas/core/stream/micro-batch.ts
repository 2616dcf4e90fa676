/**
 * The stream lane's consumer: one micro-batch of records in shard order -> validated with the /predict
 * validator, scored in one run per model (the served model's own `score`, as every lane), written to the
 * table (source `stream`, an older event never replacing a newer one) and published on the output stream.
 *
 * Every record ends in exactly one place. Poison records (not JSON, not an object, invalid, unknown
 * model) go to `rejected/stream/` with their reason and are never retried. An infrastructure failure
 * (table, output stream, reject file) gives `retryFrom`: the sequence number of the first record not
 * done, from which the batch is redelivered (Kinesis partial batch response semantics; records after it
 * are redone, which the conditional table write and the output's `sequenceNumber` make harmless). A model
 * that cannot be loaded throws: the batch is not checkpointed at all.
 */
import { storedPrediction, type StoredPrediction } from '../cache-policy.ts';
import type { CaptureBuffer } from '../capture/capture-buffer.ts';
import { ModelNotFoundError, TandemError, ValidationError } from '../errors.ts';
import { validateFeatureObjects, type FeatureRow } from '../features.ts';
import type { ServedModel } from '../model-loader.ts';
import type { ObjectStore, PredictionStore } from '../ports.ts';
import type { Prediction } from '../predictions.ts';
import {
  parseStreamRecord,
  recordText,
  type RejectReason,
  type StreamEvent,
  type StreamRecord,
} from './stream-event.ts';

/** The models served (the ModelRegistry). */
export interface ModelProvider {
  readonly defaultModel: string;
  /** Throws ModelNotFoundError for a model that does not exist; any other error: it cannot be loaded. */
  get(name?: string): Promise<ServedModel>;
}

export interface OutgoingRecord {
  readonly partitionKey: string;
  readonly data: Uint8Array;
}

/** The output stream. */
export interface RecordPublisher {
  /** Puts the records in order; returns the indexes of those not accepted. Throws when none could be put. */
  publish(records: readonly OutgoingRecord[]): Promise<{ failed: readonly number[] }>;
}

/** What the output stream carries, one per prediction. */
export interface PublishedPrediction {
  readonly id: string;
  readonly model: { readonly name: string; readonly version: string };
  readonly prediction: Prediction;
  readonly eventTime: string;
  readonly scoredAt: string;
  /** The input record's: consumers drop duplicates by it (delivery is at least once). */
  readonly sequenceNumber: string;
}

/** One line of a `rejected/stream/...jsonl` file. */
export interface RejectedLine {
  readonly sequenceNumber: string;
  readonly partitionKey: string;
  readonly shardId: string;
  readonly arrivalTime: string;
  readonly reason: RejectReason;
  /** The record's data as text, or base64 when it is not UTF-8. */
  readonly data?: string;
  readonly dataBase64?: string;
}

export interface MicroBatchDeps {
  readonly models: ModelProvider;
  readonly store: PredictionStore;
  readonly publisher: RecordPublisher;
  readonly objects: ObjectStore;
  readonly bucket: string;
  readonly maxEventBytes: number;
  readonly now?: () => number;
  /** Data capture of sampled scored events (source `stream`); absent: off. Never waited on. */
  readonly capture?: CaptureBuffer;
}

export interface MicroBatchOutcome {
  /** The sequence number to redeliver from; undefined when every record is done. */
  readonly retryFrom: string | undefined;
  /** Why the batch stopped at `retryFrom` (for logs). */
  readonly failure: string | undefined;
  readonly counts: {
    readonly records: number;
    readonly scored: number;
    readonly rejected: number;
    readonly written: number;
    /** Not written: the table holds a newer event of the entity. */
    readonly skipped: number;
    readonly published: number;
  };
  /** Per scored record: scoredAt - eventTime and scoredAt - arrival, ms. */
  readonly eventLatencyMs: readonly number[];
  readonly arrivalLatencyMs: readonly number[];
  readonly modelLatencyMs: number;
}

interface Scored {
  readonly index: number;
  readonly event: StreamEvent;
  readonly model: ServedModel;
  readonly prediction: Prediction;
}

interface Rejected {
  readonly index: number;
  readonly model: string;
  readonly reason: RejectReason;
}

const encoder = new TextEncoder();

function rejectionOf(error: ValidationError): RejectReason {
  return error.details === undefined
    ? { code: 'INVALID_FEATURES', message: error.message }
    : { code: 'INVALID_FEATURES', message: error.message, details: error.details };
}

/** `rejected/stream/<model>/<yyyy>/<mm>/<dd>/<shard>-<first sequence number>.jsonl`, by arrival date. */
export function rejectKey(model: string, first: StreamRecord): string {
  const day = new Date(first.arrivalMs).toISOString().slice(0, 10).replaceAll('-', '/');
  return `rejected/stream/${model}/${day}/${first.shardId}-${first.sequenceNumber}.jsonl`;
}

function rejectedLine(record: StreamRecord, reason: RejectReason): RejectedLine {
  const text = recordText(record.data);
  return {
    sequenceNumber: record.sequenceNumber,
    partitionKey: record.partitionKey,
    shardId: record.shardId,
    arrivalTime: new Date(record.arrivalMs).toISOString(),
    reason,
    ...(text === undefined ? { dataBase64: Buffer.from(record.data).toString('base64') } : { data: text }),
  };
}

/** Of several events of one entity in a batch, the table keeps the newest (then the later record). */
function latestPerEntity(scored: readonly Scored[], scoredAt: number): StoredPrediction[] {
  const latest = new Map<string, Scored>();
  for (const item of scored) {
    const seen = latest.get(item.event.id);
    if (seen === undefined || seen.event.eventTimeMs <= item.event.eventTimeMs)
      latest.set(item.event.id, item);
  }
  return [...latest.values()].map(({ event, model, prediction }) =>
    storedPrediction(
      {
        model: model.name,
        entityId: event.id,
        prediction,
        modelVersion: model.version,
        computedAt: scoredAt,
        eventTime: event.eventTimeMs,
        source: 'stream',
      },
      model.manifest.cache.ttlSeconds,
    ),
  );
}

function describe(error: unknown): string {
  if (error instanceof TandemError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

export async function scoreMicroBatch(
  records: readonly StreamRecord[],
  deps: MicroBatchDeps,
): Promise<MicroBatchOutcome> {
  const now = deps.now ?? Date.now;
  const defaultModel = deps.models.defaultModel;
  const rejected: Rejected[] = [];
  const byModel = new Map<string, { index: number; event: StreamEvent }[]>();
  records.forEach((record, index) => {
    const parsed = parseStreamRecord(record, deps.maxEventBytes);
    if (!parsed.ok) {
      rejected.push({ index, model: parsed.model ?? defaultModel, reason: parsed.reason });
      return;
    }
    const name = parsed.event.model ?? defaultModel;
    let group = byModel.get(name);
    if (group === undefined) byModel.set(name, (group = []));
    group.push({ index, event: parsed.event });
  });

  // Models first: one that exists but cannot be loaded throws here, before anything is written.
  const groups: { model: ServedModel; events: { index: number; event: StreamEvent }[] }[] = [];
  for (const [name, events] of byModel) {
    try {
      groups.push({ model: await deps.models.get(name), events });
    } catch (error) {
      if (!(error instanceof ModelNotFoundError)) throw error;
      const reason: RejectReason = { code: 'UNKNOWN_MODEL', message: `no model named "${name}"` };
      for (const { index } of events) rejected.push({ index, model: name, reason });
    }
  }

  const scored: Scored[][] = [];
  let modelLatencyMs = 0;
  for (const { model, events } of groups) {
    const valid: { index: number; event: StreamEvent; row: FeatureRow }[] = [];
    for (const { index, event } of events) {
      try {
        const [row] = validateFeatureObjects(model.validator, [{ index: 0, features: event.features }], true);
        valid.push({ index, event, row: row! });
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        rejected.push({ index, model: model.name, reason: rejectionOf(error) });
      }
    }
    if (valid.length === 0) continue;
    const started = performance.now();
    const predictions = await model.score(valid.map((v) => v.row));
    modelLatencyMs += performance.now() - started;
    scored.push(
      valid.map((v, k) => ({ index: v.index, event: v.event, model, prediction: predictions[k]! })),
    );
  }
  const scoredAt = now();

  let failAt = records.length;
  let failure: string | undefined;
  const failFrom = (index: number, why: string) => {
    if (index < failAt) [failAt, failure] = [index, why];
  };

  let written = 0;
  let skipped = 0;
  await Promise.all(
    scored.map(async (group) => {
      try {
        const result = await deps.store.putMany(latestPerEntity(group, scoredAt));
        written += result.written;
        skipped += result.skipped;
      } catch (error) {
        failFrom(group[0]!.index, `table write failed: ${describe(error)}`);
      }
    }),
  );

  // Only predictions before the first failure are published: the rest are redelivered and redone.
  const toPublish = scored
    .flat()
    .filter((s) => s.index < failAt)
    .sort((a, b) => a.index - b.index);
  const scoredAtIso = new Date(scoredAt).toISOString();
  let published = 0;
  if (toPublish.length > 0) {
    const outgoing = toPublish.map(({ index, event, model, prediction }): OutgoingRecord => {
      const record = records[index]!;
      const body: PublishedPrediction = {
        id: event.id,
        model: model.ref,
        prediction,
        eventTime: new Date(event.eventTimeMs).toISOString(),
        scoredAt: scoredAtIso,
        sequenceNumber: record.sequenceNumber,
      };
      return { partitionKey: record.partitionKey, data: encoder.encode(JSON.stringify(body)) };
    });
    try {
      const { failed } = await deps.publisher.publish(outgoing);
      published = outgoing.length - failed.length;
      if (failed.length > 0) {
        failFrom(Math.min(...failed.map((k) => toPublish[k]!.index)), 'the output stream refused records');
      }
    } catch (error) {
      failFrom(toPublish[0]!.index, `output stream unavailable: ${describe(error)}`);
    }
  }

  const toFile = new Map<string, Rejected[]>();
  for (const item of rejected.filter((r) => r.index < failAt).sort((a, b) => a.index - b.index)) {
    const file = toFile.get(item.model);
    if (file === undefined) toFile.set(item.model, [item]);
    else file.push(item);
  }
  let rejectedCount = 0;
  await Promise.all(
    [...toFile].map(async ([model, items]) => {
      const first = records[items[0]!.index]!;
      const body =
        items.map((r) => JSON.stringify(rejectedLine(records[r.index]!, r.reason))).join('\n') + '\n';
      try {
        await deps.objects.writeBytes(deps.bucket, rejectKey(model, first), body, 'application/x-ndjson');
        rejectedCount += items.length;
      } catch (error) {
        failFrom(items[0]!.index, `rejected records could not be stored: ${describe(error)}`);
      }
    }),
  );

  const done = scored.flat().filter((s) => s.index < failAt);
  if (deps.capture) captureStream(deps.capture, done, records, scoredAtIso);
  return {
    retryFrom: failAt < records.length ? records[failAt]!.sequenceNumber : undefined,
    failure,
    counts: {
      records: records.length,
      scored: done.length,
      rejected: rejectedCount,
      written,
      skipped,
      published,
    },
    eventLatencyMs: done.map((s) => scoredAt - s.event.eventTimeMs),
    arrivalLatencyMs: done.map((s) => scoredAt - records[s.index]!.arrivalMs),
    modelLatencyMs,
  };
}

/** Buffers the sampled ones of the events done (a redelivered record may be captured again). */
function captureStream(
  capture: CaptureBuffer,
  done: readonly Scored[],
  records: readonly StreamRecord[],
  time: string,
): void {
  for (const { index, event, model, prediction } of done) {
    if (!capture.sample('stream')) continue;
    capture.add({
      model: model.name,
      version: model.version,
      source: 'stream',
      id: event.id,
      features: event.features,
      prediction,
      servedBy: 'model',
      requestId: records[index]!.sequenceNumber,
      time,
    });
  }
}
