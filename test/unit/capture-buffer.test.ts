import { gunzipSync } from 'node:zlib';
import { describe, expect, it, jest } from '@jest/globals';
import { CaptureBuffer, type CaptureSink } from '../../lambdas/core/capture/capture-buffer.ts';
import { capturePartition, type CaptureRecord } from '../../lambdas/core/capture/capture-record.ts';

const T0 = Date.parse('2026-12-06T02:59:59.500Z');

function record(n: number, time = new Date(T0).toISOString()): CaptureRecord {
  return {
    model: 'fraud-detector',
    version: '1.0.0',
    source: 'realtime',
    id: `tx-${n}`,
    features: { amount: n },
    prediction: { label: 'legit' },
    servedBy: 'model',
    cacheStatus: 'miss',
    requestId: `req-${n}`,
    time,
  };
}

class MemorySink implements CaptureSink {
  readonly objects = new Map<string, CaptureRecord[]>();
  async write(key: string, body: Uint8Array): Promise<void> {
    const lines = gunzipSync(body).toString('utf8').trimEnd().split('\n');
    this.objects.set(
      key,
      lines.map((l) => JSON.parse(l) as CaptureRecord),
    );
  }
}

describe('capture buffer', () => {
  it('writes gzipped JSON Lines per hour partition, one key per flush and writer', async () => {
    const sink = new MemorySink();
    const buffer = new CaptureBuffer(sink, { rates: { realtime: 1, batch: 0 }, writer: 'w1', now: () => T0 });
    buffer.add(record(1));
    buffer.add(record(2, new Date(T0 + 1000).toISOString())); // the next hour
    await buffer.flush();
    const keys = [...sink.objects.keys()];
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatch(
      /^capture\/fraud-detector\/realtime\/dt=2026-12-06\/hr=02\/20261206T025959500Z-w1-000000\.jsonl\.gz$/,
    );
    expect(keys[1]).toMatch(
      /^capture\/fraud-detector\/realtime\/dt=2026-12-06\/hr=03\/.*-w1-000001\.jsonl\.gz$/,
    );
    expect(sink.objects.get(keys[0]!)).toEqual([record(1)]);
    expect(buffer.counts).toEqual({ captured: 2, written: 2, failed: 0, dropped: 0 });
    expect(capturePartition('m', 'batch', T0)).toBe('capture/m/batch/dt=2026-12-06/hr=02/');
  });

  it('samples each source at its rate', () => {
    let draw = 0;
    const draws = [0.1, 0.3, 0.29];
    const buffer = new CaptureBuffer(new MemorySink(), {
      rates: { realtime: 0.3, batch: 0 },
      writer: 'w',
      random: () => draws[draw++ % draws.length]!,
    });
    expect([buffer.sample('realtime'), buffer.sample('realtime'), buffer.sample('realtime')]).toEqual([
      true,
      false,
      true,
    ]);
    expect(buffer.sample('batch')).toBe(false);
  });

  it('flushes by size on add and by age when asked, never before', async () => {
    const sink = new MemorySink();
    const write = jest.spyOn(sink, 'write');
    let now = T0;
    const buffer = new CaptureBuffer(sink, {
      rates: { realtime: 1, batch: 1 },
      writer: 'w',
      maxRecords: 3,
      maxAgeMs: 60_000,
      now: () => now,
    });
    buffer.add(record(1));
    buffer.flushIfDue();
    expect(write).not.toHaveBeenCalled();
    now += 60_000;
    buffer.flushIfDue();
    await buffer.flush();
    expect(write).toHaveBeenCalledTimes(1);
    for (let i = 0; i < 3; i++) buffer.add(record(i));
    await buffer.flush();
    expect(write).toHaveBeenCalledTimes(2);
    expect(buffer.buffered).toBe(0);
  });

  it('counts and reports a write that fails without throwing, and drops past its bound', async () => {
    const onError = jest.fn();
    let fail = true;
    const sink: CaptureSink = {
      write: () => (fail ? Promise.reject(new Error('AccessDenied')) : Promise.resolve()),
    };
    const buffer = new CaptureBuffer(sink, {
      rates: { realtime: 1, batch: 0 },
      writer: 'w',
      maxRecords: 2,
      onError,
    });
    buffer.add(record(1)); // under the bound
    await buffer.flush();
    expect(onError).toHaveBeenCalledWith(expect.objectContaining({ message: 'AccessDenied' }), 1);
    expect(buffer.counts).toMatchObject({ captured: 1, written: 0, failed: 1 });

    // A flush in flight that never ends: the buffer holds at most twice maxRecords, then drops.
    const stuck: CaptureSink = { write: () => new Promise<void>(() => undefined) };
    const bounded = new CaptureBuffer(stuck, {
      rates: { realtime: 1, batch: 0 },
      writer: 'w',
      maxRecords: 2,
    });
    for (let i = 0; i < 10; i++) bounded.add(record(i));
    expect(bounded.counts.dropped).toBeGreaterThan(0);
    expect(bounded.buffered).toBeLessThanOrEqual(4);
    fail = false;
  });
});
