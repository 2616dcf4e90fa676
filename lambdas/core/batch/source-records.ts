/**
 * Records of every format reduced to what scoring needs (SourceRecord): the id, the validated features,
 * the pass-through values, or the reason the row is rejected. The chunk scorer's general path; the CSV
 * fast path (csv-fast-path.ts) fills micro-batches straight from the bytes instead.
 */
import type { CsvRow } from '../codecs/csv-reader.ts';
import type { FeatureIssue, FeatureRow } from '../features.ts';
import type { BatchModel } from './batch-model.ts';
import { parseJsonEntityId } from '../entity-id.ts';
import type { BatchPlan } from './contracts.ts';

/** One record of any format, reduced to what scoring needs. */
export interface SourceRecord {
  readonly row: number;
  readonly line?: number;
  readonly id: string | undefined;
  /** Validated features, or undefined when `issues` say why not. */
  readonly features: FeatureRow | undefined;
  readonly issues: FeatureIssue[];
  /** A reason that is not about one field (ragged row, invalid JSON, invalid UTF-8). */
  readonly problem?: string;
  /** The original record, for the rejected file (built only for rejected rows). */
  readonly original: () => unknown;
  /** Pass-through values, in the plan's passThroughColumns order. */
  readonly passThrough: readonly unknown[];
}

type RecordModel = Pick<BatchModel, 'validator' | 'manifest'>;

/** The general path of a CSV record: its fields checked by the model's validator, columns by name. */
export function csvRecordReader(plan: BatchPlan, model: RecordModel): (r: CsvRow) => SourceRecord {
  const header = plan.header ?? [];
  const columns = model.validator.names.map((name) => header.indexOf(name));
  const idColumn = header.indexOf(model.manifest.idField);
  const passColumns = plan.options.passThroughColumns.map((c) => header.indexOf(c));
  const used = [idColumn, ...columns, ...passColumns].filter((c) => c >= 0);
  return (r: CsvRow): SourceRecord => {
    // Object.fromEntries defines own properties: a column named "__proto__" stays a column.
    const original = () => Object.fromEntries(header.map((name, i) => [name, r.fields[i] ?? null]));
    // Bytes that are not UTF-8 only in columns the run does not read (a free-text note, say) harm
    // nothing: the row is scored. In the id, a feature or a pass-through column they reject it.
    const harmless =
      r.error === INVALID_UTF8 &&
      r.fields.length === header.length &&
      used.every((c) => !r.fields[c]!.includes(REPLACEMENT));
    if (r.error !== undefined && !harmless)
      return problemRecord(r.row, r.line, r.error, () => r.text ?? r.fields);
    if (r.fields.length !== header.length) {
      return problemRecord(
        r.row,
        r.line,
        `expected ${header.length} fields (the header's), got ${r.fields.length}`,
        () => r.fields,
      );
    }
    const issues: FeatureIssue[] = [];
    const features = model.validator.fromText(r.fields, columns, issues);
    // CSV has no null: an empty field is a missing id.
    const id = recordId(r.fields[idColumn] || undefined, undefined, model.manifest.idField, issues);
    return {
      row: r.row,
      line: r.line,
      id,
      features: id === undefined ? undefined : features,
      issues,
      original,
      passThrough: passColumns.map((c) => (c < 0 ? null : (r.fields[c] ?? null))),
    };
  };
}

export function problemRecord(
  row: number,
  line: number | undefined,
  problem: string,
  original: () => unknown,
): SourceRecord {
  return {
    row,
    ...(line === undefined ? {} : { line }),
    id: undefined,
    features: undefined,
    issues: [],
    problem,
    original,
    passThrough: [],
  };
}

/**
 * A JSON Lines or Parquet record (a parsed object). Only its own properties count, never Object's.
 * `invalidUtf8`: the record was decoded with U+FFFD for bytes that are not UTF-8; it is rejected only
 * when one of the values the run reads (id, features, pass-through) holds one.
 */
export function objectRecord(
  model: RecordModel,
  plan: BatchPlan,
  row: number,
  line: number | undefined,
  value: unknown,
  /** The JSON Lines line the value was parsed from (numeric ids are read from it). */
  jsonText: string | undefined,
  original: () => unknown,
  invalidUtf8 = false,
): SourceRecord {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return problemRecord(row, line, 'the record is not an object', original);
  }
  const record = value as Record<string, unknown>;
  if (invalidUtf8) {
    const names = [model.manifest.idField, ...model.validator.names, ...plan.options.passThroughColumns];
    if (names.some((name) => holdsReplacement(ownValue(record, name))))
      return problemRecord(row, line, INVALID_UTF8, original);
  }
  const issues: FeatureIssue[] = [];
  const features = model.validator.fromObject(record, issues, '', { ignoreUnknown: true });
  const idField = model.manifest.idField;
  const id = recordId(ownValue(record, idField), jsonText, idField, issues);
  return {
    row,
    ...(line === undefined ? {} : { line }),
    id,
    features: id === undefined ? undefined : features,
    issues,
    original,
    passThrough: plan.options.passThroughColumns.map((c) => ownValue(record, c) ?? null),
  };
}

const INVALID_UTF8 = 'invalid UTF-8';
const REPLACEMENT = '\uFFFD';

function holdsReplacement(value: unknown): boolean {
  if (typeof value === 'string') return value.includes(REPLACEMENT);
  return typeof value === 'object' && value !== null && JSON.stringify(value).includes(REPLACEMENT);
}

/** record[name] when the record itself has it: "constructor" or "toString" are not inherited values. */
function ownValue(record: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(record, name) ? record[name] : undefined;
}

/** A row's id by the one entity-id rule; a row without one is rejected. */
function recordId(
  raw: unknown,
  jsonText: string | undefined,
  idField: string,
  issues: FeatureIssue[],
): string | undefined {
  const { id, problem } = parseJsonEntityId(raw, jsonText, [idField]);
  if (id === undefined) issues.push({ field: idField, message: problem ?? 'is required' });
  return id;
}

export async function* mapBatches<T>(
  source: AsyncIterable<T[]>,
  map: (item: T) => SourceRecord,
): AsyncGenerator<SourceRecord[]> {
  for await (const batch of source) yield batch.map(map);
}
