/**
 * The `schedules` setting's validator: a catalogue of bad entries, each refused with a message naming the
 * entry and the field; the prefix normalised; the refresh sources of a model; the run input a schedule
 * starts (the same as `tandem runs start --prefix`).
 */
import { describe, expect, it } from '@jest/globals';
import {
  OUTPUT_PREFIXES,
  parseSchedules,
  scheduledPrefixes,
  scheduledRunId,
  scheduledRunInput,
} from '../../lambdas/core/batch/schedules.ts';
import { startFolderRun } from '../../lambdas/core/batch/trigger.ts';
import type { RunInput } from '../../lambdas/core/batch/contracts.ts';
import { scheduleRows } from '../../local/cli/schedules-cli.ts';

const good = { model: 'fraud-detector', prefix: 'warehouse/daily/', expression: 'cron(0 6 * * ? *)' };

function problemsOf(raw: unknown): readonly string[] {
  const parsed = parseSchedules(raw);
  return parsed.ok ? [] : parsed.problems;
}

describe('schedules: the catalogue of bad entries', () => {
  it.each([
    ['not a list', { schedules: good }, /^schedules: expected a JSON list of schedules/],
    [
      'an entry that is not an object',
      ['daily'],
      /^schedules\[0\]: expected an object \{"model", "prefix", "expression", "options"\?\}$/,
    ],
    ['a missing model', [{ prefix: 'a/', expression: 'rate(1 day)' }], /^schedules\[0\] \(a\/\) model: /],
    ['a missing expression', [{ model: 'm', prefix: 'a/' }], /^schedules\[0\] \(m a\/\) expression: /],
    ['a number as prefix', [{ ...good, prefix: 7 }], /^schedules\[0\] \(fraud-detector\) prefix: /],
    [
      'an unknown field',
      [{ ...good, cron: 'x' }],
      /^schedules\[0\] \(fraud-detector warehouse\/daily\/\): unknown field\(s\) cron; a schedule has model, prefix, expression and options$/,
    ],
    [
      'options not an object',
      [{ ...good, options: 'csv' }],
      /^schedules\[0\] \(fraud-detector warehouse\/daily\/\) options: /,
    ],
    [
      'an invalid model name',
      [{ ...good, model: 'fraud/detector' }],
      /model: "fraud\/detector" is not a model name/,
    ],
    ['an empty model name', [{ ...good, model: '' }], /model: "" is not a model name/],
    ['an empty prefix', [{ ...good, prefix: '' }], /prefix: is empty: name a folder/],
    ['the bucket root', [{ ...good, prefix: '/' }], /prefix: is empty/],
    [
      'a leading "/"',
      [{ ...good, prefix: '/warehouse/daily/' }],
      /prefix: "\/warehouse\/daily\/" starts with "\/"/,
    ],
    [
      'a ".." folder',
      [{ ...good, prefix: 'warehouse/../results/' }],
      /prefix: .* has a "\." or "\.\." folder/,
    ],
    ['a "." folder', [{ ...good, prefix: './warehouse/' }], /prefix: .* has a "\." or "\.\." folder/],
    ['an empty folder', [{ ...good, prefix: 'warehouse//daily/' }], /prefix: .* has an empty folder/],
    [
      'an IAM wildcard',
      [{ ...good, prefix: 'warehouse/*/' }],
      /prefix: .* holds "\*", "\?" or a control character/,
    ],
    ['a control character', [{ ...good, prefix: 'ware\nhouse/' }], /prefix: .* control character/],
    ['surrounding blanks', [{ ...good, prefix: ' warehouse/' }], /prefix: has surrounding blanks/],
    ['too long', [{ ...good, prefix: `${'a'.repeat(600)}/` }], /prefix: is longer than 512/],
    ...OUTPUT_PREFIXES.map(
      (p) =>
        [
          `under ${p}`,
          [{ ...good, prefix: `${p}x/` }],
          new RegExp(`prefix: "${p}x/" is under ${p}, which the stack writes`),
        ] as const,
    ),
    [
      'an output prefix without its "/"',
      [{ ...good, prefix: 'results' }],
      /prefix: "results" is under results\//,
    ],
    [
      'an invalid expression',
      [{ ...good, expression: 'cron(0 6 * * *)' }],
      /expression: "cron\(0 6 \* \* \*\)": a cron expression has 6 fields/,
    ],
    [
      'an at() expression',
      [{ ...good, expression: 'at(2027-01-01T00:00:00)' }],
      /expression: .* is neither cron/,
    ],
    [
      'an unknown option',
      [{ ...good, options: { chunksize: 1024 } }],
      /options: unknown option\(s\) chunksize; known: /,
    ],
    [
      'a bad option value',
      [{ ...good, options: { outputFormat: 'xml' } }],
      /options: outputFormat must be "jsonl" or "csv"$/,
    ],
    [
      'a repeated schedule',
      [good, { ...good, prefix: 'warehouse/daily' }],
      /^schedules\[1\] repeats schedules\[0\] \(fraud-detector:warehouse\/daily\/ cron\(0 6 \* \* \? \*\)\)/,
    ],
  ])('%s', (_what, raw, reason) => {
    expect(problemsOf(raw)).toEqual(expect.arrayContaining([expect.stringMatching(reason)]));
  });

  it('reports every problem of every entry at once, each by its entry', () => {
    const problems = problemsOf([
      good,
      { model: 'a b', prefix: 'results/', expression: 'rate(2 hour)', options: { nope: 1 } },
      { model: 'm', prefix: 'ok/', expression: 'cron(0 6 * * ? *)' },
    ]);
    expect(problems).toHaveLength(4);
    expect(problems.every((p) => p.startsWith('schedules[1] (a b results/) '))).toBe(true);
  });
});

describe('schedules: accepted', () => {
  it('normalises a prefix without its final "/" (as runs start --prefix does) and keeps the options', () => {
    const parsed = parseSchedules([
      {
        model: 'fraud-detector',
        prefix: 'warehouse/daily',
        expression: 'rate(1 hour)',
        options: { outputFormat: 'csv' },
      },
      {
        model: 'fraud-detector',
        prefix: 'incoming/fraud-detector/archive/',
        expression: 'cron(0 6 ? * MON *)',
      },
    ]);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.schedules.map((s) => [s.prefix, s.label, s.options])).toEqual([
      ['warehouse/daily/', 'fraud-detector:warehouse/daily/ rate(1 hour)', { outputFormat: 'csv' }],
      [
        'incoming/fraud-detector/archive/',
        'fraud-detector:incoming/fraud-detector/archive/ cron(0 6 ? * MON *)',
        undefined,
      ],
    ]);
    expect(parseSchedules(undefined)).toEqual({ ok: true, schedules: [] });
    expect(parseSchedules([])).toEqual({ ok: true, schedules: [] });
  });

  it("lists a model's scheduled prefixes (its refresh sources) once each, normalised", () => {
    const schedules = [
      { model: 'fraud-detector', prefix: 'a/daily', expression: 'rate(1 day)' },
      { model: 'churn', prefix: 'b/', expression: 'rate(1 day)' },
      { model: 'fraud-detector', prefix: 'a/daily/', expression: 'cron(0 6 * * ? *)' },
      { model: 'fraud-detector', prefix: 'c/', expression: 'rate(1 hour)' },
    ];
    expect(scheduledPrefixes(schedules, 'fraud-detector')).toEqual(['a/daily/', 'c/']);
    expect(scheduledPrefixes(schedules, 'churn')).toEqual(['b/']);
    expect(scheduledPrefixes(schedules, 'other')).toEqual([]);
  });

  it('starts the input `tandem runs start --prefix` starts, the stack options under its own', async () => {
    const started: RunInput[] = [];
    const starter = {
      start: async (_name: string, input: unknown) => (started.push(input as RunInput), 'started' as const),
    };
    const { runId } = await startFolderRun(
      { bucket: 'b', model: 'fraud-detector', prefix: 'warehouse/daily/', options: { outputFormat: 'csv' } },
      starter,
    );
    const scheduled = scheduledRunInput(
      { model: 'fraud-detector', prefix: 'warehouse/daily/', options: { outputFormat: 'csv' } },
      'b',
      runId,
      { outputFormat: 'jsonl' },
    );
    expect(scheduled).toEqual(started[0]);
    expect(scheduledRunInput({ model: 'm', prefix: 'p/' }, 'b', 'r')).toEqual({
      runId: 'r',
      bucket: 'b',
      key: 'p/',
      model: 'm',
      folder: true,
    });
  });

  it('names scheduled runs within the 80 characters of an execution name', () => {
    const id = scheduledRunId('m'.repeat(128), '<aws.scheduler.execution-id>');
    expect(id).toBe(`${'m'.repeat(40)}-schedule-<aws.scheduler.execution-id>`);
    expect(scheduledRunId('fraud.detector', '0123456789abcdef')).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
  });
});

describe('schedules list', () => {
  const specs = [
    { model: 'm', prefix: 'a/', expression: 'cron(0 6 * * ? *)' },
    { model: 'm', prefix: 'b/', expression: 'rate(6 hours)' },
    { model: 'm', prefix: 'c/', expression: 'cron(0 6 * * ? 2020)' },
  ];
  const now = Date.parse('2026-12-06T04:00:00Z');

  it('locally: every next fire time, a rate counted from when npm start started', () => {
    expect(scheduleRows(specs, now, Date.parse('2026-12-06T03:30:00Z')).map((r) => r.next ?? r.note)).toEqual(
      ['2026-12-06T06:00:00.000Z', '2026-12-06T09:30:00.000Z', 'fires no more'],
    );
  });

  it('deployed: a rate counts from when the schedule was created, which is not known here', () => {
    expect(scheduleRows(specs, now).map((r) => r.next ?? r.note)).toEqual([
      '2026-12-06T06:00:00.000Z',
      'every 6 hours from when the schedule was created',
      'fires no more',
    ]);
  });
});
