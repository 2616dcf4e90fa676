/**
 * Feature validation compiled once per manifest. The same validator serves the real-time lane (JSON
 * values, strict types) and the batch lane (text fields from CSV, parsed).
 */
import { ValidationError, type ErrorDetail } from './errors.ts';
import type { FeatureSpec, Manifest } from './manifest.ts';

/** A validated value: numbers for number/integer/boolean (0/1) features, strings for categories. */
export type FeatureValue = number | string;
/** A validated instance: one value per manifest feature, in manifest order. */
export type FeatureRow = FeatureValue[];

export interface FeatureIssue {
  readonly field: string;
  readonly message: string;
}

/** Where raw values come from: JSON (types must match) or text fields (numbers and booleans are parsed). */
export type ValueSource = 'json' | 'text';

class Problem {
  constructor(readonly message: string) {}
}

type Checker = (raw: unknown, source: ValueSource) => FeatureValue | Problem | undefined;

const MISSING = new Problem('is required');
const NUMBER_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const TRUE_TEXT = new Set(['true', '1', 'yes', 'y', 't']);
const FALSE_TEXT = new Set(['false', '0', 'no', 'n', 'f']);

function describeValue(raw: unknown): string {
  if (raw === null) return 'null';
  if (Array.isArray(raw)) return 'an array';
  if (typeof raw === 'string') return raw.length > 40 ? `"${raw.slice(0, 40)}…"` : `"${raw}"`;
  if (typeof raw === 'object') return 'an object';
  return String(raw);
}

function numericChecker(spec: Extract<FeatureSpec, { type: 'number' | 'integer' }>): Checker {
  const { min, max } = spec;
  const integer = spec.type === 'integer';
  const expected = integer ? 'an integer' : 'a number';
  return (raw, source) => {
    let value: number;
    if (typeof raw === 'number') {
      value = raw;
    } else if (source === 'text' && typeof raw === 'string' && NUMBER_TEXT.test(raw)) {
      value = Number(raw);
    } else if (source === 'text' && typeof raw === 'string' && /^[+-]?(nan|inf(inity)?)$/i.test(raw)) {
      return new Problem(`must be a finite number, got ${describeValue(raw)}`);
    } else {
      return new Problem(
        `must be ${expected}, got ${typeof raw === 'string' ? 'a string ' : ''}${describeValue(raw)}`,
      );
    }
    if (!Number.isFinite(value)) return new Problem(`must be a finite number, got ${describeValue(raw)}`);
    if (integer && !Number.isInteger(value)) return new Problem(`must be an integer, got ${value}`);
    if (min !== undefined && value < min) return new Problem(`must be >= ${min}, got ${value}`);
    if (max !== undefined && value > max) return new Problem(`must be <= ${max}, got ${value}`);
    return value;
  };
}

function booleanChecker(): Checker {
  return (raw, source) => {
    if (raw === true) return 1;
    if (raw === false) return 0;
    if (source === 'text' && typeof raw === 'string') {
      const lower = raw.trim().toLowerCase();
      if (TRUE_TEXT.has(lower)) return 1;
      if (FALSE_TEXT.has(lower)) return 0;
    }
    return new Problem(`must be a boolean (true or false), got ${describeValue(raw)}`);
  };
}

function categoryChecker(spec: Extract<FeatureSpec, { type: 'category' | 'string' }>): Checker {
  const allowed = spec.values ? new Set(spec.values) : undefined;
  const rejectUnknown = allowed !== undefined && spec.unknown === 'reject';
  const shown = spec.values?.slice(0, 20).join(', ');
  const allowedText =
    spec.values && spec.values.length > 20 ? `${shown}, … (${spec.values.length} values)` : shown;
  const { maxLength } = spec;
  return (raw) => {
    if (typeof raw !== 'string') return new Problem(`must be a string, got ${describeValue(raw)}`);
    if (raw.length > maxLength)
      return new Problem(`must be at most ${maxLength} characters, got ${raw.length}`);
    if (rejectUnknown && !allowed.has(raw)) {
      return new Problem(`unknown category ${describeValue(raw)}; expected one of: ${allowedText}`);
    }
    return raw;
  };
}

/**
 * What a missing value becomes: the default, else (for an optional feature) NaN for numbers, which
 * exported imputers and tree ensembles treat as missing, or "" for categories; else nothing (required).
 */
function compile(spec: FeatureSpec): { checker: Checker; fallback: FeatureValue | undefined } {
  const optional = !spec.required;
  switch (spec.type) {
    case 'number':
    case 'integer':
      return { checker: numericChecker(spec), fallback: spec.default ?? (optional ? NaN : undefined) };
    case 'boolean':
      return {
        checker: booleanChecker(),
        fallback: spec.default === undefined ? (optional ? NaN : undefined) : Number(spec.default),
      };
    default:
      return { checker: categoryChecker(spec), fallback: spec.default ?? (optional ? '' : undefined) };
  }
}

const NO_OPTIONS: { ignoreUnknown?: boolean } = Object.freeze({});

export class FeatureValidator {
  readonly names: readonly string[];
  private readonly checkers: Checker[];
  private readonly fallbacks: (FeatureValue | undefined)[];
  private readonly indexByName: Map<string, number>;

  constructor(manifest: Manifest) {
    this.names = manifest.features.map((f) => f.name);
    const compiled = manifest.features.map(compile);
    this.checkers = compiled.map((c) => c.checker);
    this.fallbacks = compiled.map((c) => c.fallback);
    this.indexByName = new Map(this.names.map((n, i) => [n, i]));
  }

  indexOf(name: string): number | undefined {
    return this.indexByName.get(name);
  }

  /**
   * Validates a JSON `features` object. Unknown feature names are rejected (they are most often typos
   * that would otherwise silently fall back to a default) unless `ignoreUnknown` (dataset records carry
   * ids and other columns). Returns the row, or undefined with `issues` filled.
   */
  fromObject(
    features: unknown,
    issues: FeatureIssue[],
    fieldPrefix = 'features',
    options: { ignoreUnknown?: boolean } = NO_OPTIONS,
  ): FeatureRow | undefined {
    if (features === null || typeof features !== 'object' || Array.isArray(features)) {
      issues.push({
        field: fieldPrefix,
        message: `must be an object of feature values, got ${describeValue(features)}`,
      });
      return undefined;
    }
    const record = features as Record<string, unknown>;
    if (!options.ignoreUnknown) {
      const row = this.validRow(record);
      if (row) return row;
    }
    const before = issues.length;
    for (const key of options.ignoreUnknown ? [] : Object.keys(record)) {
      if (!this.indexByName.has(key)) {
        issues.push({
          field: fieldPrefix ? `${fieldPrefix}.${key}` : key,
          message: 'is not a feature of this model',
        });
      }
    }
    const row = new Array<FeatureValue>(this.checkers.length);
    for (let i = 0; i < this.checkers.length; i++) {
      const name = this.names[i]!;
      const raw = Object.hasOwn(record, name) ? record[name] : undefined;
      const value = this.check(i, raw === null ? undefined : raw, 'json');
      if (value instanceof Problem)
        issues.push({ field: fieldPrefix ? `${fieldPrefix}.${name}` : name, message: value.message });
      else row[i] = value;
    }
    return issues.length === before ? row : undefined;
  }

  /** The row of a valid JSON features object, or undefined (then fromObject says what is wrong). */
  validRowOf(features: unknown): FeatureRow | undefined {
    if (features === null || typeof features !== 'object' || Array.isArray(features)) return undefined;
    return this.validRow(features as Record<string, unknown>);
  }

  /**
   * One pass over the object's own keys, for the usual case of a valid instance: each key is looked up
   * once and its value checked, missing features take their fallback. Undefined when anything is wrong
   * (unknown name, bad or missing value): then fromObject's full pass names every problem, in its order.
   */
  private validRow(record: Record<string, unknown>): FeatureRow | undefined {
    const width = this.checkers.length;
    const row = new Array<FeatureValue>(width);
    let seen = 0;
    for (const key in record) {
      if (!Object.hasOwn(record, key)) continue;
      const index = this.indexByName.get(key);
      if (index === undefined) return undefined;
      const raw = record[key];
      if (raw === null || raw === undefined) continue;
      const value = this.checkers[index]!(raw, 'json');
      if (value === undefined || value instanceof Problem) return undefined;
      row[index] = value;
      seen++;
    }
    if (seen < width) {
      for (let i = 0; i < width; i++) {
        if (row[i] !== undefined) continue;
        const fallback = this.fallbacks[i];
        if (fallback === undefined) return undefined;
        row[i] = fallback;
      }
    }
    return row;
  }

  /**
   * Validates text fields (a CSV record, say): `fields[columns[i]]` holds feature i. Empty or absent
   * fields are missing. Returns the row, or undefined with `issues` filled.
   */
  fromText(
    fields: readonly (string | undefined)[],
    columns: readonly number[],
    issues: FeatureIssue[],
  ): FeatureRow | undefined {
    const before = issues.length;
    const row = new Array<FeatureValue>(this.checkers.length);
    for (let i = 0; i < this.checkers.length; i++) {
      const column = columns[i];
      const text = column === undefined || column < 0 ? undefined : fields[column];
      const value = this.check(i, text === '' ? undefined : text, 'text');
      if (value instanceof Problem) issues.push({ field: this.names[i]!, message: value.message });
      else row[i] = value;
    }
    return issues.length === before ? row : undefined;
  }

  private check(index: number, raw: unknown, source: ValueSource): FeatureValue | Problem {
    if (raw === undefined) {
      return this.fallbacks[index] ?? MISSING;
    }
    return this.checkers[index]!(raw, source) ?? MISSING;
  }
}

/**
 * Validates the JSON features of several instances; throws one ValidationError (INVALID_FEATURES) whose
 * details name every bad field as `instances.<i>.features.<name>` (or `features.<name>` when `single`).
 */
const NO_ISSUES_YET: FeatureIssue[] = [];

export function validateFeatureObjects(
  validator: FeatureValidator,
  instances: readonly { readonly index: number; readonly features: unknown }[],
  single: boolean,
): FeatureRow[] {
  const rows = new Array<FeatureRow>(instances.length);
  const details: ErrorDetail[] = [];
  let issues: FeatureIssue[] = NO_ISSUES_YET;
  for (let i = 0; i < instances.length; i++) {
    const { index, features } = instances[i]!;
    // Valid rows come back without an issue list being needed; the list is made for the first bad one.
    const row =
      validator.validRowOf(features) ??
      validator.fromObject(
        features,
        (issues = issues === NO_ISSUES_YET ? [] : issues),
        single ? 'features' : `instances.${index}.features`,
      );
    if (row) {
      rows[i] = row;
    } else {
      for (const issue of issues) details.push(single ? issue : { instance: index, ...issue });
      issues = [];
    }
  }
  if (details.length > 0) {
    const shown = details.slice(0, 3).map((d) => `${d.field} ${d.message}`);
    throw new ValidationError(
      'INVALID_FEATURES',
      `${details.length} invalid feature value${details.length === 1 ? '' : 's'}: ${shown.join('; ')}${
        details.length > 3 ? '; …' : ''
      }`,
      { details },
    );
  }
  return rows;
}
