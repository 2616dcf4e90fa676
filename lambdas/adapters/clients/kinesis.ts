/** The process's Kinesis client: built on first use, once per process, from the environment. */
import { KinesisClient } from '@aws-sdk/client-kinesis';

/**
 * Kinesis emulators (kinesalite, behind AWS_ENDPOINT_URL_KINESIS) speak HTTP/1.1 only, and the client's
 * default handler is HTTP/2 (needed only by SubscribeToShard, which is not used): with an endpoint set, the
 * client gets smithy's HTTP/1.1 handler. It is imported by a name esbuild does not follow, so deployed
 * bundles keep the runtime's SDK code out (asset-size.test.ts) and never load it.
 */
const HTTP1_HANDLER_MODULE: string = '@smithy/node-http-handler';

/** A request that hangs is abandoned after 10 s (connecting: 3 s) and retried by the standard strategy. */
const TIMEOUTS = { connectionTimeout: 3_000, requestTimeout: 10_000 } as const;

let client: Promise<KinesisClient> | undefined;

async function build(): Promise<KinesisClient> {
  if (!process.env['AWS_ENDPOINT_URL_KINESIS']) {
    return new KinesisClient({ maxAttempts: 3, requestHandler: { requestTimeout: TIMEOUTS.requestTimeout } });
  }
  const { NodeHttpHandler } = (await import(
    HTTP1_HANDLER_MODULE
  )) as typeof import('@smithy/node-http-handler');
  return new KinesisClient({
    maxAttempts: 3,
    requestHandler: new NodeHttpHandler({ ...TIMEOUTS, throwOnRequestTimeout: true }),
  });
}

export function kinesisClient(): Promise<KinesisClient> {
  client ??= build();
  return client;
}
