/**
 * Chunk readers for the batch lane: they turn the bytes of one planned chunk into records with their
 * row and line numbers, in micro-batches, with bounded memory. Plus the Parquet planner/reader over a
 * random-access source and a gzip stream decoder. Nothing here knows about S3: adapters back the
 * streams with range GETs.
 *
 * Row rules (the product rule is: rows read = scored + rejected, nothing is dropped silently):
 * - Every record the planner counted comes out exactly once, in order, with the row number the plan
 *   gives it (blank lines are not records and take no row number; see boundaries.ts).
 * - A record that cannot be read comes out with an `error` (and its original `text`) instead of
 *   stopping the chunk, so the caller rejects it with that reason: invalid UTF-8 (the text is then
 *   decoded with U+FFFD replacement characters), a malformed CSV record (a character after a closing
 *   quote), invalid JSON, or a JSON line that is not an object.
 *
 * Memory: a reader holds one span of about `batchBytes` (default 256 KiB) plus one stream piece, or
 * one record when a record is longer; the caller consumes a micro-batch before the next is read.
 *
 * UTF-8: a span always ends on a record's line end (an ASCII byte), so a multi-byte character split
 * across stream pieces is whole by the time it is decoded. Each span is validated once with
 * `isAscii` / `isUtf8` (simdutf, several GB/s), then decoded with Buffer#toString: an all-ASCII span
 * in one go (its string offsets are its byte offsets), otherwise record by record. Only a span that is
 * not valid UTF-8 is validated record by record, to flag the bad records. (This replaces a fatal
 * streaming TextDecoder: same result, with per-record error reporting and no exception per batch.)
 *
 * CSV fields: a record without quotes (most of them, flagged by the record machine) is split at its
 * delimiters, which is exactly what CsvParser would return for it; a record with quotes goes through
 * CsvParser (one record at a time). readCsvSpans gives the spans themselves (CsvSpan), for a caller that
 * reads plain records from the bytes and asks for this decode (CsvSpan.row) only for the others;
 * readCsvRecords is that decode for every record.
 */
import { isAscii, isUtf8 } from 'node:buffer';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { AsyncBuffer, Compressors, FileMetaData, ParquetParsers } from 'hyparquet';
import type { RowGroupChunk } from '../batch/contracts.ts';
import { CsvRecordMachine, JsonlRecordMachine, type RecordMachine } from './boundaries.ts';
import { CsvParser, CsvSyntaxError, type CsvRecord } from './csv.ts';
import { DatasetError } from './errors.ts';

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

export interface CsvReadOptions {
  readonly delimiter: string;
  /** Row number of the first record in the range (ByteRangeChunk.firstRow). */
  readonly firstRow: number;
  /** Line number of the first record in the range (ByteRangeChunk.firstLine). */
  readonly firstLine: number;
  /** Bytes gathered before a micro-batch is decoded (default 256 KiB). */
  readonly batchBytes?: number;
}

export interface JsonlReadOptions {
  readonly firstRow: number;
  readonly firstLine: number;
  readonly batchBytes?: number;
}

const DEFAULT_BATCH_BYTES = 256 * 1024;

interface Span {
  /** The bytes from `base` to the end of the last record completed (machine.ends). */
  readonly bytes: Uint8Array;
  /** Absolute offset (in the stream) of bytes[0]. */
  readonly base: number;
}

/**
 * Feeds the stream to the machine and yields spans of complete records, each about batchBytes (or the
 * one record, when longer). The machine's arrays describe the span's records until the next iteration.
 * Pieces are only joined when a span is cut, so a record spanning many pieces is copied once.
 */
async function* spans(
  stream: AsyncIterable<Uint8Array>,
  machine: RecordMachine,
  batchBytes: number,
): AsyncGenerator<Span> {
  let pieces: Uint8Array[] = [];
  let base = 0;
  let pending = 0;
  const take = (): Span => {
    const buffer = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    const last = machine.ends[machine.ends.length - 1]!;
    const cut = last - base;
    const span = { bytes: buffer.subarray(0, cut), base };
    const rest = buffer.subarray(cut);
    pieces = rest.length > 0 ? [rest] : [];
    pending = rest.length;
    base = last;
    return span;
  };
  for await (const piece of stream) {
    if (piece.length === 0) continue;
    machine.feed(piece);
    pieces.push(piece);
    pending += piece.length;
    if (pending >= batchBytes && machine.ends.length > 0) {
      yield take();
      machine.clear();
    }
  }
  machine.finish();
  if (machine.ends.length > 0) {
    yield take();
    machine.clear();
  }
}

function stripLineEnd(text: string): string {
  let end = text.length;
  if (end > 0 && text.charCodeAt(end - 1) === 10) end--;
  if (end > 0 && text.charCodeAt(end - 1) === 13) end--;
  return end === text.length ? text : text.slice(0, end);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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

/** Random access to a file's bytes (an adapter backs it with S3 range GETs). `end` is exclusive. */
export interface RandomAccessSource {
  readonly byteLength: number;
  read(start: number, end: number): Promise<ArrayBuffer>;
}

/** Whole row groups [rowGroupStart, rowGroupEnd) (a RowGroupChunk without its kind and index). */
export type RowGroupRange = Pick<
  RowGroupChunk,
  'rowGroupStart' | 'rowGroupEnd' | 'rowStart' | 'rows' | 'firstRow'
>;

export interface ParquetPlan {
  /** The top-level columns, in schema order. */
  readonly columns: string[];
  /** Every row group: its rows and compressed bytes. */
  readonly rowGroups: { rows: number; bytes: number }[];
  /** Consecutive row groups grouped up to about chunkBytes; row groups without rows are left out. */
  readonly chunks: RowGroupRange[];
  readonly totalRows: number;
}

export interface ParquetRow {
  readonly row: number;
  readonly value: Record<string, unknown>;
}

function isoFromMillis(millis: number, raw: bigint): string {
  const date = new Date(millis);
  return Number.isNaN(date.getTime()) ? raw.toString() : date.toISOString();
}

/** Dates and timestamps come out as ISO strings (dates as YYYY-MM-DD), never Date objects. */
const PARSERS: Partial<ParquetParsers> = {
  timestampFromMilliseconds: (millis: bigint) => isoFromMillis(Number(millis), millis),
  timestampFromMicroseconds: (micros: bigint) => isoFromMillis(Number(micros / 1000n), micros),
  timestampFromNanoseconds: (nanos: bigint) => isoFromMillis(Number(nanos / 1000000n), nanos),
  dateFromDays: (days: number) => {
    const date = new Date(days * 86_400_000);
    return Number.isNaN(date.getTime()) ? String(days) : date.toISOString().slice(0, 10);
  },
};

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Plain values for validation and JSON: a bigint becomes a number when it is a safe integer, else its
 * decimal string (so it is never silently rounded); a Date an ISO string; arrays and objects (lists,
 * structs) are converted in place.
 */
function plainValue(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value.toString();
  }
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = plainValue(value[i]);
    return value;
  }
  if (ArrayBuffer.isView(value)) {
    // A BigInt64Array / BigUint64Array (repeated INT64) becomes an array; bytes stay bytes.
    if (value instanceof BigInt64Array || value instanceof BigUint64Array)
      return Array.from(value, plainValue);
    return value;
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) record[key] = plainValue(record[key]);
  return record;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** hyparquet and its codecs, loaded on first use (a CSV or JSON Lines worker never pays for them). */
let parquetModules: Promise<{ hyparquet: typeof import('hyparquet'); compressors: Compressors }> | undefined;

function loadParquet() {
  parquetModules ??= Promise.all([import('hyparquet'), import('hyparquet-compressors')]).then(
    ([hyparquet, codecs]) => ({ hyparquet, compressors: codecs.compressors as Compressors }),
  );
  return parquetModules;
}

/** A source seen as hyparquet's AsyncBuffer, remembering the source's own read errors. */
interface ParquetFile {
  readonly file: AsyncBuffer;
  readonly readErrors: Set<unknown>;
}

function parquetFile(source: RandomAccessSource): ParquetFile {
  const readErrors = new Set<unknown>();
  const byteLength = source.byteLength;
  const file: AsyncBuffer = {
    byteLength,
    slice: async (start: number, end: number = byteLength) => {
      if (!(start >= 0 && end <= byteLength && start <= end)) {
        throw new DatasetError(
          'CORRUPT_PARQUET',
          `corrupt Parquet file: it points to bytes [${start}, ${end}) outside the file (${byteLength} bytes)`,
        );
      }
      try {
        return await source.read(start, end);
      } catch (error) {
        readErrors.add(error);
        throw error;
      }
    },
  };
  return { file, readErrors };
}

/**
 * Runs a hyparquet call, turning its failures into DatasetError CORRUPT_PARQUET. The source's own read
 * errors (network, permissions) pass through unchanged, so that the caller can retry them.
 */
async function guarded<T>(parquet: ParquetFile, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if (parquet.readErrors.has(error) || error instanceof DatasetError) throw error;
    throw new DatasetError('CORRUPT_PARQUET', `corrupt or unreadable Parquet file: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

function readMetadata(parquet: ParquetFile): Promise<FileMetaData> {
  return guarded(parquet, async () => {
    const length = parquet.file.byteLength;
    if (length < 12) throw new Error(`a Parquet file has at least 12 bytes, this one has ${length}`);
    const { hyparquet } = await loadParquet();
    return hyparquet.parquetMetadataAsync(parquet.file, { parsers: PARSERS });
  });
}

function rowGroupSizes(metadata: FileMetaData): { rows: number; bytes: number }[] {
  return metadata.row_groups.map((group, index) => {
    const rows = Number(group.num_rows);
    let bytes = 0;
    for (const column of group.columns) bytes += Number(column.meta_data?.total_compressed_size ?? 0n);
    if (!Number.isSafeInteger(rows) || rows < 0 || !Number.isSafeInteger(bytes) || bytes < 0) {
      throw new Error(`row group ${index} has an invalid size (${rows} rows, ${bytes} bytes)`);
    }
    return { rows, bytes };
  });
}

function topLevelColumns(hyparquet: typeof import('hyparquet'), metadata: FileMetaData): string[] {
  return hyparquet.parquetSchema(metadata).children.map((child) => child.element.name);
}

/** Reads a Parquet footer and groups whole row groups into chunks of about chunkBytes (compressed). */
export async function planParquet(
  source: RandomAccessSource,
  /** maxChunkRows: whole row groups up to this many rows (a larger row group is a chunk of its own). */
  opts: { readonly chunkBytes: number; readonly maxChunkRows?: number },
): Promise<ParquetPlan> {
  if (!Number.isSafeInteger(opts.chunkBytes) || opts.chunkBytes < 1) {
    throw new RangeError(`chunkBytes must be a positive integer, got ${opts.chunkBytes}`);
  }
  const parquet = parquetFile(source);
  const metadata = await readMetadata(parquet);
  const { hyparquet } = await loadParquet();
  return guarded(parquet, async () => {
    const columns = topLevelColumns(hyparquet, metadata);
    const rowGroups = rowGroupSizes(metadata);
    const chunks: RowGroupRange[] = [];
    let totalRows = 0;
    let current: { rowGroupStart: number; rowStart: number; rows: number; bytes: number } | undefined;
    const close = (rowGroupEnd: number) => {
      if (current && current.rows > 0) {
        const { rowGroupStart, rowStart, rows } = current;
        chunks.push({ rowGroupStart, rowGroupEnd, rowStart, rows, firstRow: rowStart + 1 });
      }
      current = undefined;
    };
    rowGroups.forEach((group, index) => {
      const maxRows = opts.maxChunkRows ?? Infinity;
      if (
        current &&
        current.rows > 0 &&
        (current.bytes + group.bytes > opts.chunkBytes || current.rows + group.rows > maxRows)
      )
        close(index);
      current ??= { rowGroupStart: index, rowStart: totalRows, rows: 0, bytes: 0 };
      current.rows += group.rows;
      current.bytes += group.bytes;
      totalRows += group.rows;
    });
    close(rowGroups.length);
    const declared = Number(metadata.num_rows);
    if (declared !== totalRows) {
      throw new Error(`the footer declares ${declared} rows but its row groups hold ${totalRows}`);
    }
    return { columns, rowGroups, chunks, totalRows };
  });
}

/**
 * Reads the rows of whole row groups, one row group at a time (hyparquet decodes a row group's column
 * chunks whole), yielding batches of at most `batchRows` rows (default 8192). `columns` limits the
 * columns read (DatasetError UNKNOWN_COLUMN for one the file does not have). Values: see plainValue.
 */
export async function* readParquetRows(
  source: RandomAccessSource,
  chunk: RowGroupRange,
  opts: { readonly columns?: readonly string[]; readonly batchRows?: number } = {},
): AsyncGenerator<ParquetRow[]> {
  const batchRows = opts.batchRows ?? 8192;
  const parquet = parquetFile(source);
  const meta = await readMetadata(parquet);
  const { hyparquet, compressors } = await loadParquet();
  const sizes = await guarded(parquet, async () => rowGroupSizes(meta));
  const groupStarts = [0];
  for (const size of sizes) groupStarts.push(groupStarts[groupStarts.length - 1]! + size.rows);
  if (
    !(
      chunk.rowGroupStart >= 0 &&
      chunk.rowGroupEnd <= meta.row_groups.length &&
      chunk.rowGroupStart < chunk.rowGroupEnd
    ) ||
    groupStarts[chunk.rowGroupStart] !== chunk.rowStart
  ) {
    throw new DatasetError(
      'CORRUPT_PARQUET',
      `the Parquet file does not match its plan: row groups [${chunk.rowGroupStart}, ${chunk.rowGroupEnd}) starting at row ${chunk.rowStart} (the file has ${meta.row_groups.length} row groups)`,
    );
  }
  let columns: string[] | undefined;
  if (opts.columns !== undefined) {
    const known = new Set(topLevelColumns(hyparquet, meta));
    const missing = opts.columns.filter((name) => !known.has(name));
    if (missing.length > 0) {
      throw new DatasetError(
        'UNKNOWN_COLUMN',
        `the Parquet file has no column ${missing.map((m) => JSON.stringify(m)).join(', ')}`,
      );
    }
    columns = [...opts.columns];
  }
  let row = chunk.firstRow;
  for (let group = chunk.rowGroupStart; group < chunk.rowGroupEnd; group++) {
    const rowStart = groupStarts[group]!;
    const rowEnd = groupStarts[group + 1]!;
    if (rowEnd === rowStart) continue;
    const objects = await guarded(parquet, () =>
      hyparquet.parquetReadObjects({
        file: parquet.file,
        metadata: meta,
        columns,
        rowStart,
        rowEnd,
        compressors,
        parsers: PARSERS,
      }),
    );
    if (objects.length !== rowEnd - rowStart) {
      throw new DatasetError(
        'CORRUPT_PARQUET',
        `corrupt Parquet file: row group ${group} should hold ${rowEnd - rowStart} rows, ${objects.length} were read`,
      );
    }
    for (let from = 0; from < objects.length; from += batchRows) {
      const to = Math.min(objects.length, from + batchRows);
      const out = new Array<ParquetRow>(to - from);
      for (let i = from; i < to; i++) {
        const value = objects[i]!;
        for (const key in value) {
          const v: unknown = value[key];
          if (typeof v === 'bigint' || (typeof v === 'object' && v !== null)) value[key] = plainValue(v);
        }
        out[i - from] = { row: row++, value };
      }
      yield out;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// gzip

/**
 * Decompresses a gzip stream (several concatenated members are fine). Corrupt or truncated data becomes
 * DatasetError CORRUPT_GZIP; errors of the input stream itself pass through unchanged.
 */
export async function* gunzipStream(stream: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  const input = Readable.from(stream, { objectMode: false });
  let inputError: { error: unknown } | undefined;
  input.on('error', (error) => {
    inputError = { error };
    gunzip.destroy(error);
  });
  input.pipe(gunzip);
  try {
    for await (const piece of gunzip) yield piece as Buffer;
  } catch (error) {
    if (inputError !== undefined && error === inputError.error) throw error;
    throw new DatasetError('CORRUPT_GZIP', `corrupt or truncated gzip data: ${errorMessage(error)}`, {
      cause: error,
    });
  } finally {
    input.unpipe(gunzip);
    input.destroy();
    gunzip.destroy();
  }
}
