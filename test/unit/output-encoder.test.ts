/**
 * OutputEncoder.encodeOutputs (bytes written straight from the raw outputs) against encode() over the
 * real-time lane's decoded predictions (predictions.ts decodePredictions): the same text, for every
 * output shape and class labelling, both formats, pass-through columns, ids that need escaping, ties,
 * NaN and -0.
 */
import fc from 'fast-check';
import { describe, expect, it } from '@jest/globals';
import { FeedBatch, stringDictionaries } from '../../lambdas/core/batch/feed-batch.ts';
import { OutputEncoder } from '../../lambdas/core/batch/output-encoder.ts';
import type { Outputs } from '../../lambdas/core/batch/scoring-thread.ts';
import { parseManifest, type ClassLabel } from '../../lambdas/core/manifest.ts';
import { decodePredictions, type OutputPlan } from '../../lambdas/core/predictions.ts';
import { planInput } from '../../lambdas/core/tensors.ts';

function manifestFor(task: OutputPlan['task']) {
  return parseManifest({
    name: 'm',
    version: '1',
    task,
    idField: 'id',
    features: [{ name: 'x', type: 'number' }],
    outputs: task === 'regression' ? { value: 'v' } : { label: 'label', probabilities: 'p' },
  });
}

const CLASSINGS: readonly (readonly ClassLabel[])[] = [
  [0, 1],
  [1, 0],
  ['no', 'yes'],
  ['b', 'a', 'c'],
  ['10', '9', 'x', '2'],
  [3, 1, 2],
  ['1', 1],
  ['a"b', 'é'],
];

const probability = fc.oneof(
  { weight: 6, arbitrary: fc.float({ noDefaultInfinity: true, noNaN: true, min: 0, max: 1 }) },
  { weight: 1, arbitrary: fc.constantFrom(NaN, -0, 0, 1, 0.5, 1e-30) },
);

const ID = fc.oneof(
  fc.stringMatching(/^[a-z0-9-]{1,10}$/),
  fc.constantFrom('a"b', 'c,d', 'e\\f', 'é', 'tab\there', 'line\nbreak', ''),
  // Formula-like and numeric ids: the byte path must neutralize exactly as the string path does.
  fc.stringMatching(/^[=+\-@][a-z0-9+.()=-]{0,8}$/),
  fc.constantFrom('-1.5', '+7', '-', '\tx', '\rx', '=1+1', '@A1'),
);

interface Case {
  readonly plan: OutputPlan;
  readonly outputs: Outputs;
  readonly ids: string[];
  readonly passThrough: unknown[][];
}

const PASS = ['amount', 'note'];

function caseArbitrary(pass: boolean): fc.Arbitrary<Case> {
  const rows = fc.integer({ min: 1, max: 12 });
  const classification = fc
    .tuple(fc.constantFrom(...CLASSINGS), rows, fc.boolean(), fc.constantFrom('float32', 'float64'))
    .chain(([classes, n, positiveOnly, type]) => {
      const columns = positiveOnly && classes.length === 2 ? 1 : classes.length;
      return fc.tuple(
        fc.constant(classes),
        fc.constant(n),
        fc.constant(columns),
        fc.constant(type),
        fc.array(probability, { minLength: n * columns, maxLength: n * columns }),
        // Exact ties between columns, to pin the argmax rule.
        fc.boolean(),
      );
    })
    .map(([classes, n, columns, type, values, tie]) => {
      if (tie && columns > 1) for (let i = 0; i < n; i++) values[i * columns + 1] = values[i * columns]!;
      const data = type === 'float32' ? Float32Array.from(values) : Float64Array.from(values);
      const plan: OutputPlan = {
        task: classes.length === 2 ? 'binary-classification' : 'multiclass-classification',
        label: undefined,
        probabilities: 'p',
        value: undefined,
        classes,
      };
      return { plan, outputs: { p: { type, data, dims: columns === 1 ? [n] : [n, columns] } }, n };
    });
  const labelOnly = fc.tuple(rows, fc.boolean()).map(([n, strings]) => {
    const plan: OutputPlan = {
      task: 'binary-classification',
      label: 'label',
      probabilities: undefined,
      value: undefined,
      classes: undefined,
    };
    const data = strings
      ? Array.from({ length: n }, (_, i) => `c${i % 3}`)
      : BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 2));
    return { plan, outputs: { label: { type: strings ? 'string' : 'int64', data, dims: [n] } }, n };
  });
  const regression = fc.tuple(rows, fc.constantFrom(1, 3)).chain(([n, targets]) =>
    fc.array(probability, { minLength: n * targets, maxLength: n * targets }).map((values) => {
      const plan: OutputPlan = {
        task: 'regression',
        label: undefined,
        probabilities: undefined,
        value: 'v',
        classes: undefined,
      };
      const dims = targets === 1 ? [n, 1] : [n, targets];
      return { plan, outputs: { v: { type: 'float32', data: Float32Array.from(values), dims } }, n };
    }),
  );
  return fc
    .oneof({ weight: 4, arbitrary: classification }, labelOnly, regression)
    .chain(({ plan, outputs, n }) =>
      fc.record({
        plan: fc.constant(plan),
        outputs: fc.constant(outputs),
        ids: fc.array(ID, { minLength: n, maxLength: n }),
        passThrough: fc.array(
          pass
            ? fc
                .tuple(fc.oneof(fc.string(), fc.constant(null)), fc.oneof(fc.integer(), fc.constant('x,"y"')))
                .map((values): unknown[] => values)
            : fc.constant<unknown[]>([]),
          { minLength: n, maxLength: n },
        ),
      }),
    );
}

/** A batch holding the ids the way the fast path does (plain bytes) or the general path (strings). */
function batchOf(c: Case, asBytes: boolean): FeedBatch {
  const manifest = manifestFor('regression');
  const plans = [planInput(manifest, { name: 'x', type: 'float32', features: ['x'] }, 2)];
  const batch = new FeedBatch(plans, c.ids.length, stringDictionaries(manifest, plans));
  c.ids.forEach((id, i) => {
    const bytes = Buffer.from(id, 'latin1');
    if (asBytes && /^[\x20-\x7e]*$/.test(id) && id !== '')
      batch.commitBytes(bytes, 0, bytes.length, i + 1, c.passThrough[i]!);
    else batch.commit(id, i + 1, c.passThrough[i]!);
  });
  return batch;
}

function text(value: string | Uint8Array): string {
  return typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
}

describe('OutputEncoder.encodeOutputs', () => {
  for (const format of ['jsonl', 'csv'] as const) {
    for (const pass of [false, true]) {
      it(`writes what encode() writes over decodePredictions (${format}${pass ? ', pass-through' : ''})`, () => {
        fc.assert(
          fc.property(caseArbitrary(pass), fc.boolean(), fc.boolean(), (c, asBytes, header) => {
            const model = { manifest: manifestFor(c.plan.task), classes: c.plan.classes };
            const columns = pass ? PASS : [];
            const fast = new OutputEncoder(format, model, columns);
            const reference = new OutputEncoder(format, model, columns);
            const predictions = decodePredictions(c.plan, c.outputs as never, c.ids.length);
            const expected = reference.encode(
              c.ids.map((id, i) => ({ id, record: { row: i + 1, passThrough: c.passThrough[i]! } })),
              predictions,
              header,
            );
            // Twice: the encoder keeps compiled state between batches.
            const batch = batchOf(c, asBytes);
            expect(text(fast.encodeOutputs(batch, c.outputs, c.plan, header))).toBe(expected);
            expect(text(fast.encodeOutputs(batch, c.outputs, c.plan, header))).toBe(expected);
          }),
          { numRuns: 400 },
        );
      });
    }
  }

  it.each([
    ['=1+1', '"\'=1+1"'],
    ['+cmd', '"\'+cmd"'],
    ['-2+3', '"\'-2+3"'],
    ['@SUM(A1)', '"\'@SUM(A1)"'],
    ['\tx', '"\'\tx"'],
    ['\rx', '"\'\rx"'],
    ['=a"b', '"\'=a""b"'],
    ['-1.5', '-1.5'],
    ['+7', '+7'],
    ['1e-9', '1e-9'],
    ['plain', 'plain'],
  ])('neutralizes the CSV id %j as %s by default, and writes it raw on request', (id, expected) => {
    const c: Case = {
      plan: {
        task: 'regression',
        label: undefined,
        probabilities: undefined,
        value: 'v',
        classes: undefined,
      },
      outputs: { v: { type: 'float32', data: Float32Array.from([0.5]), dims: [1, 1] } },
      ids: [id],
      passThrough: [[id, -1.5]],
    };
    const model = { manifest: manifestFor('regression'), classes: undefined };
    for (const asBytes of [false, true]) {
      const line = text(
        new OutputEncoder('csv', model, PASS).encodeOutputs(batchOf(c, asBytes), c.outputs, c.plan, false),
      );
      expect(line).toBe(`${expected},1,0.5,${expected},-1.5\n`);
      const raw = text(
        new OutputEncoder('csv', model, PASS, { csvFormulas: 'raw' }).encodeOutputs(
          batchOf(c, asBytes),
          c.outputs,
          c.plan,
          false,
        ),
      );
      expect(raw.startsWith(/[\r"]/.test(id) ? '"' : id)).toBe(true);
    }
  });

  it('reports a probabilities tensor that does not match the classes as decodePredictions does', () => {
    const plan: OutputPlan = {
      task: 'multiclass-classification',
      label: undefined,
      probabilities: 'p',
      value: undefined,
      classes: ['a', 'b', 'c'],
    };
    const outputs = { p: { type: 'float32', data: new Float32Array(4), dims: [2, 2] } };
    const encoder = new OutputEncoder(
      'jsonl',
      { manifest: manifestFor('multiclass-classification'), classes: plan.classes },
      [],
    );
    const batch = batchOf({ plan, outputs, ids: ['a', 'b'], passThrough: [[], []] }, true);
    expect(() => encoder.encodeOutputs(batch, outputs, plan, false)).toThrow(
      /has 2 columns but the model has 3 classes/,
    );
  });
});
