/**
 * The CSV chunk reader: the records of one planned byte range with their row and line numbers, in
 * micro-batches (spans.ts), with bounded memory. Nothing here knows about S3.
 *
 * Row rules (the product rule is: rows read = scored + rejected, nothing is dropped silently):
 * - Every record the planner counted comes out exactly once, in order, with the row number the plan
 *   gives it (blank lines are not records and take no row number; see record-machines.ts).
 * - A record that cannot be read comes out with an `error` (and its original `text`) instead of
 *   stopping the chunk: invalid UTF-8 (the text is then decoded with U+FFFD replacement characters, and
 *   its fields are still given), or a malformed CSV record (a character after a closing quote).
 *
 * Each span is validated once with `isAscii` / `isUtf8` (simdutf, several GB/s), then decoded with
 * Buffer#toString: an all-ASCII span in one go (its string offsets are its byte offsets), otherwise
 * record by record. Only a span that is not valid UTF-8 is validated record by record.
 *
 * Fields: a record without quotes (most of them, flagged by the record machine) is split at its
 * delimiters, which is exactly what CsvParser would return for it; a record with quotes goes through
 * CsvParser (one record at a time). readCsvSpans gives the spans themselves (CsvSpan), for a caller that
 * reads plain records from the bytes and asks for this decode (CsvSpan.row) only for the others;
 * readCsvRecords is that decode for every record.
 */
import { isAscii, isUtf8 } from 'node:buffer';
import { CsvParser, CsvSyntaxError, type CsvRecord } from './csv.ts';
import { CsvRecordMachine } from './record-machines.ts';
import { DEFAULT_BATCH_BYTES, asBuffer, spans, stripLineEnd } from './spans.ts';

export interface CsvRow {
  /** 1-based data row number (header excluded). */
  readonly row: number;
  /** 1-based physical line number the record starts on. */
  readonly line: number;
  /** The record's fields ([] when the record could not be parsed). */
  readonly fields: string[];
  /** Set when the row must be rejected: 'invalid UTF-8' or 'malformed CSV: ...'. */
  readonly error?: string;
  /** With `error`: the original record without its line end (invalid bytes shown as U+FFFD). */
  readonly text?: string;
}

export interface CsvReadOptions {
  readonly delimiter: string;
  /** Row number of the first record in the range (ByteRangeChunk.firstRow). */
  readonly firstRow: number;
  /** Line number of the first record in the range (ByteRangeChunk.firstLine). */
  readonly firstLine: number;
  /** Bytes gathered before a micro-batch is decoded (default 256 KiB). */
  readonly batchBytes?: number;
}

/** The fields of a plain record (no quotes): the text between delimiters, as CsvParser reads it. */
function splitFields(text: string, delimiter: string): string[] {
  const fields: string[] = [];
  let position = 0;
  for (;;) {
    const next = text.indexOf(delimiter, position);
    if (next < 0) {
      fields.push(position === 0 ? text : text.slice(position));
      return fields;
    }
    fields.push(text.slice(position, next));
    position = next + 1;
  }
}

const parsed: CsvRecord[] = [];

/** Parses one record (with its line end) with CsvParser; a malformed one becomes a rejected row. */
function parseRecord(
  parser: CsvParser,
  row: number,
  line: number,
  text: string,
  error: string | undefined,
): CsvRow {
  let fields: string[] = [];
  try {
    parsed.length = 0;
    parser.push(text, parsed);
    parser.end(parsed);
    if (parsed.length === 1) fields = parsed[0]!.fields;
    else error ??= 'malformed CSV record';
  } catch (cause) {
    if (!(cause instanceof CsvSyntaxError)) throw cause;
    error ??= `malformed CSV: ${cause.message}`;
  }
  parsed.length = 0;
  return error === undefined ? { row, line, fields } : { row, line, fields, error, text: stripLineEnd(text) };
}

/**
 * One span of CSV records (about `batchBytes`), for callers that read fields from the bytes themselves:
 * the chunk scorer's fast path parses plain ASCII records in place, and asks `row(k)` for the general
 * decode of any other record. Valid until the reader is advanced (the arrays are the record machine's).
 */
export class CsvSpan {
  /** Number of records in the span. */
  readonly count: number;
  /** The span is all ASCII (then `ascii` is its text, whose string offsets are its byte offsets). */
  readonly isAscii: boolean;
  private text: string | undefined;
  private validUtf8: boolean | undefined;

  constructor(
    /** The span's bytes. */
    readonly bytes: Buffer,
    /** Absolute offset (in the chunk's stream) of bytes[0]; starts and ends are absolute. */
    readonly base: number,
    readonly starts: readonly number[],
    readonly ends: readonly number[],
    /** Per record: 1 when it is plain (no quotes, ends with LF or CRLF, split at its delimiters). */
    readonly plain: readonly number[],
    private readonly lines: readonly number[],
    private readonly lineBase: number,
    /** Row number of the span's first record. */
    readonly firstRow: number,
    private readonly delimiter: string,
    private readonly parser: CsvParser,
  ) {
    this.count = ends.length;
    this.isAscii = isAscii(bytes);
  }

  /** The span's text when it is all ASCII (decoded once, on first use), else undefined. */
  get ascii(): string | undefined {
    if (this.text === undefined && this.isAscii) this.text = this.bytes.toString('latin1');
    return this.text;
  }

  /** 1-based line number record k starts on. */
  line(k: number): number {
    return this.lineBase + this.lines[k]!;
  }

  /** Offset in `bytes` (and in `ascii`) where record k starts. */
  start(k: number): number {
    return this.starts[k]! - this.base;
  }

  /** Offset in `bytes` where the content of plain record k ends (before its LF or CRLF). */
  contentEnd(k: number): number {
    const end = this.ends[k]! - this.base;
    return end >= 2 && this.bytes[end - 2] === 13 ? end - 2 : end - 1;
  }

  /** Record k as readCsvRecords returns it (fields, or the reason to reject it). */
  row(k: number): CsvRow {
    const { bytes, delimiter } = this;
    const start = this.start(k);
    const end = this.ends[k]! - this.base;
    const row = this.firstRow + k;
    const line = this.line(k);
    const text = this.ascii;
    if (text !== undefined) {
      if (this.plain[k] === 1) {
        const contentEnd = this.contentEnd(k);
        const fields: string[] = [];
        let position = start;
        for (;;) {
          const next = text.indexOf(delimiter, position);
          if (next < 0 || next >= contentEnd) break;
          fields.push(text.slice(position, next));
          position = next + 1;
        }
        fields.push(text.slice(position, contentEnd));
        return { row, line, fields };
      }
      return parseRecord(this.parser, row, line, text.slice(start, end), undefined);
    }
    // One fast validation of the whole span; only a span with bad bytes is checked record by record.
    this.validUtf8 ??= isUtf8(bytes);
    if (!this.validUtf8 && !isUtf8(bytes.subarray(start, end))) {
      // Decoded with U+FFFD replacements, so that the rejected file can still show the row.
      return parseRecord(this.parser, row, line, bytes.toString('utf8', start, end), 'invalid UTF-8');
    }
    if (this.plain[k] === 1) {
      return { row, line, fields: splitFields(bytes.toString('utf8', start, this.contentEnd(k)), delimiter) };
    }
    return parseRecord(this.parser, row, line, bytes.toString('utf8', start, end), undefined);
  }
}

/**
 * Reads the CSV records of one byte range (the bytes [start, end) of a ByteRangeChunk, which begins
 * right after a record's line end) as spans of records; see readCsvRecords.
 */
export async function* readCsvSpans(
  stream: AsyncIterable<Uint8Array>,
  opts: CsvReadOptions,
): AsyncGenerator<CsvSpan> {
  const machine = new CsvRecordMachine(opts.delimiter);
  const parser = new CsvParser(opts.delimiter);
  // Marks the parser as started, so it never strips a leading U+FEFF from data (ranges start after the
  // header; a BOM can only be at the start of the file).
  parser.push('\uFEFF');
  let row = opts.firstRow;
  let lineBase: number | undefined;
  for await (const span of spans(stream, machine, opts.batchBytes ?? DEFAULT_BATCH_BYTES)) {
    const { starts, ends, lines, plain } = machine;
    lineBase ??= opts.firstLine - lines[0]!;
    const view = new CsvSpan(
      asBuffer(span.bytes),
      span.base,
      starts,
      ends,
      plain,
      lines,
      lineBase,
      row,
      opts.delimiter,
      parser,
    );
    row += view.count;
    yield view;
  }
}

/**
 * Reads the CSV records of one byte range (the bytes [start, end) of a ByteRangeChunk, which begins
 * right after a record's line end). Yields micro-batches of rows; see the module comment for rejected
 * rows. Throws DatasetError UNTERMINATED_QUOTE only if the range ends inside a quoted field, which a
 * planned range never does.
 */
export async function* readCsvRecords(
  stream: AsyncIterable<Uint8Array>,
  opts: CsvReadOptions,
): AsyncGenerator<CsvRow[]> {
  for await (const span of readCsvSpans(stream, opts)) {
    const out = new Array<CsvRow>(span.count);
    for (let k = 0; k < span.count; k++) out[k] = span.row(k);
    yield out;
  }
}
