/** The process's Kinesis client: built on first use, once per process, from the environment. */
import { KinesisClient, type KinesisClientConfig } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';

/**
 * HTTP/1.1, not the client's default HTTP/2 handler: HTTP/2 is needed only by SubscribeToShard (not
 * used here), the Kinesis emulators (kinesalite) speak HTTP/1.1 only, and the operations used
 * (PutRecords, GetRecords, ...) are plain JSON 1.1 requests either way. A hanging request is abandoned
 * after 10 s (connecting: 3 s) and retried by the standard strategy.
 */
export function kinesisClientConfig(): KinesisClientConfig {
  return {
    maxAttempts: 3,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 3_000,
      requestTimeout: 10_000,
      throwOnRequestTimeout: true,
    }),
  };
}

let client: KinesisClient | undefined;

export function kinesisClient(): KinesisClient {
  client ??= new KinesisClient(kinesisClientConfig());
  return client;
}
