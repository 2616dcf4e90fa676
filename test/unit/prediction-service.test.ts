import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { predictionKey, storedPrediction, type StoredPrediction } from '../../lambdas/core/cache-policy.ts';
import { CacheUnavailableError, NotPrecomputedError, ValidationError } from '../../lambdas/core/errors.ts';
import type { ServedModel } from '../../lambdas/core/model-loader.ts';
import type { PredictionStore } from '../../lambdas/core/ports.ts';
import { parsePredictRequest } from '../../lambdas/core/predict-request.ts';
import { PredictionService } from '../../lambdas/core/prediction-service.ts';
import { loadTinyModel, tinyExpected } from '../support/tiny-model.ts';

const NOW = Date.parse('2026-06-01T00:00:00Z');

/** An in-memory store that records calls and can be made slow or broken. */
class MemoryStore implements PredictionStore {
  readonly items = new Map<string, StoredPrediction>();
  readonly gets: string[][] = [];
  /** Never answer (until aborted): only the service's budget can end the read. */
  hang = false;
  aborted = 0;
  failWith: Error | undefined;

  async getMany(keys: readonly string[], signal?: AbortSignal) {
    this.gets.push([...keys]);
    if (this.hang) {
      await new Promise((_, reject) => {
        signal?.addEventListener('abort', () => {
          this.aborted++;
          reject(new Error('aborted'));
        });
      });
    }
    if (this.failWith) throw this.failWith;
    return new Map(keys.filter((k) => this.items.has(k)).map((k) => [k, this.items.get(k)!]));
  }

  async putMany(items: readonly StoredPrediction[]) {
    let written = 0;
    let skipped = 0;
    for (const item of items) {
      const key = predictionKey(item.model, item.modelVersion, item.entityId);
      const existing = this.items.get(key);
      if (existing && existing.computedAt >= item.computedAt) skipped++;
      else {
        this.items.set(key, item);
        written++;
      }
    }
    return { written, skipped };
  }
}

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
});
afterAll(async () => {
  await model.close();
});

function setup(options: { writeThrough?: boolean; budget?: number } = {}) {
  const store = new MemoryStore();
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
    store.failWith = Object.assign(new Error('Rate exceeded'), {
      name: 'ProvisionedThroughputExceededException',
    });
    const outcome = await service.predict(parsePredictRequest({ id: 'hit', features: { x1: 1 } }), model);
    expect(outcome.cache).toMatchObject({
      status: 'skipped',
      reason: 'the table is throttling requests',
      cause: 'ProvisionedThroughputExceededException',
    });
    expect(outcome.results[0]?.source).toBe('model');
  });

  it('tells the caller why the store failed in plain words, keeping error names for the logs', async () => {
    const { store, service } = setup();
    const cases: [Error, string, string][] = [
      [
        Object.assign(new Error('x'), { name: 'ThrottlingException' }),
        'the table is throttling requests',
        'ThrottlingException',
      ],
      [
        Object.assign(new Error('x'), { name: 'ResourceNotFoundException' }),
        'the table does not exist',
        'ResourceNotFoundException',
      ],
      [
        Object.assign(new Error('x'), { name: 'AccessDeniedException' }),
        'the function may not read the table',
        'AccessDeniedException',
      ],
      [
        Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
        'the table could not be reached',
        'Error ECONNREFUSED',
      ],
      [
        Object.assign(new Error('x'), { name: 'InternalServerError', $metadata: { httpStatusCode: 500 } }),
        'the table answered with a server error',
        'InternalServerError',
      ],
      [new TypeError('something else'), 'the table read failed', 'TypeError'],
    ];
    for (const [error, reason, cause] of cases) {
      store.failWith = error;
      const outcome = await service.predict(parsePredictRequest({ id: 'hit', features: { x1: 1 } }), model);
      expect(outcome.cache).toMatchObject({ status: 'skipped', reason, cause });
    }
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

  it('writes model answers through when enabled, one item per id, never over a fresher one', async () => {
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

  it('does not write through by default', async () => {
    const { store, service } = setup();
    await service.predict(parsePredictRequest({ id: 'w2', features: { x1: 1 } }), model);
    expect(store.items.has('tiny#1#w2')).toBe(false);
  });
});
