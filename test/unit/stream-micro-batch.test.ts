import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CaptureBuffer } from '../../lambdas/core/capture/capture-buffer.ts';
import type { CaptureRecord } from '../../lambdas/core/capture/capture-record.ts';
import { predictionKey, type StoredPrediction } from '../../lambdas/core/cache-policy.ts';
import { ModelLoadError, ModelNotFoundError, PredictionStoreError } from '../../lambdas/core/errors.ts';
import type { ServedModel } from '../../lambdas/core/model-loader.ts';
import type { PredictionStore } from '../../lambdas/core/ports.ts';
import {
  rejectKey,
  scoreMicroBatch,
  type MicroBatchDeps,
  type OutgoingRecord,
  type PublishedPrediction,
  type RecordPublisher,
} from '../../lambdas/core/stream/micro-batch.ts';
import type { StreamRecord } from '../../lambdas/core/stream/stream-event.ts';
import { MemoryObjectStore } from '../support/memory-object-store.ts';
import { loadTinyModel, tinyExpected } from '../support/tiny-model.ts';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const BUCKET = 'data';

/** The table's rule for stream items, in memory: an older event never replaces a newer one. */
class MemoryStore implements PredictionStore {
  readonly items = new Map<string, StoredPrediction>();
  failWith: Error | undefined;
  async getMany(keys: readonly string[]) {
    return new Map(keys.filter((k) => this.items.has(k)).map((k) => [k, this.items.get(k)!]));
  }
  async putMany(items: readonly StoredPrediction[]) {
    if (this.failWith) throw this.failWith;
    let written = 0;
    let skipped = 0;
    for (const item of items) {
      const key = predictionKey(item.model, item.modelVersion, item.entityId);
      const old = this.items.get(key);
      if (
        old?.eventTime !== undefined &&
        old.modelVersion === item.modelVersion &&
        old.eventTime > item.eventTime!
      ) {
        skipped++;
      } else {
        this.items.set(key, item);
        written++;
      }
    }
    return { written, skipped };
  }
}

class MemoryPublisher implements RecordPublisher {
  readonly records: OutgoingRecord[] = [];
  /** Indexes (within a call) to refuse, or a whole-call failure. */
  refuse: number[] = [];
  failWith: Error | undefined;
  async publish(records: readonly OutgoingRecord[]) {
    if (this.failWith) throw this.failWith;
    records.forEach((r, i) => {
      if (!this.refuse.includes(i)) this.records.push(r);
    });
    return { failed: this.refuse.filter((i) => i < records.length) };
  }
  bodies(): PublishedPrediction[] {
    return this.records.map((r) => JSON.parse(Buffer.from(r.data).toString('utf8')) as PublishedPrediction);
  }
}

let tiny: ServedModel;
beforeAll(async () => {
  tiny = await loadTinyModel('7');
}, 60_000);
afterAll(async () => {
  await tiny.close();
}, 60_000);

let seq = 0;
function rec(data: unknown, partitionKey = 'p'): StreamRecord {
  seq++;
  return {
    data: Buffer.from(typeof data === 'string' ? data : JSON.stringify(data)),
    partitionKey,
    sequenceNumber: String(1000 + seq),
    arrivalMs: NOW - 500,
    shardId: 'shardId-000000000000',
  };
}

function setup(models: Record<string, ServedModel | Error> = {}) {
  const store = new MemoryStore();
  const publisher = new MemoryPublisher();
  const objects = new MemoryObjectStore();
  const runs: number[] = [];
  const deps: MicroBatchDeps = {
    models: {
      defaultModel: 'tiny',
      async get(name = 'tiny') {
        const found = name === 'tiny' ? tiny : models[name];
        if (found === undefined) throw new ModelNotFoundError('MODEL_NOT_FOUND', `no model named "${name}"`);
        if (found instanceof Error) throw found;
        return {
          ...found,
          validator: found.validator,
          manifest: found.manifest,
          ref: found.ref,
          name: found.name,
          version: found.version,
          score: (rows) => {
            runs.push(rows.length);
            return found.score(rows);
          },
        } as ServedModel;
      },
    },
    store,
    publisher,
    objects,
    bucket: BUCKET,
    maxEventBytes: 1024,
    now: () => NOW,
  };
  return { deps, store, publisher, objects, runs };
}

function rejectedLines(objects: MemoryObjectStore) {
  return [...objects.objects.keys()]
    .filter((k) => k.startsWith(`${BUCKET}/rejected/stream/`))
    .flatMap((k) =>
      objects
        .text(BUCKET, k.slice(BUCKET.length + 1))!
        .trim()
        .split('\n')
        .map((line) => ({
          key: k,
          ...(JSON.parse(line) as { sequenceNumber: string; reason: { code: string } }),
        })),
    );
}

describe('scoreMicroBatch', () => {
  it('scores every valid record in one run, writes the table and publishes one record each', async () => {
    const { deps, store, publisher, runs } = setup();
    const records = [
      rec({ id: 'a', features: { x1: 1 } }, 'a'),
      rec({ id: 'b', features: { x1: 2, x2: 1 }, eventTime: '2026-06-01T11:59:00Z' }, 'b'),
    ];
    const outcome = await scoreMicroBatch(records, deps);
    expect(outcome.retryFrom).toBeUndefined();
    expect(runs).toEqual([2]);
    expect(outcome.counts).toMatchObject({ records: 2, scored: 2, rejected: 0, written: 2, published: 2 });
    const item = store.items.get('tiny#7#b')!;
    expect(item).toMatchObject({
      source: 'stream',
      modelVersion: '7',
      eventTime: Date.parse('2026-06-01T11:59:00Z'),
    });
    expect(item.prediction).toMatchObject({ label: tinyExpected(2, 1).label });
    expect(publisher.records.map((r) => r.partitionKey)).toEqual(['a', 'b']);
    expect(publisher.bodies()[1]).toEqual({
      id: 'b',
      model: { name: 'tiny', version: '7' },
      prediction: item.prediction,
      eventTime: '2026-06-01T11:59:00.000Z',
      scoredAt: new Date(NOW).toISOString(),
      sequenceNumber: records[1]!.sequenceNumber,
    });
    // Without eventTime, the record's arrival is the event's time.
    expect(store.items.get('tiny#7#a')!.eventTime).toBe(NOW - 500);
  });

  it('files poison records with their reason under rejected/stream/<model>/<date>/ and scores the rest', async () => {
    const { deps, store, objects } = setup();
    const records = [
      rec('not json'),
      rec('[1,2]'),
      rec({ id: 'x', features: { x1: 'high' } }),
      rec({ id: 'y', features: { x1: 1 }, model: 'nope' }),
      rec({ id: 'z', features: { x1: 1 }, eventTime: 'yesterday' }),
      rec({ id: true, features: { x1: 1 } }),
      rec({ id: 'big', features: { x1: 1, pad: 'x'.repeat(2000) } }),
      rec({ id: 'ok', features: { x1: 3 } }),
    ];
    const outcome = await scoreMicroBatch(records, deps);
    expect(outcome.retryFrom).toBeUndefined();
    expect(outcome.counts).toMatchObject({ scored: 1, rejected: 7 });
    expect([...store.items.keys()]).toEqual(['tiny#7#ok']);
    const lines = rejectedLines(objects);
    expect(lines.map((l) => [l.sequenceNumber, l.reason.code]).sort()).toEqual(
      [
        [records[0]!.sequenceNumber, 'NOT_JSON'],
        [records[1]!.sequenceNumber, 'NOT_AN_OBJECT'],
        [records[2]!.sequenceNumber, 'INVALID_FEATURES'],
        [records[3]!.sequenceNumber, 'UNKNOWN_MODEL'],
        [records[4]!.sequenceNumber, 'INVALID_EVENT'],
        [records[5]!.sequenceNumber, 'INVALID_EVENT'],
        [records[6]!.sequenceNumber, 'RECORD_TOO_LARGE'],
      ].sort(),
    );
    expect(lines.find((l) => l.reason.code === 'UNKNOWN_MODEL')!.key).toBe(
      `${BUCKET}/${rejectKey('nope', records[3]!)}`,
    );
    expect(rejectKey('tiny', records[0]!)).toBe(
      `rejected/stream/tiny/2026/06/01/shardId-000000000000-${records[0]!.sequenceNumber}.jsonl`,
    );
    const first = lines.find((l) => l.reason.code === 'NOT_JSON') as unknown as { data: string };
    expect(first.data).toBe('not json');
  });

  it('keeps ids that differ only past double precision apart (the id rule)', async () => {
    const { deps, store } = setup();
    await scoreMicroBatch(
      [
        rec('{"id": 12345678901234567890, "features": {"x1": 1}}'),
        rec('{"id": 12345678901234567891, "features": {"x1": 2}}'),
      ],
      deps,
    );
    expect([...store.items.keys()].sort()).toEqual([
      'tiny#7#12345678901234567890',
      'tiny#7#12345678901234567891',
    ]);
  });

  it('never lets an older event replace a newer prediction of the entity, within or across batches', async () => {
    const { deps, store, publisher } = setup();
    await scoreMicroBatch(
      [
        rec({ id: 'e', features: { x1: 5 }, eventTime: '2026-06-01T11:00:00Z' }),
        rec({ id: 'e', features: { x1: -5 }, eventTime: '2026-06-01T10:00:00Z' }),
      ],
      deps,
    );
    expect(store.items.get('tiny#7#e')!.prediction).toMatchObject({ label: tinyExpected(5).label });
    const late = await scoreMicroBatch(
      [rec({ id: 'e', features: { x1: -5 }, eventTime: '2026-06-01T09:00:00Z' })],
      deps,
    );
    expect(late.counts.skipped).toBe(1);
    expect(store.items.get('tiny#7#e')!.eventTime).toBe(Date.parse('2026-06-01T11:00:00Z'));
    expect(publisher.records).toHaveLength(3);
  });

  it('reports the first scored record when the table throttles, publishing and filing only what precedes it', async () => {
    const { deps, store, publisher, objects } = setup();
    store.failWith = new PredictionStoreError('STORE_THROTTLED', 'throttled');
    const records = [rec('oops'), rec({ id: 'a', features: { x1: 1 } }), rec('again')];
    const outcome = await scoreMicroBatch(records, deps);
    expect(outcome.retryFrom).toBe(records[1]!.sequenceNumber);
    expect(outcome.failure).toContain('STORE_THROTTLED');
    expect(publisher.records).toHaveLength(0);
    expect(rejectedLines(objects).map((l) => l.sequenceNumber)).toEqual([records[0]!.sequenceNumber]);
  });

  it('retries from the first record the output stream refused', async () => {
    const { deps, publisher } = setup();
    publisher.refuse = [1];
    const records = [
      rec({ id: 'a', features: { x1: 1 } }),
      rec({ id: 'b', features: { x1: 1 } }),
      rec({ id: 'c', features: { x1: 1 } }),
    ];
    const outcome = await scoreMicroBatch(records, deps);
    expect(outcome.retryFrom).toBe(records[1]!.sequenceNumber);
    publisher.refuse = [];
    publisher.failWith = new Error('stream down');
    const again = await scoreMicroBatch(records.slice(1), deps);
    expect(again.retryFrom).toBe(records[1]!.sequenceNumber);
    expect(again.failure).toContain('output stream unavailable');
  });

  it('throws, checkpointing nothing, when a model exists but cannot be loaded', async () => {
    const { deps, store, objects } = setup({ broken: new ModelLoadError('MODEL_LOAD_FAILED', 'corrupt') });
    await expect(
      scoreMicroBatch([rec('bad'), rec({ model: 'broken', id: 'a', features: { x1: 1 } })], deps),
    ).rejects.toThrow('corrupt');
    expect(store.items.size).toBe(0);
    expect(rejectedLines(objects)).toHaveLength(0);
  });
});

describe('stream capture', () => {
  function captureInto(objects: MemoryObjectStore, failing = false) {
    const lost: number[] = [];
    const sink = {
      write: (key: string, body: Uint8Array) =>
        failing ? Promise.reject(new Error('SlowDown')) : objects.writeBytes(BUCKET, key, body),
    };
    const capture = new CaptureBuffer(sink, {
      rates: { stream: 1 },
      writer: 'test',
      now: () => NOW,
      onError: (_e, n) => lost.push(n),
    });
    return { capture, lost };
  }

  it('captures each scored event (not the rejected ones) with its id, features, version and sequence number', async () => {
    const { deps, objects, publisher } = setup();
    const { capture } = captureInto(objects);
    const good = rec({ id: 'e-1', features: { x1: 2 }, eventTime: '2026-06-01T11:59:00Z' });
    const bad = rec({ id: 'e-2', features: { x1: 'nope' } });
    await scoreMicroBatch([good, bad], { ...deps, capture });
    await capture.flush();
    const keys = [...objects.objects.keys()].filter((k) => k.startsWith(`${BUCKET}/capture/tiny/stream/`));
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/\/capture\/tiny\/stream\/dt=2026-06-01\/hr=12\/[^/]+\.jsonl\.gz$/);
    const bytes = await objects.readBytes(BUCKET, keys[0]!.slice(BUCKET.length + 1));
    const records = gunzipSync(bytes)
      .toString('utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as CaptureRecord);
    expect(records).toEqual([
      {
        model: 'tiny',
        version: '7',
        source: 'stream',
        id: 'e-1',
        features: { x1: 2 },
        // What the output stream carries for the event (the model's float32 probabilities).
        prediction: publisher.bodies()[0]!.prediction,
        servedBy: 'model',
        requestId: good.sequenceNumber,
        time: new Date(NOW).toISOString(),
      },
    ]);
  });

  it('a capture that cannot be written never fails the batch: counted and reported', async () => {
    const { deps, objects, store } = setup();
    const { capture, lost } = captureInto(objects, true);
    const outcome = await scoreMicroBatch([rec({ id: 'e-3', features: { x1: 1 } })], { ...deps, capture });
    await capture.flush();
    expect(outcome.retryFrom).toBeUndefined();
    expect(outcome.counts.scored).toBe(1);
    expect(store.items.size).toBe(1);
    expect(capture.counts).toMatchObject({ captured: 1, failed: 1, written: 0 });
    expect(lost).toEqual([1]);
  });
});
