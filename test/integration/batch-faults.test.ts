/**
 * Faults injected into batch runs: the deployed state machine definition runs locally against
 * dynalite and s3rver, reached through a fault-injecting HTTP proxy (so the real SDK clients and their
 * retry strategies meet throttling, timeouts, dropped connections and bodies cut mid-stream) or through
 * decorators of the core's ports. Each run must finish with every row accounted for exactly once and
 * every table item written once with the row that owns it, or fail with the reason in its manifest.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBClient, ScanCommand, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BATCH_DYNAMODB_CONFIG } from '../../lambdas/adapters/aws-clients.ts';
import { DynamoDbPredictionStore } from '../../lambdas/adapters/dynamodb-prediction-store.ts';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ObjectStore } from '../../lambdas/adapters/s3-object-store.ts';
import { ChunkScorer } from '../../lambdas/core/batch/chunk-scorer.ts';
import type {
  BatchOptions,
  BatchPlan,
  ChunkFailure,
  ChunkItem,
  RunCompletedEvent,
} from '../../lambdas/core/batch/contracts.ts';
import { readChunkFailures } from '../../lambdas/core/batch/chunk-failures.ts';
import { planKey } from '../../lambdas/core/batch/contracts.ts';
import { triggerRuns } from '../../lambdas/core/batch/trigger.ts';
import { ModelLoadError } from '../../lambdas/core/errors.ts';
import type { EventPublisher, ModelSource, ObjectStore, PredictionStore } from '../../lambdas/core/ports.ts';
import { LocalBatchRunner } from '../../local/batch-runner.ts';
import { ensureBucket, ensureTable, startEmbeddedAws, type EmbeddedAws } from '../../local/embedded-aws.ts';
import { DEMO_MODEL, LOCAL_BUCKET, LOCAL_TABLE, REPO_ROOT } from '../../local/stack.ts';
import { uploadModelPackages } from '../../local/uploader.ts';
import {
  collectRun,
  csvLine,
  expectAccounted,
  expectFailed,
  loadDemoData,
  readJson,
  typedRecord,
  type DemoData,
  type RunOutcome,
} from '../support/batch-harness.ts';
import { demoV2Package } from '../support/demo-v2-model.ts';
import { failTimes, withFault } from '../support/fault-decorators.ts';
import {
  dynamoOperation,
  putItemKey,
  startFaultProxy,
  THROTTLED,
  type FaultProxy,
  type ProxiedRequest,
} from '../support/fault-proxy.ts';
import { expectWithMessage } from '../support/expect-message.ts';

let aws: EmbeddedAws;
let s3: S3Client;
let dynamo: DynamoDBClient;
let objects: S3ObjectStore;
let dynamoProxy: FaultProxy;
let s3Proxy: FaultProxy;
let proxiedS3: S3Client;
let data: DemoData;
const clients: { destroy(): void }[] = [];

const ROWS = 60;
/** Small chunks and micro-batches: several chunks, each flushing (part + table) several times. */
const OPTIONS: Partial<BatchOptions> = { chunkBytes: 2048, microBatchRows: 4 };
let datasetCsv: string;
/** The clean run of the dataset: what every faulty run must reproduce. */
let reference: RunOutcome;
let referenceParts: Map<number, string>;

beforeAll(async () => {
  data = await loadDemoData();
  aws = await startEmbeddedAws({ dynamoPort: 0, s3Port: 0, buckets: [LOCAL_BUCKET] });
  s3 = new S3Client(aws.clientConfig('s3'));
  dynamo = new DynamoDBClient({ ...aws.clientConfig('dynamodb'), maxAttempts: 10 });
  await ensureTable(dynamo, LOCAL_TABLE);
  await ensureBucket(s3, LOCAL_BUCKET);
  await uploadModelPackages(s3, LOCAL_BUCKET, path.join(REPO_ROOT, 'models'));
  objects = new S3ObjectStore(s3);
  dynamoProxy = await startFaultProxy(aws.dynamoEndpoint);
  s3Proxy = await startFaultProxy(aws.s3Endpoint);
  proxiedS3 = new S3Client({ ...aws.clientConfig('s3'), endpoint: s3Proxy.url });
  const rows = data.rows.slice(0, ROWS).map((r) => [...r]);
  rows[14]![data.header.indexOf('amount')] = '-1';
  rows[40]![data.header.indexOf('channel')] = 'carrier-pigeon';
  rows[50]![0] = rows[20]![0]!; // a duplicate id: the later row (51) owns the item
  datasetCsv = [csvLine(data.header), ...rows.map((r) => csvLine(r))].join('\n') + '\n';
  reference = await runDataset(harness(), 'reference.csv', datasetCsv);
  expectAccounted(reference, ROWS);
  expect(reference.manifest.chunks.planned).toBeGreaterThanOrEqual(3);
  referenceParts = await partsByChunk(reference);
}, 120_000);

afterAll(async () => {
  for (const client of clients) client.destroy();
  proxiedS3?.destroy();
  await dynamoProxy?.close();
  await s3Proxy?.close();
  s3?.destroy();
  dynamo?.destroy();
  await aws?.stop();
}, 60_000);

/** A DynamoDB client of the batch writers' configuration, reaching dynalite through the proxy. */
function proxiedDynamo(overrides: DynamoDBClientConfig = {}): DynamoDBClient {
  const client = new DynamoDBClient({
    ...aws.clientConfig('dynamodb'),
    ...BATCH_DYNAMODB_CONFIG,
    endpoint: dynamoProxy.url,
    ...overrides,
  });
  clients.push(client);
  return client;
}

interface Harness {
  readonly runner: LocalBatchRunner;
  readonly events: RunCompletedEvent[];
  /** Chunk attempts started, as `index#attempt`. */
  readonly attempts: string[];
}

function harness(
  deps: {
    objects?: ObjectStore;
    models?: ModelSource;
    predictions?: PredictionStore;
    events?: EventPublisher;
    beforeChunk?: (item: ChunkItem, attempt: number) => void | Promise<void>;
    maxConcurrency?: number;
  } = {},
): Harness {
  const events: RunCompletedEvent[] = [];
  const attempts: string[] = [];
  const publish: EventPublisher = {
    publish: async (_type, detail) => void events.push(detail as RunCompletedEvent),
  };
  const runner = new LocalBatchRunner({
    bucket: LOCAL_BUCKET,
    objects: deps.objects ?? new S3ObjectStore(proxiedS3),
    models: deps.models ?? new S3ModelSource(s3, LOCAL_BUCKET, 'models/'),
    predictions: deps.predictions ?? new DynamoDbPredictionStore(proxiedDynamo(), LOCAL_TABLE),
    events: deps.events ? withEvents(deps.events, events) : publish,
    maxConcurrency: deps.maxConcurrency ?? 2,
    retryIntervalMs: 10,
    beforeChunk: async (item, attempt) => {
      attempts.push(`${item.index}#${attempt}`);
      await deps.beforeChunk?.(item, attempt);
    },
  });
  return { runner, events, attempts };
}

function withEvents(inner: EventPublisher, events: RunCompletedEvent[]): EventPublisher {
  return {
    async publish(type, detail) {
      await inner.publish(type, detail);
      events.push(detail as RunCompletedEvent);
    },
  };
}

let uploads = 0;

/** Uploads a dataset to incoming/<model>/ (straight to s3rver) and runs it through the harness. */
async function runDataset(
  h: Harness,
  name: string,
  content: string | Uint8Array,
  options: Partial<BatchOptions> = OPTIONS,
  model = DEMO_MODEL,
): Promise<RunOutcome> {
  const key = `incoming/${model}/${name}`;
  await objects.writeBytes(LOCAL_BUCKET, key, content, 'application/octet-stream');
  const [outcome] = await triggerRuns(
    [{ bucket: LOCAL_BUCKET, key, sequencer: `fault-${++uploads}-${Date.now()}` }],
    h.runner,
    options,
  );
  const result = await h.runner.run(outcome!.runId!)!.result;
  return collectRun(objects, LOCAL_BUCKET, h.events, result);
}

async function partsByChunk(outcome: RunOutcome): Promise<Map<number, string>> {
  const parts = new Map<number, string>();
  for (const key of [...outcome.manifest.outputs.parts, ...outcome.manifest.outputs.rejected]) {
    const index = Number(/part-(\d+)\./.exec(key)![1]);
    const kind = key.includes('/rejected/') ? 'rejected' : 'part';
    parts.set(
      index * 2 + (kind === 'part' ? 0 : 1),
      new TextDecoder().decode(await objects.readBytes(LOCAL_BUCKET, key)),
    );
  }
  return parts;
}

/** The run's outputs are byte for byte the clean run's: same part files, same rejected files. */
async function expectReferenceOutputs(outcome: RunOutcome): Promise<void> {
  expectAccounted(outcome, ROWS);
  // Table counts depend on the order chunks ran in (a duplicate id's earlier row may be skipped).
  expect(outcome.manifest.counts).toEqual({
    ...reference.manifest.counts,
    writtenToTable: expect.any(Number),
    tableSkipped: expect.any(Number),
  });
  expect(await partsByChunk(outcome)).toEqual(referenceParts);
}

/**
 * The table holds exactly one item per scored id from this run (none lost), written by the last row
 * with that id, with that row's prediction and the run's pinned version.
 */
async function expectTableItems(outcome: RunOutcome): Promise<void> {
  const items = new Map<string, Record<string, unknown>>();
  let start: Record<string, never> | undefined;
  do {
    const page = await dynamo.send(
      new ScanCommand({
        TableName: LOCAL_TABLE,
        FilterExpression: 'runId = :run',
        ExpressionAttributeValues: { ':run': { S: outcome.manifest.runId } },
        ExclusiveStartKey: start,
      }),
    );
    for (const item of page.Items ?? []) {
      const plain = unmarshall(item);
      items.set(plain['pk'] as string, plain);
    }
    start = page.LastEvaluatedKey as Record<string, never> | undefined;
  } while (start);
  const owners = new Map<string, (typeof outcome.predictions)[number]>();
  for (const p of outcome.predictions)
    owners.set(`${DEMO_MODEL}#${outcome.manifest.model.version}#${p['id'] as string}`, p);
  expect([...items.keys()].sort()).toEqual([...owners.keys()].sort());
  for (const [pk, owner] of owners) {
    expectWithMessage(items.get(pk), pk).toMatchObject({
      sourceRow: owner['row'],
      prediction: owner['prediction'],
      modelVersion: outcome.manifest.model.version,
      source: 'batch',
    });
  }
}

function attemptOf(outcome: RunOutcome, index: number): number | undefined {
  return outcome.manifest.chunkStats.find((c) => c.index === index)?.attempt;
}

/** The last failed attempt of a chunk, as the finalizer reads it. */
async function failureRecord(outcome: RunOutcome, index: number): Promise<ChunkFailure> {
  const failures = await readChunkFailures(objects, LOCAL_BUCKET, outcome.manifest.runId);
  const last = failures.filter((f) => f.index === index).at(-1);
  if (!last) throw new Error(`no failure recorded for chunk ${index} of ${outcome.manifest.runId}`);
  return last;
}

const pkOfRow = (row: number) => `${DEMO_MODEL}#1.0.0#${data.rows[row - 1]![0]!}`;

describe('faults, batch: DynamoDB', () => {
  it('throttled writes are retried with backoff by the SDK; the run finishes with every item once', async () => {
    const throttle = new Set([3, 10, 17, 24, 31, 45, 58].map(pkOfRow));
    dynamoProxy.decide((request) => {
      const pk = putItemKey(request);
      if (pk && throttle.delete(pk)) return THROTTLED;
      return { kind: 'pass' };
    });
    const h = harness();
    const outcome = await runDataset(h, 'throttled.csv', datasetCsv);
    dynamoProxy.decide(() => ({ kind: 'pass' }));
    expect(throttle.size).toBe(0);
    await expectReferenceOutputs(outcome);
    await expectTableItems(outcome);
    // The SDK absorbed it: no chunk had to be run again.
    expect(h.attempts.every((a) => a.endsWith('#1'))).toBe(true);
    expect(outcome.manifest.counts.writtenToTable + outcome.manifest.counts.tableSkipped).toBe(
      outcome.manifest.counts.scored,
    );
  });

  it('throttling beyond the SDK attempts slows the chunk, never fails it: the refused write is sent again; nothing is duplicated or lost', async () => {
    const pk = pkOfRow(22);
    let throttled = 0;
    dynamoProxy.decide((request) => {
      if (putItemKey(request) === pk && throttled < 2) {
        throttled++;
        return THROTTLED;
      }
      return { kind: 'pass' };
    });
    const h = harness({
      predictions: new DynamoDbPredictionStore(proxiedDynamo({ maxAttempts: 2 }), LOCAL_TABLE),
    });
    const outcome = await runDataset(h, 'throttled-hard.csv', datasetCsv);
    dynamoProxy.decide(() => ({ kind: 'pass' }));
    expect(throttled).toBe(2);
    await expectReferenceOutputs(outcome);
    await expectTableItems(outcome);
    const plan = await readJson<BatchPlan>(objects, LOCAL_BUCKET, planKey(outcome.manifest.runId));
    const chunk = plan.chunks.find((c) => c.firstRow <= 22 && 22 < c.firstRow + c.rows)!;
    // The store handed the throttled item back and the chunk's writer sent it again, slower: the chunk
    // completed in its first attempt, and its report says the table throttled it.
    expect(attemptOf(outcome, chunk.index)).toBe(1);
    const stats = outcome.manifest.chunkStats.find((r) => r.index === chunk.index)!;
    expect(stats.tableThrottled).toBe(1);
    expect(outcome.manifest.chunkStats.filter((r) => r.tableThrottled).map((r) => r.index)).toEqual([
      chunk.index,
    ]);
  });

  it('writes that time out are abandoned and retried; a late write is harmless', async () => {
    const slow = new Set([5, 30].map(pkOfRow));
    const hung = new Set([12, 44].map(pkOfRow));
    dynamoProxy.decide((request) => {
      const pk = putItemKey(request);
      if (pk && slow.delete(pk)) return { kind: 'delay', ms: 1500 };
      if (pk && hung.delete(pk)) return { kind: 'hang' };
      return { kind: 'pass' };
    });
    const client = proxiedDynamo({
      maxAttempts: 3,
      requestHandler: { requestTimeout: 300, throwOnRequestTimeout: true, connectionTimeout: 1000 },
    });
    const h = harness({ predictions: new DynamoDbPredictionStore(client, LOCAL_TABLE) });
    const outcome = await runDataset(h, 'timeouts.csv', datasetCsv);
    dynamoProxy.decide(() => ({ kind: 'pass' }));
    expect(slow.size + hung.size).toBe(0);
    await expectReferenceOutputs(outcome);
    await expectTableItems(outcome);
  });

  it('DynamoDB down: the chunk fails, is retried once it is back, and the run finishes exactly', async () => {
    let down = true;
    dynamoProxy.decide((request) =>
      down && dynamoOperation(request) === 'PutItem' ? { kind: 'reset' } : { kind: 'pass' },
    );
    const h = harness({
      maxConcurrency: 1,
      predictions: new DynamoDbPredictionStore(proxiedDynamo({ maxAttempts: 2 }), LOCAL_TABLE),
      beforeChunk: (_item, attempt) => {
        if (attempt === 2) down = false;
      },
    });
    const outcome = await runDataset(h, 'dynamo-down.csv', datasetCsv);
    dynamoProxy.decide(() => ({ kind: 'pass' }));
    await expectReferenceOutputs(outcome);
    await expectTableItems(outcome);
    expect(attemptOf(outcome, 0)).toBe(2);
    expect(await failureRecord(outcome, 0)).toMatchObject({ attempt: 1, retryable: true });
  });

  it('DynamoDB down for the whole run: it fails after the retries, saying why, with the unscored rows listed', async () => {
    dynamoProxy.decide((request) =>
      dynamoOperation(request) === 'PutItem' ? { kind: 'reset' } : { kind: 'pass' },
    );
    const h = harness({
      maxConcurrency: 1,
      predictions: new DynamoDbPredictionStore(proxiedDynamo({ maxAttempts: 2 }), LOCAL_TABLE),
    });
    const outcome = await runDataset(h, 'dynamo-gone.csv', datasetCsv);
    dynamoProxy.decide(() => ({ kind: 'pass' }));
    // The store adapter's kind, with the socket's code in the message.
    expectFailed(outcome, 'STORE_UNREACHABLE', /ECONNRESET/);
    expect(h.attempts.filter((a) => a.startsWith('0#'))).toEqual(['0#1', '0#2', '0#3']);
    expect(outcome.manifest.counts).toMatchObject({ planned: ROWS, read: 0, scored: 0 });
    expect(outcome.manifest.chunks.failures?.[0]).toMatchObject({
      index: 0,
      firstRow: 1,
      error: { code: 'STORE_UNREACHABLE' },
    });
    expect(outcome.manifest.outputs.parts).toEqual([]);
  });
});

describe('faults, batch: S3 and workers', () => {
  const rangedGet = (key: string) => (request: ProxiedRequest) =>
    request.method === 'GET' && request.url.includes(key) && request.headers['range'] !== undefined;

  it('an S3 read cut mid-stream fails the chunk; the retry writes the same output', async () => {
    let cuts = 0;
    const isChunkRead = rangedGet('incoming/fraud-detector/s3-cut.csv');
    s3Proxy.decide((request) => {
      if (isChunkRead(request) && cuts === 0) {
        cuts++;
        return { kind: 'cut', afterBytes: 1200 };
      }
      return { kind: 'pass' };
    });
    const h = harness({ maxConcurrency: 1 });
    const outcome = await runDataset(h, 's3-cut.csv', datasetCsv);
    s3Proxy.decide(() => ({ kind: 'pass' }));
    expect(cuts).toBe(1);
    await expectReferenceOutputs(outcome);
    await expectTableItems(outcome);
    expect(attemptOf(outcome, 0)).toBe(2);
    expect((await failureRecord(outcome, 0)).retryable).toBe(true);
  });

  it('an S3 read cut while planning a gzip upload is retried: the run finishes', async () => {
    let cuts = 0;
    s3Proxy.decide((request) => {
      if (request.method === 'GET' && request.url.includes('s3-cut-plan.csv.gz') && cuts === 0) {
        cuts++;
        return { kind: 'cut', afterBytes: 200 };
      }
      return { kind: 'pass' };
    });
    const outcome = await runDataset(harness(), 's3-cut-plan.csv.gz', gzipSync(datasetCsv));
    s3Proxy.decide(() => ({ kind: 'pass' }));
    expect(cuts).toBe(1);
    await expectReferenceOutputs(outcome);
  });

  it('an S3 read cut in a Parquet worker is retried, not taken for a corrupt file', async () => {
    const rows = data.rows.slice(0, 40);
    const typed = rows.map((r) => typedRecord(data, r));
    const parquet = parquetWriteBuffer({
      columnData: data.header.map((name) => {
        const type = data.types.get(name);
        return {
          name,
          data: typed.map((t) => t[name]),
          type:
            type === 'boolean'
              ? 'BOOLEAN'
              : type === 'number'
                ? 'DOUBLE'
                : type === 'integer'
                  ? 'INT32'
                  : 'STRING',
        };
      }),
      rowGroupSize: 10,
    } as never);
    let armed = false;
    let cuts = 0;
    s3Proxy.decide((request) => {
      if (armed && rangedGet('s3-cut.parquet')(request)) {
        armed = false;
        cuts++;
        return { kind: 'cut', afterBytes: 16 };
      }
      return { kind: 'pass' };
    });
    const h = harness({
      maxConcurrency: 1,
      beforeChunk: (item, attempt) => {
        if (item.index === 1 && attempt === 1) armed = true;
      },
    });
    const outcome = await runDataset(h, 's3-cut.parquet', new Uint8Array(parquet), { chunkBytes: 1024 });
    s3Proxy.decide(() => ({ kind: 'pass' }));
    expect(cuts).toBe(1);
    expectAccounted(outcome, 40);
    expect(outcome.manifest.counts.scored).toBe(40);
    expect(attemptOf(outcome, 1)).toBe(2);
    expect(await failureRecord(outcome, 1)).toMatchObject({ retryable: true });
    expect((await failureRecord(outcome, 1)).code).not.toBe('CORRUPT_PARQUET');
  });

  it('a worker killed mid-chunk (SIGKILL after its first table writes): the retry completes the chunk exactly', async () => {
    let killedAfter = '';
    const h = harness({
      maxConcurrency: 1,
      beforeChunk: async (item, attempt) => {
        if (item.index !== 1 || attempt !== 1) return;
        killedAfter = await runAndKill(item);
        // What Step Functions sees of a worker that died: a failed task.
        throw new Error('worker died: Runtime exited with error: signal: killed');
      },
    });
    const outcome = await runDataset(h, 'killed-worker.csv', datasetCsv);
    expect(killedAfter).toMatch(/^WROTE [1-9]/);
    await expectReferenceOutputs(outcome);
    await expectTableItems(outcome);
    expect(attemptOf(outcome, 1)).toBe(2);
    // Nothing the killed worker left behind shows up among the run's results.
    const keys = await objects.list(
      LOCAL_BUCKET,
      `results/${DEMO_MODEL}/killed-worker/${outcome.manifest.runId}/`,
    );
    expect(keys.sort()).toEqual(
      [
        ...outcome.manifest.outputs.parts,
        ...outcome.manifest.outputs.rejected,
        outcome.result.manifestKey,
      ].sort(),
    );
  }, 60_000);

  it('the same chunk run twice, in turn and at once: identical outputs and table items, no duplicates', async () => {
    const outcome = await runDataset(harness(), 'twice.csv', datasetCsv);
    await expectReferenceOutputs(outcome);
    const planned = outcome.manifest.chunks.planned;
    const predictions = new DynamoDbPredictionStore(dynamo, LOCAL_TABLE);
    const scorer = () =>
      new ChunkScorer({ objects, models: new S3ModelSource(s3, LOCAL_BUCKET, 'models/'), predictions });
    const item = (index: number): ChunkItem => ({
      runId: outcome.manifest.runId,
      bucket: LOCAL_BUCKET,
      planKey: planKey(outcome.manifest.runId),
      index,
    });
    const again = scorer();
    for (let index = 0; index < planned; index++) {
      const report = await again.score(item(index), 2);
      const first = outcome.manifest.chunkStats.find((c) => c.index === index)!;
      expect({ ...report }).toMatchObject({
        read: first.read,
        scored: first.scored,
        rejected: first.rejected,
        partKey: first.partKey,
        rejectedKey: first.rejectedKey,
      });
    }
    const [a, b] = [scorer(), scorer()];
    await Promise.all([a.score(item(1), 3), b.score(item(1), 3), a.score(item(2), 3), b.score(item(2), 3)]);
    await Promise.all([again.close(), a.close(), b.close()]);
    expect(await partsByChunk(outcome)).toEqual(referenceParts);
    await expectTableItems(outcome);
  });

  it('a chunk report that cannot be written fails the chunk; its retry rewrites the same part', async () => {
    let failed = 0;
    const flaky = withFault(new S3ObjectStore(proxiedS3), 'writeBytes', (_bucket, key) => {
      if (/\/chunks\/00002\.json$/.test(key) && failed === 0) {
        failed++;
        return Object.assign(new Error('We encountered an internal error. Please try again.'), {
          name: 'InternalError',
        });
      }
      return undefined;
    });
    const outcome = await runDataset(harness({ objects: flaky }), 'report-write.csv', datasetCsv);
    expect(failed).toBe(1);
    await expectReferenceOutputs(outcome);
    await expectTableItems(outcome);
    expect(attemptOf(outcome, 2)).toBe(2);
  });

  it('the completion event failing once: Finalize is retried, the event is published once', async () => {
    const inner: EventPublisher = { publish: async () => undefined };
    const flaky = withFault(
      inner,
      'publish',
      failTimes(1, () => new Error('EventBridge: InternalFailure')),
    );
    const h = harness({ events: flaky });
    const outcome = await runDataset(h, 'event-retry.csv', datasetCsv);
    await expectReferenceOutputs(outcome);
    expect(h.events.filter((e) => e.runId === outcome.manifest.runId)).toHaveLength(1);
  });
});

describe('faults, batch: models', () => {
  const manifestOf = async (
    name: string,
    version = '1.0.0',
    patch: (m: Record<string, unknown>) => void = () => undefined,
  ) => {
    const manifest = await readJson<Record<string, unknown>>(
      objects,
      LOCAL_BUCKET,
      `models/${DEMO_MODEL}/1.0.0/manifest.json`,
    );
    manifest['name'] = name;
    manifest['version'] = version;
    patch(manifest);
    return JSON.stringify(manifest);
  };
  const demoOnnx = () => objects.readBytes(LOCAL_BUCKET, `models/${DEMO_MODEL}/1.0.0/model.onnx`);

  async function publish(
    name: string,
    files: Record<string, string | Uint8Array>,
    version = '1.0.0',
  ): Promise<void> {
    for (const [file, body] of Object.entries(files))
      await s3.send(
        new PutObjectCommand({ Bucket: LOCAL_BUCKET, Key: `models/${name}/${version}/${file}`, Body: body }),
      );
    await s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `models/${name}/current.json`,
        Body: JSON.stringify({ version }),
      }),
    );
  }

  async function expectFailsAtPlan(h: Harness, model: string, code: string, message: RegExp): Promise<void> {
    const outcome = await runDataset(h, `${model}.csv`, datasetCsv, OPTIONS, model);
    expectFailed(outcome, code, message);
    // Failed fast: before the upload was scanned, so no chunk was planned or run.
    expect(outcome.manifest.chunks.planned).toBe(0);
    expect(h.attempts).toEqual([]);
  }

  it('model file missing: the run fails at plan time, its manifest says so', async () => {
    await publish('no-onnx', { 'manifest.json': await manifestOf('no-onnx') });
    await expectFailsAtPlan(
      harness(),
      'no-onnx',
      'MODEL_FILE_MISSING',
      /model\.onnx of no-onnx@1\.0\.0 is missing/,
    );
  });

  it('model file corrupt: the run fails at plan time', async () => {
    await publish('bad-onnx', {
      'manifest.json': await manifestOf('bad-onnx'),
      'model.onnx': 'this is not an ONNX model',
    });
    await expectFailsAtPlan(harness(), 'bad-onnx', 'MODEL_CORRUPT', /not a valid ONNX protobuf|no graph/);
  });

  it('manifest invalid (not JSON, or a field wrong) and pointer invalid: the run fails at plan time, naming it', async () => {
    const onnx = await demoOnnx();
    await publish('json-manifest', { 'manifest.json': '{"name": "json-manifest", ', 'model.onnx': onnx });
    await expectFailsAtPlan(
      harness(),
      'json-manifest',
      'INVALID_MANIFEST',
      /manifest\.json is not valid JSON/,
    );
    await publish('field-manifest', {
      'manifest.json': await manifestOf('field-manifest', '1.0.0', (m) => (m['task'] = 'clustering')),
      'model.onnx': onnx,
    });
    await expectFailsAtPlan(harness(), 'field-manifest', 'INVALID_MANIFEST', /task/);
    await publish('path-manifest', {
      'manifest.json': await manifestOf('somebody-else'),
      'model.onnx': onnx,
    });
    await expectFailsAtPlan(harness(), 'path-manifest', 'INVALID_MANIFEST', /says somebody-else@1\.0\.0/);
    await s3.send(
      new PutObjectCommand({ Bucket: LOCAL_BUCKET, Key: 'models/bad-pointer/current.json', Body: 'latest' }),
    );
    await expectFailsAtPlan(harness(), 'bad-pointer', 'INVALID_POINTER', /current\.json is not valid JSON/);
  });

  it('a manifest that does not match its graph fails on the first chunk, without retries', async () => {
    await publish('mismatch', {
      'manifest.json': await manifestOf('mismatch', '1.0.0', (m) => {
        const inputs = m['inputs'] as { features: string[] }[];
        inputs[0]!.features = inputs[0]!.features.slice(0, 14);
        m['features'] = (m['features'] as { name: string }[]).filter((f) => f.name !== 'prior_chargebacks');
      }),
      'model.onnx': await demoOnnx(),
    });
    const h = harness({ maxConcurrency: 1 });
    const outcome = await runDataset(h, 'mismatch.csv', datasetCsv, OPTIONS, 'mismatch');
    expectFailed(
      outcome,
      'MODEL_UNAVAILABLE',
      /does not match its model: .*takes 15 columns but the manifest lists 14/,
    );
    // Not retried: no chunk ran twice (the Map may start the chunks already queued, as deployed).
    expect(h.attempts).toContain('0#1');
    expect(h.attempts.every((a) => a.endsWith('#1'))).toBe(true);
    expect(await failureRecord(outcome, 0)).toMatchObject({ retryable: false, code: 'MODEL_UNAVAILABLE' });
  });

  it('the pinned model file deleted after planning: the chunks fail without retries, saying why', async () => {
    await publish('vanishing', {
      'manifest.json': await manifestOf('vanishing'),
      'model.onnx': await demoOnnx(),
    });
    const h = harness({
      maxConcurrency: 1,
      beforeChunk: async (item, attempt) => {
        if (item.index === 0 && attempt === 1)
          await s3.send(
            new DeleteObjectCommand({ Bucket: LOCAL_BUCKET, Key: 'models/vanishing/1.0.0/model.onnx' }),
          );
      },
    });
    const outcome = await runDataset(h, 'vanishing.csv', datasetCsv, OPTIONS, 'vanishing');
    expectFailed(
      outcome,
      'MODEL_UNAVAILABLE',
      /vanishing@1\.0\.0 \(pinned by the plan\) cannot be loaded: model\.onnx of vanishing@1\.0\.0 is missing/,
    );
    // Not retried: no chunk ran twice (the Map may start the chunks already queued, as deployed).
    expect(h.attempts).toContain('0#1');
    expect(h.attempts.every((a) => a.endsWith('#1'))).toBe(true);
  });

  it('the model store failing once (plan and worker) is retried: the run finishes', async () => {
    const unavailable = () =>
      new ModelLoadError('MODEL_STORE_UNAVAILABLE', 'the model store is unavailable (InternalError)');
    let workerStarted = false;
    let models: ModelSource = new S3ModelSource(s3, LOCAL_BUCKET, 'models/');
    const planFault = failTimes(1, unavailable);
    models = withFault(models, 'currentVersion', planFault);
    const workerFault = failTimes(
      1,
      unavailable,
      (_n: string, _v: string, file: string) => workerStarted && file === 'model.onnx',
    );
    models = withFault(models, 'read', workerFault);
    const h = harness({
      models,
      maxConcurrency: 1,
      beforeChunk: () => void (workerStarted = true),
    });
    const outcome = await runDataset(h, 'store-flaky.csv', datasetCsv);
    await expectReferenceOutputs(outcome);
    // Both faults were met (each fails once only) and retried: the plan, then chunk 0.
    expect(planFault('x')).toBeUndefined();
    expect(attemptOf(outcome, 0)).toBe(2);
    expect(await failureRecord(outcome, 0)).toMatchObject({
      code: 'MODEL_STORE_UNAVAILABLE',
      retryable: true,
    });
  });

  it('a version promoted during a run: the run scores with its pinned version throughout and records it', async () => {
    const v2 = await demoV2Package(REPO_ROOT, DEMO_MODEL, '2.0.0');
    await s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `models/${DEMO_MODEL}/2.0.0/manifest.json`,
        Body: v2.manifest,
      }),
    );
    await s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `models/${DEMO_MODEL}/2.0.0/model.onnx`,
        Body: v2.modelBytes,
      }),
    );
    const pointer = `models/${DEMO_MODEL}/current.json`;
    const promote = (version: string) =>
      s3.send(
        new PutObjectCommand({ Bucket: LOCAL_BUCKET, Key: pointer, Body: JSON.stringify({ version }) }),
      );
    try {
      const h = harness({
        maxConcurrency: 1,
        beforeChunk: async (item, attempt) => {
          if (item.index === 1 && attempt === 1) await promote('2.0.0');
        },
      });
      const during = await runDataset(h, 'promoted.csv', datasetCsv);
      expect(during.manifest.model).toEqual({ name: DEMO_MODEL, version: '1.0.0' });
      expect(during.event?.modelVersion).toBe('1.0.0');
      // Every part row is version 1.0.0's prediction, every table item says 1.0.0.
      await expectReferenceOutputs(during);
      await expectTableItems(during);
      // The next run uses the promoted version, whose predictions differ: the check above could fail.
      const after = await runDataset(harness(), 'after-promotion.csv', datasetCsv);
      expectAccounted(after, ROWS);
      expect(after.manifest.model.version).toBe('2.0.0');
      await expectTableItems(after);
      const differing = after.predictions.filter(
        (p, i) => JSON.stringify(p['prediction']) !== JSON.stringify(during.predictions[i]!['prediction']),
      );
      expect(differing.length).toBeGreaterThan(ROWS / 2);
    } finally {
      await promote('1.0.0');
    }
  });
});

/**
 * Runs chunk `item` in a child process and kills it (SIGKILL) as soon as it reports its first table
 * writes; resolves with what it printed last.
 */
async function runAndKill(item: ChunkItem): Promise<string> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(REPO_ROOT, 'test/support/dying-worker.ts')],
    {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        DYING_S3_ENDPOINT: aws.s3Endpoint,
        DYING_DYNAMO_ENDPOINT: aws.dynamoEndpoint,
        DYING_BUCKET: LOCAL_BUCKET,
        DYING_TABLE: LOCAL_TABLE,
        DYING_RUN_ID: item.runId,
        DYING_PLAN_KEY: item.planKey,
        DYING_INDEX: String(item.index),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (piece: Buffer) => (stderr += piece.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const said = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (piece: Buffer) => {
      out += piece.toString();
      const line = /^(WROTE \d+|FINISHED)$/m.exec(out);
      if (line) resolve(line[1]!);
    });
    child.once('exit', (code) =>
      reject(new Error(`the worker exited (${code}) before writing: ${stderr.slice(-2000)}`)),
    );
  });
  child.kill('SIGKILL');
  await exited;
  return said;
}
