import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { predictionKey, storedPrediction, type StoredPrediction } from '../../lambdas/core/cache-policy.ts';
import {
  CacheUnavailableError,
  NotPrecomputedError,
  PredictionStoreError,
  ValidationError,
  type PredictionStoreErrorCode,
} from '../../lambdas/core/errors.ts';
import type { ServedModel } from '../../lambdas/core/model-loader.ts';
import { parsePredictRequest } from '../../lambdas/core/predict-request.ts';
import { PredictionService } from '../../lambdas/core/prediction-service.ts';
import { MemoryPredictionStore } from '../support/memory-prediction-store.ts';
import { loadTinyModel, tinyExpected } from '../support/tiny-model.ts';

const NOW = Date.parse('2026-06-01T00:00:00Z');

function cached(entityId: string, ageSeconds: number, version = '1'): StoredPrediction {
  return storedPrediction(
    {
      model: 'tiny',
      entityId,
      prediction: { label: 'c', probabilities: { a: 0.1, b: 0.2, c: 0.7 } },
      modelVersion: version,
      computedAt: NOW - ageSeconds * 1000,
      source: 'batch',
      runId: 'run-1',
    },
    86_400,
  );
}

let model: ServedModel;
beforeAll(async () => {
  model = await loadTinyModel('1');
}, 60_000);
afterAll(async () => {
  await model.close();
}, 60_000);

function setup(options: { writeThrough?: boolean; budget?: number } = {}) {
  const store = new MemoryPredictionStore();
  store.items.set(predictionKey('tiny', '1', 'hit'), cached('hit', 30));
  store.items.set(predictionKey('tiny', '1', 'old'), cached('old', 7200));
  store.items.set(predictionKey('tiny', '1', 'v0'), cached('v0', 10, '0'));
  const service = new PredictionService(store, {
    cacheBudgetMs: options.budget ?? 100,
    writeThrough: options.writeThrough ?? false,
    now: () => NOW,
  });
  return { store, service };
}

describe('PredictionService', () => {
  it("reads each version's own entries: a candidate's precomputed entry is a hit once it serves, a miss before", async () => {
    const { store, service } = setup();
    store.items.set(predictionKey('tiny', '2', 'pre'), cached('pre', 10, '2'));
    const request = parsePredictRequest({ id: 'pre', features: { x1: 1 } });
    const v1 = await service.predict(request, model);
    expect(v1.results[0]).toMatchObject({ source: 'model', cacheStatus: 'miss', model: { version: '1' } });
    const candidate = await loadTinyModel('2');
    try {
      const v2 = await service.predict(request, candidate);
      expect(store.gets.at(-1)).toEqual(['tiny#2#pre']);
      expect(v2.results[0]).toMatchObject({ source: 'cache', cacheStatus: 'hit', model: { version: '2' } });
    } finally {
      await candidate.close();
    }
  });

  it('answers from the cache with age and version, and scores the rest by the model, in request order', async () => {
    const { store, service } = setup();
    const request = parsePredictRequest({
      instances: [
        { id: 'new', features: { x1: 2, x2: 1 } },
        { id: 'hit' },
        { id: 'old', features: { x1: -3 } },
        { id: 'v0', features: { x1: 0, x2: 5 } },
        { features: { x1: 1 } },
        { id: 'hit', features: { x1: 9 } },
      ],
    });
    const outcome = await service.predict(request, model);
    expect(store.gets).toEqual([['tiny#1#new', 'tiny#1#hit', 'tiny#1#old', 'tiny#1#v0']]);
    expect(outcome.results.map((r) => [r.id, r.source, r.cacheStatus])).toEqual([
      ['new', 'model', 'miss'],
      ['hit', 'cache', 'hit'],
      ['old', 'model', 'stale'],
      ['v0', 'model', 'version-mismatch'],
      [null, 'model', 'no-id'],
      ['hit', 'cache', 'hit'],
    ]);
    const hit = outcome.results[1]!;
    expect(hit.ageSeconds).toBe(30);
    expect(hit.computedAt).toBe(new Date(NOW - 30_000).toISOString());
    expect(hit.model).toEqual({ name: 'tiny', version: '1' });
    const expectations = [
      tinyExpected(2, 1),
      undefined,
      tinyExpected(-3),
      tinyExpected(0, 5),
      tinyExpected(1),
    ];
    expectations.forEach((expected, i) => {
      if (!expected) return;
      const result = outcome.results[i]!;
      expect(result.prediction).toMatchObject({ label: expected.label });
      for (const [cls, p] of Object.entries(expected.probabilities)) {
        expect(
          (result.prediction as { probabilities: Record<string, number> }).probabilities[cls],
        ).toBeCloseTo(p, 6);
      }
      expect(result.ageSeconds).toBe(0);
    });
    expect(outcome.stats.modelInstances).toBe(4);
    expect(outcome.stats.verdicts).toEqual({ hit: 2, miss: 1, stale: 1, expired: 0, 'version-mismatch': 1 });
    expect(outcome.stats.servedAges).toEqual([30, 30]);
    expect(outcome.cache.status).toBe('used');
  });

  it('serves a stale entry when the request allows more staleness, and refuses a fresh one when it allows less', async () => {
    const { service } = setup();
    const loose = await service.predict(
      parsePredictRequest({ id: 'old', maxStalenessSeconds: 10_000 }),
      model,
    );
    expect(loose.results[0]?.source).toBe('cache');
    const strict = await service.predict(
      parsePredictRequest({ id: 'hit', features: { x1: 1 }, maxStalenessSeconds: 10 }),
      model,
    );
    expect(strict.results[0]?.source).toBe('model');
    expect(strict.results[0]?.cacheStatus).toBe('stale');
  });

  it('bypasses the cache on request without reading it', async () => {
    const { store, service } = setup();
    const outcome = await service.predict(
      parsePredictRequest({ id: 'hit', features: { x1: 1 }, bypassCache: true }),
      model,
    );
    expect(store.gets).toEqual([]);
    expect(outcome.results[0]).toMatchObject({ source: 'model', cacheStatus: 'bypassed' });
    expect(outcome.cache.status).toBe('bypassed');
  });

  it('answers by the model within the budget when the store is slow, and says so', async () => {
    const { store, service } = setup({ budget: 30 });
    store.hang = true;
    // The store never answers: the request can only complete because the budget ends the read.
    const outcome = await service.predict(parsePredictRequest({ id: 'hit', features: { x1: 1 } }), model);
    expect(outcome.cache).toMatchObject({ status: 'skipped', reason: 'no answer within 30 ms' });
    expect(store.aborted).toBe(1);
    expect(outcome.results[0]).toMatchObject({ source: 'model', cacheStatus: 'skipped' });
  });

  it('answers by the model when the store fails', async () => {
    const { store, service } = setup();
    store.failWith = new PredictionStoreError(
      'STORE_THROTTLED',
      'ProvisionedThroughputExceededException: Rate exceeded',
    );
    const outcome = await service.predict(parsePredictRequest({ id: 'hit', features: { x1: 1 } }), model);
    expect(outcome.cache).toMatchObject({
      status: 'skipped',
      reason: 'the table is throttling requests',
      cause: 'ProvisionedThroughputExceededException: Rate exceeded',
    });
    expect(outcome.results[0]?.source).toBe('model');
  });

  it.each<[PredictionStoreErrorCode, string]>([
    ['STORE_THROTTLED', 'the table is throttling requests'],
    ['STORE_TABLE_MISSING', 'the table does not exist'],
    ['STORE_FORBIDDEN', 'the function may not read the table'],
    ['STORE_UNREACHABLE', 'the table could not be reached'],
    ['STORE_TIMEOUT', 'the table did not answer in time'],
    ['STORE_SERVER_ERROR', 'the table answered with a server error'],
    ['STORE_FAILED', 'the table read failed'],
  ])(
    "tells the caller what a %s store failure means in plain words, keeping the adapter's words for the logs",
    async (code, reason) => {
      const { store, service } = setup();
      store.failWith = new PredictionStoreError(code, 'SomeServiceError: what the service said');
      const outcome = await service.predict(parsePredictRequest({ id: 'hit', features: { x1: 1 } }), model);
      expect(outcome.cache).toMatchObject({
        status: 'skipped',
        reason,
        cause: 'SomeServiceError: what the service said',
      });
    },
  );

  it("reports an error that is not the port's as a failed read, by its name only", async () => {
    const { store, service } = setup();
    store.failWith = Object.assign(new TypeError('something else'), { $metadata: { httpStatusCode: 500 } });
    const outcome = await service.predict(parsePredictRequest({ id: 'hit', features: { x1: 1 } }), model);
    expect(outcome.cache).toMatchObject({
      status: 'skipped',
      reason: 'the table read failed',
      cause: 'TypeError',
    });
  });

  it('fails an id-only instance with NOT_PRECOMPUTED naming it, and with CACHE_UNAVAILABLE when the store is down', async () => {
    const { store, service } = setup();
    const request = parsePredictRequest({ instances: [{ id: 'hit' }, { id: 'nobody' }] });
    await expect(service.predict(request, model)).rejects.toThrow(NotPrecomputedError);
    await service.predict(request, model).catch((error: NotPrecomputedError) => {
      expect(error.details).toEqual([
        {
          instance: 1,
          field: 'instances.1.id',
          message: '"nobody": no usable precomputed prediction (miss) and no features to score',
        },
      ]);
    });
    store.failWith = new Error('down');
    await expect(service.predict(parsePredictRequest({ id: 'hit' }), model)).rejects.toThrow(
      CacheUnavailableError,
    );
  });

  it('rejects invalid features before touching the store', async () => {
    const { store, service } = setup();
    await expect(
      service.predict(parsePredictRequest({ id: 'hit', features: { x1: 'high' } }), model),
    ).rejects.toThrow(ValidationError);
    expect(store.gets).toEqual([]);
  });

  it('writes model answers through when enabled, one item per id', async () => {
    const { store, service } = setup({ writeThrough: true });
    const outcome = await service.predict(
      parsePredictRequest({
        instances: [
          { id: 'w1', features: { x1: 1 } },
          { id: 'w1', features: { x1: 2 } },
          { features: { x1: 3 } },
        ],
      }),
      model,
    );
    expect(outcome.stats.writeThrough).toEqual({ written: 1, skipped: 0 });
    const item = store.items.get('tiny#1#w1');
    expect(item).toMatchObject({
      source: 'online',
      modelVersion: '1',
      computedAt: NOW,
      expiresAt: NOW / 1000 + 86_400,
    });
    expect(item?.prediction).toEqual(outcome.results[1]?.prediction);
  });

  it('never writes a model answer over a fresher stored one', async () => {
    const { store, service } = setup({ writeThrough: true });
    // Stored after this request's answer is computed (NOW), e.g. by a batch run that finished meanwhile.
    const fresher = { ...cached('w3', 0, '2'), computedAt: NOW + 1000 };
    store.items.set(predictionKey('tiny', '1', 'w3'), fresher);
    const outcome = await service.predict(
      parsePredictRequest({
        instances: [
          { id: 'w3', features: { x1: 1 } },
          { id: 'w4', features: { x1: 2 } },
        ],
        bypassCache: true, // scored by the model, so written through
      }),
      model,
    );
    expect(outcome.stats.writeThrough).toEqual({ written: 1, skipped: 1 });
    expect(store.items.get(predictionKey('tiny', '1', 'w3'))).toBe(fresher);
    expect(store.items.get(predictionKey('tiny', '1', 'w4'))).toMatchObject({
      source: 'online',
      computedAt: NOW,
    });
  });

  it('does not write through by default', async () => {
    const { store, service } = setup();
    await service.predict(parsePredictRequest({ id: 'w2', features: { x1: 1 } }), model);
    expect(store.items.has('tiny#1#w2')).toBe(false);
  });
});
