/**
 * DynamoDB (dynalite) and S3 (s3rver) running inside this Node process, on loopback only, for
 * `npm start` and the integration tests. They run on a worker thread of their own by default: the
 * emulators cost far more CPU per request than DynamoDB and S3 do, and on the API's event loop they
 * would add their work to every request's latency (a cache read would miss its time budget under load).
 *
 * The code under test builds its SDK clients from the environment alone (lambdas/adapters/aws-clients.ts),
 * so `env()` is the contract: the SDK v3 reads `AWS_ENDPOINT_URL_<SERVICE>` itself, and the other
 * variables make s3rver (an old, partial S3) behave; see `env()` for why each one exists.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  UpdateTimeToLiveCommand,
  type DynamoDBClient,
  type DynamoDBClientConfig,
} from '@aws-sdk/client-dynamodb';
import {
  CreateBucketCommand,
  HeadBucketCommand,
  type S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import type { KinesisClientConfig } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { FromEmulators, ToEmulators } from './emulators-thread.ts';
import {
  startEmulators,
  type EmulatorOptions,
  type Emulators,
  type S3rverNotification,
} from './emulators.ts';

export const LOCAL_REGION = 'us-east-1';
/** s3rver only knows this key pair (it checks SigV4 signatures); dynalite accepts any credentials. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
/** Partition key and TTL attribute of the precomputed predictions table (ARCHITECTURE.md). */
export const PREDICTIONS_TABLE_KEY = 'pk';
export const PREDICTIONS_TTL_ATTRIBUTE = 'expiresAt';

export interface StartEmbeddedAwsOptions {
  /** Data kept under `<dataDir>/dynamodb` and `<dataDir>/s3`; undefined = in memory and a temp folder. */
  dataDir?: string;
  /** 0 (the default) picks a free port; the real one is in the endpoints. */
  dynamoPort?: number;
  s3Port?: number;
  /** Also run a Kinesis emulator (kinesalite) on this port (0: any free one); undefined runs none. */
  kinesisPort?: number;
  /** Loopback only: these emulators check no real credentials. */
  host?: '127.0.0.1';
  /** Buckets created before the server accepts requests (no-op when they exist). */
  buckets?: readonly string[];
  /**
   * Where the emulators run: on a worker thread of their own (the default), or on the calling
   * thread (one event loop for everything; only for debugging them).
   */
  thread?: 'worker' | 'current';
}

export type { S3rverNotification } from './emulators.ts';

export interface EmbeddedAws {
  readonly dynamoEndpoint: string;
  readonly s3Endpoint: string;
  /** Undefined when no Kinesis emulator runs. */
  readonly kinesisEndpoint: string | undefined;
  readonly region: typeof LOCAL_REGION;
  readonly credentials: typeof LOCAL_CREDENTIALS;
  /** Config for clients built here (tests, the uploader); the code under test uses `env()` instead. */
  clientConfig(service: 'dynamodb'): DynamoDBClientConfig;
  clientConfig(service: 's3'): S3ClientConfig;
  clientConfig(service: 'kinesis'): KinesisClientConfig;
  /**
   * Variables that point SDK v3 clients (and the AWS CLI v2) at the emulators. Callers that merge
   * these into `process.env` should also delete `AWS_PROFILE`: when it is set the SDK skips the
   * `AWS_ACCESS_KEY_ID` pair, and s3rver rejects any key but S3RVER.
   */
  env(): Record<string, string>;
  /** Subscribe to s3rver's object notifications (the local stand-in for S3 -> EventBridge); returns unsubscribe. */
  onS3Event(listener: (event: S3rverNotification) => void): () => void;
  /** Closes both servers (cutting open connections) and removes the temp S3 folder if one was made. */
  stop(): Promise<void>;
}

const WORKER_ENTRY = new URL('./emulators-thread.ts', import.meta.url).href;
/** tsx's ESM loader, resolved from here (an eval'd worker would resolve bare names from the cwd). */
const TSX_API = pathToFileURL(
  path.join(path.dirname(createRequire(import.meta.url).resolve('tsx/esm/api')), 'index.mjs'),
).href;

/** Runs the emulators on a worker thread (tsx registered there: workers do not inherit loader hooks). */
function startOnWorker(options: EmulatorOptions): Promise<Emulators> {
  const worker = new Worker(
    `import(${JSON.stringify(TSX_API)}).then(({ register }) => { register(); return import(${JSON.stringify(WORKER_ENTRY)}); })`,
    { eval: true, workerData: options },
  );
  const listeners = new Set<(event: S3rverNotification) => void>();
  let stopped: Promise<void> | undefined;
  return new Promise<Emulators>((resolve, reject) => {
    const onEarlyExit = (code: number) => reject(new Error(`the emulator thread exited (code ${code})`));
    worker.once('exit', onEarlyExit);
    worker.on('error', (error) => {
      process.stderr.write(`[embedded-aws] the emulator thread failed: ${error.stack ?? error.message}\n`);
      reject(error);
    });
    worker.on('message', (message: FromEmulators) => {
      if (message.type === 's3-event') {
        for (const listener of listeners) listener(message.event as S3rverNotification);
      } else if (message.type === 'failed') {
        worker.off('exit', onEarlyExit);
        reject(new Error(message.message));
      } else if (message.type === 'ready') {
        worker.off('exit', onEarlyExit);
        resolve({
          dynamoEndpoint: message.dynamoEndpoint,
          s3Endpoint: message.s3Endpoint,
          kinesisEndpoint: message.kinesisEndpoint,
          onS3Event(listener) {
            listeners.add(listener);
            return () => void listeners.delete(listener);
          },
          stop() {
            stopped ??= new Promise<void>((done) => {
              worker.once('exit', () => done());
              worker.postMessage({ type: 'stop' } satisfies ToEmulators);
            });
            return stopped;
          },
        });
      }
    });
  });
}

export async function startEmbeddedAws(opts: StartEmbeddedAwsOptions = {}): Promise<EmbeddedAws> {
  const options: EmulatorOptions = {
    dataDir: opts.dataDir,
    dynamoPort: opts.dynamoPort ?? 0,
    s3Port: opts.s3Port ?? 0,
    ...(opts.kinesisPort === undefined ? {} : { kinesisPort: opts.kinesisPort }),
    host: opts.host ?? '127.0.0.1',
    buckets: [...(opts.buckets ?? [])],
  };
  const emulators =
    (opts.thread ?? 'worker') === 'worker' ? await startOnWorker(options) : await startEmulators(options);
  return new EmbeddedAwsStack(emulators);
}

class EmbeddedAwsStack implements EmbeddedAws {
  readonly region = LOCAL_REGION;
  readonly credentials = LOCAL_CREDENTIALS;

  readonly dynamoEndpoint: string;
  readonly s3Endpoint: string;
  readonly kinesisEndpoint: string | undefined;

  constructor(private readonly emulators: Emulators) {
    this.dynamoEndpoint = emulators.dynamoEndpoint;
    this.s3Endpoint = emulators.s3Endpoint;
    this.kinesisEndpoint = emulators.kinesisEndpoint;
  }

  clientConfig(service: 'dynamodb'): DynamoDBClientConfig;
  clientConfig(service: 's3'): S3ClientConfig;
  clientConfig(service: 'kinesis'): KinesisClientConfig;
  clientConfig(
    service: 'dynamodb' | 's3' | 'kinesis',
  ): DynamoDBClientConfig | S3ClientConfig | KinesisClientConfig {
    const common = { region: this.region, credentials: { ...this.credentials } };
    if (service === 'dynamodb') return { ...common, endpoint: this.dynamoEndpoint };
    if (service === 'kinesis') {
      if (this.kinesisEndpoint === undefined) throw new Error('no Kinesis emulator runs (kinesisPort unset)');
      // kinesalite speaks HTTP/1.1 only; the client's default handler is HTTP/2.
      return {
        ...common,
        endpoint: this.kinesisEndpoint,
        maxAttempts: 3,
        requestHandler: new NodeHttpHandler({ connectionTimeout: 3_000, requestTimeout: 10_000 }),
      };
    }
    return {
      ...common,
      endpoint: this.s3Endpoint,
      forcePathStyle: true,
      // See env(): s3rver stores aws-chunked bodies verbatim.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
  }

  env(): Record<string, string> {
    return {
      AWS_ENDPOINT_URL_DYNAMODB: this.dynamoEndpoint,
      AWS_ENDPOINT_URL_S3: this.s3Endpoint,
      ...(this.kinesisEndpoint === undefined ? {} : { AWS_ENDPOINT_URL_KINESIS: this.kinesisEndpoint }),
      AWS_REGION: this.region,
      AWS_DEFAULT_REGION: this.region, // the AWS CLI's name for it
      AWS_ACCESS_KEY_ID: this.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: this.credentials.secretAccessKey,
      // The SDK has no environment variable for forcePathStyle; aws-clients.ts reads this one.
      TANDEM_S3_FORCE_PATH_STYLE: 'true',
      // By default the SDK sends streamed PutObject bodies as aws-chunked with a trailing checksum;
      // s3rver does not decode that framing and would store the chunk headers inside the object.
      AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
    };
  }

  onS3Event(listener: (event: S3rverNotification) => void): () => void {
    return this.emulators.onS3Event(listener);
  }

  stop(): Promise<void> {
    return this.emulators.stop();
  }
}

/**
 * Creates the predictions table if absent (key `pk`, on-demand, TTL on `expiresAt`) and waits
 * until it is ACTIVE. Safe to call concurrently and repeatedly.
 */
export async function ensureTable(
  client: DynamoDBClient,
  tableName: string,
  opts: { timeoutMs?: number } = {},
): Promise<{ created: boolean; ttl: 'enabled' | 'unsupported' }> {
  let created = false;
  if ((await describeTableStatus(client, tableName)) === undefined) {
    try {
      await client.send(
        new CreateTableCommand({
          TableName: tableName,
          AttributeDefinitions: [{ AttributeName: PREDICTIONS_TABLE_KEY, AttributeType: 'S' }],
          KeySchema: [{ AttributeName: PREDICTIONS_TABLE_KEY, KeyType: 'HASH' }],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
      created = true;
    } catch (err) {
      // Lost a race with another caller: the table exists, wait for it like they do.
      if (errorName(err) !== 'ResourceInUseException') throw err;
    }
  }
  await waitForActive(client, tableName, opts.timeoutMs ?? 60_000);
  return { created, ttl: await ensureTtl(client, tableName) };
}

async function ensureTtl(client: DynamoDBClient, tableName: string): Promise<'enabled' | 'unsupported'> {
  const current = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
  const ttl = current.TimeToLiveDescription;
  // Real DynamoDB rejects enabling TTL twice, so look first.
  if (ttl?.AttributeName === PREDICTIONS_TTL_ATTRIBUTE && ttl.TimeToLiveStatus !== 'DISABLED')
    return 'enabled';
  try {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: PREDICTIONS_TTL_ATTRIBUTE, Enabled: true },
      }),
    );
    return 'enabled';
  } catch (err) {
    // dynalite 4 has no UpdateTimeToLive (and never expires items). Readers already treat expired
    // items as misses because real TTL deletion is lazy too, so nothing depends on it locally.
    if (errorName(err) === 'UnknownOperationException') return 'unsupported';
    throw err;
  }
}

async function describeTableStatus(client: DynamoDBClient, tableName: string): Promise<string | undefined> {
  try {
    const out = await client.send(new DescribeTableCommand({ TableName: tableName }));
    return out.Table?.TableStatus ?? 'UNKNOWN';
  } catch (err) {
    if (errorName(err) === 'ResourceNotFoundException') return undefined;
    throw err;
  }
}

async function waitForActive(client: DynamoDBClient, tableName: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  for (;;) {
    const status = await describeTableStatus(client, tableName);
    if (status === 'ACTIVE') return;
    if (Date.now() + delay > deadline) {
      throw new Error(
        `table ${tableName} is not ACTIVE after ${timeoutMs} ms (status ${status ?? 'absent'})`,
      );
    }
    await sleep(delay);
    // Small first steps for dynalite, capped growth for real DynamoDB (tens of seconds to create).
    delay = Math.min(delay * 2, 1_000);
  }
}

/** Creates the bucket if absent. Returns whether it was created. */
export async function ensureBucket(client: S3Client, bucket: string): Promise<boolean> {
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }));
    return false;
  } catch (err) {
    // HeadBucket has no body, so a missing bucket surfaces as a bare 404 named NotFound.
    if (errorName(err) !== 'NotFound' && httpStatus(err) !== 404) throw err;
  }
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    return true;
  } catch (err) {
    // Another caller won the race (s3rver answers BucketAlreadyExists, S3 BucketAlreadyOwnedByYou).
    if (errorName(err) === 'BucketAlreadyOwnedByYou' || errorName(err) === 'BucketAlreadyExists')
      return false;
    throw err;
  }
}

function errorName(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

function httpStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('$metadata' in err)) return undefined;
  const metadata = (err as { $metadata?: { httpStatusCode?: number } }).$metadata;
  return metadata?.httpStatusCode;
}
