/**
 * The CSV fast path of a batch worker: validation compiled once per (manifest, header), run on the bytes
 * of a plain ASCII record (no quotes, see CsvRecordMachine.plain), writing the values straight into the
 * micro-batch's input tensors: no field strings, no FeatureRow, no per-row objects.
 *
 * It only ever accepts: a record it is not sure about (any value it does not parse exactly, any check that
 * fails, a ragged record, an empty id) is left to the general path (CsvSpan.row + FeatureValidator.fromText),
 * which accepts or rejects it with its reasons. So the decisions and reasons are the general path's by
 * construction; what the fast path must guarantee is that a record it accepts is one the general path
 * accepts with the same values, which test/unit/csv-fast-path.test.ts checks against FeatureValidator.
 *
 * Exactness of numbers: a decimal of at most 15 digits without exponent is m / 10^k with m < 2^53 and
 * k <= 15, both exact doubles, so one IEEE division gives the correctly rounded value, which is what
 * Number(text) gives; anything longer, or with an exponent, goes to the general path.
 */
import type { CsvSpan } from '../codecs/csv-reader.ts';
import type { FeatureSpec, Manifest } from '../manifest.ts';
import type { InputPlan } from '../tensors.ts';
import type { FeedBatch, StringDictionaries } from './feed-batch.ts';
import { MAX_ENTITY_ID_LENGTH } from '../entity-id.ts';

const KIND_NUMBER = 0;
const KIND_INTEGER = 1;
const KIND_BOOLEAN = 2;
const KIND_CATEGORY = 3;

/** Exact powers of ten (10^0 .. 10^15). */
const POW10 = Array.from({ length: 16 }, (_, i) => 10 ** i);
const MAX_DIGITS = 15;

/** Where one feature goes: input plan `plan`, column `column` (and its category codes). */
interface Target {
  readonly plan: number;
  readonly column: number;
  readonly width: number;
  readonly numeric: boolean;
  readonly codes: ReadonlyMap<string, number> | undefined;
  /** String inputs: per allowed value (of CompiledFeature.values), its code in the input's dictionary. */
  readonly valueCodes: readonly number[];
}

interface CompiledFeature {
  readonly kind: number;
  /** The feature's column in the header, or -1 when the file has none. */
  readonly column: number;
  readonly min: number;
  readonly max: number;
  /** What a missing value becomes (features.ts compile): undefined = required. */
  readonly fallback: number | string | undefined;
  /** Categories: allowed values, whether others are rejected, the longest allowed. */
  readonly values: readonly string[];
  readonly valueBytes: readonly (readonly number[])[];
  readonly lookup: ReadonlyMap<string, number> | undefined;
  readonly rejectUnknown: boolean;
  readonly maxLength: number;
  readonly targets: readonly Target[];
}

/** features.ts compile(): the default, else NaN / "" for an optional feature, else required. */
function fallbackOf(spec: FeatureSpec): number | string | undefined {
  const optional = !spec.required;
  switch (spec.type) {
    case 'number':
    case 'integer':
      return spec.default ?? (optional ? NaN : undefined);
    case 'boolean':
      return spec.default === undefined ? (optional ? NaN : undefined) : Number(spec.default);
    default:
      return spec.default ?? (optional ? '' : undefined);
  }
}

function isAsciiText(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 127) return false;
  return true;
}

/** Values compared byte by byte up to this many; a longer list is looked up by its text. */
const LINEAR_LOOKUP = 16;

export class CsvFastPath {
  private readonly features: CompiledFeature[];
  private readonly idColumn: number;
  private readonly passColumns: readonly number[];
  private readonly columns: number;
  private readonly delimiter: number;
  private readonly fieldStart: Int32Array;
  private readonly fieldEnd: Int32Array;
  /** Per column: the feature it holds, or -1. */
  private readonly columnFeature: Int32Array;
  /** Features the file has no column for: they always take their fallback. */
  private readonly absent: readonly CompiledFeature[];
  /** Never sure of anything (no id column, or a required feature without a column): all rows go the general way. */
  private readonly disabled: boolean;

  /** The allowed value matched by the last category() call (an index into its values), or -1. */
  private matched = -1;

  constructor(
    manifest: Manifest,
    plans: readonly InputPlan[],
    dictionaries: StringDictionaries,
    header: readonly string[],
    delimiter: string,
    passThroughColumns: readonly string[],
  ) {
    this.columns = header.length;
    this.delimiter = delimiter.charCodeAt(0);
    this.idColumn = header.indexOf(manifest.idField);
    this.passColumns = passThroughColumns.map((c) => header.indexOf(c));
    this.fieldStart = new Int32Array(header.length);
    this.fieldEnd = new Int32Array(header.length);
    const asciiValues = manifest.features.map((spec) =>
      spec.type === 'category' || spec.type === 'string' ? (spec.values ?? []).filter(isAsciiText) : [],
    );
    const targets = manifest.features.map(() => [] as Target[]);
    plans.forEach((plan, p) => {
      plan.columns.forEach((feature, c) => {
        const inDictionary = dictionaries.codes[p]?.[c];
        targets[feature]!.push({
          plan: p,
          column: c,
          width: plan.columns.length,
          numeric: plan.type !== 'string',
          codes: plan.codes[c],
          valueCodes: inDictionary ? asciiValues[feature]!.map((v) => inDictionary.get(v)!) : [],
        });
      });
    });
    this.features = manifest.features.map((spec, i) => {
      const numeric = spec.type === 'number' || spec.type === 'integer';
      const category = spec.type === 'category' || spec.type === 'string';
      const values = asciiValues[i]!;
      return {
        kind:
          spec.type === 'number'
            ? KIND_NUMBER
            : spec.type === 'integer'
              ? KIND_INTEGER
              : spec.type === 'boolean'
                ? KIND_BOOLEAN
                : KIND_CATEGORY,
        column: header.indexOf(spec.name),
        min: numeric ? (spec.min ?? -Infinity) : -Infinity,
        max: numeric ? (spec.max ?? Infinity) : Infinity,
        fallback: fallbackOf(spec),
        values,
        valueBytes: values.map((v) => Array.from(v, (ch) => ch.charCodeAt(0))),
        lookup: values.length > LINEAR_LOOKUP ? new Map(values.map((v, index) => [v, index])) : undefined,
        rejectUnknown: category && spec.values !== undefined && spec.unknown === 'reject',
        maxLength: category ? spec.maxLength : 0,
        targets: targets[i]!,
      };
    });
    this.columnFeature = new Int32Array(header.length).fill(-1);
    this.features.forEach((feature, f) => {
      if (feature.column >= 0) this.columnFeature[feature.column] = f;
    });
    this.absent = this.features.filter((feature) => feature.column < 0);
    this.disabled = this.idColumn < 0 || this.absent.some((feature) => feature.fallback === undefined);
  }

  /**
   * Fills the next row of `batch` from plain record k of an ASCII span (span.isAscii, span.plain[k]
   * 1) and commits it; false (the row left uncommitted) when the general path must decide. One pass over
   * the bytes: numbers are parsed as their field is scanned.
   */
  tryFill(span: CsvSpan, k: number, batch: FeedBatch): boolean {
    if (this.disabled) return false;
    const bytes = span.bytes;
    const end = span.contentEnd(k);
    const { fieldStart, fieldEnd, delimiter, columnFeature, features } = this;
    const last = this.columns - 1;
    const slot = batch.count;
    let i = span.start(k);
    for (let column = 0; ; column++) {
      const from = i;
      const f = columnFeature[column]!;
      const feature = f >= 0 ? features[f]! : undefined;
      if (feature !== undefined && feature.kind <= KIND_INTEGER) {
        // [+-]digits[.digits], at most MAX_DIGITS digits: see decimalAt.
        let negative = false;
        let mantissa = 0;
        let digits = 0;
        let fraction = 0;
        let dot = false;
        if (i < end) {
          const sign = bytes[i];
          if (sign === 45 /* - */) {
            negative = true;
            i++;
          } else if (sign === 43 /* + */) {
            i++;
          }
        }
        for (; i < end; i++) {
          const c = bytes[i]!;
          const digit = c - 48;
          if (digit >= 0 && digit <= 9) {
            mantissa = mantissa * 10 + digit;
            digits++;
            if (dot) fraction++;
          } else if (c === delimiter) {
            break;
          } else if (c === 46 /* . */ && !dot) {
            dot = true;
          } else {
            return false;
          }
        }
        if (i === from) {
          if (!this.put(feature, slot, feature.fallback, batch)) return false;
        } else {
          if (digits === 0 || digits > MAX_DIGITS) return false;
          let value = fraction === 0 ? mantissa : mantissa / POW10[fraction]!;
          if (negative) value = -value;
          if (
            value < feature.min ||
            value > feature.max ||
            (feature.kind === KIND_INTEGER && !Number.isInteger(value))
          )
            return false;
          const targets = feature.targets;
          for (let t = 0; t < targets.length; t++) {
            const target = targets[t]!;
            const at = slot * target.width + target.column;
            if (target.numeric) batch.numbers[target.plan]![at] = value;
            else batch.codes[target.plan]![at] = batch.stringCode(target.plan, target.column, String(value));
          }
        }
      } else {
        while (i < end && bytes[i] !== delimiter) i++;
        if (feature !== undefined) {
          this.matched = -1;
          let value: number | string | undefined;
          if (i === from) value = feature.fallback;
          else if (feature.kind === KIND_BOOLEAN) {
            const flag = booleanAt(bytes, from, i);
            if (flag < 0) return false;
            value = flag;
          } else {
            value = this.category(feature, span, from, i);
          }
          if (!this.put(feature, slot, value, batch)) return false;
        }
      }
      fieldStart[column] = from;
      fieldEnd[column] = i;
      if (i === end) {
        if (column !== last) return false;
        break;
      }
      if (column === last) return false;
      i++;
    }

    const idColumn = this.idColumn;
    const idFrom = fieldStart[idColumn]!;
    const idTo = fieldEnd[idColumn]!;
    // No id, or one the table cannot key (ASCII: bytes are characters): the general path rejects it.
    if (idFrom === idTo || idTo - idFrom > MAX_ENTITY_ID_LENGTH) return false;
    for (const feature of this.absent) this.put(feature, slot, feature.fallback, batch);

    const passColumns = this.passColumns;
    let passThrough: readonly unknown[] = NO_VALUES;
    if (passColumns.length > 0) {
      const text = span.ascii!;
      const values = new Array<string | null>(passColumns.length);
      for (let p = 0; p < passColumns.length; p++) {
        const column = passColumns[p]!;
        values[p] = column < 0 ? null : text.slice(fieldStart[column]!, fieldEnd[column]!);
      }
      passThrough = values;
    }
    batch.commitBytes(bytes, idFrom, idTo, span.firstRow + k, passThrough);
    return true;
  }

  /**
   * Writes a feature's value into row `slot` of every input it feeds (category: `matched` says which
   * allowed value it is); false, writing nothing, when there is no value (a required feature is missing
   * or a category is not sure).
   */
  private put(
    feature: CompiledFeature,
    slot: number,
    value: number | string | undefined,
    batch: FeedBatch,
  ): boolean {
    if (value === undefined) return false;
    const targets = feature.targets;
    const matched = feature.kind === KIND_CATEGORY ? this.matched : -1;
    for (let t = 0; t < targets.length; t++) {
      const target = targets[t]!;
      const at = slot * target.width + target.column;
      if (target.numeric) {
        batch.numbers[target.plan]![at] =
          typeof value === 'number' ? value : (target.codes?.get(value) ?? NaN);
      } else {
        batch.codes[target.plan]![at] =
          matched >= 0
            ? target.valueCodes[matched]!
            : batch.stringCode(target.plan, target.column, String(value));
      }
    }
    return true;
  }

  /** The category value of bytes [from, to), or undefined when the general path must decide. */
  private category(feature: CompiledFeature, span: CsvSpan, from: number, to: number): string | undefined {
    const bytes = span.bytes;
    const length = to - from;
    this.matched = -1;
    if (length > feature.maxLength) return undefined;
    const { values } = feature;
    if (feature.lookup) {
      const found = feature.lookup.get(span.ascii!.slice(from, to));
      if (found !== undefined) {
        this.matched = found;
        return values[found]!;
      }
    } else {
      const { valueBytes } = feature;
      for (let v = 0; v < values.length; v++) {
        const codes = valueBytes[v]!;
        if (codes.length !== length) continue;
        let same = true;
        for (let i = 0; i < length; i++) {
          if (bytes[from + i] !== codes[i]) {
            same = false;
            break;
          }
        }
        if (same) {
          this.matched = v;
          return values[v]!;
        }
      }
    }
    return feature.rejectUnknown ? undefined : span.ascii!.slice(from, to);
  }
}

const NO_VALUES: readonly unknown[] = [];

/**
 * A decimal `[+-]digits[.digits]` of at most 15 digits, exactly as Number() reads it; NaN for anything
 * else (the general path decides).
 */
export function decimalAt(bytes: Uint8Array, from: number, to: number): number {
  let i = from;
  let negative = false;
  const sign = bytes[i];
  if (sign === 45 /* - */) {
    negative = true;
    i++;
  } else if (sign === 43 /* + */) {
    i++;
  }
  let mantissa = 0;
  let digits = 0;
  let fraction = 0;
  let dot = false;
  for (; i < to; i++) {
    const c = bytes[i]!;
    const digit = c - 48;
    if (digit >= 0 && digit <= 9) {
      mantissa = mantissa * 10 + digit;
      digits++;
      if (dot) fraction++;
    } else if (c === 46 /* . */ && !dot) {
      dot = true;
    } else {
      return NaN;
    }
  }
  if (digits === 0 || digits > MAX_DIGITS) return NaN;
  const value = fraction === 0 ? mantissa : mantissa / POW10[fraction]!;
  return negative ? -value : value;
}

/**
 * The boolean tokens of features.ts (true/false, 1/0, yes/no, y/n, t/f) in any ASCII case: 1 or 0; -1 for
 * anything else (padded, say: the general path trims it).
 */
export function booleanAt(bytes: Uint8Array, from: number, to: number): number {
  const length = to - from;
  const c = bytes[from]!;
  const a = c | 0x20;
  switch (length) {
    case 1:
      if (c === 49 /* 1 */ || a === 121 /* y */ || a === 116 /* t */) return 1;
      if (c === 48 /* 0 */ || a === 110 /* n */ || a === 102 /* f */) return 0;
      return -1;
    case 2:
      return a === 110 && (bytes[from + 1]! | 0x20) === 111 ? 0 : -1;
    case 3:
      return a === 121 && (bytes[from + 1]! | 0x20) === 101 && (bytes[from + 2]! | 0x20) === 115 ? 1 : -1;
    case 4:
      return a === 116 &&
        (bytes[from + 1]! | 0x20) === 114 &&
        (bytes[from + 2]! | 0x20) === 117 &&
        (bytes[from + 3]! | 0x20) === 101
        ? 1
        : -1;
    case 5:
      return a === 102 &&
        (bytes[from + 1]! | 0x20) === 97 &&
        (bytes[from + 2]! | 0x20) === 108 &&
        (bytes[from + 3]! | 0x20) === 115 &&
        (bytes[from + 4]! | 0x20) === 101
        ? 0
        : -1;
    default:
      return -1;
  }
}
