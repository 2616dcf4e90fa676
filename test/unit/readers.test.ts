import { gzipSync } from 'node:zlib';
import { parquetMetadata } from 'hyparquet';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { describe, expect, it } from '@jest/globals';
import { scanCsv } from '../../lambdas/core/batch/dataset-scan.ts';
import { DatasetError } from '../../lambdas/core/codecs/errors.ts';
import { readCsvRecords, type CsvRow } from '../../lambdas/core/codecs/csv-reader.ts';
import { gunzipStream } from '../../lambdas/core/codecs/gzip.ts';
import { readJsonlRecords } from '../../lambdas/core/codecs/jsonl-reader.ts';
import {
  planParquet,
  readParquetRows,
  type ParquetRow,
  type RandomAccessSource,
} from '../../lambdas/core/codecs/parquet-reader.ts';

const encoder = new TextEncoder();

async function* pieces(bytes: Uint8Array, size = bytes.length || 1): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function collect<T>(batches: AsyncIterable<T[]>): Promise<T[]> {
  const out: T[] = [];
  for await (const batch of batches) out.push(...batch);
  return out;
}

async function concatStream(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

function bytesOf(...parts: (string | number[])[]): Uint8Array {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? encoder.encode(p) : Uint8Array.from(p))));
}

describe('readCsvRecords', () => {
  it('rejects a row with invalid UTF-8 and keeps reading the others', async () => {
    // Row 2 holds a lone continuation byte; row 3 a multi-byte character, split across 1-byte pieces.
    const bytes = bytesOf('1,ok\r\n2,bad', [0xff], 'x\r\n3,é€\r\n4,"a\nb"\r\n');
    for (const size of [1, 3, bytes.length]) {
      const rows = await collect(
        readCsvRecords(pieces(bytes, size), { delimiter: ',', firstRow: 1, firstLine: 2, batchBytes: 8 }),
      );
      expect(rows).toEqual([
        { row: 1, line: 2, fields: ['1', 'ok'] },
        { row: 2, line: 3, fields: ['2', 'bad\uFFFDx'], error: 'invalid UTF-8', text: '2,bad\uFFFDx' },
        { row: 3, line: 4, fields: ['3', 'é€'] },
        { row: 4, line: 5, fields: ['4', 'a\nb'] },
      ] satisfies CsvRow[]);
    }
  });

  it('rejects a malformed record (a character after a closing quote) and keeps the rest', async () => {
    const bytes = encoder.encode('1,"a"b,c\n2,d\n\n3,"e"\n');
    const rows = await collect(
      readCsvRecords(pieces(bytes, 4), { delimiter: ',', firstRow: 10, firstLine: 20 }),
    );
    expect(rows).toEqual([
      {
        row: 10,
        line: 20,
        fields: [],
        error: 'malformed CSV: unexpected character after a closing quote',
        text: '1,"a"b,c',
      },
      { row: 11, line: 21, fields: ['2', 'd'] },
      { row: 12, line: 23, fields: ['3', 'e'] },
    ] satisfies CsvRow[]);
  });

  it('numbers lines from the first record when the range starts with blank lines', async () => {
    const bytes = encoder.encode('\r\n\n5,x\n\n6,y');
    const rows = await collect(readCsvRecords(pieces(bytes), { delimiter: ',', firstRow: 5, firstLine: 9 }));
    expect(rows.map((r) => [r.row, r.line, r.fields])).toEqual([
      [5, 9, ['5', 'x']],
      [6, 11, ['6', 'y']],
    ]);
  });

  it('reads a single-column file in linear time (no delimiter to find)', async () => {
    const text = Array.from({ length: 50_000 }, (_, i) => `value-${i}`).join('\n');
    const started = performance.now();
    const rows = await collect(
      readCsvRecords(pieces(encoder.encode(text), 65536), { delimiter: ',', firstRow: 1, firstLine: 2 }),
    );
    expect(rows).toHaveLength(50_000);
    expect(rows[49_999]).toEqual({ row: 50_000, line: 50_001, fields: ['value-49999'] });
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('keeps a U+FEFF at the start of a data range (it is data, not a BOM there)', async () => {
    const rows = await collect(
      readCsvRecords(pieces(encoder.encode('\uFEFFa,b\n')), { delimiter: ',', firstRow: 1, firstLine: 2 }),
    );
    expect(rows[0]?.fields).toEqual(['\uFEFFa', 'b']);
  });
});

describe('readJsonlRecords', () => {
  it('rejects invalid JSON and lines that are not objects; flags invalid UTF-8, with the original text', async () => {
    const bytes = bytesOf(
      '{"a":1}\r\n',
      '{"a":\n',
      '[1,2]\n',
      '  \n',
      '42\n',
      'null\n',
      '"s"\n',
      '{"b":"',
      [0xc3],
      '"}\n',
      '{"c":"é"}\n',
      '{"d":',
      [0xff],
      '}',
    );
    for (const size of [1, 5, bytes.length]) {
      const rows = await collect(
        readJsonlRecords(pieces(bytes, size), { firstRow: 1, firstLine: 1, batchBytes: 16 }),
      );
      const seen = rows.map((r) => [r.row, r.line, r.value, r.error?.replace(/:.*/, ':'), r.text]);
      expect(seen).toEqual([
        [1, 1, { a: 1 }, undefined, '{"a":1}'],
        [2, 2, undefined, 'invalid JSON:', '{"a":'],
        [3, 3, undefined, 'not an object:', '[1,2]'],
        [4, 5, undefined, 'not an object:', '42'],
        [5, 6, undefined, 'not an object:', 'null'],
        [6, 7, undefined, 'not an object:', '"s"'],
        // Parsed with U+FFFD for the bad byte, and flagged: the caller rejects it if it reads that field.
        [7, 8, { b: '\uFFFD' }, undefined, '{"b":"\uFFFD"}'],
        [8, 9, { c: 'é' }, undefined, '{"c":"é"}'],
        // A bad byte that leaves no JSON object is rejected as invalid UTF-8.
        [9, 10, undefined, 'invalid UTF-8', '{"d":\uFFFD}'],
      ]);
      expect(rows.map((r) => r.invalidUtf8 === true)).toEqual([
        false,
        false,
        false,
        false,
        false,
        false,
        true,
        false,
        false,
      ]);
      expect(rows[2]?.error).toBe('not an object: got an array');
      expect(rows[4]?.error).toBe('not an object: got null');
    }
  });
});

// --- Parquet ---------------------------------------------------------------------------------------

function memorySource(bytes: Uint8Array, reads?: [number, number][]): RandomAccessSource {
  return {
    byteLength: bytes.length,
    read: async (start, end) => {
      reads?.push([start, end]);
      return bytes.slice(start, end).buffer;
    },
  };
}

const ROWS = 23;
const BIG = 2n ** 60n;

function sampleParquet(
  options: { codec?: 'SNAPPY' | 'GZIP' | 'ZSTD' | 'UNCOMPRESSED'; compressors?: object } = {},
) {
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: 'name', data: Array.from({ length: ROWS }, (_, i) => `name-${i}-é`), type: 'STRING' },
      { name: 'score', data: Array.from({ length: ROWS }, (_, i) => i / 4), type: 'DOUBLE' },
      {
        name: 'count',
        data: Array.from({ length: ROWS }, (_, i) => (i === 22 ? BIG : BigInt(i * 1000))),
        type: 'INT64',
      },
      { name: 'flag', data: Array.from({ length: ROWS }, (_, i) => i % 3 === 0), type: 'BOOLEAN' },
      {
        name: 'at',
        data: Array.from({ length: ROWS }, (_, i) => new Date(Date.UTC(2024, 0, 1 + i))),
        type: 'TIMESTAMP',
      },
    ],
    rowGroupSize: 5,
    codec: options.codec ?? 'SNAPPY',
    ...(options.compressors ? { compressors: options.compressors } : {}),
  });
  return new Uint8Array(buffer);
}

function expectedRow(i: number): ParquetRow {
  return {
    row: i + 1,
    value: {
      name: `name-${i}-é`,
      score: i / 4,
      count: i === 22 ? BIG.toString() : i * 1000,
      flag: i % 3 === 0,
      at: new Date(Date.UTC(2024, 0, 1 + i)).toISOString(),
    },
  };
}

/**
 * A zstd frame of raw (stored) blocks: valid zstd that any decoder must accept, so the ZSTD read path
 * can be tested without a zstd compressor (node:zlib has none before Node 22.15).
 */
function zstdStored(input: Uint8Array): Uint8Array {
  const parts: number[] = [0x28, 0xb5, 0x2f, 0xfd, 0xa0];
  const size = input.length;
  parts.push(size & 0xff, (size >>> 8) & 0xff, (size >>> 16) & 0xff, (size >>> 24) & 0xff);
  const out: Uint8Array[] = [Uint8Array.from(parts)];
  let offset = 0;
  do {
    const block = input.subarray(offset, offset + 65536);
    offset += block.length;
    const header = (block.length << 3) | (offset >= size ? 1 : 0);
    out.push(Uint8Array.from([header & 0xff, (header >>> 8) & 0xff, (header >>> 16) & 0xff]), block);
  } while (offset < size);
  return Buffer.concat(out);
}

describe('Parquet', () => {
  const file = sampleParquet();

  it('plans whole row groups up to chunkBytes and reads every row with its row number', async () => {
    const one = await planParquet(memorySource(file), { chunkBytes: 1 });
    expect(one.columns).toEqual(['name', 'score', 'count', 'flag', 'at']);
    expect(one.totalRows).toBe(ROWS);
    expect(one.rowGroups.map((g) => g.rows)).toEqual([5, 5, 5, 5, 3]);
    expect(one.rowGroups.every((g) => g.bytes > 0)).toBe(true);
    expect(one.chunks).toEqual(
      [0, 1, 2, 3, 4].map((g) => ({
        rowGroupStart: g,
        rowGroupEnd: g + 1,
        rowStart: g * 5,
        rows: g === 4 ? 3 : 5,
        firstRow: g * 5 + 1,
      })),
    );

    // Greedy: a chunk takes the next row group while the total stays within chunkBytes.
    const chunkBytes = one.rowGroups[0]!.bytes + one.rowGroups[1]!.bytes;
    const two = await planParquet(memorySource(file), { chunkBytes });
    expect(two.chunks.length).toBeGreaterThan(1);
    expect(two.chunks.length).toBeLessThan(5);
    let next = 0;
    for (const chunk of two.chunks) {
      expect(chunk.rowGroupStart).toBe(next);
      const groups = one.rowGroups.slice(chunk.rowGroupStart, chunk.rowGroupEnd);
      const bytes = groups.reduce((sum, g) => sum + g.bytes, 0);
      if (groups.length > 1) expect(bytes).toBeLessThanOrEqual(chunkBytes);
      const following = one.rowGroups[chunk.rowGroupEnd];
      if (following) expect(bytes + following.bytes).toBeGreaterThan(chunkBytes);
      expect(chunk.rowStart).toBe(chunk.rowGroupStart * 5);
      expect(chunk.firstRow).toBe(chunk.rowStart + 1);
      expect(chunk.rows).toBe(groups.reduce((sum, g) => sum + g.rows, 0));
      next = chunk.rowGroupEnd;
    }
    expect(next).toBe(5);
    const all = await planParquet(memorySource(file), { chunkBytes: 1 << 30 });
    expect(all.chunks).toHaveLength(1);

    for (const plan of [one, two, all]) {
      const rows: ParquetRow[] = [];
      for (const chunk of plan.chunks)
        rows.push(...(await collect(readParquetRows(memorySource(file), chunk, { batchRows: 4 }))));
      expect(rows).toEqual(Array.from({ length: ROWS }, (_, i) => expectedRow(i)));
    }
  });

  it('reads only the chosen columns, and rejects unknown ones', async () => {
    const plan = await planParquet(memorySource(file), { chunkBytes: 1 });
    const rows = await collect(
      readParquetRows(memorySource(file), plan.chunks[1]!, { columns: ['count', 'flag'] }),
    );
    expect(rows.map((r) => r.row)).toEqual([6, 7, 8, 9, 10]);
    expect(rows[0]?.value).toEqual({ count: 5000, flag: false });
    const error = await failure(
      collect(readParquetRows(memorySource(file), plan.chunks[0]!, { columns: ['nope'] })),
    );
    expect(error).toMatchObject({ name: 'DatasetError', code: 'UNKNOWN_COLUMN' });
  });

  it('reads gzip and zstd compressed files', async () => {
    const codecs: ['UNCOMPRESSED' | 'GZIP' | 'ZSTD', object | undefined][] = [
      ['UNCOMPRESSED', undefined],
      ['GZIP', { GZIP: (input: Uint8Array) => gzipSync(input) }],
      ['ZSTD', { ZSTD: zstdStored }],
    ];
    for (const [codec, compressors] of codecs) {
      const bytes = sampleParquet({ codec, ...(compressors ? { compressors } : {}) });
      const footer = parquetMetadata(bytes.slice().buffer);
      expect(footer.row_groups[0]?.columns[0]?.meta_data?.codec).toBe(codec);
      const plan = await planParquet(memorySource(bytes), { chunkBytes: 1 << 20 });
      const rows = await collect(readParquetRows(memorySource(bytes), plan.chunks[0]!));
      expect(rows).toEqual(Array.from({ length: ROWS }, (_, i) => expectedRow(i)));
    }
  });

  it('turns corrupt or truncated files into CORRUPT_PARQUET', async () => {
    const garbage = encoder.encode('this is not a parquet file at all');
    const truncated = file.subarray(0, file.length - 20);
    const headless = file.slice();
    const footerLength = 8 + new DataView(file.buffer, file.byteOffset).getUint32(file.length - 8, true);
    headless.fill(0xff, 4, file.length - footerLength);
    for (const bytes of [garbage, truncated, new Uint8Array(), file.subarray(file.length - 8)]) {
      const error = await failure(planParquet(memorySource(bytes), { chunkBytes: 1 }));
      expect(error).toBeInstanceOf(DatasetError);
      expect(error).toMatchObject({ code: 'CORRUPT_PARQUET' });
      expect((error as Error).message).toMatch(/Parquet/);
    }
    // The footer is intact but the data is not (overwritten, or shifted by bytes missing at the start).
    for (const bytes of [headless, file.subarray(8)]) {
      const plan = await planParquet(memorySource(bytes), { chunkBytes: 1 });
      const error = await failure(collect(readParquetRows(memorySource(bytes), plan.chunks[0]!)));
      expect(error).toBeInstanceOf(DatasetError);
      expect(error).toMatchObject({ code: 'CORRUPT_PARQUET' });
    }
  });

  it('passes the source read errors through unchanged (they may be retried)', async () => {
    const boom = new Error('socket hang up');
    const source: RandomAccessSource = { byteLength: file.length, read: () => Promise.reject(boom) };
    expect(await failure(planParquet(source, { chunkBytes: 1 }))).toBe(boom);
  });
});

// --- gzip ------------------------------------------------------------------------------------------

describe('gunzipStream', () => {
  const text = 'id,v\n' + Array.from({ length: 2000 }, (_, i) => `${i},"é€ ${i}"`).join('\n') + '\n';
  const gz = gzipSync(text);

  it('round-trips, from pieces of any size, and several members', async () => {
    for (const size of [7, 4096, gz.length]) {
      expect((await concatStream(gunzipStream(pieces(gz, size)))).toString()).toBe(text);
    }
    const two = Buffer.concat([gzipSync('a,b\n'), gzipSync('1,2\n')]);
    expect((await concatStream(gunzipStream(pieces(two, 1)))).toString()).toBe('a,b\n1,2\n');
  });

  it('feeds a scan directly', async () => {
    const scan = await scanCsv(gunzipStream(pieces(gz, 1000)), { chunkBytes: 4096, delimiter: ',' });
    expect(scan.header).toEqual(['id', 'v']);
    expect(scan.totalRows).toBe(2000);
    expect(scan.bytes).toBe(Buffer.byteLength(text));
  });

  it('turns truncated or corrupt data into CORRUPT_GZIP', async () => {
    const cases = [
      gz.subarray(0, gz.length - 10),
      gz.subarray(0, 100),
      encoder.encode('plain text'),
      new Uint8Array(),
    ];
    for (const bytes of cases) {
      const error = await failure(concatStream(gunzipStream(pieces(bytes, 64))));
      expect(error).toBeInstanceOf(DatasetError);
      expect(error).toMatchObject({ code: 'CORRUPT_GZIP' });
    }
    const truncated = await failure(concatStream(gunzipStream(pieces(gz.subarray(0, gz.length - 10)))));
    expect((truncated as Error).message).toMatch(/unexpected end of file/);
  });

  it('passes an error of the input stream through unchanged', async () => {
    const boom = new Error('connection reset');
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield gz.subarray(0, 100);
      throw boom;
    }
    expect(await failure(concatStream(gunzipStream(broken())))).toBe(boom);
  });
});
