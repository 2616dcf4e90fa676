/**
 * The `schedules` setting: folders of the data bucket re-scored on a schedule. Each entry is
 * `{"model", "prefix", "expression", "options"?}`; this module checks a list of them (every problem at once,
 * each naming its entry and field), and derives what the deployed schedules, `npm start` and the refresh
 * policy need from the result. Pure: the CDK app imports it at synth, `npm start` at start.
 */
import * as z from 'zod';
import { DEFAULT_BATCH_OPTIONS, folderRunInput, type BatchOptions, type RunInput } from './contracts.ts';
import { isPackageName } from '../names.ts';
import { resolveOptions } from './options.ts';
import { parseScheduleExpression, type ScheduleExpression } from './schedule-expression.ts';

/** One schedule as given (cdk.json, `-c schedules=...`, the construct prop, `npm start --schedules`). */
export interface ScheduleSpec {
  /** The model that scores the folder (its live version, unless `options.modelVersion` pins one). */
  readonly model: string;
  /** A folder of the data bucket, e.g. `warehouse/transactions/daily/` (a missing final "/" is added). */
  readonly prefix: string;
  /** `cron(minutes hours day-of-month month day-of-week year)` or `rate(n unit)`, in UTC. */
  readonly expression: string;
  /** The options of each run (docs/batch.md), over the stack's `batchOptions`. */
  readonly options?: Partial<BatchOptions>;
}

/** A checked schedule: the prefix normalised, the expression parsed. */
export interface Schedule extends ScheduleSpec {
  /** `<model>:<prefix>` with its expression: how messages, logs and `schedules list` name it. */
  readonly label: string;
  readonly parsed: ScheduleExpression;
}

/**
 * The prefixes the stack writes (run state, results, model packages, captures, monitoring reports,
 * feedback, rejected stream records): a schedule may not read them, so that no run scores the stack's own
 * output and the batch roles never get read access to it.
 */
export const OUTPUT_PREFIXES = [
  'runs/',
  'results/',
  'models/',
  'capture/',
  'monitoring/',
  'feedback/',
  'rejected/',
] as const;

/** S3's longest key, less room for the file names under the prefix. */
const MAX_PREFIX_LENGTH = 512;

const specSchema = z
  .object({
    model: z.string(),
    prefix: z.string(),
    expression: z.string(),
    options: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

/** Why a prefix cannot be scheduled, or undefined; checked on the prefix as given. */
function prefixProblem(prefix: string): string | undefined {
  const shown = JSON.stringify(prefix);
  if (prefix.trim() === '' || prefix === '/')
    return 'is empty: name a folder of the data bucket (the whole bucket holds the stack output)';
  if (prefix !== prefix.trim()) return `has surrounding blanks: ${JSON.stringify(prefix)}`;
  if (prefix.startsWith('/')) return `${shown} starts with "/": keys of the data bucket do not`;
  if (prefix.length > MAX_PREFIX_LENGTH) return `is longer than ${MAX_PREFIX_LENGTH} characters`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f*?]/.test(prefix))
    return `${shown} holds "*", "?" or a control character (it becomes an IAM resource pattern)`;
  const segments = prefix.replace(/\/$/, '').split('/');
  if (segments.some((s) => s === '..' || s === '.')) return `${shown} has a "." or ".." folder`;
  if (segments.some((s) => s === '')) return `${shown} has an empty folder ("//")`;
  const normalised = normalisePrefix(prefix);
  const output = OUTPUT_PREFIXES.find((p) => normalised.startsWith(p));
  if (output)
    return `${shown} is under ${output}, which the stack writes (${OUTPUT_PREFIXES.join(', ')} cannot be scheduled)`;
  return undefined;
}

/** The folder a prefix names: a missing final "/" is added, as `tandem runs start --prefix` does. */
export function normalisePrefix(prefix: string): string {
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

export type ParsedSchedules =
  | { readonly ok: true; readonly schedules: readonly Schedule[] }
  | { readonly ok: false; readonly problems: readonly string[] };

function entryName(index: number, raw: unknown): string {
  const entry = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const said = [entry['model'], entry['prefix']]
    .filter((v): v is string => typeof v === 'string' && v !== '')
    // eslint-disable-next-line no-control-regex
    .map((v) => (/[\u0000-\u001f\u007f]/.test(v) ? JSON.stringify(v) : v));
  return `schedules[${index}]${said.length > 0 ? ` (${said.join(' ')})` : ''}`;
}

/**
 * Checks the `schedules` setting: a list of ScheduleSpec. Every problem is reported, each as
 * `schedules[i] (<model> <prefix>) <field>: <what is wrong>`.
 */
export function parseSchedules(raw: unknown): ParsedSchedules {
  if (raw === undefined || raw === null) return { ok: true, schedules: [] };
  if (!Array.isArray(raw))
    return {
      ok: false,
      problems: [`schedules: expected a JSON list of schedules, got ${JSON.stringify(raw)}`],
    };
  const problems: string[] = [];
  const schedules: Schedule[] = [];
  const indexes: number[] = [];
  raw.forEach((entry: unknown, index) => {
    const name = entryName(index, entry);
    const shape = specSchema.safeParse(entry);
    if (!shape.success) {
      for (const issue of shape.error.issues) {
        const field = issue.path.length > 0 ? ` ${issue.path.join('.')}` : '';
        const what =
          issue.code === 'unrecognized_keys'
            ? `unknown field(s) ${issue.keys.join(', ')}; a schedule has model, prefix, expression and options`
            : issue.code === 'invalid_type' && issue.path.length === 0
              ? 'expected an object {"model", "prefix", "expression", "options"?}'
              : issue.message;
        problems.push(`${name}${field}: ${what}`);
      }
      return;
    }
    const spec = shape.data;
    const before = problems.length;
    if (!isPackageName(spec.model))
      problems.push(
        `${name} model: "${spec.model}" is not a model name (1-128 letters, digits, '.', '_' or '-', starting with a letter or digit)`,
      );
    const prefixWrong = prefixProblem(spec.prefix);
    if (prefixWrong) problems.push(`${name} prefix: ${prefixWrong}`);
    const parsed = parseScheduleExpression(spec.expression);
    if (!parsed.ok) problems.push(`${name} expression: ${parsed.problem}`);
    if (spec.options !== undefined) {
      const unknown = Object.keys(spec.options).filter((key) => !Object.hasOwn(DEFAULT_BATCH_OPTIONS, key));
      if (unknown.length > 0) {
        problems.push(
          `${name} options: unknown option(s) ${unknown.join(', ')}; known: ${Object.keys(DEFAULT_BATCH_OPTIONS).join(', ')}`,
        );
      } else {
        try {
          resolveOptions(spec.options as Partial<BatchOptions>);
        } catch (error) {
          problems.push(`${name} options: ${(error as Error).message.replace(/^\[INVALID_OPTIONS\] /, '')}`);
        }
      }
    }
    if (problems.length > before || !parsed.ok) return;
    const prefix = normalisePrefix(spec.prefix);
    indexes.push(index);
    schedules.push({
      model: spec.model,
      prefix,
      expression: spec.expression,
      ...(spec.options !== undefined ? { options: spec.options as Partial<BatchOptions> } : {}),
      label: `${spec.model}:${prefix} ${spec.expression}`,
      parsed: parsed.expression,
    });
  });
  const seen = new Map<string, number>();
  schedules.forEach((s, i) => {
    const key = `${s.model} ${s.prefix} ${s.expression}`;
    const first = seen.get(key);
    if (first !== undefined)
      problems.push(`schedules[${indexes[i]}] repeats schedules[${first}] (${s.label}): remove one`);
    else seen.set(key, indexes[i]!);
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, schedules };
}

/** The folders a model's schedules re-score (a model's refresh sources), each once, in setting order. */
export function scheduledPrefixes(schedules: readonly ScheduleSpec[], model: string): string[] {
  return [...new Set(schedules.filter((s) => s.model === model).map((s) => normalisePrefix(s.prefix)))];
}

/**
 * The state machine input of a scheduled run: what `tandem runs start <model> --prefix` starts, with the
 * run id given (deployed, a template EventBridge Scheduler fills in per invocation).
 */
export function scheduledRunInput(
  schedule: Pick<Schedule, 'model' | 'prefix' | 'options'>,
  bucket: string,
  runId: string,
  stackOptions: Partial<BatchOptions> = {},
): RunInput {
  const options = { ...stackOptions, ...schedule.options };
  return folderRunInput({
    runId,
    bucket,
    model: schedule.model,
    prefix: schedule.prefix,
    ...(Object.keys(options).length > 0 ? { options } : {}),
  });
}

/** How a scheduled run is named: `<model>-schedule-<suffix>`, within Step Functions' 80 characters. */
export function scheduledRunId(model: string, suffix: string): string {
  return `${model.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40)}-schedule-${suffix}`;
}
