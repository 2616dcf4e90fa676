import fc from 'fast-check';
import { describe, expect, it } from '@jest/globals';
import { scanCsv, scanJsonl, type ByteRange } from '../../lambdas/core/batch/dataset-scan.ts';
import { CsvSyntaxError, parseCsv } from '../../lambdas/core/codecs/csv.ts';
import { DatasetError } from '../../lambdas/core/codecs/errors.ts';
import { readCsvRecords, type CsvRow } from '../../lambdas/core/codecs/csv-reader.ts';
import { readJsonlRecords, type JsonlRow } from '../../lambdas/core/codecs/jsonl-reader.ts';

const encoder = new TextEncoder();

/** Splits bytes at the given cut points (taken modulo the length), yielding the pieces. */
async function* split(bytes: Uint8Array, cuts: readonly number[] = []): AsyncGenerator<Uint8Array> {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % (bytes.length + 1))))].sort(
    (a, b) => a - b,
  );
  let from = 0;
  for (const point of points) {
    yield bytes.subarray(from, point);
    from = point;
  }
  yield bytes.subarray(from);
}

async function readCsvChunks(
  bytes: Uint8Array,
  chunks: readonly ByteRange[],
  cuts: readonly number[],
  batchBytes: number,
  delimiter = ',',
): Promise<CsvRow[]> {
  const rows: CsvRow[] = [];
  for (const chunk of chunks) {
    const batches = readCsvRecords(split(bytes.subarray(chunk.start, chunk.end), cuts), {
      delimiter,
      firstRow: chunk.firstRow,
      firstLine: chunk.firstLine,
      batchBytes,
    });
    let count = 0;
    for await (const batch of batches) {
      expect(batch.length).toBeGreaterThan(0);
      rows.push(...batch);
      count += batch.length;
    }
    expect(count).toBe(chunk.rows);
  }
  return rows;
}

async function readJsonlChunks(
  bytes: Uint8Array,
  chunks: readonly ByteRange[],
  cuts: readonly number[],
  batchBytes: number,
): Promise<JsonlRow[]> {
  const rows: JsonlRow[] = [];
  for (const chunk of chunks) {
    const batches = readJsonlRecords(split(bytes.subarray(chunk.start, chunk.end), cuts), {
      firstRow: chunk.firstRow,
      firstLine: chunk.firstLine,
      batchBytes,
    });
    let count = 0;
    for await (const batch of batches) {
      rows.push(...batch);
      count += batch.length;
    }
    expect(count).toBe(chunk.rows);
  }
  return rows;
}

function expectPartition(chunks: readonly ByteRange[], start: number, end: number, totalRows: number): void {
  let position = start;
  let row = 1;
  for (const chunk of chunks) {
    expect(chunk.start).toBe(position);
    expect(chunk.end).toBeGreaterThan(chunk.start);
    expect(chunk.rows).toBeGreaterThan(0);
    expect(chunk.firstRow).toBe(row);
    position = chunk.end;
    row += chunk.rows;
  }
  if (chunks.length > 0) expect(position).toBe(end);
  expect(row - 1).toBe(totalRows);
}

async function scanError(promise: Promise<unknown>): Promise<DatasetError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DatasetError);
  return error as DatasetError;
}

// --- generators ------------------------------------------------------------------------------------

const LONG = 'long text, with a comma and more than thirty bytes';

const fieldText = fc
  .array(
    // LONG makes some quoted fields longer than the machine's short-field loop (32 bytes).
    fc.constantFrom('a', 'b', 'z', ' ', ',', '"', '\r', '\n', '\r\n', 'é', '€', '😀', '\t', LONG),
    { maxLength: 6 },
  )
  .map((parts) => parts.join(''));

const csvFile = fc.record({
  records: fc.array(fc.array(fc.tuple(fieldText, fc.boolean()), { minLength: 1, maxLength: 4 }), {
    minLength: 1,
    maxLength: 12,
  }),
  blanks: fc.array(fc.nat({ max: 2 }), { maxLength: 13 }),
  eol: fc.constantFrom('\n', '\r\n'),
  bom: fc.boolean(),
  finalEol: fc.boolean(),
});

interface CsvFile {
  records: [string, boolean][][];
  blanks: number[];
  eol: string;
  bom: boolean;
  finalEol: boolean;
}

/** Serializes records, quoting the fields that need it (and some that do not), with blank lines. */
function serializeCsv({ records, blanks, eol, bom, finalEol }: CsvFile): string {
  let text = bom ? '\uFEFF' : '';
  records.forEach((fields, index) => {
    for (let b = 0; b < (blanks[index] ?? 0); b++) text += eol;
    text += fields
      .map(([value, quote]) => (quote || /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value))
      .join(',');
    if (index < records.length - 1 || finalEol) text += eol;
  });
  return text;
}

const cuts = fc.array(fc.nat({ max: 10_000 }), { maxLength: 8 });

describe('scanCsv + readCsvRecords', () => {
  it('partitions any valid CSV into chunks whose records, read back, are exactly the file records', async () => {
    await fc.assert(
      fc.asyncProperty(
        csvFile,
        fc.integer({ min: 1, max: 120 }),
        cuts,
        cuts,
        fc.integer({ min: 1, max: 64 }),
        fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
        async (file, chunkBytes, scanCuts, readCuts, batchBytes, maxChunkRows) => {
          const text = serializeCsv(file);
          const bytes = encoder.encode(text);
          const expected = parseCsv(text);
          if (expected.length === 0) {
            const error = await scanError(scanCsv(split(bytes, scanCuts), { chunkBytes, delimiter: ',' }));
            expect(error.code).toBe(bytes.length === 0 ? 'EMPTY_FILE' : 'NO_HEADER');
            return;
          }
          const scan = await scanCsv(split(bytes, scanCuts), { chunkBytes, maxChunkRows, delimiter: ',' });
          expect(scan.bytes).toBe(bytes.length);
          expect(scan.header).toEqual(expected[0]!.fields);
          expect(scan.totalRows).toBe(expected.length - 1);
          expectPartition(scan.chunks, scan.headerEnd, bytes.length, scan.totalRows);
          for (const chunk of scan.chunks) {
            // Small chunks: only a chunk with a single record may exceed chunkBytes (plus blank lines).
            if (chunk.rows > 1) expect(chunk.end - chunk.start).toBeLessThanOrEqual(chunkBytes + 6 * 2);
            if (maxChunkRows !== undefined) expect(chunk.rows).toBeLessThanOrEqual(maxChunkRows);
          }
          const rows = await readCsvChunks(bytes, scan.chunks, readCuts, batchBytes);
          expect(rows.map((r) => ({ row: r.row, line: r.line, fields: r.fields, error: r.error }))).toEqual(
            expected.slice(1).map((record, index) => ({
              row: index + 1,
              line: record.line,
              fields: record.fields,
              error: undefined,
            })),
          );
        },
      ),
      { numRuns: 250 },
    );
  });

  it('agrees with CsvParser on arbitrary (also malformed) text: same records, bad ones rejected', async () => {
    const junk = fc
      .array(fc.constantFrom('a', ',', '"', '\r', '\n', 'é', LONG), { maxLength: 40 })
      .map((parts) => parts.join(''));
    await fc.assert(
      fc.asyncProperty(junk, fc.integer({ min: 1, max: 16 }), cuts, async (text, chunkBytes, pieces) => {
        const bytes = encoder.encode(text);
        let expected: ReturnType<typeof parseCsv> | undefined;
        let parseError: CsvSyntaxError | undefined;
        try {
          expected = parseCsv(text);
        } catch (error) {
          parseError = error as CsvSyntaxError;
        }
        let scan;
        try {
          scan = await scanCsv(split(bytes, pieces), { chunkBytes, delimiter: ',' });
        } catch (error) {
          expect(error).toBeInstanceOf(DatasetError);
          const code = (error as DatasetError).code;
          // The scanner reads on after a malformed record, so it may find an open quote further on.
          if (code === 'UNTERMINATED_QUOTE') expect(parseError).toBeDefined();
          else if (code === 'MALFORMED_CSV') expect(parseError).toBeDefined();
          else if (code === 'EMPTY_FILE') expect(text).toBe('');
          else expect([code, expected?.length]).toEqual(['NO_HEADER', 0]);
          return;
        }
        expect(parseError?.message).not.toBe('unterminated quoted field');
        expectPartition(scan.chunks, scan.headerEnd, bytes.length, scan.totalRows);
        const rows = await readCsvChunks(bytes, scan.chunks, pieces, 8);
        expect(rows.map((r) => r.row)).toEqual(Array.from({ length: scan.totalRows }, (_, i) => i + 1));
        if (expected !== undefined) {
          expect(rows.map((r) => [r.line, r.fields, r.error])).toEqual(
            expected.slice(1).map((r) => [r.line, r.fields, undefined]),
          );
        } else {
          expect(rows.some((r) => r.error?.startsWith('malformed CSV'))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('gives a header-only file no chunks', async () => {
    for (const text of ['a,b', 'a,b\n', 'a,b\r\n\r\n\n', '\uFEFFa,b\r\n']) {
      const scan = await scanCsv(split(encoder.encode(text)), { chunkBytes: 10, delimiter: ',' });
      expect(scan.header).toEqual(['a', 'b']);
      expect(scan.chunks).toEqual([]);
      expect(scan.totalRows).toBe(0);
    }
  });

  it('rejects an empty file, a file without a header and an unterminated quote', async () => {
    expect((await scanError(scanCsv(split(new Uint8Array()), { chunkBytes: 10, delimiter: ',' }))).code).toBe(
      'EMPTY_FILE',
    );
    expect(
      (await scanError(scanCsv(split(encoder.encode('\uFEFF\r\n\n')), { chunkBytes: 10, delimiter: ',' })))
        .code,
    ).toBe('NO_HEADER');
    const error = await scanError(
      scanCsv(split(encoder.encode('a,b\n1,2\n3,"open\n4,5\n')), { chunkBytes: 10, delimiter: ',' }),
    );
    expect(error.code).toBe('UNTERMINATED_QUOTE');
    expect(error.line).toBe(3);
    expect(error.message).toMatch(/line 3/);
    expect(
      (await scanError(scanCsv(split(encoder.encode('"a,b\n1,2\n')), { chunkBytes: 10, delimiter: ',' })))
        .code,
    ).toBe('UNTERMINATED_QUOTE');
  });

  it('rejects a header that is not UTF-8, malformed or too long, and a bad delimiter', async () => {
    const bad = new Uint8Array([0x61, 0xff, 0x2c, 0x62, 0x0a, 0x31, 0x0a]);
    expect((await scanError(scanCsv(split(bad), { chunkBytes: 10, delimiter: ',' }))).code).toBe(
      'INVALID_UTF8',
    );
    expect(
      (await scanError(scanCsv(split(encoder.encode('"a"b,c\n1,2\n')), { chunkBytes: 10, delimiter: ',' })))
        .code,
    ).toBe('MALFORMED_CSV');
    const long = encoder.encode(`${'x'.repeat(100)}\n1\n`);
    expect(
      (
        await scanError(
          scanCsv(split(long, [10, 20, 30]), { chunkBytes: 10, delimiter: ',', maxHeaderBytes: 50 }),
        )
      ).code,
    ).toBe('HEADER_TOO_LARGE');
    expect((await scanError(scanCsv(split(long), { chunkBytes: 10, delimiter: '€' }))).code).toBe(
      'UNSUPPORTED_FORMAT',
    );
  });

  it('gives a record longer than chunkBytes its own chunk', async () => {
    const long = `2,"${'x'.repeat(50)}\n${'y'.repeat(50)}"`;
    const text = `id,v\n1,a\n${long}\n3,b\n4,c\n`;
    const bytes = encoder.encode(text);
    const scan = await scanCsv(split(bytes, [7]), { chunkBytes: 10, delimiter: ',' });
    expect(scan.chunks.map((c) => [c.firstRow, c.firstLine, c.rows])).toEqual([
      [1, 2, 1],
      [2, 3, 1],
      [3, 5, 2],
    ]);
    const longChunk = scan.chunks[1]!;
    expect(new TextDecoder().decode(bytes.subarray(longChunk.start, longChunk.end))).toBe(`${long}\n`);
    const rows = await readCsvChunks(bytes, scan.chunks, [3], 4);
    expect(rows.map((r) => [r.row, r.line, r.fields[0]])).toEqual([
      [1, 2, '1'],
      [2, 3, '2'],
      [3, 5, '3'],
      [4, 6, '4'],
    ]);
  });

  it('handles a BOM with CRLF, blank lines and a last record without a line end', async () => {
    const text = '\uFEFF"id";"name"\r\n\r\n1;"é\r\nx"\r\n\r\n2;€\r\n3;z';
    const bytes = encoder.encode(text);
    const scan = await scanCsv(split(bytes, [1, 2]), { chunkBytes: 1, delimiter: ';' });
    expect(scan.header).toEqual(['id', 'name']);
    expect(scan.headerEnd).toBe(3 + '"id";"name"\r\n'.length);
    expect(scan.bytes).toBe(bytes.length);
    expect(scan.chunks.map((c) => [c.firstRow, c.firstLine, c.rows])).toEqual([
      [1, 3, 1],
      [2, 6, 1],
      [3, 7, 1],
    ]);
    const rows = await readCsvChunks(bytes, scan.chunks, [], 1024, ';');
    expect(rows.map((r) => [r.row, r.line, r.fields])).toEqual([
      [1, 3, ['1', 'é\r\nx']],
      [2, 6, ['2', '€']],
      [3, 7, ['3', 'z']],
    ]);
  });
});

// --- JSON Lines ------------------------------------------------------------------------------------

const jsonLine = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .dictionary(fc.constantFrom('a', 'é', '€', 'k'), fc.jsonValue({ maxDepth: 1 }))
      .map((o) => JSON.stringify(o)),
  },
  { weight: 1, arbitrary: fc.constantFrom('', '  ', '\t', ' \r') },
  { weight: 1, arbitrary: fc.constantFrom('{bad', '[1,2]', '42', 'null', '"€"', '{"x":"😀"}') },
);

describe('scanJsonl + readJsonlRecords', () => {
  it('partitions any JSON Lines file into chunks whose lines, read back, are exactly the file lines', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(jsonLine, { maxLength: 15 }),
        fc.constantFrom('\n', '\r\n'),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 1, max: 100 }),
        cuts,
        cuts,
        fc.integer({ min: 1, max: 64 }),
        fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
        async (lines, eol, bom, finalEol, chunkBytes, scanCuts, readCuts, batchBytes, maxChunkRows) => {
          const text = (bom ? '\uFEFF' : '') + lines.join(eol) + (finalEol ? eol : '');
          const bytes = encoder.encode(text);
          if (bytes.length === 0) {
            expect((await scanError(scanJsonl(split(bytes), { chunkBytes }))).code).toBe('EMPTY_FILE');
            return;
          }
          const expected = lines
            .map((line, index) => ({ line: index + 1, text: line.replace(/\r$/, '') }))
            .filter((l) => l.text.trim() !== '')
            .map((l, index) => {
              let value: unknown;
              try {
                value = JSON.parse(l.text);
              } catch {
                return { row: index + 1, line: l.line, text: l.text, ok: false };
              }
              const ok = value !== null && typeof value === 'object' && !Array.isArray(value);
              return { row: index + 1, line: l.line, text: l.text, ok, ...(ok ? { value } : {}) };
            });
          const scan = await scanJsonl(split(bytes, scanCuts), { chunkBytes, maxChunkRows });
          expect(scan.dataStart).toBe(bom ? 3 : 0);
          if (maxChunkRows !== undefined)
            for (const chunk of scan.chunks) expect(chunk.rows).toBeLessThanOrEqual(maxChunkRows);
          expect(scan.bytes).toBe(bytes.length);
          expect(scan.totalRows).toBe(expected.length);
          expectPartition(scan.chunks, scan.dataStart, bytes.length, scan.totalRows);
          const rows = await readJsonlChunks(bytes, scan.chunks, readCuts, batchBytes);
          expect(
            rows.map((r) => ({
              row: r.row,
              line: r.line,
              text: r.text,
              ok: r.error === undefined,
              ...(r.error === undefined ? { value: r.value } : {}),
            })),
          ).toEqual(expected);
        },
      ),
      { numRuns: 250 },
    );
  });

  it('gives a file of blank lines no rows, and a long line its own chunk', async () => {
    const blank = await scanJsonl(split(encoder.encode('\n  \r\n\n')), { chunkBytes: 4 });
    expect(blank).toEqual({ dataStart: 0, chunks: [], totalRows: 0, bytes: 6 });
    const long = JSON.stringify({ text: 'x'.repeat(100) });
    const bytes = encoder.encode(`{"a":1}\n${long}\n\n{"b":2}\n`);
    const scan = await scanJsonl(split(bytes, [5, 50]), { chunkBytes: 20 });
    expect(scan.chunks.map((c) => [c.firstRow, c.firstLine, c.rows])).toEqual([
      [1, 1, 1],
      [2, 2, 1],
      [3, 4, 1],
    ]);
    const rows = await readJsonlChunks(bytes, scan.chunks, [], 16);
    expect(rows.map((r) => [r.row, r.line, r.value])).toEqual([
      [1, 1, { a: 1 }],
      [2, 2, { text: 'x'.repeat(100) }],
      [3, 4, { b: 2 }],
    ]);
  });
});
