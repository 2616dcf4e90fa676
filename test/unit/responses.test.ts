import fc from 'fast-check';
import { describe, expect, it } from '@jest/globals';
import type { InstanceResult } from '../../lambdas/core/prediction-service.ts';
import { instanceJson, predictionJson } from '../../lambdas/handlers/api/responses.ts';

const text = fc.string({ unit: 'binary', maxLength: 12 });
const number = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(NaN, Infinity, -0, 1e21));
const prediction = fc.oneof(
  fc.record({
    label: fc.oneof(text, fc.integer()),
    probabilities: fc.option(fc.dictionary(text, number), { nil: undefined }),
  }),
  fc.record({ value: number }),
  fc.record({ values: fc.array(number, { maxLength: 3 }) }),
);
const result: fc.Arbitrary<InstanceResult> = fc.record({
  id: fc.option(text, { nil: null }),
  prediction,
  source: fc.constantFrom('cache' as const, 'model' as const),
  model: fc.record({ name: text, version: text }),
  computedAt: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  ageSeconds: fc.oneof(fc.nat(), fc.constant(NaN)),
  cacheStatus: fc.constantFrom(
    'hit' as const,
    'miss' as const,
    'stale' as const,
    'bypassed' as const,
    'skipped' as const,
    'no-id' as const,
  ),
}) as fc.Arbitrary<InstanceResult>;
const cache = fc.oneof(
  fc.record({ status: fc.constantFrom('used', 'bypassed', 'not-needed') }),
  fc.record({ status: fc.constant('skipped'), reason: text }),
);

describe('prediction bodies', () => {
  it('write a result exactly as JSON.stringify does', () => {
    fc.assert(
      fc.property(result, (r) => {
        expect(instanceJson(r)).toBe(JSON.stringify(r));
      }),
    );
  });

  it('write one result with the cache block, or the list, exactly as JSON.stringify does', () => {
    fc.assert(
      fc.property(fc.array(result, { minLength: 1, maxLength: 4 }), cache, (results, c) => {
        expect(predictionJson(results, true, c)).toBe(JSON.stringify({ ...results[0], cache: c }));
        expect(predictionJson(results, false, c)).toBe(JSON.stringify({ predictions: results, cache: c }));
      }),
    );
  });
});
