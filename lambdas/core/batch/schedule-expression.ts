/**
 * EventBridge Scheduler expressions: `cron(minutes hours day-of-month month day-of-week year)` and
 * `rate(n minute|minutes|hour|hours|day|days)`, parsed strictly (what Scheduler refuses is refused here,
 * with the field that is wrong), and the next fire time of each, in UTC, as Scheduler computes it with no
 * time zone set. A pure module (no dependency): the CDK app validates with it at synth, `npm start` runs the
 * schedules with it, `tandem schedules list` prints the next fire times with it.
 *
 * The fields and wildcards follow the EventBridge Scheduler user guide ("Schedule types", cron expressions):
 * minutes 0-59, hours 0-23, month 1-12 or JAN-DEC, year 1970-2199 take `, - * /`; day-of-month 1-31 also
 * takes `?`, `L` (last day) and `nW` (the weekday nearest day n); day-of-week 1-7 or SUN-SAT (1 = Sunday)
 * takes `, - * ?`, `L` (Saturday), `nL` (the last day n of the month) and `n#k` (the k-th day n of the
 * month). Exactly one of day-of-month and day-of-week is `?`. `L`, `W` and `#` stand alone in their field.
 */

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
const UNIT_MS = { minute: MINUTE_MS, hour: 60 * MINUTE_MS, day: DAY_MS } as const;
const MIN_YEAR = 1970;
const MAX_YEAR = 2199;

export interface RateExpression {
  readonly kind: 'rate';
  readonly text: string;
  readonly value: number;
  readonly unit: keyof typeof UNIT_MS;
  /** The interval, ms. */
  readonly everyMs: number;
}

type DayOfMonthRule =
  | { readonly kind: 'any' }
  | { readonly kind: 'days'; readonly days: readonly boolean[] }
  | { readonly kind: 'last' }
  | { readonly kind: 'nearestWeekday'; readonly day: number };

type DayOfWeekRule =
  | { readonly kind: 'any' }
  | { readonly kind: 'days'; readonly days: readonly boolean[] }
  | { readonly kind: 'lastOfMonth'; readonly day: number }
  | { readonly kind: 'nth'; readonly day: number; readonly nth: number };

export interface CronExpression {
  readonly kind: 'cron';
  readonly text: string;
  readonly minutes: readonly boolean[];
  readonly hours: readonly boolean[];
  readonly dayOfMonth: DayOfMonthRule;
  readonly months: readonly boolean[];
  readonly dayOfWeek: DayOfWeekRule;
  /** Indexed by year - 1970. */
  readonly years: readonly boolean[];
}

export type ScheduleExpression = RateExpression | CronExpression;

export type ParsedExpression =
  | { readonly ok: true; readonly expression: ScheduleExpression }
  | { readonly ok: false; readonly problem: string };

const RATE = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/;
const CRON = /^cron\((.*)\)$/;
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const WEEKDAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

interface FieldSpec {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  /** Names for the values from `min` on (JAN = 1, SUN = 1). */
  readonly names?: readonly string[];
}

const FIELDS = {
  minutes: { name: 'minutes', min: 0, max: 59 },
  hours: { name: 'hours', min: 0, max: 23 },
  dayOfMonth: { name: 'day-of-month', min: 1, max: 31 },
  month: { name: 'month', min: 1, max: 12, names: MONTHS },
  dayOfWeek: { name: 'day-of-week', min: 1, max: 7, names: WEEKDAYS },
  year: { name: 'year', min: MIN_YEAR, max: MAX_YEAR },
} as const satisfies Record<string, FieldSpec>;

class FieldProblem extends Error {}

function value(text: string, spec: FieldSpec): number {
  const named = spec.names?.indexOf(text.toUpperCase()) ?? -1;
  const n = named >= 0 ? spec.min + named : /^\d{1,4}$/.test(text) ? Number(text) : NaN;
  if (!(n >= spec.min && n <= spec.max)) {
    throw new FieldProblem(
      `"${text}" is not a ${spec.name} value (${spec.min}-${spec.max}${spec.names ? ` or ${spec.names[0]}-${spec.names[spec.names.length - 1]}` : ''})`,
    );
  }
  return n;
}

/** A field of numbers, ranges, steps and lists (`, - * /`): the allowed values, indexed from `min`. */
function numbers(text: string, spec: FieldSpec, steps = true): boolean[] {
  const allowed = new Array<boolean>(spec.max - spec.min + 1).fill(false);
  for (const item of text.split(',')) {
    const [range, stepText, ...extra] = item.split('/');
    if (range === undefined || range === '' || extra.length > 0)
      throw new FieldProblem(`"${item}" is not a value, range or step`);
    if (stepText !== undefined && !steps) throw new FieldProblem(`"/" is not allowed in ${spec.name}`);
    let from: number;
    let to: number;
    if (range === '*') {
      from = spec.min;
      to = spec.max;
    } else {
      const [a, b, ...more] = range.split('-');
      if (a === undefined || more.length > 0) throw new FieldProblem(`"${range}" is not a value or range`);
      from = value(a, spec);
      to = b === undefined ? (stepText === undefined ? from : spec.max) : value(b, spec);
      if (to < from) throw new FieldProblem(`range "${range}" starts after it ends`);
    }
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d{1,4}$/.test(stepText) || Number(stepText) < 1 || Number(stepText) > spec.max)
        throw new FieldProblem(`"/${stepText}" is not a step from 1 to ${spec.max}`);
      step = Number(stepText);
    }
    for (let n = from; n <= to; n += step) allowed[n - spec.min] = true;
  }
  return allowed;
}

function dayOfMonth(text: string): DayOfMonthRule {
  if (text === '?') return { kind: 'any' };
  if (text === 'L') return { kind: 'last' };
  if (text.endsWith('W')) {
    if (!/^\d{1,2}W$/.test(text))
      throw new FieldProblem(`"${text}": W takes one day, e.g. 15W (the weekday nearest the 15th)`);
    return { kind: 'nearestWeekday', day: value(text.slice(0, -1), FIELDS.dayOfMonth) };
  }
  if (/[LW#]/i.test(text)) throw new FieldProblem(`"${text}": L and W stand alone in day-of-month`);
  return { kind: 'days', days: [false, ...numbers(text, FIELDS.dayOfMonth)] };
}

function dayOfWeek(text: string): DayOfWeekRule {
  if (text === '?') return { kind: 'any' };
  const days = (allowed: boolean[]) => ({ kind: 'days' as const, days: [false, ...allowed] });
  if (text === 'L') return days(numbers('7', FIELDS.dayOfWeek));
  if (text.includes('#')) {
    const match = /^([^#]+)#(\d)$/.exec(text);
    if (!match || Number(match[2]) < 1 || Number(match[2]) > 5)
      throw new FieldProblem(`"${text}": # takes a day and a week from 1 to 5, e.g. 2#1 (the first Monday)`);
    return { kind: 'nth', day: value(match[1]!, FIELDS.dayOfWeek), nth: Number(match[2]) };
  }
  if (/^([A-Za-z]{3}|\d)L$/.test(text))
    return { kind: 'lastOfMonth', day: value(text.slice(0, -1), FIELDS.dayOfWeek) };
  // Names contain no L or W at the end (SAT, WED...), so what is left with them is misplaced.
  if (/(^|[^A-Z])[LW]($|[^A-Z])/i.test(text))
    throw new FieldProblem(`"${text}": L stands alone in day-of-week (L, or nL such as 6L)`);
  return days(numbers(text, FIELDS.dayOfWeek, false));
}

function parseCron(text: string, body: string): CronExpression {
  const fields = body.split(' ');
  if (fields.length !== 6 || fields.some((f) => f === '')) {
    throw new FieldProblem(
      `a cron expression has 6 fields separated by single spaces (minutes hours day-of-month month day-of-week year), got ${body.trim() === '' ? 'none' : fields.filter((f) => f !== '').length}`,
    );
  }
  const [min, hour, dom, month, dow, year] = fields as [string, string, string, string, string, string];
  const field = <T>(name: string, parse: () => T): T => {
    try {
      return parse();
    } catch (error) {
      if (error instanceof FieldProblem) throw new FieldProblem(`${name}: ${error.message}`);
      throw error;
    }
  };
  for (const [name, f] of [
    ['minutes', min],
    ['hours', hour],
    ['month', month],
    ['year', year],
  ] as const) {
    if (f.includes('?'))
      throw new FieldProblem(`${name}: "?" is only allowed in day-of-month or day-of-week`);
  }
  if ((dom === '?') === (dow === '?')) {
    throw new FieldProblem(
      'exactly one of day-of-month and day-of-week must be "?" (e.g. cron(0 6 * * ? *) or cron(0 6 ? * MON-FRI *))',
    );
  }
  return {
    kind: 'cron',
    text,
    minutes: field('minutes', () => numbers(min, FIELDS.minutes)),
    hours: field('hours', () => numbers(hour, FIELDS.hours)),
    dayOfMonth: field('day-of-month', () => dayOfMonth(dom)),
    months: [false, ...field('month', () => numbers(month, FIELDS.month))],
    dayOfWeek: field('day-of-week', () => dayOfWeek(dow)),
    years: field('year', () => numbers(year, FIELDS.year)),
  };
}

/** Parses an expression; the problem says what is wrong in the user's terms. */
export function parseScheduleExpression(text: string): ParsedExpression {
  const rate = RATE.exec(text);
  if (rate) {
    const value = Number(rate[1]);
    const word = rate[2]!;
    const unit = word.replace(/s$/, '') as keyof typeof UNIT_MS;
    if (!/^[1-9]\d{0,5}$/.test(rate[1]!))
      return { ok: false, problem: `rate value must be a whole number from 1 to 999999, got "${rate[1]}"` };
    if ((value === 1) !== (word === unit))
      return {
        ok: false,
        problem: `rate(${value} ${word}): the unit is singular for 1 and plural otherwise (rate(1 ${unit}), rate(${value === 1 ? 2 : value} ${unit}s))`,
      };
    return { ok: true, expression: { kind: 'rate', text, value, unit, everyMs: value * UNIT_MS[unit] } };
  }
  if (text.startsWith('rate(')) {
    return {
      ok: false,
      problem: `"${text}" is not rate(<n> <unit>): the unit is minute(s), hour(s) or day(s), e.g. rate(15 minutes)`,
    };
  }
  const cron = CRON.exec(text);
  if (!cron) {
    return {
      ok: false,
      problem: `"${text}" is neither cron(minutes hours day-of-month month day-of-week year) nor rate(<n> <unit>)`,
    };
  }
  try {
    const expression = parseCron(text, cron[1]!);
    if (nextCronTime(expression, Date.UTC(MIN_YEAR, 0, 1) - 1) === undefined)
      return { ok: false, problem: `"${text}" never fires (no such date from ${MIN_YEAR} to ${MAX_YEAR})` };
    return { ok: true, expression };
  } catch (error) {
    if (error instanceof FieldProblem) return { ok: false, problem: `"${text}": ${error.message}` };
    throw error;
  }
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Day of week as cron counts (1 = Sunday). */
function weekday(year: number, month: number, day: number): number {
  return new Date(Date.UTC(year, month - 1, day)).getUTCDay() + 1;
}

function nearestWeekday(year: number, month: number, day: number): number | undefined {
  const last = daysInMonth(year, month);
  if (day > last) return undefined;
  const dow = weekday(year, month, day);
  if (dow === 7) return day === 1 ? 3 : day - 1; // Saturday: the Friday before, or Monday the 3rd
  if (dow === 1) return day === last ? day - 2 : day + 1; // Sunday: the Monday after, within the month
  return day;
}

function dayMatches(cron: CronExpression, year: number, month: number, day: number): boolean {
  const dom = cron.dayOfMonth;
  switch (dom.kind) {
    case 'days':
      if (!dom.days[day]) return false;
      break;
    case 'last':
      if (day !== daysInMonth(year, month)) return false;
      break;
    case 'nearestWeekday':
      if (nearestWeekday(year, month, dom.day) !== day) return false;
      break;
    case 'any':
      break;
  }
  const dow = cron.dayOfWeek;
  switch (dow.kind) {
    case 'days':
      return dow.days[weekday(year, month, day)] === true;
    case 'lastOfMonth':
      return weekday(year, month, day) === dow.day && day + 7 > daysInMonth(year, month);
    case 'nth':
      return weekday(year, month, day) === dow.day && Math.ceil(day / 7) === dow.nth;
    case 'any':
      return true;
  }
}

function nextCronTime(cron: CronExpression, after: number): number | undefined {
  // The first whole minute after `after`.
  const start = Math.floor(after / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
  let dayStart = Math.floor(start / DAY_MS) * DAY_MS;
  let fromMinute = (start - dayStart) / MINUTE_MS;
  while (true) {
    const date = new Date(dayStart);
    const year = date.getUTCFullYear();
    if (year > MAX_YEAR) return undefined;
    const month = date.getUTCMonth() + 1;
    if (!cron.years[year - MIN_YEAR]) {
      dayStart = Date.UTC(year + 1, 0, 1);
      fromMinute = 0;
      continue;
    }
    if (!cron.months[month]) {
      dayStart = Date.UTC(year, month, 1);
      fromMinute = 0;
      continue;
    }
    if (dayMatches(cron, year, month, date.getUTCDate())) {
      for (let minuteOfDay = fromMinute; minuteOfDay < 1440; minuteOfDay++) {
        const hour = Math.floor(minuteOfDay / 60);
        if (!cron.hours[hour]) {
          minuteOfDay = hour * 60 + 59;
          continue;
        }
        if (cron.minutes[minuteOfDay % 60]) return dayStart + minuteOfDay * MINUTE_MS;
      }
    }
    dayStart += DAY_MS;
    fromMinute = 0;
  }
}

/**
 * The first fire time strictly after `after` (ms since the epoch, UTC), or undefined when the expression
 * fires no more. A rate fires every interval from `anchor` (deployed: when the schedule was created;
 * `npm start`: when the local scheduler started), never at `anchor` itself.
 */
export function nextFireTime(
  expression: ScheduleExpression,
  after: number,
  anchor: number = after,
): number | undefined {
  if (expression.kind === 'cron') return nextCronTime(expression, after);
  if (after < anchor) return anchor + expression.everyMs;
  return anchor + (Math.floor((after - anchor) / expression.everyMs) + 1) * expression.everyMs;
}
