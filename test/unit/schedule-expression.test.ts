/**
 * EventBridge Scheduler expressions: what is refused and why, and the next fire time of cron (with `L`,
 * `W`, `#`, `?`, names, steps and the year field) and rate expressions, checked on known dates and, for
 * generated expressions, against a plain day-by-day, minute-by-minute reference.
 */
import fc from 'fast-check';
import { describe, expect, it } from '@jest/globals';
import {
  nextFireTime,
  parseScheduleExpression,
  type ScheduleExpression,
} from '../../lambdas/core/batch/schedule-expression.ts';
import { expectWithMessage } from '../support/expect-message.ts';

function parse(text: string): ScheduleExpression {
  const parsed = parseScheduleExpression(text);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.expression;
}

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/** The next `count` fire times after `from`. */
function fires(text: string, from: string, count = 1, anchor?: string): (string | undefined)[] {
  const expression = parse(text);
  const out: (string | undefined)[] = [];
  let after = at(from);
  for (let i = 0; i < count; i++) {
    const next = nextFireTime(expression, after, anchor ? at(anchor) : undefined);
    out.push(iso(next));
    if (next === undefined) break;
    after = next;
  }
  return out;
}

describe('schedule expressions: refused, with the reason', () => {
  it.each([
    ['cron(0 6 * * *)', /6 fields/],
    ['cron(0 6 * * ? * *)', /6 fields/],
    ['cron(0  6 * * ? *)', /single spaces/],
    ['cron()', /got none/],
    ['cron(0 6 * * * *)', /exactly one of day-of-month and day-of-week must be "\?"/],
    ['cron(0 6 ? * ? *)', /exactly one of day-of-month and day-of-week/],
    ['cron(60 6 * * ? *)', /minutes: "60" is not a minutes value \(0-59\)/],
    ['cron(0 24 * * ? *)', /hours: "24" is not a hours value/],
    ['cron(0 6 0 * ? *)', /day-of-month: "0" is not a day-of-month value \(1-31\)/],
    ['cron(0 6 32 * ? *)', /day-of-month: "32"/],
    ['cron(0 6 * 13 ? *)', /month: "13" is not a month value \(1-12 or JAN-DEC\)/],
    ['cron(0 6 * FOO ? *)', /month: "FOO"/],
    ['cron(0 6 ? * 0 *)', /day-of-week: "0" is not a day-of-week value \(1-7 or SUN-SAT\)/],
    ['cron(0 6 ? * 8 *)', /day-of-week: "8"/],
    ['cron(0 6 * * ? 1969)', /year: "1969" is not a year value \(1970-2199\)/],
    ['cron(0 6 * * ? 2200)', /year: "2200"/],
    ['cron(0 ? * * ? *)', /hours: "\?" is only allowed in day-of-month or day-of-week/],
    ['cron(10-5 6 * * ? *)', /minutes: range "10-5" starts after it ends/],
    ['cron(*/0 6 * * ? *)', /minutes: "\/0" is not a step/],
    ['cron(1-2-3 6 * * ? *)', /minutes: "1-2-3" is not a value or range/],
    ['cron(0/5/2 6 * * ? *)', /minutes: "0\/5\/2" is not a value, range or step/],
    ['cron(0,,5 6 * * ? *)', /minutes: "" is not a value/],
    ['cron(abc 6 * * ? *)', /minutes: "abc"/],
    ['cron(-1 6 * * ? *)', /minutes: "" is not a minutes value/],
    ['cron(0 6 ? * */2 *)', /day-of-week: "\/" is not allowed in day-of-week/],
    ['cron(0 6 LW * ? *)', /day-of-month: "LW": W takes one day/],
    ['cron(0 6 1,15W * ? *)', /day-of-month: "1,15W": W takes one day/],
    ['cron(0 6 32W * ? *)', /day-of-month: "32"/],
    ['cron(0 6 L-3 * ? *)', /day-of-month: "L-3": L and W stand alone/],
    ['cron(0 6 5#2 * ? *)', /day-of-month: "5#2"/],
    ['cron(0 6 ? * 2#6 *)', /day-of-week: "2#6": # takes a day and a week from 1 to 5/],
    ['cron(0 6 ? * 2#0 *)', /day-of-week: "2#0"/],
    ['cron(0 6 ? * 9#1 *)', /day-of-week: "9"/],
    ['cron(0 6 ? * MON,L *)', /day-of-week: "MON,L": L stands alone/],
    ['cron(0 6 ? * 2W *)', /day-of-week: "2W": L stands alone/],
    ['cron(0 6 30 2 ? *)', /never fires/],
    ['cron(0 6 31 4,6,9,11 ? *)', /never fires/],
    ['rate(0 minutes)', /rate value must be a whole number from 1/],
    ['rate(05 minutes)', /rate value must be a whole number/],
    ['rate(1 minutes)', /singular for 1 and plural otherwise/],
    ['rate(5 minute)', /singular for 1 and plural otherwise/],
    ['rate(5 seconds)', /the unit is minute\(s\), hour\(s\) or day\(s\)/],
    ['rate(5 weeks)', /the unit is minute/],
    ['rate(1.5 hours)', /not rate/],
    ['rate(-1 hours)', /not rate/],
    ['rate(5minutes)', /not rate/],
    ['at(2026-12-24T18:00:00)', /neither cron\(.*\) nor rate/],
    ['0 6 * * ? *', /neither cron/],
    ['cron(0 6 * * ? *) ', /neither cron/],
    ['CRON(0 6 * * ? *)', /neither cron/],
    ['', /neither cron/],
  ])('%s', (text, reason) => {
    const parsed = parseScheduleExpression(text);
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? '' : parsed.problem).toMatch(reason);
  });

  it.each([
    'cron(0 6 * * ? *)',
    'cron(0/15 * * * ? *)',
    'cron(0 8 1 * ? *)',
    'cron(15 10 ? * 6L 2026-2030)',
    'cron(0 18 ? * MON-FRI *)',
    'cron(0 12 L * ? *)',
    'cron(0 9 15W * ? *)',
    'cron(0 9 ? * 2#1 *)',
    'cron(0 9 ? * MON#1 *)',
    'cron(0 9 ? * L *)',
    'cron(0 9 ? jan-mar mon *)',
    'cron(5,35 */4 1-10/3 */2 ? 2026,2028/2)',
    'rate(1 minute)',
    'rate(15 minutes)',
    'rate(1 hour)',
    'rate(12 hours)',
    'rate(1 day)',
    'rate(7 days)',
  ])('accepts %s', (text) => {
    const parsed = parseScheduleExpression(text);
    expectWithMessage(parsed.ok ? '' : parsed.problem, text).toBe('');
  });
});

describe('schedule expressions: the next fire time, UTC', () => {
  it('every day at 06:00: later today, or tomorrow once past; never the instant itself', () => {
    expect(fires('cron(0 6 * * ? *)', '2026-12-06T03:55:00Z', 2)).toEqual([
      '2026-12-06T06:00:00.000Z',
      '2026-12-07T06:00:00.000Z',
    ]);
    expect(fires('cron(0 6 * * ? *)', '2026-12-06T06:00:00Z')).toEqual(['2026-12-07T06:00:00.000Z']);
    expect(fires('cron(0 6 * * ? *)', '2026-12-06T05:59:59.999Z')).toEqual(['2026-12-06T06:00:00.000Z']);
  });

  it('steps and lists: every 15 minutes; 5 and 35 past every 4th hour', () => {
    expect(fires('cron(0/15 * * * ? *)', '2026-12-06T03:52:10Z', 3)).toEqual([
      '2026-12-06T04:00:00.000Z',
      '2026-12-06T04:15:00.000Z',
      '2026-12-06T04:30:00.000Z',
    ]);
    expect(fires('cron(5,35 */4 * * ? *)', '2026-12-06T04:36:00Z', 2)).toEqual([
      '2026-12-06T08:05:00.000Z',
      '2026-12-06T08:35:00.000Z',
    ]);
  });

  it('L in day-of-month: the last day, February of a leap year included', () => {
    expect(fires('cron(0 12 L * ? *)', '2028-01-31T12:00:00Z', 3)).toEqual([
      '2028-02-29T12:00:00.000Z',
      '2028-03-31T12:00:00.000Z',
      '2028-04-30T12:00:00.000Z',
    ]);
    expect(fires('cron(0 12 L 2 ? *)', '2026-03-01T00:00:00Z', 2)).toEqual([
      '2027-02-28T12:00:00.000Z',
      '2028-02-29T12:00:00.000Z',
    ]);
  });

  it('W: the weekday nearest the day, within its month', () => {
    // 2026-11-15 is a Sunday: Monday the 16th.
    expect(fires('cron(0 9 15W * ? *)', '2026-11-01T00:00:00Z')).toEqual(['2026-11-16T09:00:00.000Z']);
    // 2026-08-15 is a Saturday: Friday the 14th.
    expect(fires('cron(0 9 15W * ? *)', '2026-08-01T00:00:00Z')).toEqual(['2026-08-14T09:00:00.000Z']);
    // 2026-08-01 is a Saturday: not back into July, Monday the 3rd.
    expect(fires('cron(0 9 1W * ? *)', '2026-07-31T00:00:00Z')).toEqual(['2026-08-03T09:00:00.000Z']);
    // 2026-05-31 is a Sunday: not into June, Friday the 29th.
    expect(fires('cron(0 9 31W * ? *)', '2026-05-01T00:00:00Z')).toEqual(['2026-05-29T09:00:00.000Z']);
    // 31W in a 30-day month does not fire that month.
    expect(fires('cron(0 9 31W * ? *)', '2026-06-01T00:00:00Z')).toEqual(['2026-07-31T09:00:00.000Z']);
  });

  it('#: the n-th day of the week of the month (1 = Sunday); names work too', () => {
    // First Monday of 2027-02 is the 1st; of 2027-03 the 1st too; of 2027-04 the 5th.
    expect(fires('cron(0 9 ? * 2#1 *)', '2027-01-31T00:00:00Z', 3)).toEqual([
      '2027-02-01T09:00:00.000Z',
      '2027-03-01T09:00:00.000Z',
      '2027-04-05T09:00:00.000Z',
    ]);
    expect(fires('cron(0 9 ? * MON#1 *)', '2027-01-31T00:00:00Z')).toEqual(['2027-02-01T09:00:00.000Z']);
    // A fifth Friday exists only in some months: 2026-01-30, then 2026-05-29.
    expect(fires('cron(0 9 ? * 6#5 *)', '2026-01-01T00:00:00Z', 2)).toEqual([
      '2026-01-30T09:00:00.000Z',
      '2026-05-29T09:00:00.000Z',
    ]);
  });

  it('nL: the last day n of the month; L alone in day-of-week: Saturday', () => {
    expect(fires('cron(15 10 ? * 6L *)', '2026-12-01T00:00:00Z', 2)).toEqual([
      '2026-12-25T10:15:00.000Z',
      '2027-01-29T10:15:00.000Z',
    ]);
    expect(fires('cron(0 9 ? * L *)', '2026-12-06T00:00:00Z')).toEqual(['2026-12-12T09:00:00.000Z']);
  });

  it('?: the other day field decides; weekdays only with MON-FRI', () => {
    // 2026-12-05 is a Saturday.
    expect(fires('cron(0 18 ? * MON-FRI *)', '2026-12-04T18:00:00Z')).toEqual(['2026-12-07T18:00:00.000Z']);
    expect(fires('cron(0 18 ? * 1,7 *)', '2026-12-07T00:00:00Z')).toEqual(['2026-12-12T18:00:00.000Z']);
  });

  it('the year field: jumps to the next allowed year, and ends after the last', () => {
    expect(fires('cron(0 0 1 1 ? 2028,2030)', '2026-12-06T00:00:00Z', 3)).toEqual([
      '2028-01-01T00:00:00.000Z',
      '2030-01-01T00:00:00.000Z',
      undefined,
    ]);
    expect(fires('cron(0 6 * * ? 2020)', '2026-12-06T00:00:00Z')).toEqual([undefined]);
  });

  it('rate: every interval from the anchor, never at the anchor itself', () => {
    expect(fires('rate(1 minute)', '2026-12-06T04:00:00Z', 2, '2026-12-06T04:00:00Z')).toEqual([
      '2026-12-06T04:01:00.000Z',
      '2026-12-06T04:02:00.000Z',
    ]);
    expect(fires('rate(6 hours)', '2026-12-06T10:30:00Z', 1, '2026-12-06T04:10:00Z')).toEqual([
      '2026-12-06T16:10:00.000Z',
    ]);
    expect(fires('rate(1 day)', '2026-12-06T04:10:00Z', 1, '2026-12-06T04:10:00Z')).toEqual([
      '2026-12-07T04:10:00.000Z',
    ]);
    // Before the anchor: the first fire is one interval after it.
    expect(fires('rate(15 minutes)', '2026-12-06T00:00:00Z', 1, '2026-12-06T04:00:00Z')).toEqual([
      '2026-12-06T04:15:00.000Z',
    ]);
  });
});

// A reference written plainly from the rules, independent of the module's search: each day in turn,
// each minute of it.
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];

function refSet(field: string, min: number, max: number, names: string[] = []): Set<number> {
  const set = new Set<number>();
  const num = (t: string) =>
    names.includes(t.toUpperCase()) ? names.indexOf(t.toUpperCase()) + min : Number(t);
  for (const item of field.split(',')) {
    const [range, step] = item.split('/');
    const [a, b] = range === '*' ? [min, max] : range!.split('-').map(num);
    const end = b ?? (step ? max : a!);
    for (let n = a!; n <= end; n += step ? Number(step) : 1) set.add(n);
  }
  return set;
}

function refDayMatches(dom: string, dow: string, y: number, m: number, d: number): boolean {
  const last = new Date(Date.UTC(y, m, 0)).getUTCDate();
  const wd = new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 1;
  if (dom !== '?') {
    if (dom === 'L') return d === last;
    if (dom.endsWith('W')) {
      const target = Number(dom.slice(0, -1));
      if (target > last) return false;
      // The weekday of the month at the least distance from the target (ties cannot happen).
      let best = -1;
      for (let day = 1; day <= last; day++) {
        const w = new Date(Date.UTC(y, m - 1, day)).getUTCDay();
        if (w === 0 || w === 6) continue;
        if (best < 0 || Math.abs(day - target) < Math.abs(best - target)) best = day;
      }
      return d === best;
    }
    return refSet(dom, 1, 31).has(d);
  }
  if (dow.includes('#')) {
    const [day, nth] = dow.split('#');
    const want = refSet(day!, 1, 7, DAYS);
    let count = 0;
    for (let day2 = 1; day2 <= d; day2++)
      if (want.has(new Date(Date.UTC(y, m - 1, day2)).getUTCDay() + 1)) count++;
    return want.has(wd) && count === Number(nth);
  }
  if (dow === 'L') return wd === 7;
  if (dow.endsWith('L')) {
    const want = refSet(dow.slice(0, -1), 1, 7, DAYS);
    if (!want.has(wd)) return false;
    for (let day2 = d + 1; day2 <= last; day2++)
      if (want.has(new Date(Date.UTC(y, m - 1, day2)).getUTCDay() + 1)) return false;
    return true;
  }
  return refSet(dow, 1, 7, DAYS).has(wd);
}

function referenceNext(fields: string[], after: number, horizonDays: number): number | undefined {
  const [min, hour, dom, month, dow, year] = fields as [string, string, string, string, string, string];
  const minutes = refSet(min, 0, 59);
  const hours = refSet(hour, 0, 23);
  const months = refSet(month, 1, 12, MONTH_NAMES);
  const years = refSet(year, 1970, 2199);
  const firstDay = Math.floor(after / 86_400_000) * 86_400_000;
  for (let day = firstDay; day < firstDay + horizonDays * 86_400_000; day += 86_400_000) {
    const date = new Date(day);
    const [y, m, d] = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
    if (!years.has(y) || !months.has(m) || !refDayMatches(dom, dow, y, m, d)) continue;
    for (let minute = 0; minute < 1440; minute++) {
      const t = day + minute * 60_000;
      if (t > after && hours.has(Math.floor(minute / 60)) && minutes.has(minute % 60)) return t;
    }
  }
  return undefined;
}

describe('schedule expressions: generated crons agree with a plain reference', () => {
  const minute = fc.constantFrom('*', '0', '*/15', '5-10', '0,30', '7/20', '59');
  const hour = fc.constantFrom('*', '0', '6', '*/6', '9-17', '0,12', '23');
  const dom = fc.constantFrom('*', '1', 'L', '15W', '1W', '31W', '1-5', '*/10', '29', '31', '28-31');
  const month = fc.constantFrom('*', '2', 'JAN-MAR', '*/3', 'DEC', '2,8', 'feb');
  const dow = fc.constantFrom('*', 'MON-FRI', '2#1', '6#5', '6L', 'L', 'SUN', '1,7', '4#3', 'FRI');
  const year = fc.constantFrom('*', '2026-2028', '2027', '*/2', '2026,2029');
  const after = fc.integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2028, 11, 31) });

  it('next fire time = the first matching minute after the given instant', () => {
    fc.assert(
      fc.property(
        minute,
        hour,
        dom,
        month,
        dow,
        year,
        fc.boolean(),
        after,
        (mi, h, dm, mo, dw, y, byDay, t) => {
          const fields = [mi, h, byDay ? dm : '?', mo, byDay ? '?' : dw, y];
          const text = `cron(${fields.join(' ')})`;
          const parsed = parseScheduleExpression(text);
          const expected = referenceNext(fields, t, 4 * 366);
          if (!parsed.ok) {
            // Refused only when it can never fire.
            expectWithMessage(parsed.problem, text).toMatch(/never fires/);
            return;
          }
          const next = nextFireTime(parsed.expression, t);
          // Beyond the reference's horizon the module may still find one.
          if (expected === undefined && next !== undefined)
            expect(next).toBeGreaterThan(t + 4 * 366 * 86_400_000 - 86_400_000);
          else expectWithMessage(iso(next), `${text} after ${iso(t)}`).toBe(iso(expected));
        },
      ),
      { numRuns: 300 },
    );
  });
});
