/**
 * The batch lane's micro-batch tensors against the real-time lane's encoder (tensors.ts encodeInput):
 * validated rows put in a FeedBatch give the same tensors, value for value (float32 / int32 / bool / int64
 * conversions, category codes, strings through the dictionary codes), whatever the batch is reused for.
 */
import fc from 'fast-check';
import { describe, expect, it } from '@jest/globals';
import { FeedBatch, stringDictionaries } from '../../lambdas/core/batch/feed-batch.ts';
import { feedStrings } from '../../lambdas/core/batch/scoring-thread.ts';
import type { FeatureRow } from '../../lambdas/core/features.ts';
import { parseManifest } from '../../lambdas/core/manifest.ts';
import { encodeInput, planInput } from '../../lambdas/core/tensors.ts';

const manifest = parseManifest({
  name: 'm',
  version: '1',
  task: 'regression',
  idField: 'id',
  features: [
    { name: 'a', type: 'number' },
    { name: 'b', type: 'integer' },
    { name: 'c', type: 'boolean' },
    { name: 'd', type: 'category', values: ['Red', 'blue', 'grün', 'blue'] },
    { name: 'e', type: 'category', values: ['x', 'Y'], unknown: 'pass' },
    { name: 'f', type: 'string', required: false },
    { name: 'g', type: 'number' },
    { name: 'h', type: 'integer' },
    { name: 'i', type: 'number' },
  ],
  inputs: [
    { name: 'f32', type: 'float32', features: ['a', 'b', 'c', 'd'] },
    { name: 'f64', type: 'float64', features: ['g'] },
    { name: 'i32', type: 'int32', features: ['h'] },
    { name: 'i64', type: 'int64', features: ['i'] },
    { name: 's', type: 'string', features: ['e', 'f'] },
  ],
  outputs: { value: 'v' },
});
const plans = manifest.inputs!.map((input) => planInput(manifest, input, 2));
const dictionaries = stringDictionaries(manifest, plans);

/** What the validator lets through: finite numbers, or NaN for a missing optional one. */
const number = fc.oneof(
  fc.double({ noDefaultInfinity: true }),
  fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
  fc.constantFrom(NaN, -0, 0.1, 2 ** 31, -(2 ** 31) - 1, 1e300),
);
const text = fc.oneof(
  fc.constantFrom('Red', 'red', 'blue', 'grün', 'x', 'Y', 'y', ''),
  fc.string({ maxLength: 5 }),
);
const row: fc.Arbitrary<FeatureRow> = fc.tuple(
  number,
  number,
  fc.constantFrom(0, 1, NaN),
  fc.constantFrom('Red', 'blue', 'grün'),
  text,
  text,
  number,
  number,
  number,
);

function values(data: ArrayLike<unknown>): unknown[] {
  return Array.from(data);
}

describe('FeedBatch', () => {
  it('fills the tensors encodeInput builds, across reuses of the batch', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(row, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 4 }),
        (batches) => {
          const batch = new FeedBatch(plans, 8, dictionaries);
          for (const rows of batches) {
            rows.forEach((r, i) => batch.addFeatureRow(r, `id-${i}`, i + 1, []));
            const feeds = batch.feeds();
            plans.forEach((plan, p) => {
              const expected = encodeInput(plan, rows);
              const feed = feeds[p]!;
              expect(feed.name).toBe(plan.name);
              expect(feed.dims).toEqual(expected.dims);
              const got =
                feed.type === 'string'
                  ? feedStrings(feed.codes, dictionaries.values[p]!, feed.extras)
                  : feed.data;
              expect(values(got)).toEqual(values(expected.data as ArrayLike<unknown>));
            });
            expect(rows.map((_, i) => batch.id(i))).toEqual(rows.map((_, i) => `id-${i}`));
            // As after a run whose feeds went to a scoring thread and came back.
            batch.reset(feeds.map((f) => (f.type === 'string' ? f.codes : f.data)));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('holds plain ids as bytes and others as strings, and gives both back as strings', () => {
    const batch = new FeedBatch(plans, 4, dictionaries);
    const bytes = Buffer.from('t-1|a"b|c,d|', 'latin1');
    batch.commitBytes(bytes, 0, 3, 1, []);
    batch.commitBytes(bytes, 4, 7, 2, []);
    batch.commitBytes(bytes, 8, 11, 3, []);
    batch.commit('é', 4, []);
    expect([0, 1, 2, 3].map((i) => batch.id(i))).toEqual(['t-1', 'a"b', 'c,d', 'é']);
    expect([0, 1, 2, 3].map((i) => batch.idString(i))).toEqual([undefined, 'a"b', 'c,d', 'é']);
  });
});
