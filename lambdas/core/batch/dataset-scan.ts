/**
 * Planning scans for CSV and JSON Lines: one streaming pass over the raw bytes that finds record
 * boundaries and cuts the data region into chunks of about `chunkBytes`, each ending on a record
 * boundary, so that chunk workers can read byte ranges independently.
 *
 * Both scans work on bytes (never on decoded text) with constant memory, and share their record
 * machines with the chunk readers (codecs/csv-reader.ts, codecs/jsonl-reader.ts), so that a plan and its readers always agree on where
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
import { CsvSyntaxError, parseCsv } from '../codecs/csv.ts';
import { DatasetError } from '../codecs/errors.ts';
import { CsvRecordMachine, JsonlRecordMachine, type RecordMachine } from '../codecs/record-machines.ts';
import type { ByteRangeChunk } from './contracts.ts';

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
      `the record on line ${line} is ${end - start} bytes; a worker holds a record whole, and the most it may hold is ${maxRecordBytes} bytes (16 × maxRecordBytes; a record over maxRecordBytes alone is a rejected row)`,
      { line },
    );
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
