/** The API's input stream sink for POST /events (loaded only when the stream lane is on). */
import { kinesisClient } from './clients/kinesis.ts';
import { KinesisStream } from './kinesis-stream.ts';

export function inputStreamSink(streamName: string): KinesisStream {
  return new KinesisStream(kinesisClient(), streamName);
}
