/**
 * Parquet: plans a file into chunks of whole row groups from its footer, and reads the rows of a chunk,
 * over a random-access source (an adapter backs it with S3 range GETs). hyparquet is loaded on first use.
 */
import type { AsyncBuffer, Compressors, FileMetaData, ParquetParsers } from 'hyparquet';
import { DatasetError } from './errors.ts';

/** Random access to a file's bytes (an adapter backs it with S3 range GETs). `end` is exclusive. */
export interface RandomAccessSource {
  readonly byteLength: number;
  read(start: number, end: number): Promise<ArrayBuffer>;
}

/** Whole row groups [rowGroupStart, rowGroupEnd) of a file (the batch planner's RowGroupChunk adds its index). */
export interface RowGroupRange {
  readonly rowGroupStart: number;
  readonly rowGroupEnd: number;
  /** 0-based row offset of the first row in the file; its row number is rowStart + 1. */
  readonly rowStart: number;
  readonly rows: number;
  readonly firstRow: number;
}

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
