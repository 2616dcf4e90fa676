/**
 * measureQuality's gathering over an object store: outcomes from feedback/, predictions from every
 * capture source (a shadow comparison counts as the shadow version's prediction) and the table; an
 * unreadable object is skipped and counted; the figures are published per version.
 */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from '@jest/globals';
import { predictionKey, storedPrediction } from '../../lambdas/core/cache-policy.ts';
import { capturePartition } from '../../lambdas/core/capture/capture-record.ts';
import { feedbackObjectKey } from '../../lambdas/core/feedback/feedback-record.ts';
import { measureQuality } from '../../lambdas/core/monitoring/quality-inputs.ts';
import type { QualityMetric } from '../../lambdas/core/monitoring/quality.ts';
import type { PredictionStore } from '../../lambdas/core/ports.ts';
import { MemoryObjectStore } from '../support/memory-object-store.ts';

const NOW = Date.parse('2026-06-10T12:00:00Z');
const lines = (records: unknown[]) => gzipSync(records.map((r) => JSON.stringify(r)).join('\n') + '\n');
const p = (fraud: number) => ({ label: fraud >= 0.5 ? 1 : 0, probabilities: { '0': 1 - fraud, '1': fraud } });

describe('measureQuality', () => {
  it('reads no capture when no outcome was posted (nothing could match): what the monitor does every run', async () => {
    const objects = new MemoryObjectStore();
    await objects.writeBytes(
      'data',
      `${capturePartition('m', 'realtime', NOW - 3_600_000)}x-000000.jsonl.gz`,
      lines([
        {
          model: 'm',
          version: '1',
          source: 'realtime',
          id: 'a',
          prediction: p(0.9),
          time: new Date(NOW).toISOString(),
        },
      ]),
    );
    const read: string[] = [];
    const counting = Object.assign(Object.create(objects) as MemoryObjectStore, {
      readBytes: (bucket: string, key: string) => {
        read.push(key);
        return objects.readBytes(bucket, key);
      },
    });
    const report = await measureQuality(
      { objects: counting, bucket: 'data', now: () => NOW },
      {
        name: 'm',
        task: 'binary-classification',
      },
    );
    expect(report.status).toBe('no data');
    expect(report.outcomes).toBe(0);
    expect(read.filter((key) => key.startsWith('capture/'))).toEqual([]);
  });

  it('joins outcomes with captured, shadow and table predictions, per version', async () => {
    const objects = new MemoryObjectStore();
    const at = (h: number) => new Date(NOW - h * 3_600_000).toISOString();
    await objects.writeBytes(
      'data',
      feedbackObjectKey('m', NOW - 3_600_000, 'req-1'),
      lines([
        { model: 'm', id: 'a', label: 1, observedAt: at(1), receivedAt: at(1), requestId: 'req-1' },
        { model: 'm', id: 'b', label: 0, observedAt: at(1), receivedAt: at(1), requestId: 'req-1' },
        { model: 'm', id: 'c', label: 1, observedAt: at(1), receivedAt: at(1), requestId: 'req-1' },
      ]),
    );
    const realtime = `${capturePartition('m', 'realtime', NOW - 5 * 3_600_000)}x-000000.jsonl.gz`;
    await objects.writeBytes(
      'data',
      realtime,
      lines([
        { model: 'm', version: '1', source: 'realtime', id: 'a', prediction: p(0.9), time: at(5) },
        { model: 'm', version: '1', source: 'realtime', id: 'b', prediction: p(0.6), time: at(5) },
        { model: 'm', version: '1', source: 'realtime', id: 'zzz', prediction: p(0.6), time: at(5) },
      ]),
    );
    const shadow = `${capturePartition('m', 'shadow', NOW - 5 * 3_600_000)}x-000001.jsonl.gz`;
    await objects.writeBytes(
      'data',
      shadow,
      lines([
        {
          model: 'm',
          version: '1',
          source: 'shadow',
          id: 'a',
          prediction: p(0.9),
          shadowVersion: '2',
          shadowPrediction: p(0.2),
          time: at(5),
        },
      ]),
    );
    await objects.writeBytes(
      'data',
      `${capturePartition('m', 'batch', NOW - 5 * 3_600_000)}broken.jsonl.gz`,
      'not gzip',
    );
    const table: PredictionStore = {
      getMany: async (keys) => {
        const item = storedPrediction(
          {
            model: 'm',
            entityId: 'c',
            prediction: p(0.7),
            modelVersion: '1',
            computedAt: NOW - 7_200_000,
            source: 'batch',
          },
          86_400,
        );
        const key = predictionKey('m', '1', 'c');
        return new Map(keys.includes(key) ? [[key, item]] : []);
      },
      putMany: async () => ({ written: 0, skipped: 0 }),
    };
    const published: QualityMetric[] = [];
    const report = await measureQuality(
      { objects, bucket: 'data', predictions: table, now: () => NOW, publish: (m) => published.push(...m) },
      { name: 'm', task: 'binary-classification', classes: [0, 1], versions: ['1'] },
      { windowMs: 86_400_000 },
    );
    expect(report.outcomes).toBe(3);
    expect(report.unmatched).toBe(0);
    expect(report.unreadableObjects).toBe(1);
    const [v1, v2] = report.versions;
    // Version 1: a (0.9 -> 1, right), b (0.6 -> 1, wrong), c (table 0.7 -> 1, right); both positives
    // (0.9, 0.7) score above the negative (0.6): AUC 1.
    expect(v1).toMatchObject({ version: '1', matchedBy: { realtime: 2, table: 1 } });
    expect(v1!.figures).toMatchObject({ count: 3, accuracy: 2 / 3, rocAuc: 1 });
    // Version 2 (the shadow): a only, predicted 0.2 -> 0, wrong.
    expect(v2).toMatchObject({ version: '2', matchedBy: { shadow: 1 }, figures: { count: 1, accuracy: 0 } });
    expect(published.filter((m) => m.name === 'Accuracy')).toEqual([
      { name: 'Accuracy', value: 2 / 3, model: 'm', version: '1' },
      { name: 'Accuracy', value: 0, model: 'm', version: '2' },
    ]);
  });
});
