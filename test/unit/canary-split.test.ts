/**
 * The canary's traffic split: the hash assignment (property-tested: the candidate's share is the
 * percentage within tolerance, and an id always gets the same version), and a request served by two
 * versions at once: results in request order saying which version answered, each version reading its own
 * cache entries, errors naming the request's instance indexes.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { predictWithCanary } from '../../lambdas/core/canary-serving.ts';
import { storedPrediction } from '../../lambdas/core/cache-policy.ts';
import { ValidationError } from '../../lambdas/core/errors.ts';
import type { ServedModel } from '../../lambdas/core/model-loader.ts';
import type { PredictRequest } from '../../lambdas/core/predict-request.ts';
import { PredictionService } from '../../lambdas/core/prediction-service.ts';
import { canaryBucket, goesToCanary } from '../../lambdas/core/traffic-split.ts';
import { mulberry32 } from '../../tools/mulberry32.ts';
import { MemoryPredictionStore } from '../support/memory-prediction-store.ts';
import { loadTinyModel } from '../support/tiny-model.ts';

describe('canary assignment', () => {
  it('sends the percentage of ids to the candidate, within tolerance, for any percentage and model', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.string({ minLength: 1, maxLength: 20 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (percent, model, offset) => {
          const n = 4000;
          let toCanary = 0;
          for (let i = 0; i < n; i++) if (goesToCanary(model, `entity-${offset + i}`, percent)) toCanary++;
          // Binomial: 4 standard deviations of a share over 4000 ids is at most 3.2 points.
          const sd = Math.sqrt((percent / 100) * (1 - percent / 100) * n);
          expect(Math.abs(toCanary - (n * percent) / 100)).toBeLessThanOrEqual(4 * sd + 1);
        },
      ),
      { numRuns: 40, seed: 15 },
    );
  });

  it('gives an id the same version every time, whatever the random draws, and more of the traffic only adds ids', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.double({ min: 0, max: 99, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (id, percent, more) => {
          const first = goesToCanary('fraud-detector', id, percent, () => 0);
          expect(goesToCanary('fraud-detector', id, percent, () => 0.999)).toBe(first);
          expect(canaryBucket('fraud-detector', id)).toBe(canaryBucket('fraud-detector', id));
          // Raising the percentage never moves an entity back from the candidate to the live version.
          if (first) expect(goesToCanary('fraud-detector', id, percent + more)).toBe(true);
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });

  it('assigns instances without an id by the random draw, at the percentage', () => {
    const random = mulberry32(3);
    let toCanary = 0;
    for (let i = 0; i < 10_000; i++) if (goesToCanary('m', undefined, 20, random)) toCanary++;
    expect(toCanary).toBeGreaterThan(1800);
    expect(toCanary).toBeLessThan(2200);
    expect(goesToCanary('m', undefined, 20, () => 0.19)).toBe(true);
    expect(goesToCanary('m', undefined, 20, () => 0.2)).toBe(false);
  });

  it('sends nothing at 0 % and everything at 100 %', () => {
    for (let i = 0; i < 500; i++) {
      expect(goesToCanary('m', `id-${i}`, 0)).toBe(false);
      expect(goesToCanary('m', `id-${i}`, 100)).toBe(true);
    }
  });
});

describe('a request served by the live version and a canary', () => {
  let live: ServedModel;
  let candidate: ServedModel;
  beforeAll(async () => {
    live = await loadTinyModel('1');
    candidate = await loadTinyModel('2');
  }, 60_000);
  afterAll(async () => {
    await live.close();
    await candidate.close();
  }, 60_000);

  const ids = Array.from({ length: 40 }, (_, i) => `e-${i}`);
  const request = (withFeatures: boolean): PredictRequest => ({
    single: false,
    model: undefined,
    maxStalenessSeconds: undefined,
    bypassCache: false,
    instances: ids.map((id, i) => ({ id, features: withFeatures ? { x1: i - 20 } : undefined })),
  });

  it('answers each id with its assigned version, in request order', async () => {
    const service = new PredictionService(undefined, { cacheBudgetMs: 50, writeThrough: false });
    const { outcome, byVersion } = await predictWithCanary(service, request(true), live, {
      model: candidate,
      percent: 50,
    });
    const expected = ids.map((id) => (goesToCanary('tiny', id, 50) ? '2' : '1'));
    expect(outcome.results.map((r) => r.model.version)).toEqual(expected);
    expect(outcome.results.map((r) => r.id)).toEqual(ids);
    expect(byVersion.map((v) => [v.model.version, v.instances])).toEqual([
      ['1', expected.filter((v) => v === '1').length],
      ['2', expected.filter((v) => v === '2').length],
    ]);
    expect(outcome.stats.modelInstances).toBe(ids.length);
  });

  it("reads each version's own cache entries: a canary id is a hit only on the candidate's entry", async () => {
    const store = new MemoryPredictionStore();
    const now = Date.now();
    const put = (version: string, id: string, label: string) =>
      store.items.set(
        `tiny#${version}#${id}`,
        storedPrediction(
          {
            model: 'tiny',
            entityId: id,
            prediction: { label },
            modelVersion: version,
            computedAt: now,
            source: 'batch',
          },
          3600,
        ),
      );
    for (const id of ids) {
      put('1', id, 'from-1');
      if (goesToCanary('tiny', id, 30)) put('2', id, 'from-2');
    }
    const service = new PredictionService(store, { cacheBudgetMs: 1000, writeThrough: false });
    const { outcome } = await predictWithCanary(service, request(false), live, {
      model: candidate,
      percent: 30,
    });
    for (const result of outcome.results) {
      const canary = goesToCanary('tiny', result.id!, 30);
      expect(result.source).toBe('cache');
      expect(result.model.version).toBe(canary ? '2' : '1');
      expect(result.prediction).toEqual({ label: canary ? 'from-2' : 'from-1' });
    }
    expect(outcome.stats.verdicts.hit).toBe(ids.length);
  });

  it("names the request's own instance index in a validation error of either version", async () => {
    const bad = request(true);
    const canaryIndex = ids.findIndex((id) => goesToCanary('tiny', id, 50));
    const liveIndex = ids.findIndex((id) => !goesToCanary('tiny', id, 50));
    const instances = bad.instances.map((instance, i) =>
      i === canaryIndex || i === liveIndex ? { ...instance, features: { x1: 'high' } } : instance,
    );
    const failed: string[] = [];
    const service = new PredictionService(undefined, { cacheBudgetMs: 50, writeThrough: false });
    const error = await predictWithCanary(
      service,
      { ...bad, instances },
      live,
      { model: candidate, percent: 50 },
      { failed: (m) => failed.push(m.version) },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    const fields = (error as ValidationError).details!.map((d) => d.field);
    expect(fields.length).toBeGreaterThan(0);
    expect(
      fields.every(
        (f) => f === `instances.${canaryIndex}.features.x1` || f === `instances.${liveIndex}.features.x1`,
      ),
    ).toBe(true);
    expect(failed.length).toBeGreaterThan(0);
  });

  it('calls the service once with the live model when there is no canary', async () => {
    const service = new PredictionService(undefined, { cacheBudgetMs: 50, writeThrough: false });
    const { outcome, byVersion } = await predictWithCanary(service, request(true), live, undefined);
    expect(new Set(outcome.results.map((r) => r.model.version))).toEqual(new Set(['1']));
    expect(byVersion).toHaveLength(1);
  });
});
