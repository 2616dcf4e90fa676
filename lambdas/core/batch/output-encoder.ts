/**
 * Prediction rows as text: JSON Lines (the default) or CSV. From decoded predictions (`encode`), or, for a
 * scored micro-batch, straight from the model's raw outputs into bytes (`encodeOutputs`), with the same
 * text.
 */
import type { ServedModel } from '../model-loader.ts';
import { decodePredictions, type ClassPrediction, type OutputPlan, type Prediction } from '../predictions.ts';
import type { OutputFormat } from './contracts.ts';
import type { Outputs } from './scoring-thread.ts';

export interface EncodableRow {
  readonly id: string;
  readonly record: { readonly row: number; readonly passThrough: readonly unknown[] };
}

/** Scored rows as a micro-batch holds them (feed-batch.ts). */
export interface EncodableBatch {
  readonly count: number;
  readonly rows: ArrayLike<number>;
  readonly passThrough: readonly (readonly unknown[])[];
  id(i: number): string;
  /** Row i's id, unless it is held as plain bytes: idBytes [idFrom[i], idTo[i]). */
  idString(i: number): string | undefined;
  readonly idBytes: Uint8Array;
  readonly idFrom: ArrayLike<number>;
  readonly idTo: ArrayLike<number>;
}

/** Builds one output chunk as bytes. */
class ByteWriter {
  private buffer = Buffer.allocUnsafe(64 * 1024);
  private at = 0;

  reserve(bytes: number): void {
    if (this.at + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.at + bytes));
    this.buffer.copy(grown, 0, 0, this.at);
    this.buffer = grown;
  }

  /** Bytes already reserved. */
  bytes(bytes: Uint8Array, from = 0, to = bytes.length): void {
    const buffer = this.buffer;
    let at = this.at;
    for (let i = from; i < to; i++) buffer[at++] = bytes[i]!;
    this.at = at;
  }

  /** An ASCII string (a number, say), already reserved. */
  ascii(text: string): void {
    const buffer = this.buffer;
    let at = this.at;
    for (let i = 0; i < text.length; i++) buffer[at++] = text.charCodeAt(i);
    this.at = at;
  }

  /** Any string, as UTF-8 (reserves its room). */
  text(text: string): void {
    this.reserve(text.length * 3);
    this.at += this.buffer.write(text, this.at, 'utf8');
  }

  /** A non-negative integer, already reserved (at most 16 digits). */
  integer(value: number): void {
    if (value < 10) {
      this.buffer[this.at++] = 48 + value;
      return;
    }
    const buffer = this.buffer;
    let digits = 1;
    for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    let at = this.at + digits;
    this.at = at;
    for (let rest = value; digits > 0; digits--) {
      const next = Math.floor(rest / 10);
      buffer[--at] = 48 + rest - next * 10;
      rest = next;
    }
  }

  /** The bytes written, as their own Buffer; the writer starts afresh. */
  take(): Buffer {
    const out = this.buffer.subarray(0, this.at);
    this.buffer = Buffer.allocUnsafe(this.buffer.length);
    this.at = 0;
    return out;
  }
}

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

export type CsvFormulas = 'neutralize' | 'raw';

/** What a spreadsheet reads as the start of a formula (OWASP "CSV Injection"). */
const FORMULA_START = /^[=+\-@\t\r]/;
/** A number as text ("-1.5", "+3", "1e-9"): a spreadsheet reads it as that number, never a formula. */
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** True when text would be read as a formula by a spreadsheet. */
export function isFormulaLike(text: string): boolean {
  return FORMULA_START.test(text) && !NUMBER.test(text);
}

/**
 * One CSV field. With `neutralize`, text a spreadsheet would run as a formula gets a single quote before
 * it, in a quoted field (OWASP); numbers (typed or as text) are left as they are.
 */
export function csvField(value: unknown, formulas: CsvFormulas = 'raw'): string {
  if (value === null || value === undefined) return '';
  const text =
    typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  if (formulas === 'neutralize' && typeof value !== 'number' && isFormulaLike(text))
    return `"'${text.replace(/"/g, '""')}"`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** JSON.stringify of a number. */
function jsonNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null';
}

/**
 * What decodeClassification (predictions.ts) builds for a probabilities output, compiled for writing the
 * text directly: each class's JSON label, and the probability object's keys in the order JSON.stringify
 * enumerates them (integer-like keys first, ascending), each with the class whose value it ends up with.
 */
interface ProbabilityLayout {
  readonly name: string;
  /** Per class: `,"prediction":{"label":<label>,"probabilities":{` as UTF-8. */
  readonly jsonLabels: readonly Uint8Array[];
  /** Per class: `,<label>` as UTF-8. */
  readonly csvLabels: readonly Uint8Array[];
  /** Per key: `"key":` (with a leading comma from the second on). */
  readonly jsonKeys: readonly Uint8Array[];
  readonly jsonKeyClass: readonly number[];
  /** For CSV: per class key in class order, the class whose value byClass[key] holds. */
  readonly csvKeyClass: readonly number[];
}

const utf8 = (text: string): Uint8Array => Buffer.from(text, 'utf8');

function probabilityLayout(plan: OutputPlan, formulas: CsvFormulas): ProbabilityLayout | undefined {
  const classes = plan.classes;
  if (plan.task === 'regression' || plan.label !== undefined || !plan.probabilities || !classes)
    return undefined;
  const keys = classes.map(String);
  const byKey: Record<string, number> = {};
  keys.forEach((key, c) => (byKey[key] = c));
  const order = Object.keys(byKey);
  return {
    name: plan.probabilities,
    jsonLabels: classes.map((c) => utf8(`,"prediction":{"label":${JSON.stringify(c)},"probabilities":{`)),
    csvLabels: classes.map((c) => utf8(`,${csvField(c, formulas)}`)),
    jsonKeys: order.map((key, k) => utf8(`${k > 0 ? ',' : ''}${JSON.stringify(key)}:`)),
    jsonKeyClass: order.map((key) => byKey[key]!),
    csvKeyClass: keys.map((key) => byKey[key]!),
  };
}

export class OutputEncoder {
  readonly contentType: string;
  private readonly classKeys: string[] | undefined;
  private readonly csvHeader: string;
  private readonly passKeys: string[];
  private readonly csvHeaderBytes: Uint8Array;
  private readonly writer = new ByteWriter();
  private readonly formulas: CsvFormulas;

  constructor(
    private readonly format: OutputFormat,
    model: Pick<ServedModel, 'manifest' | 'classes'>,
    private readonly passThroughColumns: readonly string[],
    /** @default { csvFormulas: 'neutralize' } */
    options: { readonly csvFormulas?: CsvFormulas } = {},
  ) {
    this.formulas = options.csvFormulas ?? 'neutralize';
    this.contentType = format === 'csv' ? 'text/csv' : 'application/x-ndjson';
    this.classKeys = model.classes?.map(String);
    const predictionColumns =
      model.manifest.task === 'regression'
        ? ['value']
        : ['label', ...(this.classKeys ?? []).map((c) => `probability_${c}`)];
    this.csvHeader =
      ['id', 'row', ...predictionColumns, ...passThroughColumns]
        .map((name) => csvField(name, this.formulas))
        .join(',') + '\n';
    this.passKeys = passThroughColumns.map((c, i) => `${i > 0 ? ',' : ''}${JSON.stringify(c)}:`);
    this.csvHeaderBytes = utf8(this.csvHeader);
  }

  encode(rows: readonly EncodableRow[], predictions: readonly Prediction[], includeHeader: boolean): string {
    return this.format === 'csv' ? this.csv(rows, predictions, includeHeader) : this.jsonl(rows, predictions);
  }

  /**
   * The rows of a scored micro-batch from its raw outputs: the same text as `encode` over
   * decodePredictions(plan, outputs, batch.count), written without building the predictions when the
   * model outputs class probabilities (its usual shape), through them otherwise.
   */
  encodeOutputs(
    batch: EncodableBatch,
    outputs: Outputs,
    plan: OutputPlan,
    includeHeader: boolean,
  ): string | Uint8Array {
    const layout = (this.layout ??= { value: probabilityLayout(plan, this.formulas) }).value;
    const tensor = layout ? outputs[layout.name] : undefined;
    const classes = plan.classes;
    if (layout && tensor && classes) {
      const dims = tensor.dims;
      const columns = dims.length >= 2 ? dims[dims.length - 1]! : 1;
      const positiveOnly = columns === 1 && classes.length === 2;
      if (positiveOnly || columns === classes.length) {
        return this.format === 'csv'
          ? this.csvFromProbabilities(batch, tensor.data, columns, positiveOnly, layout, includeHeader)
          : this.jsonlFromProbabilities(batch, tensor.data, columns, positiveOnly, layout);
      }
    }
    const predictions = decodePredictions(plan, outputs as never, batch.count);
    const rows: EncodableRow[] = [];
    for (let i = 0; i < batch.count; i++) {
      rows.push({ id: batch.id(i), record: { row: batch.rows[i]!, passThrough: batch.passThrough[i]! } });
    }
    return this.encode(rows, predictions, includeHeader);
  }

  private layout: { value: ProbabilityLayout | undefined } | undefined;
  private readonly probabilities: number[] = [];

  /** Row i's probabilities (decodeClassification's values) into this.probabilities; returns the argmax. */
  private classify(
    data: ArrayLike<number | bigint | string>,
    i: number,
    columns: number,
    positiveOnly: boolean,
    classCount: number,
  ): number {
    const ps = this.probabilities;
    let best = 0;
    let bestP = -Infinity;
    for (let c = 0; c < classCount; c++) {
      const p = positiveOnly
        ? c === 1
          ? numberAt(data, i)
          : 1 - numberAt(data, i)
        : numberAt(data, i * columns + c);
      ps[c] = p;
      if (p > bestP) {
        bestP = p;
        best = c;
      }
    }
    return best;
  }

  /** The id of row i: its plain bytes, else `json` / `csv` of its string. */
  private id(batch: EncodableBatch, i: number, quoted: boolean): void {
    const writer = this.writer;
    const text = batch.idString(i);
    if (text !== undefined) {
      writer.text(quoted ? JSON.stringify(text) : csvField(text, this.formulas));
      return;
    }
    const from = batch.idFrom[i]!;
    const to = batch.idTo[i]!;
    // Plain bytes are ASCII without quotes or delimiters: only a formula needs more than a copy.
    if (!quoted && this.formulas === 'neutralize' && to > from && FORMULA_BYTES.has(batch.idBytes[from]!)) {
      writer.text(
        csvField(
          Buffer.from(batch.idBytes.buffer, batch.idBytes.byteOffset + from, to - from).toString('latin1'),
          'neutralize',
        ),
      );
      return;
    }
    writer.reserve(to - from + 2);
    if (quoted) writer.bytes(QUOTES, 0, 1);
    writer.bytes(batch.idBytes, from, to);
    if (quoted) writer.bytes(QUOTES, 0, 1);
  }

  private jsonlFromProbabilities(
    batch: EncodableBatch,
    data: ArrayLike<number | bigint | string>,
    columns: number,
    positiveOnly: boolean,
    layout: ProbabilityLayout,
  ): Uint8Array {
    const { jsonLabels, jsonKeys, jsonKeyClass } = layout;
    const classCount = jsonLabels.length;
    const ps = this.probabilities;
    const passKeys = this.passKeys;
    const writer = this.writer;
    for (let i = 0; i < batch.count; i++) {
      const best = this.classify(data, i, columns, positiveOnly, classCount);
      writer.reserve(ID_OPEN.length);
      writer.bytes(ID_OPEN);
      this.id(batch, i, true);
      const label = jsonLabels[best]!;
      writer.reserve(ROW_OPEN.length + 16 + label.length);
      writer.bytes(ROW_OPEN);
      writer.integer(batch.rows[i]!);
      writer.bytes(label);
      for (let k = 0; k < jsonKeys.length; k++) {
        const key = jsonKeys[k]!;
        writer.reserve(key.length + 32);
        writer.bytes(key);
        writer.ascii(jsonNumber(ps[jsonKeyClass[k]!]!));
      }
      if (passKeys.length > 0) {
        const values = batch.passThrough[i]!;
        let input = '}},"input":{';
        for (let c = 0; c < passKeys.length; c++)
          input += `${passKeys[c]}${JSON.stringify(values[c] ?? null)}`;
        writer.text(`${input}}}\n`);
      } else {
        writer.reserve(LINE_CLOSE.length);
        writer.bytes(LINE_CLOSE);
      }
    }
    return writer.take();
  }

  private csvFromProbabilities(
    batch: EncodableBatch,
    data: ArrayLike<number | bigint | string>,
    columns: number,
    positiveOnly: boolean,
    layout: ProbabilityLayout,
    includeHeader: boolean,
  ): Uint8Array {
    const { csvLabels, csvKeyClass } = layout;
    const classCount = csvLabels.length;
    const ps = this.probabilities;
    const writer = this.writer;
    if (includeHeader) {
      writer.reserve(this.csvHeaderBytes.length);
      writer.bytes(this.csvHeaderBytes);
    }
    for (let i = 0; i < batch.count; i++) {
      const best = this.classify(data, i, columns, positiveOnly, classCount);
      this.id(batch, i, false);
      const label = csvLabels[best]!;
      writer.reserve(18 + label.length);
      writer.bytes(COMMA);
      writer.integer(batch.rows[i]!);
      writer.bytes(label);
      for (let k = 0; k < csvKeyClass.length; k++) {
        const text = String(ps[csvKeyClass[k]!]);
        writer.reserve(text.length + 1);
        writer.bytes(COMMA);
        writer.ascii(text);
      }
      const values = batch.passThrough[i]!;
      if (values.length > 0) {
        let rest = '';
        for (const value of values) rest += `,${csvField(value, this.formulas)}`;
        writer.text(rest);
      }
      writer.reserve(1);
      writer.bytes(NEWLINE);
    }
    return writer.take();
  }

  private jsonl(rows: readonly EncodableRow[], predictions: readonly Prediction[]): string {
    let out = '';
    const pass = this.passThroughColumns;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      out += `{"id":${JSON.stringify(row.id)},"row":${row.record.row},"prediction":${JSON.stringify(predictions[i])}`;
      if (pass.length > 0) {
        out += ',"input":{';
        for (let c = 0; c < pass.length; c++) {
          out += `${c > 0 ? ',' : ''}${JSON.stringify(pass[c])}:${JSON.stringify(row.record.passThrough[c] ?? null)}`;
        }
        out += '}';
      }
      out += '}\n';
    }
    return out;
  }

  private csv(
    rows: readonly EncodableRow[],
    predictions: readonly Prediction[],
    includeHeader: boolean,
  ): string {
    let out = includeHeader ? this.csvHeader : '';
    const keys = this.classKeys;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      const prediction = predictions[i]!;
      out += `${csvField(row.id, this.formulas)},${row.record.row}`;
      if ('label' in prediction) {
        out += `,${csvField(prediction.label, this.formulas)}`;
        if (keys)
          for (const key of keys) out += `,${(prediction as ClassPrediction).probabilities?.[key] ?? ''}`;
      } else {
        out += `,${'value' in prediction ? prediction.value : csvField(prediction.values)}`;
      }
      for (const value of row.record.passThrough) out += `,${csvField(value, this.formulas)}`;
      out += '\n';
    }
    return out;
  }
}

const QUOTES = ascii('"');
const FORMULA_BYTES = new Set(ascii('=+-@\t\r'));
const COMMA = ascii(',');
const NEWLINE = ascii('\n');
const ID_OPEN = ascii('{"id":');
const ROW_OPEN = ascii(',"row":');
const LINE_CLOSE = ascii('}}}\n');

function numberAt(data: ArrayLike<number | bigint | string>, i: number): number {
  const value = data[i];
  return typeof value === 'bigint' ? Number(value) : (value as number);
}
