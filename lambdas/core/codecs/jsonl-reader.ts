/**
 * The JSON Lines chunk reader: each non-blank line of one planned byte range is one row, in
 * micro-batches (spans.ts), with bounded memory. A line that cannot be read comes out with an `error`
 * (invalid JSON, not an object) instead of stopping the chunk; `text` is always the original line.
 */
import { isUtf8 } from 'node:buffer';
import { JsonlRecordMachine } from './record-machines.ts';
import { DEFAULT_BATCH_BYTES, TOO_LARGE_PREVIEW_BYTES, asBuffer, recordTooLarge, spans } from './spans.ts';

export interface JsonlRow {
  readonly row: number;
  readonly line: number;
  /** The parsed object, when the line is a JSON object. */
  readonly value?: unknown;
  /**
   * Set when the row must be rejected: 'invalid UTF-8' (when the line does not parse once decoded with
   * U+FFFD replacements), 'invalid JSON: ...', 'not an object: ...' or 'RECORD_TOO_LARGE: ...'.
   */
  readonly error?: string;
  /**
   * The line has bytes that are not UTF-8 but parses once they are replaced with U+FFFD: the caller
   * decides whether the values it uses are whole (a bad byte in a field nobody reads harms nothing).
   */
  readonly invalidUtf8?: boolean;
  /** The original line without its line end, for the rejected file. */
  readonly text: string;
}

export interface JsonlReadOptions {
  readonly firstRow: number;
  readonly firstLine: number;
  readonly batchBytes?: number;
  /** A longer line is a rejected row, not parsed (its text cut to TOO_LARGE_PREVIEW_BYTES). */
  readonly maxRecordBytes?: number;
}

function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function jsonlRow(row: number, line: number, text: string, invalidUtf8: boolean): JsonlRow {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    const error = invalidUtf8 ? 'invalid UTF-8' : `invalid JSON: ${(cause as Error).message}`;
    return { row, line, value: undefined, error, text };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const error = invalidUtf8 ? 'invalid UTF-8' : `not an object: got ${describeJson(value)}`;
    return { row, line, value: undefined, error, text };
  }
  return invalidUtf8 ? { row, line, value, invalidUtf8, text } : { row, line, value, text };
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
  const maxRecordBytes = opts.maxRecordBytes ?? Infinity;
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
      if (end - start > maxRecordBytes) {
        const text = bytes.toString('utf8', start, start + TOO_LARGE_PREVIEW_BYTES);
        const error = recordTooLarge(end - start, maxRecordBytes);
        out[k] = { row: row++, line: lineBase + lines[k]!, value: undefined, error, text };
        continue;
      }
      if (end > start && bytes[end - 1] === 10) end--;
      if (end > start && bytes[end - 1] === 13) end--;
      const text = bytes.toString('utf8', start, end);
      const valid = spanValid || isUtf8(bytes.subarray(start, end));
      out[k] = jsonlRow(row++, lineBase + lines[k]!, text, !valid);
    }
    yield out;
  }
}

// ---------------------------------------------------------------------------------------------------
// Parquet
