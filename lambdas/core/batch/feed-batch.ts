/**
 * One micro-batch of a batch worker: the input tensors of up to `capacity` rows, filled in place row by
 * row (by the CSV fast path straight from the bytes, or from a validated FeatureRow with the same
 * conversions as tensors.ts encodeInput), plus each row's id, row number and pass-through values.
 *
 * A string input is held as codes into its dictionary (the allowed values of its features, which every
 * runner knows from the start) followed by the batch's other strings, so that a batch crosses to a scoring
 * thread as typed arrays and a few strings rather than one string per cell. Batches are reused: their
 * typed arrays travel to the scoring thread and back.
 */
import type { FeatureRow } from '../features.ts';
import type { Manifest } from '../manifest.ts';
import type { InputPlan } from '../tensors.ts';
import type { FeedSpec, TensorData } from './scoring-thread.ts';

type NumberArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** The dictionary of each string input (undefined for numeric inputs), and each column's codes in it. */
export interface StringDictionaries {
  readonly values: readonly (readonly string[] | undefined)[];
  /** Per input, per column: allowed value -> its code. */
  readonly codes: readonly (readonly ReadonlyMap<string, number>[] | undefined)[];
}

/** A string input's dictionary: the allowed values of each of its features, column after column. */
export function stringDictionaries(manifest: Manifest, plans: readonly InputPlan[]): StringDictionaries {
  const values: (string[] | undefined)[] = [];
  const codes: (Map<string, number>[] | undefined)[] = [];
  for (const plan of plans) {
    if (plan.type !== 'string') {
      values.push(undefined);
      codes.push(undefined);
      continue;
    }
    const dictionary: string[] = [];
    const columns = plan.columns.map((feature) => {
      const spec = manifest.features[feature];
      const known = new Map<string, number>();
      const allowed = spec && 'values' in spec ? (spec.values ?? []) : [];
      for (const value of allowed) {
        if (!known.has(value)) known.set(value, dictionary.length);
        dictionary.push(value);
      }
      return known;
    });
    values.push(dictionary);
    codes.push(columns);
  }
  return { values, codes };
}

function numberArray(plan: InputPlan, size: number): NumberArray | undefined {
  switch (plan.type) {
    case 'float32':
      return new Float32Array(size);
    case 'float64':
    case 'int64': // staged as doubles, converted to BigInt64Array in feeds()
      return new Float64Array(size);
    case 'int32':
      return new Int32Array(size);
    case 'bool':
      return new Uint8Array(size);
    case 'string':
      return undefined;
  }
}

/** Bytes that an id may hold to be written as it is, between quotes in JSON and as a CSV field. */
const PLAIN_ID_BYTE = new Uint8Array(256);
for (let b = 0x20; b < 0x7f; b++) PLAIN_ID_BYTE[b] = 1;
for (const b of [0x22 /* " */, 0x2c /* , */, 0x5c /* \ */]) PLAIN_ID_BYTE[b] = 0;

export class FeedBatch {
  /** Rows filled so far. */
  count = 0;
  /** Per row: its id as a string, or undefined when it is held as plain bytes (see id()). */
  private readonly idText: (string | undefined)[];
  /** Plain ids (printable ASCII without quotes, commas or backslashes): bytes [idFrom[i], idTo[i]). */
  idBytes: Buffer;
  readonly idFrom: Int32Array;
  readonly idTo: Int32Array;
  private idLength = 0;
  readonly rows: Float64Array;
  /** Per row: the pass-through values (when the plan has pass-through columns). */
  readonly passThrough: (readonly unknown[])[];
  /** Per input: its numbers ([capacity * width]), or undefined for a string input. */
  readonly numbers: (NumberArray | undefined)[];
  /** Per string input: its codes ([capacity * width]), or undefined for a numeric input. */
  readonly codes: (Int32Array | undefined)[];
  /** Per string input: the batch's strings that are not in the dictionary (codes from its length on). */
  private readonly extras: string[][];
  private readonly extraCodes: Map<string, number>[];
  private readonly widths: number[];

  constructor(
    readonly plans: readonly InputPlan[],
    readonly capacity: number,
    private readonly dictionaries: StringDictionaries,
  ) {
    this.idText = new Array<string | undefined>(capacity);
    this.idBytes = Buffer.alloc(capacity * 16);
    this.idFrom = new Int32Array(capacity);
    this.idTo = new Int32Array(capacity);
    this.rows = new Float64Array(capacity);
    this.passThrough = new Array<readonly unknown[]>(capacity).fill(EMPTY);
    this.widths = plans.map((p) => p.columns.length);
    this.numbers = plans.map((p, i) => numberArray(p, capacity * this.widths[i]!));
    this.codes = plans.map((p, i) =>
      p.type === 'string' ? new Int32Array(capacity * this.widths[i]!) : undefined,
    );
    this.extras = plans.map(() => []);
    this.extraCodes = plans.map(() => new Map());
  }

  /** What row `row` holds in column `column` of input `plan`: a number, or a string input's string. */
  valueAt(row: number, plan: number, column: number): number | string {
    const at = row * this.widths[plan]! + column;
    const numbers = this.numbers[plan];
    if (numbers) return numbers[at]!;
    const code = this.codes[plan]![at]!;
    const dictionary = this.dictionaries.values[plan]!;
    return code < dictionary.length ? dictionary[code]! : this.extras[plan]![code - dictionary.length]!;
  }

  get full(): boolean {
    return this.count >= this.capacity;
  }

  /** The code of a string in column `column` of string input `plan`. */
  stringCode(plan: number, column: number, value: string): number {
    const known = this.dictionaries.codes[plan]![column]!.get(value);
    if (known !== undefined) return known;
    const extraCodes = this.extraCodes[plan]!;
    let code = extraCodes.get(value);
    if (code === undefined) {
      const extras = this.extras[plan]!;
      code = this.dictionaries.values[plan]!.length + extras.length;
      extras.push(value);
      extraCodes.set(value, code);
    }
    return code;
  }

  /** Appends a validated row (the general path): tensors.ts encodeInput's conversions, value by value. */
  addFeatureRow(features: FeatureRow, id: string, row: number, passThrough: readonly unknown[]): void {
    const slot = this.count;
    const plans = this.plans;
    for (let p = 0; p < plans.length; p++) {
      const plan = plans[p]!;
      const width = this.widths[p]!;
      const base = slot * width;
      const numbers = this.numbers[p];
      if (numbers) {
        for (let c = 0; c < width; c++) {
          const value = features[plan.columns[c]!]!;
          numbers[base + c] = typeof value === 'number' ? value : (plan.codes[c]?.get(value) ?? NaN);
        }
      } else {
        const codes = this.codes[p]!;
        for (let c = 0; c < width; c++) {
          codes[base + c] = this.stringCode(p, c, String(features[plan.columns[c]!]));
        }
      }
    }
    this.commit(id, row, passThrough);
  }

  /** Ends the row being filled in place (slot `count`). */
  commit(id: string, row: number, passThrough: readonly unknown[]): void {
    this.end(id, row, passThrough);
  }

  private end(id: string | undefined, row: number, passThrough: readonly unknown[]): void {
    const slot = this.count++;
    this.idText[slot] = id;
    this.rows[slot] = row;
    this.passThrough[slot] = passThrough;
  }

  /**
   * Ends the row being filled in place, its id being the ASCII bytes [from, to): kept as bytes (copied)
   * when they are plain, else as a string.
   */
  commitBytes(bytes: Buffer, from: number, to: number, row: number, passThrough: readonly unknown[]): void {
    let at = this.idLength;
    if (at + (to - from) > this.idBytes.length) {
      const grown = Buffer.alloc(Math.max(this.idBytes.length * 2, at + (to - from)));
      grown.set(this.idBytes.subarray(0, at));
      this.idBytes = grown;
    }
    const idBytes = this.idBytes;
    const slot = this.count;
    this.idFrom[slot] = at;
    for (let i = from; i < to; i++) {
      const b = bytes[i]!;
      if (PLAIN_ID_BYTE[b] === 0) {
        this.commit(bytes.toString('latin1', from, to), row, passThrough);
        return;
      }
      idBytes[at++] = b;
    }
    this.idTo[slot] = at;
    this.idLength = at;
    this.end(undefined, row, passThrough);
  }

  /** Row i's id. */
  id(i: number): string {
    return this.idText[i] ?? this.idBytes.toString('latin1', this.idFrom[i], this.idTo[i]);
  }

  /** Row i's id when it is not held as plain bytes. */
  idString(i: number): string | undefined {
    return this.idText[i];
  }

  /** The input tensors of the rows filled so far. */
  feeds(): FeedSpec[] {
    const count = this.count;
    return this.plans.map((plan, p): FeedSpec => {
      const width = this.widths[p]!;
      const size = count * width;
      const dims = plan.rank === 1 ? [count] : [count, width];
      const codes = this.codes[p];
      if (codes) {
        const data = size === codes.length ? codes : codes.subarray(0, size);
        return { name: plan.name, type: 'string', codes: data, extras: this.extras[p]!, input: p, dims };
      }
      const numbers = this.numbers[p]!;
      let data: TensorData;
      if (plan.type === 'int64') {
        const big = new BigInt64Array(size);
        for (let i = 0; i < size; i++) big[i] = BigInt(Math.trunc(numbers[i]!) || 0);
        data = big;
      } else {
        // A view of part of a buffer would make onnxruntime-node copy the whole buffer: copy the part.
        data = size === numbers.length ? numbers : numbers.slice(0, size);
      }
      return { name: plan.name, type: plan.type as Exclude<InputPlan['type'], 'string'>, data, dims };
    });
  }

  /**
   * Takes back the typed arrays of a run's feeds (a scoring thread transfers them back) and empties the
   * batch for reuse.
   */
  reset(inputs: readonly TensorData[] | undefined): void {
    this.reclaim(inputs);
    this.clear();
  }

  /** Takes back the typed arrays a scoring thread transferred back, so that the rows can be read again. */
  reclaim(inputs: readonly TensorData[] | undefined): void {
    this.plans.forEach((plan, p) => {
      const returned = inputs?.[p];
      const own = this.codes[p] ?? this.numbers[p];
      if (own && own.length === 0) {
        // Transferred away: take the returned array back (it has the same size), or make a new one.
        const size = this.widths[p]! * this.capacity;
        if (this.codes[p]) {
          this.codes[p] =
            returned instanceof Int32Array && returned.buffer.byteLength === size * 4
              ? new Int32Array(returned.buffer)
              : new Int32Array(size);
        } else {
          const Type = own.constructor as new (buffer: ArrayBufferLike | number) => NumberArray;
          this.numbers[p] =
            ArrayBuffer.isView(returned) && returned.buffer.byteLength === size * own.BYTES_PER_ELEMENT
              ? new Type(returned.buffer)
              : numberArray(plan, size);
        }
      }
    });
  }

  /** Empties the batch for reuse. */
  clear(): void {
    this.count = 0;
    this.idLength = 0;
    this.plans.forEach((_, p) => {
      this.extras[p] = [];
      this.extraCodes[p]!.clear();
    });
    this.passThrough.fill(EMPTY);
  }

  /**
   * Row i's features as a JSON object, read back from its tensors (data capture): category codes become
   * their values, booleans true/false, float32 numbers their shortest float32 text (0.1, not
   * 0.10000000149011612). A feature left out of every input is absent.
   */
  features(i: number, manifest: Manifest): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.plans.forEach((plan, p) => {
      const numbers = this.numbers[p];
      for (let c = 0; c < this.widths[p]!; c++) {
        const spec = manifest.features[plan.columns[c]!]!;
        const read = this.valueAt(i, p, c);
        if (typeof read === 'string') {
          out[spec.name] = read;
          continue;
        }
        const value = numbers instanceof Float32Array ? shortestFloat32(read) : read;
        const valueCodes = plan.codes[c];
        if (valueCodes) out[spec.name] = [...valueCodes].find(([, v]) => v === value)?.[0] ?? null;
        else if (spec.type === 'boolean') out[spec.name] = value !== 0;
        else out[spec.name] = Number.isNaN(value) ? null : value;
      }
    });
    return out;
  }
}

const EMPTY: readonly unknown[] = [];

/** The shortest decimal that reads back as the same float32 (what the source most likely held). */
function shortestFloat32(value: number): number {
  for (let digits = 1; digits < 9; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}
