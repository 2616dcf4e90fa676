/**
 * The JSON Lines chunk reader: each non-blank line of one planned byte range is one row, in
 * micro-batches (spans.ts), with bounded memory. A line that cannot be read comes out with an `error`
 * (invalid JSON, not an object) instead of stopping the chunk; `text` is always the original line.
 */
import { isUtf8 } from 'node:buffer';
import { JsonlRecordMachine } from './record-machines.ts';
import { DEFAULT_BATCH_BYTES, asBuffer, spans } from './spans.ts';

export interface JsonlRow {
  readonly row: number;
  readonly line: number;
  /** The parsed object, when the line is a JSON object. */
  readonly value?: unknown;
  /** Set when the row must be rejected: 'invalid UTF-8', 'invalid JSON: ...' or 'not an object: ...'. */
  readonly error?: string;
  /** The original line without its line end, for the rejected file. */
  readonly text: string;
}

export interface JsonlReadOptions {
  readonly firstRow: number;
  readonly firstLine: number;
  readonly batchBytes?: number;
}

function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function jsonlRow(row: number, line: number, text: string, error?: string): JsonlRow {
  if (error !== undefined) return { row, line, value: undefined, error, text };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    return { row, line, value: undefined, error: `invalid JSON: ${(cause as Error).message}`, text };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { row, line, value: undefined, error: `not an object: got ${describeJson(value)}`, text };
  }
  return { row, line, value, error: undefined, text };
}

/**
 * Reads the JSON Lines records of one byte range. Each non-blank line is one row: `value` is the
 * parsed object, or `error` says why the row must be rejected; `text` is always the original line.
 */
export async function* readJsonlRecords(
  stream: AsyncIterable<Uint8Array>,
  opts: JsonlReadOptions,
): AsyncGenerator<JsonlRow[]> {
  const machine = new JsonlRecordMachine();
  let row = opts.firstRow;
  let lineBase: number | undefined;
  for await (const span of spans(stream, machine, opts.batchBytes ?? DEFAULT_BATCH_BYTES)) {
    const { starts, ends, lines } = machine;
    const count = ends.length;
    lineBase ??= opts.firstLine - lines[0]!;
    const bytes = asBuffer(span.bytes);
    const base = span.base;
    const spanValid = isUtf8(bytes);
    const out = new Array<JsonlRow>(count);
    for (let k = 0; k < count; k++) {
      const start = starts[k]! - base;
      let end = ends[k]! - base;
      if (end > start && bytes[end - 1] === 10) end--;
      if (end > start && bytes[end - 1] === 13) end--;
      const text = bytes.toString('utf8', start, end);
      const valid = spanValid || isUtf8(bytes.subarray(start, end));
      out[k] = jsonlRow(row++, lineBase + lines[k]!, text, valid ? undefined : 'invalid UTF-8');
    }
    yield out;
  }
}

// ---------------------------------------------------------------------------------------------------
// Parquet
