/**
 * DynamoDB (dynalite) and S3 (s3rver) running inside this Node process, on loopback only, for
 * `npm start` and the integration tests.
 *
 * The code under test builds its SDK clients from the environment alone (lambdas/adapters/aws-clients.ts),
 * so `env()` is the contract: the SDK v3 reads `AWS_ENDPOINT_URL_<SERVICE>` itself, and the other
 * variables make s3rver (an old, partial S3) behave; see `env()` for why each one exists.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { RequestListener, Server } from 'node:http';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
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
  /** Loopback only: these emulators check no real credentials. */
  host?: '127.0.0.1';
  /** Buckets created before the server accepts requests (no-op when they exist). */
  buckets?: readonly string[];
}

/** What s3rver emits for each object created or deleted (an S3 notification, in its own dialect). */
export interface S3rverNotification {
  Records: {
    eventName: string;
    eventTime: string;
    s3: {
      bucket: { name: string };
      object: { key: string; size?: number; eTag?: string; sequencer: string };
    };
  }[];
}

export interface EmbeddedAws {
  readonly dynamoEndpoint: string;
  readonly s3Endpoint: string;
  readonly region: typeof LOCAL_REGION;
  readonly credentials: typeof LOCAL_CREDENTIALS;
  /** Config for clients built here (tests, the uploader); the code under test uses `env()` instead. */
  clientConfig(service: 'dynamodb'): DynamoDBClientConfig;
  clientConfig(service: 's3'): S3ClientConfig;
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

// --- the two emulators ship no type declarations; these are the parts used here. ---

interface DynaliteOptions {
  path?: string;
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
}
type DynaliteFactory = (options: DynaliteOptions) => Server;

interface S3rverOptions {
  directory: string;
  silent: boolean;
  configureBuckets: { name: string; configs: never[] }[];
}
interface S3rverApp {
  callback(): RequestListener;
  configureBuckets(): Promise<unknown>;
  on(event: 'event', listener: (event: S3rverNotification) => void): unknown;
  off(event: 'event', listener: (event: S3rverNotification) => void): unknown;
  logger: { close(): void };
}
type S3rverConstructor = new (options: S3rverOptions) => S3rverApp;

interface LevelDb {
  open(): Promise<void>;
  close(): Promise<void>;
}
type LevelConstructor = new (location: string) => LevelDb;

const require = createRequire(import.meta.url);
const dynalite = require('dynalite') as DynaliteFactory;
const S3rver = require('s3rver') as S3rverConstructor;

export async function startEmbeddedAws(opts: StartEmbeddedAwsOptions = {}): Promise<EmbeddedAws> {
  const host = opts.host ?? '127.0.0.1';
  const dynamoDir = opts.dataDir === undefined ? undefined : path.resolve(opts.dataDir, 'dynamodb');
  if (dynamoDir !== undefined) {
    await mkdir(dynamoDir, { recursive: true });
    await assertLevelDbFree(dynamoDir);
  }
  // createTableMs 0: tables turn ACTIVE on the next tick instead of after dynalite's default 500 ms.
  const dynamoServer = dynalite({ path: dynamoDir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const dynamoAddress = await listenOrExplain(
    dynamoServer,
    opts.dynamoPort ?? 0,
    host,
    'DynamoDB (dynalite)',
  );

  const tempS3Dir = opts.dataDir === undefined ? await mkdtemp(path.join(tmpdir(), 'tandem-s3-')) : undefined;
  const s3Dir = tempS3Dir ?? path.resolve(opts.dataDir ?? '.', 's3');
  let s3Server: Server;
  let s3rver: S3rverApp;
  try {
    await mkdir(s3Dir, { recursive: true });
    s3rver = new S3rver({
      directory: s3Dir,
      silent: true,
      configureBuckets: (opts.buckets ?? []).map((name) => ({ name, configs: [] })),
    });
    await s3rver.configureBuckets();
    // Our own http.Server rather than s3rver.run(): run() leaves a listen error unhandled (a crash).
    s3Server = createServer(s3rver.callback());
    await listenOrExplain(s3Server, opts.s3Port ?? 0, host, 'S3 (s3rver)');
  } catch (err) {
    await closeServer(dynamoServer);
    if (tempS3Dir !== undefined) await rm(tempS3Dir, { recursive: true, force: true });
    throw err;
  }
  const s3Address = s3Server.address() as AddressInfo;

  return new EmbeddedAwsStack(
    `http://${host}:${dynamoAddress.port}`,
    // An IP endpoint also makes the SDK use path-style URLs on its own (its endpoint rules never put a
    // bucket name in front of an IP); `localhost` would give `<bucket>.localhost`, which does not resolve.
    `http://${host}:${s3Address.port}`,
    dynamoServer,
    s3Server,
    s3rver,
    tempS3Dir,
  );
}

class EmbeddedAwsStack implements EmbeddedAws {
  readonly region = LOCAL_REGION;
  readonly credentials = LOCAL_CREDENTIALS;
  private stopping: Promise<void> | undefined;

  constructor(
    readonly dynamoEndpoint: string,
    readonly s3Endpoint: string,
    private readonly dynamoServer: Server,
    private readonly s3Server: Server,
    private readonly s3rver: S3rverApp,
    private readonly tempS3Dir: string | undefined,
  ) {}

  clientConfig(service: 'dynamodb'): DynamoDBClientConfig;
  clientConfig(service: 's3'): S3ClientConfig;
  clientConfig(service: 'dynamodb' | 's3'): DynamoDBClientConfig | S3ClientConfig {
    const common = { region: this.region, credentials: { ...this.credentials } };
    if (service === 'dynamodb') return { ...common, endpoint: this.dynamoEndpoint };
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
    this.s3rver.on('event', listener);
    return () => {
      this.s3rver.off('event', listener);
    };
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all([closeServer(this.s3Server), closeServer(this.dynamoServer)]);
      this.s3rver.logger.close();
      if (this.tempS3Dir !== undefined) await rm(this.tempS3Dir, { recursive: true, force: true });
    })();
    return this.stopping;
  }
}

/**
 * Fails early, with a message, when another process holds the LevelDB lock: dynalite itself would
 * emit the open error on an internal stream with no listener, which crashes the process.
 */
async function assertLevelDbFree(location: string): Promise<void> {
  // Resolve `level` from dynalite's own dependencies so the probe opens the store the same way.
  const { Level } = createRequire(require.resolve('dynalite'))('level') as { Level: LevelConstructor };
  const db = new Level(location);
  try {
    await db.open();
  } catch (err) {
    const detail = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
    throw new Error(
      `Cannot open the DynamoDB data folder ${location}: ${detail}. ` +
        'Is another local stack running with the same data folder?',
      { cause: err },
    );
  }
  await db.close();
}

async function listenOrExplain(
  server: Server,
  port: number,
  host: string,
  what: string,
): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      const hint =
        err.code === 'EADDRINUSE'
          ? `port ${port} on ${host} is already in use; stop whatever holds it or use port 0 for any free port`
          : err.message;
      reject(new Error(`${what} could not listen on ${host}:${port}: ${hint}`, { cause: err }));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
  return server.address() as AddressInfo;
}

async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve, reject) =>
    server.close((err) => (err ? reject(err) : resolve())),
  );
  // SDK clients keep sockets alive; without this, close() waits for every client to be destroyed.
  server.closeAllConnections();
  await closed;
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
