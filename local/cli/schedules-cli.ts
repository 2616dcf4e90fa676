/**
 * `tandem schedules list`: the schedules of a stack with their next fire times. Locally they are those
 * `npm start` runs (written to its endpoints.json, with when its scheduler started: the anchor of rate
 * expressions); deployed, those of the stack's `Schedules` output, whose rate schedules count from when
 * EventBridge Scheduler created them (not known here: the line says the interval instead).
 */
import { nextFireTime } from '../../lambdas/core/batch/schedule-expression.ts';
import { parseSchedules } from '../../lambdas/core/batch/schedules.ts';

export interface ScheduleRow {
  readonly model: string;
  readonly prefix: string;
  readonly expression: string;
  /** The next fire time (ISO, UTC); null when it fires no more or is not known (a deployed rate). */
  readonly next: string | null;
  readonly note?: string;
}

export function scheduleRows(specs: readonly unknown[], now: number, startedAt?: number): ScheduleRow[] {
  const parsed = parseSchedules(specs);
  if (!parsed.ok) throw new Error(`the stack's schedules do not parse: ${parsed.problems.join('; ')}`);
  return parsed.schedules.map((s) => {
    const base = { model: s.model, prefix: s.prefix, expression: s.expression };
    if (s.parsed.kind === 'rate' && startedAt === undefined) {
      return {
        ...base,
        next: null,
        note: `every ${s.parsed.value} ${s.parsed.unit}${s.parsed.value === 1 ? '' : 's'} from when the schedule was created`,
      };
    }
    const next = nextFireTime(s.parsed, now, startedAt ?? now);
    return next === undefined
      ? { ...base, next: null, note: 'fires no more' }
      : { ...base, next: new Date(next).toISOString() };
  });
}

export function schedulesTable(rows: readonly ScheduleRow[]): string {
  if (rows.length === 0)
    return 'no schedules (the "schedules" setting: cdk.json context, -c schedules=..., npm start --schedules)';
  return [
    `${'NEXT (UTC)'.padEnd(25)} ${'MODEL'.padEnd(18)} ${'EXPRESSION'.padEnd(28)} PREFIX`,
    ...rows.map(
      (r) =>
        `${(r.next ?? `(${r.note})`).padEnd(25)} ${r.model.padEnd(18)} ${r.expression.padEnd(28)} ${r.prefix}`,
    ),
  ].join('\n');
}
