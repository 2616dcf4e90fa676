/**
 * The local stand-in for Lambda's Kinesis event source mapping: reads every shard of a stream and calls
 * the stream handler with Kinesis events, with the mapping's semantics and the same settings
 * (lambdas/core/settings.ts):
 * - a batch is sent when `batchSize` records are waiting or `batchingWindowSeconds` has passed since the
 *   first one arrived (0: as soon as there is any);
 * - a partial batch response (ReportBatchItemFailures) checkpoints the records before the failed one and
 *   retries from it; a thrown error retries the batch, first split in halves down to one record when
 *   `bisectOnError` is on (splits do not count as retries, as with Lambda);
 * - after `retryAttempts` retries, or when the first record is older than `maxRecordAgeSeconds`, the
 *   batch goes to the on-failure destination (`onFailure`) and is checkpointed;
 * - checkpoints (the last sequence number done, per shard) are kept in a JSON file, so a restarted
 *   poller resumes where the last one stopped; with no checkpoint a shard is read from its start
 *   (TRIM_HORIZON): nothing put before the stack started is skipped.
 * Not modelled: parallelization factor (one batch per shard at a time, in order), resharding.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  type KinesisClient,
  type _Record,
} from '@aws-sdk/client-kinesis';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import type { StreamSettings } from '../lambdas/core/settings.ts';

export type PollerSettings = Pick<
  StreamSettings,
  'batchSize' | 'batchingWindowSeconds' | 'retryAttempts' | 'maxRecordAgeSeconds' | 'bisectOnError'
>;

/** What Lambda sends to an on-failure destination for a Kinesis batch (KinesisBatchInfo), plus the data. */
export interface FailedBatch {
  readonly condition: 'RetryAttemptsExhausted' | 'RecordAgeExceeded';
  readonly streamName: string;
  readonly shardId: string;
  readonly startSequenceNumber: string;
  readonly endSequenceNumber: string;
  readonly batchSize: number;
  readonly attempts: number;
  readonly error: string;
  readonly records: readonly { sequenceNumber: string; partitionKey: string; dataBase64: string }[];
}

export type StreamHandler = (event: KinesisStreamEvent) => Promise<KinesisStreamBatchResponse | void>;

export interface StreamPollerOptions {
  readonly client: KinesisClient;
  readonly streamName: string;
  readonly settings: PollerSettings;
  readonly handler: StreamHandler;
  readonly onFailure: (batch: FailedBatch) => Promise<void>;
  /** The checkpoint file; undefined keeps checkpoints in memory only. */
  readonly checkpointFile?: string;
  /** How long an empty shard waits before it is read again. @default 100 */
  readonly pollIntervalMs?: number;
  readonly log?: (line: string) => void;
  readonly region?: string;
}

export interface PollerStats {
  invocations: number;
  recordsDelivered: number;
  partialFailures: number;
  errors: number;
  failedBatches: number;
}

interface PendingRecord {
  readonly record: _Record;
  readonly shardId: string;
}

type Invocation = { kind: 'done' } | { kind: 'partial'; done: number } | { kind: 'error'; error: string };

export class StreamPoller {
  readonly stats: PollerStats = {
    invocations: 0,
    recordsDelivered: 0,
    partialFailures: 0,
    errors: 0,
    failedBatches: 0,
  };
  private checkpoints: Record<string, string> = {};
  private readonly idle = new Map<string, boolean>();
  private stopped = false;
  private writing: Promise<void> = Promise.resolve();
  private loops: Promise<void>[] = [];
  private readonly pollMs: number;
  private readonly log: (line: string) => void;

  constructor(private readonly options: StreamPollerOptions) {
    this.pollMs = options.pollIntervalMs ?? 100;
    this.log = options.log ?? ((line) => process.stderr.write(`[stream-poller] ${line}\n`));
  }

  async start(): Promise<void> {
    if (this.options.checkpointFile !== undefined) {
      try {
        this.checkpoints = JSON.parse(await readFile(this.options.checkpointFile, 'utf8')) as Record<
          string,
          string
        >;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    const shards = await this.options.client.send(
      new ListShardsCommand({ StreamName: this.options.streamName }),
    );
    for (const shard of shards.Shards ?? []) {
      const shardId = shard.ShardId!;
      this.idle.set(shardId, false);
      this.loops.push(
        this.runShard(shardId).catch((error: unknown) => {
          this.log(`shard ${shardId} stopped: ${(error as Error).message}`);
        }),
      );
    }
  }

  /** The last sequence number done per shard. */
  checkpoint(shardId: string): string | undefined {
    return this.checkpoints[shardId];
  }

  /** Resolves once every shard has been read to its end and every record read is done. */
  async waitUntilIdle(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    // Two idle observations in a row: a shard may be idle between a read and its next one.
    let seen = 0;
    while (seen < 2) {
      if (Date.now() > deadline) throw new Error(`the stream poller is still busy after ${timeoutMs} ms`);
      await sleep(this.pollMs);
      seen = [...this.idle.values()].every(Boolean) ? seen + 1 : 0;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  private async iterator(shardId: string, after: string | undefined): Promise<string | undefined> {
    const out = await this.options.client.send(
      new GetShardIteratorCommand({
        StreamName: this.options.streamName,
        ShardId: shardId,
        ...(after === undefined
          ? { ShardIteratorType: 'TRIM_HORIZON' }
          : { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: after }),
      }),
    );
    return out.ShardIterator;
  }

  private async runShard(shardId: string): Promise<void> {
    const { batchSize, batchingWindowSeconds } = this.options.settings;
    const windowMs = batchingWindowSeconds * 1000;
    let lastRead = this.checkpoints[shardId];
    let iterator = await this.iterator(shardId, lastRead);
    const pending: PendingRecord[] = [];
    let limit = batchSize;
    let attempts = 0;
    while (!this.stopped) {
      let read = 0;
      if (pending.length < batchSize && iterator !== undefined) {
        try {
          const out = await this.options.client.send(
            new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }),
          );
          iterator = out.NextShardIterator;
          for (const record of out.Records ?? []) {
            pending.push({ record, shardId });
            lastRead = record.SequenceNumber;
          }
          read = out.Records?.length ?? 0;
        } catch (error) {
          if (this.stopped) break;
          this.log(
            `reading ${shardId} failed (${(error as Error).name}); reading again from ${lastRead ?? 'the start'}`,
          );
          await sleep(this.pollMs * 5);
          iterator = await this.iterator(shardId, lastRead).catch(() => iterator);
          continue;
        }
      }
      // The window runs from the oldest waiting record's arrival on the stream, as with Lambda.
      const head = pending[0]?.record.ApproximateArrivalTimestamp?.getTime();
      const waited = head === undefined ? 0 : Date.now() - head;
      if (pending.length === 0 || (pending.length < batchSize && waited < windowMs)) {
        this.idle.set(shardId, pending.length === 0 && read === 0);
        if (iterator === undefined && pending.length === 0) return; // a closed shard, read to its end
        if (read === 0 || pending.length > 0)
          await sleep(Math.min(this.pollMs, Math.max(1, windowMs - waited)));
        continue;
      }
      this.idle.set(shardId, false);
      const batch = pending.slice(0, Math.min(limit, batchSize));
      const outcome = await this.invoke(batch);
      if (outcome.kind === 'done') {
        await this.saveCheckpoint(shardId, batch.at(-1)!.record.SequenceNumber!);
        pending.splice(0, batch.length);
        [attempts, limit] = [0, batchSize];
        continue;
      }
      if (outcome.kind === 'partial' && outcome.done > 0) {
        await this.saveCheckpoint(shardId, batch[outcome.done - 1]!.record.SequenceNumber!);
        pending.splice(0, outcome.done);
      }
      const whole = outcome.kind === 'error';
      if (whole && this.options.settings.bisectOnError && batch.length > 1) {
        limit = Math.ceil(batch.length / 2);
      } else {
        attempts++;
      }
      const first = pending[0]!.record;
      const ageMs = Date.now() - (first.ApproximateArrivalTimestamp?.getTime() ?? Date.now());
      const tooOld = ageMs > this.options.settings.maxRecordAgeSeconds * 1000;
      if (attempts > this.options.settings.retryAttempts || tooOld) {
        const failed = pending.slice(
          0,
          outcome.kind === 'partial' ? batch.length - outcome.done : batch.length,
        );
        await this.sendToFailure(
          shardId,
          failed,
          tooOld ? 'RecordAgeExceeded' : 'RetryAttemptsExhausted',
          attempts,
          outcome,
        );
        await this.saveCheckpoint(shardId, failed.at(-1)!.record.SequenceNumber!);
        pending.splice(0, failed.length);
        [attempts, limit] = [0, batchSize];
      } else {
        await sleep(Math.min(1_000, 25 * 2 ** attempts));
      }
    }
  }

  private async invoke(batch: readonly PendingRecord[]): Promise<Invocation> {
    this.stats.invocations++;
    this.stats.recordsDelivered += batch.length;
    let response: KinesisStreamBatchResponse | void;
    try {
      response = await this.options.handler(this.event(batch));
    } catch (error) {
      this.stats.errors++;
      return {
        kind: 'error',
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      };
    }
    const failures = response?.batchItemFailures ?? [];
    if (failures.length === 0) return { kind: 'done' };
    this.stats.partialFailures++;
    // Lambda retries from the lowest failed sequence number; an identifier it cannot find fails the batch.
    const indexes = failures.map((f) => batch.findIndex((r) => r.record.SequenceNumber === f.itemIdentifier));
    if (indexes.some((i) => i < 0))
      return { kind: 'error', error: 'the response names a record not in the batch' };
    return { kind: 'partial', done: Math.min(...indexes) };
  }

  private event(batch: readonly PendingRecord[]): KinesisStreamEvent {
    const region = this.options.region ?? 'us-east-1';
    return {
      Records: batch.map(({ record, shardId }) => ({
        kinesis: {
          kinesisSchemaVersion: '1.0',
          partitionKey: record.PartitionKey!,
          sequenceNumber: record.SequenceNumber!,
          data: Buffer.from(record.Data ?? new Uint8Array()).toString('base64'),
          approximateArrivalTimestamp: (record.ApproximateArrivalTimestamp?.getTime() ?? Date.now()) / 1000,
        },
        eventSource: 'aws:kinesis',
        eventVersion: '1.0',
        eventID: `${shardId}:${record.SequenceNumber}`,
        eventName: 'aws:kinesis:record',
        invokeIdentityArn: 'arn:aws:iam::000000000000:role/local',
        awsRegion: region,
        eventSourceARN: `arn:aws:kinesis:${region}:000000000000:stream/${this.options.streamName}`,
      })),
    };
  }

  private async sendToFailure(
    shardId: string,
    failed: readonly PendingRecord[],
    condition: FailedBatch['condition'],
    attempts: number,
    outcome: Invocation,
  ): Promise<void> {
    this.stats.failedBatches++;
    const error = outcome.kind === 'error' ? outcome.error : 'partial batch failure';
    this.log(
      `${failed.length} records of ${shardId} go to the on-failure destination (${condition}): ${error}`,
    );
    await this.options.onFailure({
      condition,
      streamName: this.options.streamName,
      shardId,
      startSequenceNumber: failed[0]!.record.SequenceNumber!,
      endSequenceNumber: failed.at(-1)!.record.SequenceNumber!,
      batchSize: failed.length,
      attempts,
      error,
      records: failed.map(({ record }) => ({
        sequenceNumber: record.SequenceNumber!,
        partitionKey: record.PartitionKey!,
        dataBase64: Buffer.from(record.Data ?? new Uint8Array()).toString('base64'),
      })),
    });
  }

  private async saveCheckpoint(shardId: string, sequenceNumber: string): Promise<void> {
    this.checkpoints[shardId] = sequenceNumber;
    const file = this.options.checkpointFile;
    if (file === undefined) return;
    // One write at a time (shards checkpoint concurrently), each replacing the file whole.
    const write = async () => {
      await mkdir(path.dirname(file), { recursive: true });
      const temp = `${file}.${process.pid}.tmp`;
      await writeFile(temp, JSON.stringify(this.checkpoints, null, 2));
      await rename(temp, file);
    };
    this.writing = this.writing.then(write, write);
    await this.writing;
  }
}
