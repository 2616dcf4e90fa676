/**
 * Batch capture reads a scored row's features back from the micro-batch's tensors (FeedBatch.features):
 * for every model of the zoo (float and double tensors, int64, booleans, categories coded as numbers,
 * string tensors) and the demo model, what it reads back is what the validator made of the row.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { loadBatchModel, type BatchModel } from '../../lambdas/core/batch/batch-model.ts';
import { FeedBatch } from '../../lambdas/core/batch/feed-batch.ts';
import { ChunkScorer } from '../../lambdas/core/batch/chunk-scorer.ts';
import { planRun } from '../../lambdas/core/batch/planner.ts';
import { CaptureBuffer } from '../../lambdas/core/capture/capture-buffer.ts';
import { validateFeatureObjects } from '../../lambdas/core/features.ts';
import { FsObjectStore } from '../../local/fs-object-store.ts';
import { readDemoDataset } from '../../local/demo-dataset.ts';
import { allZooModels } from '../support/model-zoo.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
let root: string;
const subjects: { name: string; rows: Record<string, unknown>[]; model?: BatchModel }[] = [];

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tandem-feed-features-'));
  const demo = await readDemoDataset();
  const packages = [
    ...allZooModels().map((m) => ({
      name: m.name,
      manifest: m.manifest,
      bytes: m.modelBytes,
      rows: m.sampleRows,
    })),
    {
      name: 'fraud-detector',
      manifest: JSON.parse(
        await readFile(path.join(REPO, 'models/fraud-detector/1.0.0/manifest.json'), 'utf8'),
      ),
      bytes: await readFile(path.join(REPO, 'models/fraud-detector/1.0.0/model.onnx')),
      rows: demo.rows.slice(0, 20).map((r) => demo.featuresOf(r)),
    },
  ];
  for (const p of packages) {
    const version = (p.manifest as { version: string }).version;
    const dir = path.join(root, p.name, version);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(p.manifest));
    await writeFile(path.join(dir, 'model.onnx'), p.bytes);
    await writeFile(path.join(root, p.name, 'current.json'), JSON.stringify({ version }));
    subjects.push({
      name: p.name,
      rows: p.rows as Record<string, unknown>[],
      model: await loadBatchModel(new FsModelSource(root), p.name, version, 0),
    });
  }
}, 120_000);

afterAll(async () => {
  for (const s of subjects) await s.model?.close();
  await rm(root, { recursive: true, force: true });
});

describe('FeedBatch.features', () => {
  it('reads back each validated row of every zoo model and of the demo model', () => {
    expect(subjects.length).toBeGreaterThan(5);
    for (const { name, rows, model } of subjects) {
      const m = model!;
      const validated = validateFeatureObjects(
        m.validator,
        rows.map((features, index) => ({ index, features })),
        false,
      );
      const batch = new FeedBatch(m.inputPlans, validated.length, m.dictionaries);
      validated.forEach((row, i) => batch.addFeatureRow(row, `id-${i}`, i + 1, []));
      const used = new Set(m.inputPlans.flatMap((p) => p.columns));
      validated.forEach((row, i) => {
        const read = batch.features(i, m.manifest);
        m.manifest.features.forEach((spec, k) => {
          const label = `${name} row ${i} ${spec.name}`;
          if (!used.has(k)) {
            expectWithMessage(spec.name in read, label).toBe(false);
            return;
          }
          const expected = row[k];
          const actual = read[spec.name];
          // A missing number the model imputes is NaN in the tensor, null in JSON.
          if (typeof expected === 'number' && Number.isNaN(expected)) {
            expectWithMessage(actual, label).toBeNull();
            return;
          }
          if (typeof expected === 'number' && typeof actual === 'number')
            expectWithMessage(
              Math.abs(actual - expected),
              `${label}: ${actual} vs ${expected}`,
            ).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(expected)));
          else if (spec.type === 'boolean') expectWithMessage(actual, label).toBe(expected === 1);
          else expectWithMessage(actual, label).toEqual(expected);
        });
      });
    }
  });

  it('gives float32 numbers their shortest text, as the dataset most likely wrote them', () => {
    const demo = subjects.find((s) => s.name === 'fraud-detector')!;
    const m = demo.model!;
    const [row] = validateFeatureObjects(
      m.validator,
      [{ index: 0, features: { ...demo.rows[0], amount: 0.1 } }],
      true,
    );
    const batch = new FeedBatch(m.inputPlans, 1, m.dictionaries);
    batch.addFeatureRow(row!, 'x', 1, []);
    expect(batch.features(0, m.manifest)['amount']).toBe(0.1);
  });
});

describe('batch capture faults', () => {
  it('a capture that cannot be written never fails a chunk: the chunk completes, the loss is counted', async () => {
    const demo = await readDemoDataset();
    const objects = new FsObjectStore(path.join(root, 'store'));
    const models = new FsModelSource(root);
    const rows = demo.rows.slice(0, 30);
    await objects.writeBytes(
      'data',
      'incoming/fraud-detector/capture-fault.csv',
      [demo.header.join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n',
    );
    const lost: number[] = [];
    const capture = new CaptureBuffer(
      { write: () => Promise.reject(new Error('SlowDown: reduce your request rate')) },
      { rates: { batch: 1 }, writer: 'test', maxRecords: 1000, onError: (_e, n) => lost.push(n) },
    );
    const plan = await planRun(
      {
        runId: 'capture-fault',
        bucket: 'data',
        key: 'incoming/fraud-detector/capture-fault.csv',
        model: 'fraud-detector',
        options: { tableWrites: 'none' },
      },
      { objects, models },
    );
    const scorer = new ChunkScorer({ objects, models, scoringThreads: 1, capture });
    try {
      let scored = 0;
      for (let index = 0; index < plan.chunks; index++)
        scored += (
          await scorer.score({ runId: 'capture-fault', bucket: 'data', planKey: plan.planKey, index })
        ).scored;
      expect(scored).toBe(rows.length);
    } finally {
      await scorer.close();
    }
    // Flushed before each chunk returned: nothing left buffered, every row counted as lost.
    expect(capture.buffered).toBe(0);
    expect(capture.counts).toMatchObject({ captured: rows.length, written: 0, failed: rows.length });
    expect(lost.reduce((a, b) => a + b, 0)).toBe(rows.length);
  }, 60_000);
});
