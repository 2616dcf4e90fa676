/** A Kinesis data stream: PutRecords with each record's own outcome, and the RecordPublisher port. */
import { PutRecordsCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import type { OutgoingRecord, RecordPublisher } from '../core/stream/micro-batch.ts';

/** PutRecords takes at most 500 records (and 5 MiB) per call. */
const PUT_RECORDS_LIMIT = 500;
const PUT_RECORDS_BYTES = 5 * 1_048_576;

export type PutOutcome =
  | { readonly sequenceNumber: string; readonly shardId: string }
  | { readonly errorCode: string; readonly errorMessage: string };

export class KinesisStream implements RecordPublisher {
  constructor(
    private readonly client: KinesisClient,
    readonly streamName: string,
  ) {}

  /** Puts the records in order (in calls of at most 500); the outcome of each, in the same order. */
  async put(records: readonly OutgoingRecord[]): Promise<PutOutcome[]> {
    const outcomes: PutOutcome[] = [];
    for (let start = 0; start < records.length;) {
      let end = start;
      let bytes = 0;
      while (end < records.length && end - start < PUT_RECORDS_LIMIT) {
        const size = records[end]!.data.byteLength + Buffer.byteLength(records[end]!.partitionKey);
        if (end > start && bytes + size > PUT_RECORDS_BYTES) break;
        bytes += size;
        end++;
      }
      const response = await this.client.send(
        new PutRecordsCommand({
          StreamName: this.streamName,
          Records: records.slice(start, end).map((r) => ({ Data: r.data, PartitionKey: r.partitionKey })),
        }),
      );
      for (const entry of response.Records ?? []) {
        outcomes.push(
          entry.SequenceNumber !== undefined && entry.ErrorCode === undefined
            ? { sequenceNumber: entry.SequenceNumber, shardId: entry.ShardId ?? '' }
            : { errorCode: entry.ErrorCode ?? 'Unknown', errorMessage: entry.ErrorMessage ?? '' },
        );
      }
      start = end;
    }
    return outcomes;
  }

  async publish(records: readonly OutgoingRecord[]): Promise<{ failed: readonly number[] }> {
    const outcomes = await this.put(records);
    const failed: number[] = [];
    outcomes.forEach((outcome, index) => {
      if ('errorCode' in outcome) failed.push(index);
    });
    return { failed };
  }
}
