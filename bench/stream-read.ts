/** Reads a whole stream with each record's arrival time (when its prediction became readable). */
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  type KinesisClient,
} from '@aws-sdk/client-kinesis';

export async function readWholeStreamTimed(
  client: KinesisClient,
  streamName: string,
): Promise<{ arrivalMs: number; eventTime: string }[]> {
  const out: { arrivalMs: number; eventTime: string }[] = [];
  const shards = await client.send(new ListShardsCommand({ StreamName: streamName }));
  for (const shard of shards.Shards ?? []) {
    let iterator = (
      await client.send(
        new GetShardIteratorCommand({
          StreamName: streamName,
          ShardId: shard.ShardId!,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      )
    ).ShardIterator;
    while (iterator) {
      const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator }));
      for (const r of page.Records ?? []) {
        const body = JSON.parse(Buffer.from(r.Data!).toString('utf8')) as { eventTime: string };
        out.push({ arrivalMs: r.ApproximateArrivalTimestamp!.getTime(), eventTime: body.eventTime });
      }
      if ((page.Records ?? []).length === 0) break;
      iterator = page.NextShardIterator;
    }
  }
  return out;
}
