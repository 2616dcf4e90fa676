/**
 * Byte record machines for CSV and JSON Lines: they find where records start and end in a stream of raw
 * bytes, with constant memory, whatever the input (malformed records included). The planner's scan
 * (batch/dataset-scan.ts) and the chunk readers (csv-reader.ts, jsonl-reader.ts) share them, so that a
 * plan and its readers always agree on where records are.
 *
 * Numbering, for both formats:
 * - Lines are physical lines: 1-based, counting every line end in the file, including the ones inside
 *   quoted CSV fields and blank lines. CSV line ends are LF, CRLF or a lone CR (as in CsvParser);
 *   JSON Lines line ends are LF (a CR before it is part of the line end).
 * - A blank line is not a record (CsvParser skips it too; it still counts as a line). CSV blank =
 *   nothing between two line ends, or just `""` (CsvParser reads both as one empty field). JSON Lines
 *   blank = only spaces, tabs and CRs.
 */
import { DatasetError } from './errors.ts';

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
