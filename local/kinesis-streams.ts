/** Creates the local Kinesis streams (kinesalite) the stream lane uses, and waits until they are ACTIVE. */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
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
