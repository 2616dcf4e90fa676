/**
 * Planning scans for CSV and JSON Lines: one streaming pass over the raw bytes that finds record
 * boundaries and cuts the data region into chunks of about `chunkBytes`, each ending on a record
 * boundary, so that chunk workers can read byte ranges independently.
 *
 * Both scans work on bytes (never on decoded text) with constant memory, and share their record
 * machines with the chunk readers (readers.ts), so that a plan and its readers always agree on where
 * records are, even for malformed input. Any AsyncIterable of bytes will do (e.g. a generator that also
 * uploads each piece, or gunzipStream's output); pieces are kept by reference, not copied, so a producer
 * must not reuse a buffer after yielding it (Node streams never do).
 *
 * Numbering, for both formats:
 * - Lines are physical lines: 1-based, counting every line end in the file, including the ones inside
 *   quoted CSV fields and blank lines. CSV line ends are LF, CRLF or a lone CR (as in CsvParser);
 *   JSON Lines line ends are LF (a CR before it is part of the line end).
 * - Rows are records: 1-based, header excluded. A blank line is not a record and takes no row number
 *   (it is skipped, like CsvParser skips it; it still counts as a line). CSV blank = nothing between two
 *   line ends, or just `""` (CsvParser reads both as one empty field). JSON Lines blank = only spaces,
 *   tabs and CRs.
 * - A chunk holds the records that start in [start, end). Chunks are contiguous and cover the data
 *   region exactly; blank lines after a chunk's last record belong to the next chunk (or, at the end of
 *   the file, to the last one).
 */
import type { ByteRangeChunk } from '../batch/contracts.ts';
import { CsvSyntaxError, parseCsv } from './csv.ts';
import { DatasetError } from './errors.ts';

/** A planned byte range (a ByteRangeChunk without its kind and index, which the planner adds). */
export type ByteRange = Pick<ByteRangeChunk, 'start' | 'end' | 'firstRow' | 'firstLine' | 'rows'>;

export interface CsvScan {
  /** The header fields (BOM stripped). */
  readonly header: string[];
  /** Byte offset just after the header record's line end: where the data region starts. */
  readonly headerEnd: number;
  /** Partition of [headerEnd, bytes); empty when there are no data rows. */
  readonly chunks: ByteRange[];
  readonly totalRows: number;
  /** Size of the file in bytes. */
  readonly bytes: number;
}

export interface JsonlScan {
  /** 3 when the file starts with a UTF-8 BOM (which is not part of any chunk), else 0. */
  readonly dataStart: number;
  /** Partition of [dataStart, bytes); empty when there are no rows. */
  readonly chunks: ByteRange[];
  readonly totalRows: number;
  readonly bytes: number;
}

export interface CsvScanOptions {
  readonly chunkBytes: number;
  /** At most this many records per chunk (default: no limit but chunkBytes). */
  readonly maxChunkRows?: number;
  readonly delimiter: string;
  /** The header record may be at most this long (default 1 MiB). */
  readonly maxHeaderBytes?: number;
  /** A data record may be at most this long, line end included (default: no limit). */
  readonly maxRecordBytes?: number;
}

/** Fails the scan for a record longer than the limit: a worker would have to hold it whole. */
function checkRecordLength(start: number, end: number, line: number, maxRecordBytes: number): void {
  if (end - start > maxRecordBytes) {
    throw new DatasetError(
      'RECORD_TOO_LARGE',
      `the record on line ${line} is ${end - start} bytes; the limit is ${maxRecordBytes} (maxRecordBytes)`,
      { line },
    );
  }
}

const LF = 10;
const CR = 13;
const QUOTE = 34;

/**
 * Finds record boundaries in a stream of bytes. `feed` bytes in order; each complete non-blank record
 * is appended to `starts` (offset of its first byte), `ends` (offset just after its line end) and
 * `lines` (line it starts on). Offsets are absolute: they count every byte fed since construction
 * plus the offset given to `skip`. The caller empties the arrays with `clear()` when it has used them.
 */
export interface RecordMachine {
  readonly starts: number[];
  readonly ends: number[];
  readonly lines: number[];
  /** Absolute offset of the next byte to feed. */
  readonly offset: number;
  feed(bytes: Uint8Array): void;
  /** End of input: completes a last record without a line end. */
  finish(): void;
  clear(): void;
}

const S_FIELD_START = 0;
const S_UNQUOTED = 1;
const S_QUOTED = 2;
/** Just saw a quote inside a quoted field: a doubled quote, or the closing one. */
const S_QUOTE_END = 3;
/** Saw a CR outside quotes: the record has ended, and a LF right after it belongs to the line end. */
const S_AFTER_CR = 4;

/** Validates a CSV delimiter for byte scanning: one ASCII character other than a quote, CR or LF. */
export function csvDelimiterByte(delimiter: string): number {
  const code = delimiter.length === 1 ? delimiter.charCodeAt(0) : -1;
  if (code < 0 || code > 127 || code === QUOTE || code === LF || code === CR) {
    throw new DatasetError(
      'UNSUPPORTED_FORMAT',
      `invalid CSV delimiter ${JSON.stringify(delimiter)}: it must be one ASCII character other than a quote, CR or LF`,
    );
  }
  return code;
}

/**
 * The CSV record machine: RFC 4180 quoting exactly as CsvParser reads it (a quote opens a quoted field
 * only at the start of a field; inside one, a doubled quote is a quote; a line end ends the record only
 * outside quotes). One deviation, for robustness: where CsvParser throws on a character after a closing
 * quote (`"a"b`), the machine carries on as in an unquoted field, so the record still ends at the next
 * line end outside quotes; the reader then rejects that one record as malformed.
 */
export class CsvRecordMachine implements RecordMachine {
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  readonly lines: number[] = [];
  /**
   * Per record: 1 when it is plain, a line without quotes ended by LF or CRLF, whose fields are just the
   * text between delimiters; 0 when it must go through CsvParser. (Conservative: a plain record that
   * spans two fed pieces is marked 0.)
   */
  readonly plain: number[] = [];
  offset = 0;
  private state = S_FIELD_START;
  private line = 1;
  private recordStart = 0;
  private recordLine = 1;
  /** Whether the record ended by the pending CR (state S_AFTER_CR) is blank. */
  private crBlank = false;
  private readonly delimiter: number;
  /** 1 for the bytes that can end an unquoted run: the delimiter, CR and LF. */
  private readonly special = new Uint8Array(256);

  constructor(delimiter: string) {
    this.delimiter = csvDelimiterByte(delimiter);
    this.special[this.delimiter] = 1;
    this.special[LF] = 1;
    this.special[CR] = 1;
  }

  /** Skips bytes that belong to no record (a BOM at the start of the file). */
  skip(bytes: number): void {
    if (this.state === S_FIELD_START && this.recordStart === this.offset) this.recordStart += bytes;
    this.offset += bytes;
  }

  feed(bytes: Uint8Array): void {
    const n = bytes.length;
    const base = this.offset;
    const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, n);
    const delimiter = this.delimiter;
    const special = this.special;
    const { starts, ends, lines, plain } = this;
    let state = this.state;
    let line = this.line;
    let recordStart = this.recordStart;
    let recordLine = this.recordLine;
    let crBlank = this.crBlank;
    // Positions of the next LF, quote and CR at or after i (n: none left); stale when < i. Each is
    // searched with memchr (Buffer#indexOf), at most once per occurrence.
    let nextLf = -1;
    let nextQuote = -1;
    let nextCr = -1;
    let fastSkips = 0;
    let i = 0;
    while (i < n) {
      let c: number;
      if (state === S_UNQUOTED) {
        while (i < n && special[bytes[i]!] === 0) i++;
        if (i === n) break;
        c = bytes[i]!;
        if (c === delimiter) {
          state = S_FIELD_START;
          i++;
          continue;
        }
      } else if (state === S_QUOTED) {
        // Short quoted fields: a plain loop (cheaper than a memchr call) up to the closing quote.
        const limit = i + 32 < n ? i + 32 : n;
        c = bytes[i]!;
        while (c !== QUOTE) {
          if (c === LF) line++;
          if (++i === limit) break;
          c = bytes[i]!;
        }
        if (i < limit) {
          // The closing quote, most often followed by a delimiter.
          if (i + 1 < n && bytes[i + 1] === delimiter) {
            state = S_FIELD_START;
            i += 2;
          } else {
            state = S_QUOTE_END;
            i++;
          }
          continue;
        }
        if (i === n) break;
        // A long one: jump to the next quote, counting the LFs on the way.
        if (nextQuote < i) {
          nextQuote = buffer.indexOf(QUOTE, i);
          if (nextQuote < 0) nextQuote = n;
        }
        if (nextLf < i) {
          nextLf = buffer.indexOf(LF, i);
          if (nextLf < 0) nextLf = n;
        }
        while (nextLf < nextQuote) {
          line++;
          nextLf = buffer.indexOf(LF, nextLf + 1);
          if (nextLf < 0) nextLf = n;
        }
        i = nextQuote;
        if (i === n) break;
        state = S_QUOTE_END;
        i++;
        continue;
      } else if (state === S_FIELD_START) {
        if (base + i === recordStart && fastSkips-- <= 0) {
          // Fast path at a record start: a line without quotes nor lone CRs is one record (or blank).
          // After a miss, the next 16 record starts skip it, so that quote-heavy files do not pay
          // for it on every record.
          fastSkips = 16;
          for (;;) {
            if (nextLf < i) {
              nextLf = buffer.indexOf(LF, i);
              if (nextLf < 0) nextLf = n;
            }
            if (nextLf === n) break;
            if (nextQuote < i) {
              nextQuote = buffer.indexOf(QUOTE, i);
              if (nextQuote < 0) nextQuote = n;
            }
            if (nextQuote < nextLf) break;
            if (nextCr < i) {
              nextCr = buffer.indexOf(CR, i);
              if (nextCr < 0) nextCr = n;
            }
            let contentEnd = nextLf;
            if (nextCr < nextLf) {
              if (nextCr !== nextLf - 1) break;
              contentEnd = nextCr;
            }
            fastSkips = 0;
            line++;
            const end = base + nextLf + 1;
            if (contentEnd > i) {
              starts.push(recordStart);
              ends.push(end);
              lines.push(recordLine);
              plain.push(1);
            }
            i = nextLf + 1;
            recordStart = end;
            recordLine = line;
          }
          if (i === n) break;
        }
        c = bytes[i]!;
        if (c === QUOTE) {
          state = S_QUOTED;
          i++;
          continue;
        }
        if (c === delimiter) {
          i++;
          continue;
        }
        if (c !== LF && c !== CR) {
          state = S_UNQUOTED;
          i++;
          continue;
        }
      } else if (state === S_QUOTE_END) {
        c = bytes[i]!;
        if (c === QUOTE) {
          state = S_QUOTED;
          i++;
          continue;
        }
        if (c === delimiter) {
          state = S_FIELD_START;
          i++;
          continue;
        }
        if (c !== LF && c !== CR) {
          // Malformed (CsvParser throws here): go on as an unquoted field, see the class comment.
          state = S_UNQUOTED;
          i++;
          continue;
        }
      } else {
        // S_AFTER_CR: the record ended at the CR; a LF right after it is part of the line end.
        line++;
        const end = bytes[i] === LF ? base + ++i : base + i;
        if (!crBlank) {
          starts.push(recordStart);
          ends.push(end);
          lines.push(recordLine);
          plain.push(0);
        }
        recordStart = end;
        recordLine = line;
        state = S_FIELD_START;
        continue;
      }
      // A line end outside quotes (c is LF or CR; state is S_FIELD_START, S_UNQUOTED or S_QUOTE_END).
      const length = base + i - recordStart;
      const blank = length === 0 || (length === 2 && state === S_QUOTE_END);
      i++;
      if (c === LF) {
        line++;
        const end = base + i;
        if (!blank) {
          starts.push(recordStart);
          ends.push(end);
          lines.push(recordLine);
          plain.push(0);
        }
        recordStart = end;
        recordLine = line;
        state = S_FIELD_START;
      } else {
        crBlank = blank;
        state = S_AFTER_CR;
      }
    }
    this.offset = base + n;
    this.state = state;
    this.line = line;
    this.recordStart = recordStart;
    this.recordLine = recordLine;
    this.crBlank = crBlank;
  }

  finish(): void {
    const end = this.offset;
    if (this.state === S_QUOTED) {
      throw new DatasetError(
        'UNTERMINATED_QUOTE',
        `unterminated quoted field: the record starting on line ${this.recordLine} opens a quote that is never closed`,
        { line: this.recordLine },
      );
    }
    let blank: boolean;
    if (this.state === S_AFTER_CR) {
      this.line++;
      blank = this.crBlank;
    } else {
      const length = end - this.recordStart;
      blank = length === 0 || (length === 2 && this.state === S_QUOTE_END);
    }
    if (!blank) {
      this.starts.push(this.recordStart);
      this.ends.push(end);
      this.lines.push(this.recordLine);
      this.plain.push(0);
    }
    this.recordStart = end;
    this.recordLine = this.line;
    this.state = S_FIELD_START;
  }

  clear(): void {
    this.starts.length = 0;
    this.ends.length = 0;
    this.lines.length = 0;
    this.plain.length = 0;
  }
}

function isJsonSpace(c: number): boolean {
  return c === 32 || c === 9 || c === CR;
}

/** The JSON Lines record machine: a record is a LF-terminated line that is not blank. */
export class JsonlRecordMachine implements RecordMachine {
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  readonly lines: number[] = [];
  offset = 0;
  private line = 1;
  private lineStart = 0;
  private hasContent = false;

  skip(bytes: number): void {
    if (this.lineStart === this.offset && !this.hasContent) this.lineStart += bytes;
    this.offset += bytes;
  }

  feed(bytes: Uint8Array): void {
    const n = bytes.length;
    const base = this.offset;
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, n);
    let hasContent = this.hasContent;
    let i = 0;
    for (;;) {
      const lf = buffer.indexOf(LF, i);
      const segmentEnd = lf < 0 ? n : lf;
      if (!hasContent) {
        for (let j = i; j < segmentEnd; j++) {
          if (!isJsonSpace(bytes[j]!)) {
            hasContent = true;
            break;
          }
        }
      }
      if (lf < 0) break;
      const end = base + lf + 1;
      if (hasContent) {
        this.starts.push(this.lineStart);
        this.ends.push(end);
        this.lines.push(this.line);
      }
      this.line++;
      this.lineStart = end;
      hasContent = false;
      i = lf + 1;
    }
    this.hasContent = hasContent;
    this.offset = base + n;
  }

  finish(): void {
    if (this.hasContent) {
      this.starts.push(this.lineStart);
      this.ends.push(this.offset);
      this.lines.push(this.line);
    }
    this.hasContent = false;
    this.lineStart = this.offset;
  }

  clear(): void {
    this.starts.length = 0;
    this.ends.length = 0;
    this.lines.length = 0;
  }
}

/**
 * Cuts records into chunks: a chunk grows while it stays within chunkBytes; a record that would make it
 * longer starts the next chunk, so a chunk exceeds chunkBytes only when its one record does (or by the
 * blank lines before its first record, or at the end of the file after its last one).
 */
class ChunkCutter {
  readonly chunks: ByteRange[] = [];
  totalRows = 0;
  private start: number;
  private lastEnd: number;
  private rows = 0;
  private firstRow = 0;
  private firstLine = 0;

  constructor(
    start: number,
    private readonly chunkBytes: number,
    private readonly maxRows = Infinity,
  ) {
    this.start = start;
    this.lastEnd = start;
  }

  add(end: number, line: number): void {
    if (this.rows > 0 && (end - this.start > this.chunkBytes || this.rows >= this.maxRows)) {
      this.chunks.push({
        start: this.start,
        end: this.lastEnd,
        firstRow: this.firstRow,
        firstLine: this.firstLine,
        rows: this.rows,
      });
      this.start = this.lastEnd;
      this.rows = 0;
    }
    this.totalRows++;
    if (this.rows === 0) {
      this.firstRow = this.totalRows;
      this.firstLine = line;
    }
    this.rows++;
    this.lastEnd = end;
  }

  finish(bytes: number): ByteRange[] {
    if (this.rows > 0) {
      this.chunks.push({
        start: this.start,
        end: bytes,
        firstRow: this.firstRow,
        firstLine: this.firstLine,
        rows: this.rows,
      });
      this.rows = 0;
    }
    return this.chunks;
  }
}

function checkChunkBytes(chunkBytes: number): void {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) {
    throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
  }
}

function isBom(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
}

/**
 * Feeds a stream to a machine, handling a UTF-8 BOM at the start of the file (the machine skips it),
 * and calls `after` after each piece with the records it completed (then clears them).
 */
async function drive(
  stream: AsyncIterable<Uint8Array>,
  machine: RecordMachine & { skip(bytes: number): void },
  onBom: () => void,
  after: (piece: Uint8Array | undefined) => void,
): Promise<number> {
  let head: Uint8Array[] | undefined = [];
  let headLength = 0;
  const feed = (piece: Uint8Array) => {
    if (isBom(piece)) {
      onBom();
      machine.skip(3);
      machine.feed(piece.subarray(3));
    } else {
      machine.feed(piece);
    }
  };
  for await (const chunk of stream) {
    if (chunk.length === 0) continue;
    let piece = chunk;
    if (head !== undefined) {
      // The first 3 bytes decide about the BOM; they may come in several pieces.
      head.push(chunk);
      headLength += chunk.length;
      if (headLength < 3) continue;
      piece = head.length === 1 ? chunk : Buffer.concat(head);
      head = undefined;
      feed(piece);
    } else {
      machine.feed(piece);
    }
    after(piece);
  }
  if (head !== undefined && headLength > 0) {
    const piece = Buffer.concat(head);
    machine.feed(piece);
    after(piece);
  }
  const bytes = machine.offset;
  if (bytes === 0) throw new DatasetError('EMPTY_FILE', 'the file is empty');
  machine.finish();
  after(undefined);
  return bytes;
}

/**
 * Scans a CSV file: its header (the first non-blank record) and chunks of its data records.
 * Throws DatasetError EMPTY_FILE, NO_HEADER, HEADER_TOO_LARGE, MALFORMED_CSV, INVALID_UTF8 (header),
 * UNTERMINATED_QUOTE or UNSUPPORTED_FORMAT (delimiter). Data rows are not decoded here: bad UTF-8 in
 * them is the reader's business (the row is rejected).
 */
export async function scanCsv(stream: AsyncIterable<Uint8Array>, opts: CsvScanOptions): Promise<CsvScan> {
  checkChunkBytes(opts.chunkBytes);
  const maxHeaderBytes = opts.maxHeaderBytes ?? 1024 * 1024;
  const maxRecordBytes = opts.maxRecordBytes ?? Infinity;
  const machine = new CsvRecordMachine(opts.delimiter);
  let header: string[] | undefined;
  let headerEnd = 0;
  let headerPieces: Uint8Array[] = [];
  let cutter: ChunkCutter | undefined;

  const bytes = await drive(
    stream,
    machine,
    () => {},
    (piece) => {
      const { starts, ends, lines } = machine;
      let k = 0;
      if (cutter === undefined) {
        if (piece) headerPieces.push(piece);
        if (ends.length === 0 || ends[0]! > maxHeaderBytes) {
          if (machine.offset > maxHeaderBytes) {
            throw new DatasetError(
              'HEADER_TOO_LARGE',
              `no complete CSV header record in the first ${maxHeaderBytes} bytes (is a closing quote missing?)`,
              { line: 1 },
            );
          }
          return;
        }
        headerEnd = ends[0]!;
        header = parseHeader(Buffer.concat(headerPieces).subarray(0, headerEnd), opts.delimiter, lines[0]!);
        headerPieces = [];
        cutter = new ChunkCutter(headerEnd, opts.chunkBytes, opts.maxChunkRows);
        k = 1;
      }
      for (; k < ends.length; k++) {
        checkRecordLength(starts[k]!, ends[k]!, lines[k]!, maxRecordBytes);
        cutter.add(ends[k]!, lines[k]!);
      }
      machine.clear();
    },
  );
  if (header === undefined || cutter === undefined) {
    throw new DatasetError('NO_HEADER', 'the CSV file has no header record (it has only blank lines)');
  }
  return { header, headerEnd, chunks: cutter.finish(bytes), totalRows: cutter.totalRows, bytes };
}

function parseHeader(bytes: Uint8Array, delimiter: string, line: number): string[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw new DatasetError('INVALID_UTF8', `the CSV header (line ${line}) is not valid UTF-8`, {
      line,
      cause: error,
    });
  }
  try {
    const first = parseCsv(text, delimiter)[0];
    if (first === undefined) throw new DatasetError('NO_HEADER', 'the CSV file has no header record');
    return first.fields;
  } catch (error) {
    if (error instanceof CsvSyntaxError) {
      throw new DatasetError('MALFORMED_CSV', `malformed CSV header (line ${line}): ${error.message}`, {
        line,
        cause: error,
      });
    }
    throw error;
  }
}

/**
 * Scans a JSON Lines file into chunks of records (non-blank lines). Lines are not parsed here: invalid
 * JSON is the reader's business (the row is rejected). Throws DatasetError EMPTY_FILE for a file
 * without bytes; a file with only blank lines has no rows and no chunks.
 */
export async function scanJsonl(
  stream: AsyncIterable<Uint8Array>,
  opts: { readonly chunkBytes: number; readonly maxChunkRows?: number; readonly maxRecordBytes?: number },
): Promise<JsonlScan> {
  checkChunkBytes(opts.chunkBytes);
  const maxRecordBytes = opts.maxRecordBytes ?? Infinity;
  const machine = new JsonlRecordMachine();
  let dataStart = 0;
  let cutter: ChunkCutter | undefined;
  const bytes = await drive(
    stream,
    machine,
    () => {
      dataStart = 3;
    },
    () => {
      cutter ??= new ChunkCutter(dataStart, opts.chunkBytes, opts.maxChunkRows);
      const { starts, ends, lines } = machine;
      for (let k = 0; k < ends.length; k++) {
        checkRecordLength(starts[k]!, ends[k]!, lines[k]!, maxRecordBytes);
        cutter.add(ends[k]!, lines[k]!);
      }
      machine.clear();
    },
  );
  cutter ??= new ChunkCutter(dataStart, opts.chunkBytes, opts.maxChunkRows);
  return { dataStart, chunks: cutter.finish(bytes), totalRows: cutter.totalRows, bytes };
}
