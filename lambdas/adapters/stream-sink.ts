/** The API's input stream sink for POST /events (loaded only when the stream lane is on). */
import { kinesisClient } from './clients/kinesis.ts';
import { KinesisStream } from './kinesis-stream.ts';

export async function inputStreamSink(streamName: string): Promise<KinesisStream> {
  return new KinesisStream(await kinesisClient(), streamName);
}
