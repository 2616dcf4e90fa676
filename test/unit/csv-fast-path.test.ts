/**
 * The CSV fast path against the general path (CsvSpan.row + FeatureValidator.fromText, as the chunk
 * scorer runs it): over random records, good and bad, the fast path only ever accepts a record the general
 * path accepts, and then fills exactly the same tensor values, id, row number and pass-through values. So
 * the accept / reject decisions and reasons are the general path's.
 */
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { CsvFastPath, booleanAt, decimalAt } from '../../lambdas/core/batch/csv-fast-path.ts';
import {
  FeedBatch,
  stringDictionaries,
  type StringDictionaries,
} from '../../lambdas/core/batch/feed-batch.ts';
import { feedStrings } from '../../lambdas/core/batch/scoring-thread.ts';
import { readCsvSpans, type CsvSpan } from '../../lambdas/core/codecs/csv-reader.ts';
import { FeatureValidator, type FeatureIssue, type FeatureRow } from '../../lambdas/core/features.ts';
import { parseManifest, type Manifest } from '../../lambdas/core/manifest.ts';
import { planInput, type InputPlan } from '../../lambdas/core/tensors.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

/** Every kind of feature the validator knows, fed to every kind of input. */
const wide = parseManifest({
  name: 'wide',
  version: '1',
  task: 'binary-classification',
  idField: 'id',
  features: [
    { name: 'amount', type: 'number', min: -50, max: 1000 },
    { name: 'count', type: 'integer', min: 0, max: 100 },
    { name: 'free', type: 'number' },
    { name: 'opt', type: 'number', required: false },
    { name: 'deflt', type: 'integer', default: 7 },
    { name: 'flag', type: 'boolean' },
    { name: 'optFlag', type: 'boolean', required: false },
    { name: 'defFlag', type: 'boolean', default: true },
    { name: 'color', type: 'category', values: ['red', 'blue', 'grün', 'r'] },
    { name: 'shade', type: 'category', values: ['light', 'dark'], unknown: 'pass', maxLength: 6 },
    { name: 'note', type: 'string', required: false, maxLength: 4 },
    { name: 'coded', type: 'category', values: ['x', 'y', 'z', 'y'] },
    { name: 'tag', type: 'category', default: 'none', values: ['none', 'a', 'b'] },
    { name: 'missing', type: 'number', required: false },
    { name: 'level', type: 'integer', min: -3, max: 5 },
  ],
  inputs: [
    { name: 'f32', type: 'float32', features: ['amount', 'free', 'opt', 'flag', 'coded'] },
    { name: 'f64', type: 'float64', features: ['deflt'] },
    { name: 'i32', type: 'int32', features: ['count', 'optFlag'] },
    { name: 'i64', type: 'int64', features: ['level'] },
    { name: 'b', type: 'bool', features: ['defFlag'] },
    { name: 's', type: 'string', features: ['color', 'shade', 'note', 'tag'] },
    { name: 'rest', type: 'float32', features: ['missing'] },
  ],
  outputs: { probabilities: 'p' },
});
/** The header: every feature but `missing`, the id, a pass-through column, in a mixed order. */
const WIDE_HEADER = [
  'color',
  'id',
  'amount',
  'count',
  'free',
  'opt',
  'extra',
  'deflt',
  'flag',
  'optFlag',
  'defFlag',
  'shade',
  'note',
  'coded',
  'tag',
  'level',
];

const demo = parseManifest(
  JSON.parse(readFileSync(path.join(REPO, 'models/fraud-detector/1.0.0/manifest.json'), 'utf8')),
);
const DEMO_HEADER = ['transaction_id', ...demo.features.map((f) => f.name)];

function plansOf(manifest: Manifest): InputPlan[] {
  return manifest.inputs!.map((input) => planInput(manifest, input, 2));
}

/** Field texts: valid ones of every shape, and the near misses the general path has to judge. */
const NUMBER_TEXTS = [
  '0',
  '1',
  '-0',
  '+3',
  '12.5',
  '5.',
  '.5',
  '-.25',
  '007',
  '1000',
  '1000.0000001',
  '-50',
  '-50.5',
  '99.99',
  '123456789012345',
  '1234567890123456',
  '0.1000000000000001',
  '1e3',
  '1E-2',
  '2.5e+1',
  ' 5',
  '5 ',
  '1,5',
  'NaN',
  'inf',
  '-Infinity',
  '0x10',
  '.',
  '-',
  '+',
  '',
  '1.2.3',
  '3.0',
  '3.5',
  '101',
];
const BOOLEAN_TEXTS = [
  'true',
  'false',
  'TRUE',
  'False',
  '1',
  '0',
  'yes',
  'No',
  'y',
  'N',
  't',
  'F',
  ' true',
  'true ',
  'ja',
  '2',
  '',
];
const CATEGORY_TEXTS = [
  'red',
  'blue',
  'grün',
  'r',
  'Red',
  'green',
  'light',
  'dark',
  'mid',
  'toolong',
  'none',
  'a',
  'b',
  'x',
  'y',
  'z',
  'ab',
  'abcd',
  'abcde',
  '',
];
const ID_TEXTS = ['t-1', 'id 2', 'x"y', 'a\\b', 'semi;colon', '', '007'];

/** A value the feature takes (or the id), as text. */
function validArbitrary(name: string, manifest: Manifest): fc.Arbitrary<string> {
  if (name === manifest.idField) return fc.stringMatching(/^[a-z0-9-]{1,12}$/);
  const spec = manifest.features.find((f) => f.name === name);
  if (!spec) return fc.constantFrom('x', '');
  if (spec.type === 'boolean') return fc.constantFrom('true', 'false', '1', '0');
  if (spec.type === 'number' || spec.type === 'integer') {
    const min = spec.min ?? -1e6;
    const max = spec.max ?? 1e6;
    return spec.type === 'integer'
      ? fc.integer({ min: Math.ceil(min), max: Math.floor(max) }).map(String)
      : fc.double({ min, max, noNaN: true }).map((v) => (Math.abs(v) < 1e-6 ? '0' : v.toFixed(4)));
  }
  return fc.constantFrom(...('values' in spec && spec.values ? spec.values : ['v']));
}

/** Values on and just past a numeric feature's bounds, halves for integers; case changes for the rest. */
function edgeArbitrary(name: string, manifest: Manifest): fc.Arbitrary<string> {
  const spec = manifest.features.find((f) => f.name === name);
  if (!spec || (spec.type !== 'number' && spec.type !== 'integer')) {
    return validArbitrary(name, manifest).map((v) => (v === v.toUpperCase() ? ` ${v}` : v.toUpperCase()));
  }
  const edges = [spec.min, spec.max].flatMap((b) =>
    b === undefined ? [] : [b, b - 1, b + 1, b - 0.5, b + 0.5, b - 1e-9, b + 1e-9],
  );
  return fc.constantFrom(...edges, 0.5, -0.5, 2.5).map((v) => String(v));
}

function fieldArbitrary(name: string, manifest: Manifest): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 20, arbitrary: validArbitrary(name, manifest) },
    { weight: 2, arbitrary: edgeArbitrary(name, manifest) },
    { weight: 1, arbitrary: anyField(name, manifest) },
  );
}

/** Near misses and noise, as well as valid values. */
function anyField(name: string, manifest: Manifest): fc.Arbitrary<string> {
  if (name === manifest.idField)
    return fc.oneof(fc.constantFrom(...ID_TEXTS), fc.stringMatching(/^[a-z0-9-]{1,12}$/));
  const spec = manifest.features.find((f) => f.name === name);
  const noise = fc.string({ maxLength: 6 }).filter((s) => !/[",\r\n]/.test(s));
  if (!spec) return fc.oneof(fc.constantFrom('x', ''), noise);
  if (spec.type === 'boolean')
    return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...BOOLEAN_TEXTS) }, noise);
  if (spec.type === 'number' || spec.type === 'integer') {
    return fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...NUMBER_TEXTS) },
      { weight: 4, arbitrary: fc.double({ min: -100, max: 1100, noNaN: true }).map(String) },
      { weight: 2, arbitrary: fc.integer({ min: -10, max: 120 }).map(String) },
      { weight: 1, arbitrary: fc.tuple(fc.nat(99999), fc.nat(999)).map(([a, b]) => `${a}.${b}`) },
      { weight: 1, arbitrary: noise },
    );
  }
  return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...CATEGORY_TEXTS) }, noise);
}

/** A record's fields; sometimes one too many or too few (ragged). */
function recordArbitrary(header: readonly string[], manifest: Manifest): fc.Arbitrary<string[]> {
  const fields = fc.tuple(...header.map((name) => fieldArbitrary(name, manifest)));
  return fc.oneof(
    { weight: 12, arbitrary: fields },
    { weight: 1, arbitrary: fields.map((f) => [...f, 'extra']) },
    { weight: 1, arbitrary: fields.map((f) => f.slice(0, -1)) },
  );
}

/** The records as spans of one record each (so that one non-ASCII record does not hide the others). */
async function* spansOf(records: readonly string[]): AsyncGenerator<CsvSpan> {
  async function* pieces() {
    for (const record of records) yield Buffer.from(record, 'utf8');
  }
  yield* readCsvSpans(pieces(), { delimiter: ',', firstRow: 1, firstLine: 2, batchBytes: 1 });
}

/** The general path's decision for a CSV record, as the chunk scorer makes it. */
function general(
  manifest: Manifest,
  validator: FeatureValidator,
  header: readonly string[],
  fields: readonly string[],
): { features: FeatureRow; id: string } | undefined {
  if (fields.length !== header.length) return undefined;
  const issues: FeatureIssue[] = [];
  const features = validator.fromText(
    fields,
    validator.names.map((n) => header.indexOf(n)),
    issues,
  );
  const id = fields[header.indexOf(manifest.idField)] || undefined;
  return features && id !== undefined ? { features, id } : undefined;
}

/** A batch's tensors as plain values: numbers per numeric input, strings per string input. */
function tensorValues(batch: FeedBatch, dictionaries: StringDictionaries): unknown[] {
  return batch
    .feeds()
    .map((feed) =>
      feed.type === 'string'
        ? feedStrings(feed.codes, dictionaries.values[feed.input] ?? [], feed.extras)
        : Array.from(feed.data as ArrayLike<number | bigint>),
    );
}

function checkRecords(
  manifest: Manifest,
  header: readonly string[],
  records: string[][],
  passThrough: string[],
) {
  const validator = new FeatureValidator(manifest);
  const plans = plansOf(manifest);
  const dictionaries = stringDictionaries(manifest, plans);
  const fast = new CsvFastPath(manifest, plans, dictionaries, header, ',', passThrough);
  const passColumns = passThrough.map((c) => header.indexOf(c));
  const lines = records.map((r, i) => `${r.join(',')}${i % 3 === 2 ? '\r\n' : '\n'}`);
  return (async () => {
    let accepted = 0;
    for await (const span of spansOf(lines)) {
      for (let k = 0; k < span.count; k++) {
        const fastBatch = new FeedBatch(plans, 1, dictionaries);
        const took = span.isAscii && span.plain[k] === 1 && fast.tryFill(span, k, fastBatch);
        const row = span.row(k);
        const reference =
          row.error === undefined ? general(manifest, validator, header, row.fields) : undefined;
        if (!took) continue;
        accepted++;
        expectWithMessage(
          reference,
          `fast path accepted row ${row.row} (${row.fields.join(',')}) that the general path rejects`,
        ).toBeDefined();
        const generalBatch = new FeedBatch(plans, 1, dictionaries);
        generalBatch.addFeatureRow(
          reference!.features,
          reference!.id,
          row.row,
          passColumns.map((c) => row.fields[c] ?? null),
        );
        // Object.is-based: NaN, -0 and float32 rounding must all match.
        expect(tensorValues(fastBatch, dictionaries)).toEqual(tensorValues(generalBatch, dictionaries));
        expect(fastBatch.id(0)).toBe(reference!.id);
        expect(fastBatch.rows[0]).toBe(row.row);
        expect(fastBatch.passThrough[0]).toEqual(generalBatch.passThrough[0]);
      }
    }
    return accepted;
  })();
}

describe('CsvFastPath', () => {
  it('accepts only what the general path accepts, with the same tensor values (every feature and input kind)', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(recordArbitrary(WIDE_HEADER, wide), { minLength: 1, maxLength: 30 }),
        async (records) => {
          accepted += await checkRecords(wide, WIDE_HEADER, records, ['extra', 'note', 'id']);
        },
      ),
      { numRuns: 500 },
    );
    // Not vacuous: plenty of records took the fast path.
    expect(accepted).toBeGreaterThan(100);
  });

  it('accepts only what the general path accepts on the demo schema, and takes every canonical row', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(recordArbitrary(DEMO_HEADER, demo), { minLength: 1, maxLength: 30 }),
        async (records) => {
          await checkRecords(demo, DEMO_HEADER, records, []);
        },
      ),
      { numRuns: 200 },
    );
    const [header, ...rows] = readFileSync(
      path.join(REPO, 'models/fraud-detector/demo-transactions.csv'),
      'utf8',
    )
      .trim()
      .split('\n')
      .map((line) => line.split(','));
    expect(header).toEqual(DEMO_HEADER);
    expect(await checkRecords(demo, DEMO_HEADER, rows, [])).toBe(rows.length);
  });

  it('leaves quoted records and non-ASCII spans to the general path', async () => {
    const good = readFileSync(path.join(REPO, 'models/fraud-detector/demo-transactions.csv'), 'utf8').split(
      '\n',
    )[1]!;
    const [id, ...rest] = good.split(',');
    const category = DEMO_HEADER.indexOf('merchant_category');
    const accented = good.split(',').map((f, i) => (i === category ? 'grocéry' : f));
    const records = [`${good}\r\n`, `"${id}",${rest.join(',')}\n`, `${accented.join(',')}\n`];
    const flags: [boolean, number][] = [];
    for await (const span of spansOf(records)) flags.push([span.isAscii, span.plain[0]!]);
    // The chunk scorer only offers ASCII spans' plain records to the fast path.
    expect(flags).toEqual([
      [true, 1],
      [true, 0],
      [false, 1],
    ]);
    expect(
      await checkRecords(
        demo,
        DEMO_HEADER,
        records.map((r) => r.trimEnd().split(',')),
        [],
      ),
    ).toBe(1);
  });

  it('reads decimals exactly as Number() does, and leaves anything else to the general path', () => {
    const bytes = (text: string) => Buffer.from(text, 'latin1');
    fc.assert(
      fc.property(
        fc.oneof(
          fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
          fc.tuple(fc.integer({ min: -1e9, max: 1e9 }), fc.nat(99999999)).map(([a, b]) => `${a}.${b}`),
          fc.stringMatching(/^[+-]?[0-9]{0,16}(\.[0-9]{0,16})?$/),
          fc.string({ maxLength: 8 }),
        ),
        (text) => {
          const value = decimalAt(bytes(text), 0, text.length);
          if (!Number.isNaN(value)) {
            expect(/^[+-]?(?:\d+\.?\d*|\.\d+)$/.test(text)).toBe(true);
            expect(Object.is(value, Number(text))).toBe(true);
          }
        },
      ),
      { numRuns: 20_000 },
    );
    expect(decimalAt(bytes('123456789012345'), 0, 15)).toBe(123456789012345);
    expect(decimalAt(bytes('1234567890123456'), 0, 16)).toBeNaN();
    expect(Object.is(decimalAt(bytes('-0'), 0, 2), -0)).toBe(true);
  });

  it('reads the boolean tokens the validator knows, in any case, and nothing else', () => {
    const bytes = (text: string) => Buffer.from(text, 'latin1');
    for (const [text, value] of [
      ['true', 1],
      ['TRUE', 1],
      ['Yes', 1],
      ['y', 1],
      ['T', 1],
      ['1', 1],
      ['false', 0],
      ['No', 0],
      ['n', 0],
      ['f', 0],
      ['0', 0],
      [' true', -1],
      ['tru', -1],
      ['2', -1],
      ['yess', -1],
      ['', -1],
    ] as const) {
      expectWithMessage(booleanAt(bytes(text), 0, text.length), text).toBe(value);
    }
  });
});
