/**
 * The stream lane end to end on the local stack: events put on the local Kinesis stream are consumed by
 * the poller (the event source mapping's semantics) and the real consumer handler, with a table throttle
 * and consumer crashes injected. Every record put must end in exactly one place: the table and output
 * stream, rejected/stream/ with a reason, or the on-failure destination after its retries. A restarted
 * stack resumes from the saved checkpoints.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PredictionStoreError } from '../../lambdas/core/errors.ts';
import type { OutgoingRecord } from '../../lambdas/core/stream/micro-batch.ts';
import {
  DEMO_MODEL,
  LOCAL_BUCKET,
  LOCAL_TABLE,
  startLocalStack,
  type LocalStack,
} from '../../local/stack.ts';
import type { LocalStreamOptions } from '../../local/stream-lane.ts';
import { failTimes, withFault } from '../support/fault-decorators.ts';
import {
  demoFeatures,
  failedStreamBatches,
  readWholeStream,
  rejectedStreamLines,
} from '../support/stream-harness.ts';

const T1 = '2026-06-01T10:00:00Z';
const T2 = '2026-06-01T11:00:00Z';

function event(body: unknown, partitionKey: string): OutgoingRecord {
  return { partitionKey, data: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)) };
}

/** The records put, with where each must end. */
const RECORDS: { record: OutgoingRecord; expect: 'scored' | 'rejected' | 'failed'; note: string }[] = [
  ...Array.from({ length: 6 }, (_, i) => ({
    record: event({ id: `v-${i}`, features: demoFeatures({ amount: 10 + i }) }, `v-${i}`),
    expect: 'scored' as const,
    note: 'valid',
  })),
  {
    record: event({ id: 'dup', features: demoFeatures(), eventTime: T1 }, 'dup'),
    expect: 'scored',
    note: 'duplicate',
  },
  {
    record: event({ id: 'dup', features: demoFeatures(), eventTime: T1 }, 'dup'),
    expect: 'scored',
    note: 'duplicate',
  },
  {
    record: event({ id: 'ooo', features: demoFeatures({ amount: 900 }), eventTime: T2 }, 'ooo'),
    expect: 'scored',
    note: 'newer',
  },
  {
    record: event({ id: 'ooo', features: demoFeatures({ amount: 5 }), eventTime: T1 }, 'ooo'),
    expect: 'scored',
    note: 'older, later',
  },
  {
    record: event(
      '{"id": 12345678901234567890, "features": ' + JSON.stringify(demoFeatures()) + '}',
      'big-1',
    ),
    expect: 'scored',
    note: 'long id',
  },
  {
    record: event(
      '{"id": 12345678901234567891, "features": ' + JSON.stringify(demoFeatures()) + '}',
      'big-2',
    ),
    expect: 'scored',
    note: 'long id + 1',
  },
  {
    record: event({ id: 'crash-once', features: demoFeatures() }, 'crash-once'),
    expect: 'scored',
    note: 'crashes the consumer once',
  },
  { record: event('this is not json', 'x1'), expect: 'rejected', note: 'not JSON' },
  { record: event('[1, 2, 3]', 'x2'), expect: 'rejected', note: 'not an object' },
  {
    record: event({ id: 'neg', features: demoFeatures({ amount: -5 }) }, 'x3'),
    expect: 'rejected',
    note: 'invalid feature',
  },
  {
    record: event({ id: 'who', model: 'no-such-model', features: demoFeatures() }, 'x4'),
    expect: 'rejected',
    note: 'unknown model',
  },
  { record: event('{"id": 1.5, "features": {}}', 'x5'), expect: 'rejected', note: 'id the id rule rejects' },
  {
    record: event({ id: 'huge', features: demoFeatures({ pad: 'x'.repeat(70_000) }) }, 'x6'),
    expect: 'rejected',
    note: 'oversized',
  },
  {
    record: event({ id: 'poison-crash', features: demoFeatures() }, 'pc'),
    expect: 'failed',
    note: 'crashes the consumer every time',
  },
  ...Array.from({ length: 4 }, (_, i) => ({
    record: event({ id: `w-${i}`, features: demoFeatures({ amount: 50 + i }) }, `w-${i}`),
    expect: 'scored' as const,
    note: 'valid, after the poison',
  })),
];

const contains = (batch: { Records: { kinesis: { data: string } }[] }, id: string) =>
  batch.Records.some((r) => Buffer.from(r.kinesis.data, 'base64').toString('utf8').includes(`"id":"${id}"`));

let dataDir: string;
let stack: LocalStack | undefined;
let sequenceNumbers: string[];
const crashOnce = failTimes(1, () => new Error('consumer crashed mid-batch'));

function streamOptions(): LocalStreamOptions {
  return {
    settings: { batchSize: 8, batchingWindowSeconds: 0, retryAttempts: 2, bisectOnError: true },
    pollIntervalMs: 50,
    // The first table write throttles (after the SDK's own retries gave up).
    wrapStore: (store) =>
      withFault(
        store,
        'putMany',
        failTimes(1, () => new PredictionStoreError('STORE_THROTTLED', 'throttled')),
      ),
    wrapHandler: (handler) => async (batch) => {
      if (contains(batch, 'poison-crash')) throw new Error('consumer crashed on poison-crash');
      if (contains(batch, 'crash-once') && crashOnce()) throw new Error('consumer crashed mid-batch');
      return handler(batch);
    },
  };
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'tandem-stream-test-'));
  stack = await startLocalStack({ seed: false, dataDir, stream: streamOptions(), log: () => undefined });
  const outcomes = await stack.stream!.input.put(RECORDS.map((r) => r.record));
  sequenceNumbers = outcomes.map((o) => {
    if (!('sequenceNumber' in o)) throw new Error(`put failed: ${o.errorCode}`);
    return o.sequenceNumber;
  });
  await stack.stream!.poller.waitUntilIdle(60_000);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await rm(dataDir, { recursive: true, force: true });
}, 30_000);

describe('the stream lane on the local stack', () => {
  it('accounts for every record put: output stream, rejected/stream/ or the on-failure destination', async () => {
    const lane = stack!.stream!;
    const published = await readWholeStream(lane.kinesis, lane.settings.outputStreamName);
    const rejected = await rejectedStreamLines(stack!.objects, LOCAL_BUCKET);
    const failed = await failedStreamBatches(stack!.objects, LOCAL_BUCKET);
    const place = new Map<string, string[]>();
    const at = (seq: string, where: string) => place.set(seq, [...(place.get(seq) ?? []), where]);
    // Delivery to the output is at least once: duplicates of one input record count as one place.
    for (const seq of new Set(published.map((p) => p.body.sequenceNumber))) at(seq, 'scored');
    for (const line of rejected) at(line.sequenceNumber, 'rejected');
    for (const batch of failed) for (const r of batch.records) at(r.sequenceNumber, 'failed');
    const expected = new Map(sequenceNumbers.map((seq, i) => [seq, [RECORDS[i]!.expect]]));
    expect(Object.fromEntries(place)).toEqual(Object.fromEntries(expected));
    expect(failed.map((b) => b.condition)).toEqual(['RetryAttemptsExhausted']);
    // Each published record keeps its input's partition key.
    for (const p of published) {
      const index = sequenceNumbers.indexOf(p.body.sequenceNumber);
      expect(p.partitionKey).toBe(RECORDS[index]!.record.partitionKey);
    }
    const reasons = Object.fromEntries(
      rejected.map((r) => [RECORDS[sequenceNumbers.indexOf(r.sequenceNumber)]!.note, r.reason.code]),
    );
    expect(reasons).toEqual({
      'not JSON': 'NOT_JSON',
      'not an object': 'NOT_AN_OBJECT',
      'invalid feature': 'INVALID_FEATURES',
      'unknown model': 'UNKNOWN_MODEL',
      'id the id rule rejects': 'INVALID_EVENT',
      oversized: 'RECORD_TOO_LARGE',
    });
    expect(rejected.find((r) => r.reason.code === 'UNKNOWN_MODEL')!.key).toMatch(
      /^rejected\/stream\/no-such-model\/\d{4}\/\d{2}\/\d{2}\//,
    );
    expect(rejected.find((r) => r.reason.code === 'NOT_JSON')!.data).toBe('this is not json');
  });

  it('went through the injected faults: a throttled write retried from its record, crashes retried and bisected', () => {
    const stats = stack!.stream!.poller.stats;
    expect(stats.partialFailures).toBeGreaterThanOrEqual(1);
    expect(stats.errors).toBeGreaterThanOrEqual(4); // crash-once, then poison-crash bisected and retried twice
    expect(stats.failedBatches).toBe(1);
  });

  it('keeps the newest event per entity in the table, and ids that differ past double precision apart', async () => {
    const scan = await stack!.dynamo.send(new ScanCommand({ TableName: LOCAL_TABLE }));
    const items = new Map((scan.Items ?? []).map((i) => unmarshall(i)).map((i) => [i['pk'] as string, i]));
    expect(items.get(`${DEMO_MODEL}#1.0.0#ooo`)).toMatchObject({
      source: 'stream',
      eventTime: Date.parse(T2),
    });
    expect(items.has(`${DEMO_MODEL}#1.0.0#12345678901234567890`)).toBe(true);
    expect(items.has(`${DEMO_MODEL}#1.0.0#12345678901234567891`)).toBe(true);
    expect(items.has(`${DEMO_MODEL}#1.0.0#poison-crash`)).toBe(false);
    expect([...items.keys()].filter((k) => k.endsWith('#dup'))).toHaveLength(1);
  });

  it('writes the table conditionally across batches: an older event is skipped, a newer one replaces', async () => {
    const lane = stack!.stream!;
    const item = async () => {
      const scan = await stack!.dynamo.send(new ScanCommand({ TableName: LOCAL_TABLE }));
      return (scan.Items ?? []).map((i) => unmarshall(i)).find((i) => i['pk'] === `${DEMO_MODEL}#1.0.0#ooo`)!;
    };
    const before = await item();
    await lane.input.put([event({ id: 'ooo', features: demoFeatures({ amount: 1 }), eventTime: T1 }, 'ooo')]);
    await lane.poller.waitUntilIdle(30_000);
    expect(await item()).toEqual(before);
    const T3 = '2026-06-01T12:00:00Z';
    await lane.input.put([event({ id: 'ooo', features: demoFeatures({ amount: 1 }), eventTime: T3 }, 'ooo')]);
    await lane.poller.waitUntilIdle(30_000);
    expect(await item()).toMatchObject({ eventTime: Date.parse(T3) });
  }, 60_000);

  it('resumes from the saved checkpoint after a restart: only new records are delivered', async () => {
    const lane = stack!.stream!;
    const checkpoint = JSON.parse(
      await readFile(
        path.join(dataDir, 'stream-checkpoints', `${lane.settings.inputStreamName}.json`),
        'utf8',
      ),
    ) as Record<string, string>;
    const published = await readWholeStream(lane.kinesis, lane.settings.outputStreamName);
    expect(Object.values(checkpoint)).toEqual([published.at(-1)!.body.sequenceNumber]);
    await stack!.stop();
    const { settings, pollIntervalMs } = streamOptions();
    stack = await startLocalStack({
      seed: false,
      dataDir,
      stream: { settings, pollIntervalMs },
      log: () => undefined,
    });
    const fresh = await stack.stream!.input.put([
      event({ id: 'after-restart', features: demoFeatures() }, 'ar'),
    ]);
    await stack.stream!.poller.waitUntilIdle(30_000);
    expect(stack.stream!.poller.stats.recordsDelivered).toBe(1);
    const after = await readWholeStream(stack.stream!.kinesis, stack.stream!.settings.outputStreamName);
    expect(after.at(-1)!.body).toMatchObject({
      id: 'after-restart',
      sequenceNumber: (fresh[0] as { sequenceNumber: string }).sequenceNumber,
      model: { name: DEMO_MODEL },
    });
  }, 60_000);
});
