/** The event pattern matcher the deployed tier checks uploads against the stack's rule with. */
import { describe, expect, it } from '@jest/globals';
import { matchesPattern } from './support/event-pattern.ts';

const upload = (key: string, bucket = 'data') => ({
  source: 'aws.s3',
  'detail-type': 'Object Created',
  detail: { bucket: { name: bucket }, object: { key, size: 10 } },
});

describe('matchesPattern', () => {
  const rule = {
    source: ['aws.s3'],
    'detail-type': ['Object Created'],
    detail: { bucket: { name: ['data'] }, object: { key: [{ prefix: 'incoming/' }] } },
  };

  it('matches exact values and a prefix, field by field', () => {
    expect(matchesPattern(upload('incoming/m/a.csv'), rule)).toBe(true);
    expect(matchesPattern(upload('results/m/a.csv'), rule)).toBe(false);
    expect(matchesPattern(upload('incoming/m/a.csv', 'other'), rule)).toBe(false);
    expect(matchesPattern({ ...upload('incoming/m/a.csv'), source: 'aws.ec2' }, rule)).toBe(false);
  });

  it.each([
    [{ suffix: '.csv' }, 'incoming/m/a.csv', true],
    [{ suffix: '.csv' }, 'incoming/m/a.txt', false],
    [{ 'anything-but': { suffix: '.txt' } }, 'incoming/m/a.csv', true],
    [{ 'anything-but': { suffix: '.txt' } }, 'incoming/m/a.txt', false],
    [{ 'anything-but': ['incoming/m/a.csv'] }, 'incoming/m/a.csv', false],
    [{ wildcard: 'incoming/*/*.parquet' }, 'incoming/m/a.parquet', true],
    [{ wildcard: 'incoming/*/*.parquet' }, 'incoming/m/a.csv', false],
    [{ 'equals-ignore-case': 'INCOMING/M/A.CSV' }, 'incoming/m/a.csv', true],
  ])('%j on %s: %s', (condition, key, expected) => {
    const pattern = { detail: { object: { key: [condition] } } };
    expect(matchesPattern(upload(key), pattern)).toBe(expected);
  });

  it('matches numbers, existence and $or', () => {
    expect(
      matchesPattern(upload('a'), { detail: { object: { size: [{ numeric: ['>', 0, '<=', 10] }] } } }),
    ).toBe(true);
    expect(matchesPattern(upload('a'), { detail: { object: { size: [{ numeric: ['>', 10] }] } } })).toBe(
      false,
    );
    expect(matchesPattern(upload('a'), { detail: { object: { etag: [{ exists: false }] } } })).toBe(true);
    expect(
      matchesPattern(upload('a.csv'), {
        detail: { object: { $or: [{ key: [{ suffix: '.csv' }] }, { key: [{ suffix: '.jsonl' }] }] } },
      }),
    ).toBe(true);
  });

  it('refuses an operator it does not know instead of guessing', () => {
    expect(() =>
      matchesPattern(upload('a'), { detail: { object: { key: [{ cidr: '10.0.0.0/24' }] } } }),
    ).toThrow(/cidr is not supported/);
  });
});
