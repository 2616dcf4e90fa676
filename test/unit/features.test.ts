import fc from 'fast-check';
import { describe, expect, it } from '@jest/globals';
import { FeatureValidator, type FeatureIssue } from '../../lambdas/core/features.ts';
import { parseManifest } from '../../lambdas/core/manifest.ts';
import { ValidationError } from '../../lambdas/core/errors.ts';
import { validateFeatureObjects } from '../../lambdas/core/features.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const manifest = parseManifest({
  name: 'm',
  version: '1',
  task: 'regression',
  idField: 'id',
  features: [
    { name: 'amount', type: 'number', min: 0, max: 1000 },
    { name: 'count', type: 'integer', min: 0 },
    { name: 'flag', type: 'boolean', default: false },
    { name: 'color', type: 'category', values: ['red', 'blue'] },
    { name: 'note', type: 'string', required: false, maxLength: 5 },
    { name: 'score', type: 'number', required: false },
  ],
  inputs: [
    { name: 'num', type: 'float32', features: ['amount', 'count', 'flag', 'color', 'score'] },
    { name: 'note', type: 'string', features: ['note'] },
  ],
  outputs: { value: 'v' },
});
const validator = new FeatureValidator(manifest);

function check(features: unknown): { row: unknown; issues: FeatureIssue[] } {
  const issues: FeatureIssue[] = [];
  return { row: validator.fromObject(features, issues), issues };
}

describe('FeatureValidator.fromObject', () => {
  it('returns values in manifest order with defaults and NaN / "" for optional missing features', () => {
    const { row, issues } = check({ amount: 12.5, count: 3, color: 'blue' });
    expect(issues).toEqual([]);
    expect(row).toEqual([12.5, 3, 0, 'blue', '', NaN]);
  });

  it('treats null as missing', () => {
    const { row } = check({ amount: 1, count: 0, color: 'red', flag: null, score: null });
    expect(row).toEqual([1, 0, 0, 'red', '', NaN]);
  });

  it('names each bad field with the reason', () => {
    const { row, issues } = check({
      amount: '12',
      count: 1.5,
      flag: 'yes',
      color: 'green',
      note: 'toolong',
      extra: 1,
    });
    expect(row).toBeUndefined();
    expect(issues).toEqual([
      { field: 'features.extra', message: 'is not a feature of this model' },
      { field: 'features.amount', message: 'must be a number, got a string "12"' },
      { field: 'features.count', message: 'must be an integer, got 1.5' },
      { field: 'features.flag', message: 'must be a boolean (true or false), got "yes"' },
      { field: 'features.color', message: 'unknown category "green"; expected one of: red, blue' },
      { field: 'features.note', message: 'must be at most 5 characters, got 7' },
    ]);
  });

  it('rejects values outside the bounds and missing required features', () => {
    const { issues } = check({ amount: -1, count: -2 });
    expect(issues.map((i) => `${i.field} ${i.message}`)).toEqual([
      'features.amount must be >= 0, got -1',
      'features.count must be >= 0, got -2',
      'features.color is required',
    ]);
    expect(check({ amount: 1001, count: 0, color: 'red' }).issues[0]?.message).toBe(
      'must be <= 1000, got 1001',
    );
  });

  it('rejects non-finite numbers (JSON cannot carry NaN, but 1e999 parses to Infinity)', () => {
    const { issues } = check(JSON.parse('{"amount": 1e999, "count": 0, "color": "red"}'));
    expect(issues).toEqual([{ field: 'features.amount', message: 'must be a finite number, got Infinity' }]);
  });

  it('rejects a features value that is not an object', () => {
    expect(check([1, 2]).issues).toEqual([
      { field: 'features', message: 'must be an object of feature values, got an array' },
    ]);
  });

  it('does not let __proto__ keys pollute or pass as features', () => {
    const { issues } = check(JSON.parse('{"__proto__": {"amount": 5}, "count": 0, "color": "red"}'));
    expect(issues.map((i) => i.field)).toEqual(['features.__proto__', 'features.amount']);
    expect(({} as Record<string, unknown>)['amount']).toBeUndefined();
  });
});

describe('FeatureValidator.fromObject, any object', () => {
  // An independent statement of the test manifest's rules: [valid values, invalid values, fallback].
  const rules: Record<string, { valid: unknown[]; invalid: unknown[]; fallback?: number | string }> = {
    amount: { valid: [0, 12.5, 1000], invalid: [-1, 1000.5, '12', true, Infinity, {}] },
    count: { valid: [0, 3, 1e6], invalid: [1.5, -2, '3', false] },
    flag: { valid: [true, false], invalid: ['yes', 1, 0, []], fallback: 0 },
    color: { valid: ['red', 'blue'], invalid: ['green', 'RED', 3, ''] },
    note: { valid: ['', 'abc', 'abcde'], invalid: ['abcdef', 5, false], fallback: '' },
    score: { valid: [-3, 0.25, 1e9], invalid: ['x', NaN, -Infinity], fallback: NaN },
  };
  const names = Object.keys(rules);
  const entry = (name: string) =>
    fc.oneof(
      fc.constant(undefined), // absent
      fc.constant(null), // missing
      fc.constantFrom(...rules[name]!.valid),
      fc.constantFrom(...rules[name]!.invalid),
    );
  const objects = fc.record({
    values: fc.tuple(...names.map(entry)),
    order: fc.shuffledSubarray(names, { minLength: names.length, maxLength: names.length }),
    unknown: fc.option(fc.constantFrom('amout', 'Color', 'extra'), { nil: undefined }),
  });

  it('returns the row exactly when every rule holds, and names a problem otherwise', () => {
    fc.assert(
      fc.property(objects, ({ values, order, unknown }) => {
        const record: Record<string, unknown> = {};
        for (const name of order) {
          const value = values[names.indexOf(name)];
          if (value !== undefined) record[name] = value;
        }
        if (unknown) record[unknown] = 1;
        let valid = unknown === undefined;
        const expected = names.map((name, i) => {
          const value = values[i];
          const rule = rules[name]!;
          if (value === undefined || value === null) {
            if (rule.fallback === undefined) valid = false;
            return rule.fallback;
          }
          if (!rule.valid.includes(value)) valid = false;
          return typeof value === 'boolean' ? Number(value) : value;
        });
        const { row, issues } = check(record);
        if (valid) {
          expect(issues).toEqual([]);
          expect(row).toEqual(expected);
        } else {
          expect(row).toBeUndefined();
          expect(issues.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('FeatureValidator.fromText', () => {
  it('parses numbers and booleans from text and maps columns', () => {
    const issues: FeatureIssue[] = [];
    const fields = ['id-1', 'blue', '7', '3.25', 'TRUE', '', ''];
    const row = validator.fromText(fields, [3, 2, 4, 1, 5, 6], issues);
    expect(issues).toEqual([]);
    expect(row).toEqual([3.25, 7, 1, 'blue', '', NaN]);
  });

  it('rejects text that is not a number, including hex, NaN and Infinity', () => {
    for (const text of ['0x10', 'abc', 'NaN', 'Infinity', '1,5']) {
      const issues: FeatureIssue[] = [];
      validator.fromText([text, '1', 'red'], [0, 1, -1, 2, -1, -1], issues);
      expectWithMessage(issues[0]?.field, text).toBe('amount');
    }
  });
});

describe('validateFeatureObjects', () => {
  it('throws one ValidationError naming instance and field', () => {
    const attempt = () =>
      validateFeatureObjects(
        validator,
        [
          { index: 0, features: { amount: 1, count: 1, color: 'red' } },
          { index: 3, features: { amount: 1, count: 1 } },
        ],
        false,
      );
    expect(attempt).toThrow(ValidationError);
    try {
      attempt();
    } catch (error) {
      expect((error as ValidationError).code).toBe('INVALID_FEATURES');
      expect((error as ValidationError).details).toEqual([
        { instance: 3, field: 'instances.3.features.color', message: 'is required' },
      ]);
    }
  });
});
