/** The local Kinesis streams (kinesalite) of the stream lane: created and waited for, and read whole. */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  type KinesisClient,
} from '@aws-sdk/client-kinesis';

async function streamStatus(client: KinesisClient, name: string): Promise<string | undefined> {
  try {
    const out = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    return out.StreamDescriptionSummary?.StreamStatus ?? 'UNKNOWN';
  } catch (error) {
    if ((error as Error).name === 'ResourceNotFoundException') return undefined;
    throw error;
  }
}

/** Creates the stream if absent (`shardCount` shards) and waits until it is ACTIVE. */
export async function ensureStream(
  client: KinesisClient,
  name: string,
  shardCount = 1,
  timeoutMs = 30_000,
): Promise<{ created: boolean }> {
  let created = false;
  if ((await streamStatus(client, name)) === undefined) {
    try {
      await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shardCount }));
      created = true;
    } catch (error) {
      if ((error as Error).name !== 'ResourceInUseException') throw error;
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await streamStatus(client, name);
    if (status === 'ACTIVE') return { created };
    if (Date.now() > deadline)
      throw new Error(`stream ${name} is not ACTIVE after ${timeoutMs} ms (${status})`);
    await sleep(20);
  }
}

export interface StreamRecordRead {
  readonly sequenceNumber: string;
  readonly partitionKey: string;
  readonly data: Uint8Array;
  /** When the stream received it (epoch ms). */
  readonly arrivalMs: number;
}

/** Every record of every shard of a stream, from its start (tests, benchmarks, the banner's examples). */
export async function readWholeStream(client: KinesisClient, name: string): Promise<StreamRecordRead[]> {
  const out: StreamRecordRead[] = [];
  const shards = await client.send(new ListShardsCommand({ StreamName: name }));
  for (const shard of shards.Shards ?? []) {
    let iterator = (
      await client.send(
        new GetShardIteratorCommand({
          StreamName: name,
          ShardId: shard.ShardId!,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      )
    ).ShardIterator;
    while (iterator) {
      const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator }));
      for (const r of page.Records ?? []) {
        out.push({
          sequenceNumber: r.SequenceNumber!,
          partitionKey: r.PartitionKey!,
          data: r.Data!,
          arrivalMs: r.ApproximateArrivalTimestamp?.getTime() ?? 0,
        });
      }
      if ((page.Records ?? []).length === 0) break;
      iterator = page.NextShardIterator;
    }
  }
  return out;
}
