import { describe, expect, it } from '@jest/globals';
import {
  jsonElementFieldSources,
  jsonValueSource,
  MAX_ENTITY_ID_LENGTH,
  parseEntityId,
  parseJsonEntityId,
} from '../../lambdas/core/entity-id.ts';

/** The id of `{"id": <text>}` as the JSON lanes read it. */
function idOfJson(valueText: string) {
  const json = `{"id": ${valueText}}`;
  return parseJsonEntityId((JSON.parse(json) as { id: unknown }).id, json, ['id']);
}

describe('parseEntityId', () => {
  it.each([
    ['t-1', 't-1'],
    [' padded ', ' padded '],
    ['ünïcödé-😀', 'ünïcödé-😀'],
    ['x'.repeat(MAX_ENTITY_ID_LENGTH), 'x'.repeat(MAX_ENTITY_ID_LENGTH)],
  ])('keeps the string %j as it is', (value, id) => {
    expect(parseEntityId(value)).toEqual({ id });
  });

  it.each([
    ['', /non-empty string/],
    ['x'.repeat(MAX_ENTITY_ID_LENGTH + 1), /^must be at most 256 characters, got 257$/],
    ['a\uD800', /unpaired surrogate/],
    ['\uDC00b', /unpaired surrogate/],
  ])('rejects the string %j', (value, problem) => {
    const result = parseEntityId(value);
    expect(result.id).toBeUndefined();
    expect(result.problem).toMatch(problem);
  });

  it('counts characters (code points): a character outside the BMP is one', () => {
    expect(parseEntityId('😀'.repeat(256)).id).toBe('😀'.repeat(256));
    expect(parseEntityId('😀'.repeat(257)).problem).toMatch(/got 257$/);
  });

  it('treats undefined and null as no id, without a problem', () => {
    expect(parseEntityId(undefined)).toEqual({ id: undefined });
    expect(parseEntityId(null)).toEqual({ id: undefined });
  });

  it.each([
    [true, /got true/],
    [{ a: 1 }, /got an object/],
    [[1], /got an array/],
  ])('rejects %j as neither a string nor an integer', (value, problem) => {
    expect(parseEntityId(value).problem).toMatch(problem);
  });

  it('takes a number without source text only when a double holds it exactly', () => {
    expect(parseEntityId(42).id).toBe('42');
    expect(parseEntityId(-7).id).toBe('-7');
    expect(parseEntityId(Number.MAX_SAFE_INTEGER).id).toBe('9007199254740991');
    expect(parseEntityId(2 ** 53).problem).toMatch(/got 9007199254740992/);
    expect(parseEntityId(1.5).problem).toMatch(/plain digits .*got 1\.5/);
    expect(parseEntityId(-0).problem).toMatch(/got -0/);
    expect(parseEntityId(Number.NaN).problem).toMatch(/got NaN/);
  });

  it('keeps a bigint (Parquet INT64) as its exact digits', () => {
    expect(parseEntityId(12345678901234567890n).id).toBe('12345678901234567890');
    expect(parseEntityId(-9223372036854775808n).id).toBe('-9223372036854775808');
  });
});

describe('parseJsonEntityId', () => {
  it('takes an integer from its source text, so neighbours beyond 2^53 never merge', () => {
    const a = idOfJson('12345678901234567890');
    const b = idOfJson('12345678901234567891');
    expect(a).toEqual({ id: '12345678901234567890' });
    expect(b).toEqual({ id: '12345678901234567891' });
    expect(idOfJson('-42')).toEqual({ id: '-42' });
    expect(idOfJson('0')).toEqual({ id: '0' });
  });

  it.each(['-0', '1.5', '1.0', '1e21', '1E2', '-0.0', '9007199254740993.4'])(
    'rejects the number %s, telling to send it as a string',
    (text) => {
      const result = idOfJson(text);
      expect(result.id).toBeUndefined();
      expect(result.problem).toContain(`got ${text}: send "${text}" as a string`);
    },
  );

  it('rejects an integer longer than an id may be', () => {
    expect(idOfJson('9'.repeat(257)).problem).toMatch(/at most 256 characters, got 257/);
  });

  it('reads a string id like any string (escapes decoded, lone surrogates rejected)', () => {
    expect(idOfJson('"t\\u00e9"')).toEqual({ id: 'té' });
    expect(idOfJson('"12345678901234567890"')).toEqual({ id: '12345678901234567890' });
    expect(idOfJson('"txn-\\ud800"').problem).toMatch(/unpaired surrogate/);
  });
});

describe('jsonValueSource', () => {
  it('finds a value by keys and indexes, skipping strings, nesting and whitespace', () => {
    const json =
      ' { "a" : {"id": "}]", "x": [1, {"id": 2}]}, "instances" :[ {"id":7}, { "features": {"id": 9}, "id" : 1e3 } ] } ';
    expect(jsonValueSource(json, ['instances', 1, 'id'])).toBe('1e3');
    expect(jsonValueSource(json, ['instances', 0, 'id'])).toBe('7');
    expect(jsonValueSource(json, ['a', 'x', 1, 'id'])).toBe('2');
    expect(jsonValueSource(json, ['a', 'id'])).toBe('"}]"');
    expect(jsonValueSource(json, ['instances', 2, 'id'])).toBeUndefined();
    expect(jsonValueSource(json, ['missing'])).toBeUndefined();
  });

  it('takes the last of duplicate keys, as JSON.parse does', () => {
    const json = '{"id": 1, "id": -0}';
    expect((JSON.parse(json) as { id: number }).id).toBe(-0);
    expect(jsonValueSource(json, ['id'])).toBe('-0');
  });

  it('matches keys by their decoded text', () => {
    expect(jsonValueSource('{"\\u0069d": 5, "i\\"d": 6}', ['id'])).toBe('5');
    expect(jsonValueSource('{"a\\\\": 5, "id": 6}', ['id'])).toBe('6');
  });

  it('stops at the end of a text that is not JSON instead of running on', () => {
    expect(jsonValueSource('{"id": "open', ['id'])).toBe('"open');
    expect(jsonValueSource('{"a": [1, 2', ['id'])).toBeUndefined();
    expect(jsonValueSource('', ['id'])).toBeUndefined();
  });
});

describe('jsonElementFieldSources', () => {
  it("gives each element's field text in one pass, undefined where an element has none", () => {
    const json =
      '{"instances": [{"id": 1}, {"features": {"id": 5}}, 7, {"id": "x", "id": -0}, [], {"id":12345678901234567890}]}';
    expect(jsonElementFieldSources(json, ['instances'], 'id')).toEqual([
      '1',
      undefined,
      undefined,
      '-0',
      undefined,
      '12345678901234567890',
    ]);
  });

  it('gives nothing when the path is not an array', () => {
    expect(jsonElementFieldSources('{"instances": {"id": 1}}', ['instances'], 'id')).toEqual([]);
    expect(jsonElementFieldSources('{}', ['instances'], 'id')).toEqual([]);
  });
});
