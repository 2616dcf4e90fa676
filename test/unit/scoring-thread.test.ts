/**
 * Where the batch lane's sessions run: how many scoring threads `auto` picks (vCPUs, Lambda memory), and
 * that a scoring thread gives the same outputs as the inline session, reports onnxruntime failures as
 * InferenceError without breaking, and refuses runs once closed.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { stringDictionaries, FeedBatch } from '../../lambdas/core/batch/feed-batch.ts';
import {
  feedStrings,
  resolveScoringThreads,
  startFeedRunner,
  startScoringThread,
  type FeedRunner,
  type FeedSpec,
} from '../../lambdas/core/batch/scoring-thread.ts';
import { InferenceError, ModelLoadError } from '../../lambdas/core/errors.ts';
import { compileModel, type CompiledModel } from '../../lambdas/core/model-loader.ts';
import { parseCsv } from '../../lambdas/core/codecs/csv.ts';
import { FeatureValidator } from '../../lambdas/core/features.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

describe('resolveScoringThreads', () => {
  it('uses one thread per vCPU but the first, from 1.5 vCPUs', () => {
    expect(resolveScoringThreads('auto', undefined, 1)).toBe(0);
    expect(resolveScoringThreads('auto', undefined, 2)).toBe(1);
    expect(resolveScoringThreads('auto', undefined, 4)).toBe(3);
  });

  it('caps the vCPUs by a Lambda function memory: 1,769 MB per vCPU', () => {
    expect(resolveScoringThreads('auto', 1769, 2)).toBe(0);
    expect(resolveScoringThreads('auto', 2600, 2)).toBe(0);
    expect(resolveScoringThreads('auto', 3008, 2)).toBe(1);
    expect(resolveScoringThreads('auto', 3538, 2)).toBe(1);
    expect(resolveScoringThreads('auto', 10_240, 6)).toBe(5);
    expect(resolveScoringThreads('auto', 10_240, 2)).toBe(1);
  });

  it('takes an explicit count, and refuses anything but a small non-negative integer', () => {
    expect(resolveScoringThreads(0, undefined, 8)).toBe(0);
    expect(resolveScoringThreads(3, undefined, 1)).toBe(3);
    for (const bad of [-1, 1.5, 17, NaN]) expect(() => resolveScoringThreads(bad)).toThrow(RangeError);
  });
});

describe('FeedRunner', () => {
  let compiled: CompiledModel;
  let inline: FeedRunner;
  let threaded: FeedRunner;
  let batch: FeedBatch;

  beforeAll(async () => {
    compiled = compileModel({
      manifest: JSON.parse(
        readFileSync(path.join(REPO, 'models/fraud-detector/1.0.0/manifest.json'), 'utf8'),
      ),
      modelBytes: readFileSync(path.join(REPO, 'models/fraud-detector/1.0.0/model.onnx')),
    });
    const dictionaries = stringDictionaries(compiled.manifest, compiled.inputPlans);
    inline = await startFeedRunner(compiled.graphBytes, 0, 'fraud-detector@1.0.0', dictionaries.values);
    threaded = await startFeedRunner(compiled.graphBytes, 2, 'fraud-detector@1.0.0', dictionaries.values);
    const [header, ...records] = parseCsv(
      readFileSync(path.join(REPO, 'models/fraud-detector/demo-transactions.csv'), 'utf8'),
    );
    const validator = new FeatureValidator(compiled.manifest);
    const columns = validator.names.map((n) => header!.fields.indexOf(n));
    batch = new FeedBatch(compiled.inputPlans, 64, dictionaries);
    for (const record of records.slice(0, 64)) {
      batch.addFeatureRow(validator.fromText(record.fields, columns, [])!, record.fields[0]!, 1, []);
    }
  }, 60_000);

  /** A copy of the batch's feeds (a scoring thread takes the arrays it is given). */
  function feeds(): FeedSpec[] {
    return batch
      .feeds()
      .map((f) => (f.type === 'string' ? { ...f, codes: f.codes.slice() } : { ...f, data: f.data.slice() }));
  }

  afterAll(async () => {
    await inline?.close();
    await threaded?.close();
  }, 60_000);

  it('gives the same outputs on a scoring thread as inline, and hands the feeds back', async () => {
    expect([inline.threads, threaded.threads]).toEqual([0, 2]);
    const a = await inline.run(feeds(), ['probabilities']);
    const runs = await Promise.all([1, 2, 3].map(() => threaded.run(feeds(), ['probabilities'])));
    for (const b of runs) {
      expect(b.outputs['probabilities']!.dims).toEqual([64, 2]);
      expect(Array.from(b.outputs['probabilities']!.data)).toEqual(
        Array.from(a.outputs['probabilities']!.data),
      );
      expect(b.inputs.map((d) => d.length)).toEqual([64 * 15, 64, 64]);
    }
    // The codes of the string inputs came back intact.
    const dictionary = stringDictionaries(compiled.manifest, compiled.inputPlans).values[1]!;
    expect(feedStrings(runs[0]!.inputs[1] as Int32Array, dictionary, [])).toEqual(
      feedStrings(
        feeds()[1]!.type === 'string' ? (feeds()[1] as { codes: Int32Array }).codes : new Int32Array(),
        dictionary,
        [],
      ),
    );
  });

  it('reports an onnxruntime failure as InferenceError and keeps working', async () => {
    const bad = feeds().map((f) => ({ ...f, dims: f.name === 'numeric' ? [32, 30] : f.dims }));
    for (const runner of [inline, threaded]) {
      const error = await runner.run(bad, ['probabilities']).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InferenceError);
      expect((error as Error).message).toMatch(/^onnxruntime failed to run fraud-detector@1.0.0: /);
      expect(runner.healthy).toBe(true);
      const good = await runner.run(feeds(), ['probabilities']);
      expect(good.outputs['probabilities']!.dims).toEqual([64, 2]);
    }
  });

  it('refuses a graph onnxruntime cannot load with ModelLoadError MODEL_CORRUPT, with or without threads', async () => {
    for (const threads of [0, 1]) {
      const error = await startFeedRunner(new Uint8Array([1, 2, 3]), threads, 'x@1', []).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ModelLoadError);
      expect((error as ModelLoadError).code).toBe('MODEL_CORRUPT');
    }
  });

  it("a scoring thread that cannot load the graph rejects with onnxruntime's reason, from the thread", async () => {
    // startFeedRunner loads the graph inline first, so a graph it refuses never reaches a thread: this is
    // the thread's own load path (its 'load-failed' reply).
    const garbage = new Uint8Array([1, 2, 3]);
    const inline = await startFeedRunner(garbage, 0, 'x@1', []).then(
      () => undefined,
      (e: unknown) => e as ModelLoadError,
    );
    const reason = (inline?.cause as Error).message;
    expect(reason).toBeTruthy();
    const error = await startScoringThread(garbage, 'x@1', []).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe(reason);
  });

  it('rejects runs once closed', async () => {
    const dictionaries = stringDictionaries(compiled.manifest, compiled.inputPlans);
    const runner = await startFeedRunner(compiled.graphBytes, 1, 'fraud-detector@1.0.0', dictionaries.values);
    await runner.close();
    await expect(runner.run(feeds(), ['probabilities'])).rejects.toThrow(/closed/);
    expect(runner.healthy).toBe(false);
  });
});
