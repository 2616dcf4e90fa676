/**
 * dynalite (DynamoDB) and s3rver (S3) HTTP servers on loopback, in the calling thread. embedded-aws.ts
 * runs them on a worker thread of their own (emulators-thread.ts) so that their CPU work neither
 * stalls the API's event loop nor competes with it for one core.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { RequestListener, Server } from 'node:http';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { withConditionalPuts, type ObjectMetadataReader } from './s3-conditional-writes.ts';
import { withAtomicWrites, type S3rverFileStore } from './s3rver-atomic-writes.ts';

export interface EmulatorOptions {
  /** Data kept under `<dataDir>/dynamodb` and `<dataDir>/s3`; undefined = in memory and a temp folder. */
  readonly dataDir?: string;
  /** 0 picks a free port. */
  readonly dynamoPort: number;
  readonly s3Port: number;
  /** Kinesis (kinesalite), kept under `<dataDir>/kinesis`; undefined starts none. */
  readonly kinesisPort?: number;
  readonly host: string;
  /** Buckets created before the server accepts requests (no-op when they exist). */
  readonly buckets: readonly string[];
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

export interface Emulators {
  readonly dynamoEndpoint: string;
  readonly s3Endpoint: string;
  readonly kinesisEndpoint: string | undefined;
  onS3Event(listener: (event: S3rverNotification) => void): () => void;
  /** Stops accepting, lets requests in flight finish (briefly), then closes the data stores. */
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
interface KinesaliteOptions {
  path?: string;
  createStreamMs?: number;
  deleteStreamMs?: number;
  updateStreamMs?: number;
  shardLimit?: number;
}
type KinesaliteFactory = (options: KinesaliteOptions) => Server;

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
  store: ObjectMetadataReader & S3rverFileStore;
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
const kinesalite = require('kinesalite') as KinesaliteFactory;

/** How long requests in flight may take to finish when the emulators stop. */
const DRAIN_MS = 2_000;

export async function startEmulators(opts: EmulatorOptions): Promise<Emulators> {
  const { host } = opts;
  const dynamoDir = opts.dataDir === undefined ? undefined : path.resolve(opts.dataDir, 'dynamodb');
  if (dynamoDir !== undefined) {
    await mkdir(dynamoDir, { recursive: true });
    await assertLevelDbFree(dynamoDir);
  }
  // createTableMs 0: tables turn ACTIVE on the next tick instead of after dynalite's default 500 ms.
  const dynamoServer = dynalite({ path: dynamoDir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const dynamoAddress = await listenOrExplain(dynamoServer, opts.dynamoPort, host, 'DynamoDB (dynalite)');

  const tempS3Dir = opts.dataDir === undefined ? await mkdtemp(path.join(tmpdir(), 'tandem-s3-')) : undefined;
  const s3Dir = tempS3Dir ?? path.resolve(opts.dataDir ?? '.', 's3');
  let s3Server: Server;
  let s3rver: S3rverApp;
  try {
    await mkdir(s3Dir, { recursive: true });
    s3rver = new S3rver({
      directory: s3Dir,
      silent: true,
      configureBuckets: opts.buckets.map((name) => ({ name, configs: [] })),
    });
    // Before any write: a kill -9 mid-write must not leave a file that fails every later read of its key.
    withAtomicWrites(s3rver.store);
    await s3rver.configureBuckets();
    // Our own http.Server rather than s3rver.run(): run() leaves a listen error unhandled (a crash).
    s3Server = createServer(withConditionalPuts(s3rver.callback(), s3rver.store));
    await listenOrExplain(s3Server, opts.s3Port, host, 'S3 (s3rver)');
  } catch (err) {
    await closeServer(dynamoServer);
    if (tempS3Dir !== undefined) await rm(tempS3Dir, { recursive: true, force: true });
    throw err;
  }
  const s3Address = s3Server.address() as AddressInfo;
  let kinesisServer: Server | undefined;
  if (opts.kinesisPort !== undefined) {
    const kinesisDir = opts.dataDir === undefined ? undefined : path.resolve(opts.dataDir, 'kinesis');
    if (kinesisDir !== undefined) await mkdir(kinesisDir, { recursive: true });
    // 0 ms: streams turn ACTIVE at once instead of after kinesalite's default 500 ms.
    kinesisServer = kinesalite({
      path: kinesisDir,
      createStreamMs: 0,
      deleteStreamMs: 0,
      updateStreamMs: 0,
      // kinesalite allows 10 shards in all by default; the benchmark creates a stream pair per configuration.
      shardLimit: 100,
    });
    try {
      await listenOrExplain(kinesisServer, opts.kinesisPort, host, 'Kinesis (kinesalite)');
    } catch (err) {
      await Promise.all([closeServer(s3Server), closeServer(dynamoServer)]);
      throw err;
    }
  }
  const kinesisPort = kinesisServer && (kinesisServer.address() as AddressInfo).port;
  let stopping: Promise<void> | undefined;
  return {
    dynamoEndpoint: `http://${host}:${dynamoAddress.port}`,
    // An IP endpoint also makes the SDK use path-style URLs on its own (its endpoint rules never put a
    // bucket name in front of an IP); `localhost` would give `<bucket>.localhost`, which does not resolve.
    s3Endpoint: `http://${host}:${s3Address.port}`,
    kinesisEndpoint: kinesisPort === undefined ? undefined : `http://${host}:${kinesisPort}`,
    onS3Event(listener) {
      s3rver.on('event', listener);
      return () => void s3rver.off('event', listener);
    },
    stop() {
      stopping ??= (async () => {
        await Promise.all([
          closeServer(s3Server),
          closeServer(dynamoServer),
          ...(kinesisServer ? [closeServer(kinesisServer)] : []),
        ]);
        s3rver.logger.close();
        if (tempS3Dir !== undefined) await rm(tempS3Dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
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

/**
 * Stops accepting and closes idle keep-alive sockets at once; requests in flight get DRAIN_MS to be
 * answered before their sockets are cut. dynalite closes its database when its server closes, and an
 * operation still running then would throw "Database is closed" from a callback (a crash).
 */
async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve, reject) =>
    server.close((err) => (err ? reject(err) : resolve())),
  );
  server.closeIdleConnections();
  const idleSweep = setInterval(() => server.closeIdleConnections(), 20);
  const deadline = setTimeout(() => server.closeAllConnections(), DRAIN_MS);
  try {
    await closed;
  } finally {
    clearInterval(idleSweep);
    clearTimeout(deadline);
  }
}
