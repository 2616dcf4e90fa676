/**
 * The batch lane's bad-input catalogue: each case uploads a small file to s3rver and runs the deployed
 * state machine definition locally (plan -> map -> finalize) against s3rver + dynalite. A case ends in
 * rejected rows whose reasons name the field or the problem, or in a failed run whose manifest and
 * completion event say why. In every run that completes, every data row the test wrote (counted here,
 * not taken from the manifest) is read once and ends up scored or rejected.
 */
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { BatchOptions, BatchPlan, RunManifest } from '../../lambdas/core/batch/contracts.ts';
import { parseCsv } from '../../lambdas/core/codecs/csv.ts';
import {
  DEMO_MODEL,
  LOCAL_BUCKET,
  LOCAL_TABLE,
  startLocalStack,
  type LocalStack,
} from '../../local/stack.ts';
import {
  collectRun,
  csvLine,
  expectAccounted,
  expectFailed,
  loadDemoData,
  readJson,
  rejectedRow,
  typedRecord,
  type DemoData,
  type JsonRow,
  type RunOutcome,
} from '../support/batch-harness.ts';
import { expectWithMessage } from '../support/expect-message.ts';

let stack: LocalStack;
let dir: string;
let data: DemoData;
/** Predictions of the first 100 demo rows from a clean run, by id: bad rows must not disturb the others. */
const reference = new Map<string, unknown>();

interface RunSpec {
  readonly model?: string;
  readonly key?: string;
  readonly options?: Partial<BatchOptions>;
}

async function run(name: string, content: string | Uint8Array, spec: RunSpec = {}): Promise<RunOutcome> {
  const file = path.join(dir, name);
  await writeFile(file, content);
  const result = await stack.runDataset(file, spec.model ?? DEMO_MODEL, spec.key, spec.options);
  return collectRun(stack.objects, LOCAL_BUCKET, stack.events, result);
}

const col = (name: string) => {
  const index = data.header.indexOf(name);
  if (index < 0) throw new Error(`no column ${name}`);
  return index;
};

/** `count` demo rows (copies), each edited by `edits[rowNumber]` when there is one. */
function demoRows(count: number, edits: Record<number, (fields: string[]) => void> = {}): string[][] {
  return data.rows.slice(0, count).map((fields, i) => {
    const copy = [...fields];
    edits[i + 1]?.(copy);
    return copy;
  });
}

function csv(
  rows: readonly (readonly string[])[],
  header: readonly string[] = data.header,
  eol = '\n',
): string {
  return [csvLine(header), ...rows.map((r) => csvLine(r))].join(eol) + eol;
}

function setField(name: string, value: string) {
  return (fields: string[]) => void (fields[col(name)] = value);
}

/** Scored rows predict what the clean run predicted for the same (unmodified) demo row. */
function expectReferencePredictions(outcome: RunOutcome, ids?: readonly string[]): void {
  const wanted = new Set(ids ?? outcome.predictions.map((p) => p['id'] as string));
  for (const p of outcome.predictions) {
    const id = p['id'] as string;
    if (!wanted.has(id) || !reference.has(id)) continue;
    expectWithMessage(p['prediction'], `prediction of ${id}`).toEqual(reference.get(id));
  }
}

function expectRejected(outcome: RunOutcome, row: number, reason: RegExp, fields: string[] = []): JsonRow {
  const rejected = rejectedRow(outcome, row);
  expectWithMessage(rejected['reason'], `row ${row}`).toMatch(reason);
  const details = (rejected['details'] as { field: string }[] | undefined) ?? [];
  for (const field of fields)
    expectWithMessage(
      details.map((d) => d.field),
      `row ${row} details`,
    ).toContain(field);
  return rejected;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tandem-bad-input-'));
  data = await loadDemoData();
  stack = await startLocalStack({ seed: false, batch: { maxConcurrency: 2, retryIntervalMs: 10 } });
  const clean = await run('reference.csv', csv(demoRows(100)));
  expectAccounted(clean, 100);
  for (const p of clean.predictions) reference.set(p['id'] as string, p['prediction']);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('bad input, batch: CSV rows', () => {
  it('rejects a ragged row with too few fields, keeping its fields', async () => {
    const rows = demoRows(12, { 3: (f) => void f.pop() });
    const outcome = await run('ragged-short.csv', csv(rows));
    expectAccounted(outcome, 12);
    const rejected = expectRejected(outcome, 3, /^expected 18 fields \(the header's\), got 17$/);
    expect(rejected['line']).toBe(4);
    expect(rejected['record']).toEqual(rows[2]);
    expect(outcome.manifest.counts).toMatchObject({ scored: 11, rejected: 1 });
    expectReferencePredictions(outcome);
  });

  it('rejects a ragged row with too many fields', async () => {
    const rows = demoRows(12, { 4: (f) => void f.push('surplus') });
    const outcome = await run('ragged-long.csv', csv(rows));
    expectAccounted(outcome, 12);
    expect(expectRejected(outcome, 4, /got 19$/)['record']).toEqual(rows[3]);
    expect(outcome.manifest.counts.rejected).toBe(1);
  });

  it('rejects wrong types per column, naming each field', async () => {
    const rows = demoRows(20, {
      2: setField('amount', 'abc'),
      5: setField('hour_of_day', '3.5'),
      7: setField('card_present', 'maybe'),
      9: setField('account_age_days', '12abc'),
      11: (f) => {
        setField('txn_count_1h', 'two')(f);
        setField('is_international', '2')(f);
      },
      13: setField('amount', ' 12.5'),
    });
    const outcome = await run('wrong-types.csv', csv(rows));
    expectAccounted(outcome, 20);
    expectRejected(outcome, 2, /amount must be a number, got a string "abc"/, ['amount']);
    expectRejected(outcome, 5, /hour_of_day must be an integer, got 3.5/, ['hour_of_day']);
    expectRejected(outcome, 7, /card_present must be a boolean \(true or false\), got "maybe"/, [
      'card_present',
    ]);
    expectRejected(outcome, 9, /account_age_days must be an integer, got a string "12abc"/);
    const both = expectRejected(
      outcome,
      11,
      /txn_count_1h .*; is_international|is_international .*; txn_count_1h/,
      ['txn_count_1h', 'is_international'],
    );
    expect(both['details']).toHaveLength(2);
    // Values are not trimmed: a padded number is a string, as in the real-time lane.
    expectRejected(outcome, 13, /amount must be a number, got a string " 12.5"/);
    expect(outcome.manifest.counts).toMatchObject({ scored: 14, rejected: 6 });
    expectReferencePredictions(outcome);
  });

  it('rejects NaN, Infinity and numbers that overflow to Infinity', async () => {
    const rows = demoRows(10, {
      1: setField('amount', 'NaN'),
      3: setField('distance_from_home_km', 'Infinity'),
      5: setField('amount_to_avg_ratio', '-inf'),
      7: setField('amount', '1e400'),
    });
    const outcome = await run('non-finite.csv', csv(rows));
    expectAccounted(outcome, 10);
    expectRejected(outcome, 1, /amount must be a finite number, got "NaN"/, ['amount']);
    expectRejected(outcome, 3, /distance_from_home_km must be a finite number, got "Infinity"/);
    expectRejected(outcome, 5, /amount_to_avg_ratio must be a finite number, got "-inf"/);
    expectRejected(outcome, 7, /amount must be a finite number, got "1e400"/);
    expect(outcome.manifest.counts.scored).toBe(6);
  });

  it('rejects out-of-range values with the bound', async () => {
    const rows = demoRows(10, {
      2: setField('amount', '-0.01'),
      4: setField('customer_age', '17'),
      6: setField('hour_of_day', '24'),
      8: setField('merchant_risk_score', '1.5'),
    });
    const outcome = await run('out-of-range.csv', csv(rows));
    expectAccounted(outcome, 10);
    expectRejected(outcome, 2, /amount must be >= 0, got -0.01/);
    expectRejected(outcome, 4, /customer_age must be >= 18, got 17/);
    expectRejected(outcome, 6, /hour_of_day must be <= 23, got 24/);
    expectRejected(outcome, 8, /merchant_risk_score must be <= 1, got 1.5/);
  });

  it('rejects unknown categories (case-sensitive) and over-long category values', async () => {
    const rows = demoRows(10, {
      1: setField('merchant_category', 'casino'),
      2: setField('channel', 'ONLINE'),
      3: setField('merchant_category', 'g'.repeat(300)),
    });
    const outcome = await run('unknown-category.csv', csv(rows));
    expectAccounted(outcome, 10);
    expectRejected(outcome, 1, /merchant_category unknown category "casino"; expected one of: grocery, /);
    expectRejected(outcome, 2, /channel unknown category "ONLINE"; expected one of: chip, contactless/);
    expectRejected(outcome, 3, /merchant_category must be at most 256 characters, got 300/);
  });

  it('rejects an empty id and an id longer than the table key allows', async () => {
    const rows = demoRows(10, {
      3: setField('transaction_id', ''),
      6: setField('transaction_id', `t-${'9'.repeat(2100)}`),
    });
    const outcome = await run('bad-ids.csv', csv(rows));
    expectAccounted(outcome, 10);
    expectRejected(outcome, 3, /transaction_id is required/, ['transaction_id']);
    expectRejected(outcome, 6, /transaction_id must be at most 256 characters, got 2102/, ['transaction_id']);
    expect(outcome.manifest.counts).toMatchObject({ scored: 8, writtenToTable: 8 });
  });

  it('rejects a missing required value; a missing optional one takes its default', async () => {
    const rows = demoRows(10, {
      2: setField('amount', ''),
      4: (f) => {
        setField('failed_pin_24h', '')(f);
        setField('new_device', '')(f);
      },
      6: (f) => f.fill(''),
    });
    const outcome = await run('missing-values.csv', csv(rows));
    expectAccounted(outcome, 10);
    expectRejected(outcome, 2, /^invalid features: amount is required$/, ['amount']);
    const empty = expectRejected(outcome, 6, /transaction_id is required/, ['amount', 'channel']);
    expect((empty['details'] as unknown[]).length).toBeGreaterThanOrEqual(15);
    // The demo rows have failed_pin_24h 0 and new_device false: the defaults give the same prediction.
    expect(outcome.predictions.find((p) => p['row'] === 4)?.['prediction']).toEqual(
      reference.get(data.rows[3]![0]!),
    );
  });

  it('scores every row of duplicate ids; in the table the later row wins, across chunks too', async () => {
    const id = (row: number) => data.rows[row - 1]![0]!;
    const rows = demoRows(30, {
      11: setField('transaction_id', id(10)),
      25: setField('transaction_id', id(5)),
    });
    const outcome = await run('duplicates.csv', csv(rows), { options: { chunkBytes: 1024 } });
    expectAccounted(outcome, 30);
    expect(outcome.manifest.chunks.planned).toBeGreaterThan(1);
    expect(outcome.manifest.counts).toMatchObject({ scored: 30, rejected: 0 });
    expect(outcome.predictions.filter((p) => p['id'] === id(5)).map((p) => p['row'])).toEqual([5, 25]);
    for (const [entity, row] of [
      [id(5), 25],
      [id(10), 11],
    ] as const) {
      const item = await stack.dynamo.send(
        new GetItemCommand({ TableName: LOCAL_TABLE, Key: { pk: { S: `${DEMO_MODEL}#1.0.0#${entity}` } } }),
      );
      expectWithMessage(item.Item?.['sourceRow'], entity).toEqual({ N: String(row) });
      expectWithMessage(item.Item?.['runId'], entity).toEqual({ S: outcome.manifest.runId });
    }
  });
});

describe('bad input, batch: CSV files', () => {
  it('reads a file with a UTF-8 BOM (the id column is found)', async () => {
    const outcome = await run('bom.csv', `\uFEFF${csv(demoRows(15))}`);
    expectAccounted(outcome, 15);
    expect(outcome.manifest.counts.scored).toBe(15);
    expectReferencePredictions(outcome);
  });

  it('reads CRLF and mixed line ends without carrying CR into the last field', async () => {
    const rows = demoRows(16);
    const mixed = [csvLine(data.header), ...rows.map((r) => csvLine(r))]
      .map((line, i) => `${line}${i % 2 === 0 ? '\r\n' : '\n'}`)
      .join('');
    const crlf = await run('crlf.csv', csv(rows, data.header, '\r\n'), { options: { chunkBytes: 1024 } });
    const both = await run('mixed-eol.csv', mixed, { options: { chunkBytes: 1024 } });
    for (const outcome of [crlf, both]) {
      expectAccounted(outcome, 16);
      expect(outcome.manifest.counts.scored).toBe(16);
      expectReferencePredictions(outcome);
    }
  });

  it('keeps quoted newlines, delimiters and quotes inside one field, with true line numbers', async () => {
    const header = [...data.header, 'note'];
    const notes: Record<number, string> = {
      4: 'line one\nline two, "quoted"',
      8: 'a\r\nb\r\nc',
    };
    const rows = demoRows(12, { 10: setField('merchant_category', 'casino') }).map((fields, i) => [
      ...fields,
      notes[i + 1] ?? '',
    ]);
    const outcome = await run('quoted-newlines.csv', csv(rows, header), {
      options: { passThroughColumns: ['note'], chunkBytes: 1024 },
    });
    expectAccounted(outcome, 12);
    const note = (row: number) =>
      (outcome.predictions.find((p) => p['row'] === row)?.['input'] as { note?: string } | undefined)?.note;
    expect(note(4)).toBe(notes[4]);
    expect(note(8)).toBe(notes[8]);
    // Row 4 takes lines 5-6 and row 8 lines 10-12, so row 10 starts on line 14.
    expect(expectRejected(outcome, 10, /unknown category "casino"/)['line']).toBe(14);
    expectReferencePredictions(outcome);
  });

  it('rejects a record with a character after a closing quote as malformed CSV', async () => {
    const rows = demoRows(8).map((r) => csvLine(r));
    const fields = [...data.rows[5]!];
    fields[col('channel')] = `"${fields[col('channel')]!}"x`;
    rows[5] = fields.join(',');
    const outcome = await run('malformed-quote.csv', [csvLine(data.header), ...rows].join('\n') + '\n');
    expectAccounted(outcome, 8);
    const rejected = expectRejected(outcome, 6, /^malformed CSV/);
    expect(rejected['record']).toBe(rows[5]);
  });

  it('fails a file whose quote is never closed, naming the line', async () => {
    const rows = demoRows(8).map((r) => csvLine(r));
    const fields = [...data.rows[3]!];
    fields[col('merchant_category')] = `"${fields[col('merchant_category')]!}`;
    rows[3] = fields.join(',');
    const outcome = await run('unterminated.csv', [csvLine(data.header), ...rows].join('\n') + '\n');
    expectFailed(outcome, 'UNTERMINATED_QUOTE', /line 5/);
  });

  it('rejects a row with bytes that are not UTF-8, scoring the rest', async () => {
    const rows = demoRows(10).map((r) => csvLine(r));
    const fields = [...data.rows[2]!];
    fields[col('merchant_category')] = 'caf\u00e9';
    const bad = Buffer.from(fields.join(','), 'latin1');
    const content = Buffer.concat([
      Buffer.from([csvLine(data.header), rows[0], rows[1]].join('\n') + '\n'),
      bad,
      Buffer.from('\n' + rows.slice(3).join('\n') + '\n'),
    ]);
    const outcome = await run('latin1-row.csv', content);
    expectAccounted(outcome, 10);
    const rejected = expectRejected(outcome, 3, /^invalid UTF-8$/);
    expect(rejected['record']).toMatch(/caf\uFFFD/);
    expect(outcome.manifest.counts.scored).toBe(9);
  });

  it('fails a file whose header is not UTF-8 (a UTF-16 file, say)', async () => {
    const text = csv(demoRows(5));
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
    expectFailed(await run('utf16.csv', utf16), 'INVALID_UTF8', /header \(line 1\) is not valid UTF-8/);
  });

  it('scores a record longer than the chunk size in a chunk of its own', async () => {
    const header = [...data.header, 'note'];
    const long = 'x'.repeat(3000);
    const rows = demoRows(12).map((fields, i) => [...fields, i === 4 ? long : 'short']);
    const outcome = await run('long-line.csv', csv(rows, header), {
      options: { chunkBytes: 1024, passThroughColumns: ['note'] },
    });
    expectAccounted(outcome, 12);
    const plan = await readJson<BatchPlan>(
      stack.objects,
      LOCAL_BUCKET,
      `runs/${outcome.manifest.runId}/plan.json`,
    );
    const own = plan.chunks.find((c) => c.firstRow === 5);
    expect(own).toMatchObject({ kind: 'bytes', rows: 1 });
    expect(own!.kind === 'bytes' && own!.end - own!.start).toBeGreaterThan(3000);
    expect(outcome.predictions.find((p) => p['row'] === 5)?.['input']).toEqual({ note: long });
    expectReferencePredictions(outcome);
  });

  it('rejects a record longer than maxRecordBytes as a row; scores the rest', async () => {
    const header = [...data.header, 'note'];
    const rows = demoRows(10).map((fields, i) => [...fields, i === 6 ? 'y'.repeat(10_000) : '']);
    const outcome = await run('too-long-record.csv', csv(rows, header), {
      options: { maxRecordBytes: 4096 },
    });
    expectAccounted(outcome, 10);
    const rejected = expectRejected(
      outcome,
      7,
      /^RECORD_TOO_LARGE: the record is \d+ bytes; the limit is 4096/,
    );
    expect(rejected['line']).toBe(8);
    // The rejected file keeps the start of the record, not all of it.
    expect((rejected['record'] as string).length).toBeLessThanOrEqual(1024);
    expect(outcome.manifest.counts.scored).toBe(9);
  });

  it('fails a file with a record longer than 16 × maxRecordBytes (a worker holds a record whole), naming its line', async () => {
    const header = [...data.header, 'note'];
    const rows = demoRows(10).map((fields, i) => [...fields, i === 6 ? 'y'.repeat(70_000) : '']);
    const outcome = await run('far-too-long-record.csv', csv(rows, header), {
      options: { maxRecordBytes: 4096 },
    });
    expectFailed(outcome, 'RECORD_TOO_LARGE', /line 8 .*65536 bytes \(16 × maxRecordBytes/);
  });

  it('scores a row whose bytes that are not UTF-8 are only in a column the model does not read', async () => {
    const header = [...data.header, 'note'];
    const rows = demoRows(6).map((r) => csvLine([...r, 'plain']));
    const bad = Buffer.from(csvLine([...data.rows[2]!, 'caf\u00e9 au lait']), 'latin1');
    const content = Buffer.concat([
      Buffer.from([csvLine(header), rows[0], rows[1]].join('\n') + '\n'),
      bad,
      Buffer.from('\n' + rows.slice(3).join('\n') + '\n'),
    ]);
    const outcome = await run('latin1-note.csv', content);
    expectAccounted(outcome, 6);
    expect(outcome.manifest.counts.scored).toBe(6);
    expectReferencePredictions(outcome);
    // Read as a pass-through column, the same bytes reject the row: the output would carry U+FFFD.
    const passed = await run('latin1-note-passed.csv', content, {
      options: { passThroughColumns: ['note'] },
    });
    expectAccounted(passed, 6);
    expectRejected(passed, 3, /^invalid UTF-8$/);
  });

  it('skips blank lines (they are not rows) and counts the records around them', async () => {
    const rows = demoRows(20).map((r) => csvLine(r));
    const text = [
      csvLine(data.header),
      '',
      ...rows.slice(0, 5),
      '',
      '',
      ...rows.slice(5, 12),
      '""',
      ...rows.slice(12),
      '',
      '',
    ].join('\n');
    const outcome = await run('blank-lines.csv', text, { options: { chunkBytes: 1024 } });
    expectAccounted(outcome, 20);
    expect(outcome.manifest.counts.scored).toBe(20);
    expectReferencePredictions(outcome);
  });

  it('completes a header-only file with zero rows, with or without a final line end', async () => {
    for (const [name, text] of [
      ['header-only.csv', `${csvLine(data.header)}\n`],
      ['header-no-eol.csv', csvLine(data.header)],
    ]) {
      const outcome = await run(name!, text!);
      expectAccounted(outcome, 0);
      expect(outcome.manifest.chunks.planned).toBe(0);
    }
  });

  it('fails a file with only blank lines or a BOM: no header', async () => {
    expectFailed(await run('only-blank.csv', '\n\r\n\n'), 'NO_HEADER', /no header/);
    expectFailed(await run('only-bom.csv', '\uFEFF'), 'NO_HEADER', /no header/);
  });

  it('fails a 0-byte upload of every format: EMPTY_FILE', async () => {
    for (const name of ['zero.csv', 'zero.jsonl', 'zero.parquet', 'zero.csv.gz']) {
      expectFailed(await run(name, ''), 'EMPTY_FILE', /is empty \(0 bytes\)/);
    }
  });

  it('fails a file without a required feature column, naming it; optional columns may be absent', async () => {
    const without = (names: string[]) => {
      const keep = data.header.map((h, i) => (names.includes(h) ? -1 : i)).filter((i) => i >= 0);
      return {
        header: keep.map((i) => data.header[i]!),
        rows: demoRows(10).map((r) => keep.map((i) => r[i]!)),
      };
    };
    const noAmount = without(['amount']);
    expectFailed(
      await run('no-amount.csv', csv(noAmount.rows, noAmount.header)),
      'MISSING_COLUMNS',
      /no column "amount" \(it has: transaction_id, hour_of_day/,
    );
    const noOptional = without(['failed_pin_24h', 'new_device']);
    const outcome = await run('no-optional.csv', csv(noOptional.rows, noOptional.header));
    expectAccounted(outcome, 10);
    expect(outcome.manifest.counts.scored).toBe(10);
    expectReferencePredictions(outcome);
  });

  it('fails a file without the id column, naming it', async () => {
    const header = data.header.slice(1);
    const rows = demoRows(5).map((r) => r.slice(1));
    expectFailed(await run('no-id.csv', csv(rows, header)), 'MISSING_COLUMNS', /no column "transaction_id"/);
  });

  it('fails a file whose header is malformed CSV, naming the line', async () => {
    const header = csvLine(data.header).replace('amount', '"amount"x');
    const text = [header, ...demoRows(3).map((r) => csvLine(r))].join('\n') + '\n';
    expectFailed(await run('malformed-header.csv', text), 'MALFORMED_CSV', /malformed CSV header \(line 1\)/);
  });

  it('scores ids with any characters, "#" and non-ASCII included, under their own keys', async () => {
    const ids = ['a#b#c', 'd\u00e9j\u00e0-vu', '\u6f22\u5b57'.repeat(128), 'emoji-\u{1F600}'];
    const rows = demoRows(4).map((r, i) => [ids[i]!, ...r.slice(1)]);
    const outcome = await run('unusual-ids.csv', csv(rows));
    expectAccounted(outcome, 4);
    expect(outcome.predictions.map((p) => p['id'])).toEqual(ids);
    for (const id of ids) {
      const item = await stack.dynamo.send(
        new GetItemCommand({ TableName: LOCAL_TABLE, Key: { pk: { S: `${DEMO_MODEL}#1.0.0#${id}` } } }),
      );
      expectWithMessage(item.Item?.['entityId'], id).toEqual({ S: id });
    }
  });

  it('fails a file whose header names a needed column twice (ambiguous)', async () => {
    const header = [...data.header, 'amount'];
    const rows = demoRows(5).map((r) => [...r, '1']);
    expectFailed(await run('duplicate-column.csv', csv(rows, header)), 'DUPLICATE_COLUMNS', /"amount"/);
  });

  it('fails a file with another delimiter unless the option names it', async () => {
    const text = [csvLine(data.header, ';'), ...demoRows(6).map((r) => csvLine(r, ';'))].join('\n') + '\n';
    expectFailed(await run('semicolons.csv', text), 'MISSING_COLUMNS', /no column "transaction_id"/);
    const outcome = await run('semicolons-ok.csv', text, { options: { delimiter: ';' } });
    expectAccounted(outcome, 6);
    expect(outcome.manifest.counts.scored).toBe(6);
  });

  it('ignores columns that are not features', async () => {
    const header = ['comment', ...data.header, 'region'];
    const rows = demoRows(8).map((r) => ['hello, world', ...r, 'eu']);
    const outcome = await run('extra-columns.csv', csv(rows, header));
    expectAccounted(outcome, 8);
    expect(outcome.manifest.counts.scored).toBe(8);
    expectReferencePredictions(outcome);
  });
});

describe('bad input, batch: JSON Lines', () => {
  const line = (row: number, patch: Record<string, unknown> = {}) =>
    JSON.stringify({ ...typedRecord(data, data.rows[row - 1]!), ...patch });

  it('rejects lines that are valid JSON but not objects', async () => {
    const lines = [line(1), '[1, 2, 3]', '42', '"a string"', 'null', 'true', line(7)];
    const outcome = await run('not-objects.jsonl', lines.join('\n') + '\n');
    expectAccounted(outcome, 7);
    expectRejected(outcome, 2, /^not an object: got an array$/);
    expectRejected(outcome, 3, /^not an object: got a number$/);
    expectRejected(outcome, 4, /^not an object: got a string$/);
    expectRejected(outcome, 5, /^not an object: got null$/);
    expectRejected(outcome, 6, /^not an object: got a boolean$/);
    expect(rejectedRow(outcome, 2)['record']).toBe('[1, 2, 3]');
    expect(outcome.manifest.counts.scored).toBe(2);
  });

  it('rejects invalid JSON lines with the parser message and the original text', async () => {
    const lines = [
      line(1),
      line(2).slice(0, 40),
      "{'single': 'quotes'}",
      `${line(4).slice(0, -1)},}`,
      line(5),
    ];
    const outcome = await run('invalid-json.jsonl', lines.join('\n') + '\n');
    expectAccounted(outcome, 5);
    for (const row of [2, 3, 4]) {
      expect(expectRejected(outcome, row, /^invalid JSON: /)['record']).toBe(lines[row - 1]);
    }
    expect(outcome.manifest.counts.scored).toBe(2);
  });

  it('rejects JSON values of the wrong type (no coercion from strings), naming the field', async () => {
    const lines = [
      line(1, { amount: '12.5' }),
      line(2, { card_present: 'true' }),
      line(3, { transaction_id: true }),
      line(4, { transaction_id: { nested: 1 } }),
      line(5, { hour_of_day: [3] }),
      line(6, { transaction_id: 12345 }),
      line(7),
    ];
    const outcome = await run('json-types.jsonl', lines.join('\n') + '\n');
    expectAccounted(outcome, 7);
    expectRejected(outcome, 1, /amount must be a number, got a string "12.5"/, ['amount']);
    expectRejected(outcome, 2, /card_present must be a boolean/, ['card_present']);
    expectRejected(outcome, 3, /transaction_id must be a non-empty string \(or an integer\), got true/, [
      'transaction_id',
    ]);
    expectRejected(outcome, 4, /transaction_id must be a non-empty string \(or an integer\), got an object/);
    expectRejected(outcome, 5, /hour_of_day must be an integer, got an array/);
    // A numeric id is an id: scored under its decimal text.
    expect(outcome.predictions.find((p) => p['row'] === 6)?.['id']).toBe('12345');
  });

  it('rejects missing and null required fields; ignores extra fields; no prototype pollution', async () => {
    const withoutAmount = typedRecord(data, data.rows[1]!);
    delete withoutAmount['amount'];
    const lines = [
      line(1, { amount: null }),
      JSON.stringify(withoutAmount),
      line(3, { comment: 'extra fields are ignored', nested: { a: 1 } }),
      // "__proto__" as a JSON key is an own property: it must not supply "amount".
      `{"__proto__": {"amount": 5}, ${line(4, { amount: undefined }).slice(1)}`,
      line(5, { transaction_id: '' }),
    ];
    const outcome = await run('json-missing.jsonl', lines.join('\n') + '\n');
    expectAccounted(outcome, 5);
    expectRejected(outcome, 1, /amount is required/, ['amount']);
    expectRejected(outcome, 2, /amount is required/, ['amount']);
    expectRejected(outcome, 4, /amount is required/, ['amount']);
    expectRejected(outcome, 5, /transaction_id must be a non-empty string \(or an integer\), got ""/, [
      'transaction_id',
    ]);
    expect(outcome.predictions.map((p) => p['row'])).toEqual([3]);
    expect(({} as Record<string, unknown>)['amount']).toBeUndefined();
  });

  it('rejects one 5 MB line as a row (RECORD_TOO_LARGE) with the default options, scoring the rest', async () => {
    const lines = [line(1), line(2, { note: 'z'.repeat(5 * 1024 * 1024) }), line(3)];
    const outcome = await run('five-mb-line.jsonl', lines.join('\n') + '\n');
    expectAccounted(outcome, 3);
    expectRejected(outcome, 2, /^RECORD_TOO_LARGE: the record is \d+ bytes; the limit is 1048576/);
    expect(outcome.manifest.counts.scored).toBe(2);
  });

  it('scores a line whose bytes that are not UTF-8 are only in a field the model does not read', async () => {
    const content = Buffer.concat([
      Buffer.from(`${line(1)}\n`),
      Buffer.from(`${line(2, { note: 'caf\u00e9' })}\n`, 'latin1'),
      Buffer.from(`${line(3)}\n`),
    ]);
    const outcome = await run('latin1-note.jsonl', content);
    expectAccounted(outcome, 3);
    expect(outcome.manifest.counts.scored).toBe(3);
  });

  it('rejects a line with bytes that are not UTF-8', async () => {
    const content = Buffer.concat([
      Buffer.from(`${line(1)}\n`),
      Buffer.from(`${line(2, { merchant_category: 'caf\u00e9' })}\n`, 'latin1'),
      Buffer.from(`${line(3)}\n`),
    ]);
    const outcome = await run('latin1.jsonl', content);
    expectAccounted(outcome, 3);
    expect(expectRejected(outcome, 2, /^invalid UTF-8$/)['record']).toMatch(/caf\uFFFD/);
  });

  it('reads a BOM, CRLF line ends and blank lines; counts only records', async () => {
    const lines = Array.from({ length: 14 }, (_, i) => line(i + 1));
    const text = `\uFEFF${lines.slice(0, 7).join('\r\n')}\r\n\r\n   \r\n${lines.slice(7).join('\r\n')}\r\n`;
    const outcome = await run('bom-crlf.jsonl', text, { options: { chunkBytes: 1024 } });
    expectAccounted(outcome, 14);
    expect(outcome.manifest.counts.scored).toBe(14);
    expectReferencePredictions(outcome);
  });
});

describe('bad input, batch: gzip and Parquet', () => {
  it('fails truncated gzip and data that is not gzip: CORRUPT_GZIP', async () => {
    const gz = gzipSync(csv(demoRows(100)));
    expectFailed(
      await run('truncated.csv.gz', gz.subarray(0, gz.length - 40)),
      'CORRUPT_GZIP',
      /truncated|unexpected end/i,
    );
    expectFailed(await run('plain.jsonl.gz', '{"not": "gzip"}\n'), 'CORRUPT_GZIP', /gzip/);
  });

  it('rejects bad rows inside a gzipped file with their own row and line numbers', async () => {
    const rows = demoRows(40, { 33: setField('amount', 'lots') });
    const outcome = await run('bad-row.csv.gz', gzipSync(csv(rows)), { options: { chunkBytes: 1024 } });
    expectAccounted(outcome, 40);
    expect(outcome.manifest.chunks.planned).toBeGreaterThan(1);
    expect(expectRejected(outcome, 33, /amount must be a number/)['line']).toBe(34);
  });

  it('fails a gzip upload that inflates beyond maxInputBytes (a gzip bomb) without staging it all', async () => {
    const rows = Array.from({ length: 4000 }, () => data.rows[0]!);
    const bomb = gzipSync(csv(rows));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const outcome = await run('bomb.csv.gz', bomb, { options: { maxInputBytes: 64 * 1024 } });
    expectFailed(outcome, 'INPUT_TOO_LARGE', /decompresses to more than 65536 bytes/);
  });

  it('fails corrupt and truncated Parquet: CORRUPT_PARQUET', async () => {
    const good = parquet(demoRows(30));
    expectFailed(
      await run('corrupt.parquet', 'PAR1 this is not parquet at all PAR1'),
      'CORRUPT_PARQUET',
      /Parquet/,
    );
    expectFailed(
      await run('truncated.parquet', good.subarray(0, Math.floor(good.length / 2))),
      'CORRUPT_PARQUET',
      /Parquet/,
    );
  });

  it('rejects Parquet values of the wrong type and nulls in required columns', async () => {
    const rows = demoRows(20);
    const file = parquet(rows, {
      amount: { type: 'STRING', data: rows.map((r) => r[col('amount')]!) },
      customer_age: {
        type: 'INT32',
        nullable: true,
        data: rows.map((r, i) => (i % 5 === 2 ? null : Number(r[col('customer_age')]))),
      },
    });
    const outcome = await run('wrong-types.parquet', file);
    // Every row rejected, none scored: the run delivered nothing, so it fails, with the rows kept.
    expectFailed(outcome, 'NOTHING_SCORED', /all 20 rows read were rejected; the reasons are in results\//);
    expect(outcome.manifest.counts).toMatchObject({ read: 20, scored: 0, rejected: 20 });
    expect(outcome.rejected).toHaveLength(20);
    expectRejected(outcome, 1, /amount must be a number, got a string/, ['amount']);
    expectRejected(outcome, 3, /amount must be a number.*; customer_age is required/, [
      'amount',
      'customer_age',
    ]);
    expect(rejectedRow(outcome, 1)['record']).toMatchObject({ transaction_id: rows[0]![0] });
  });

  it('fails Parquet whose row group is larger than a worker may decode at once', async () => {
    const outcome = await run('big-row-group.parquet', parquet(demoRows(30)), {
      options: { maxRowGroupRows: 5 },
    });
    expectFailed(
      outcome,
      'ROW_GROUP_TOO_LARGE',
      /row group 0 of big-row-group\.parquet has 8 rows; .*the limit is 5/,
    );
    expect(outcome.manifest.chunks.planned).toBe(0);
  });

  it('fails Parquet without a required column, naming it', async () => {
    const file = parquet(demoRows(10), {}, ['merchant_risk_score']);
    expectFailed(await run('no-column.parquet', file), 'MISSING_COLUMNS', /no column "merchant_risk_score"/);
  });
});

/** The table item of an entity of the demo model, or undefined. */
async function tableItem(entity: string) {
  const found = await stack.dynamo.send(
    new GetItemCommand({ TableName: LOCAL_TABLE, Key: { pk: { S: `${DEMO_MODEL}#1.0.0#${entity}` } } }),
  );
  return found.Item;
}

// The one entity-id rule (lambdas/core/entity-id.ts, docs/batch.md "Entity ids"): an id is exact text.
describe('bad input, batch: entity ids, one rule for every format', () => {
  const BIG = '12345678901234567890';
  const NEXT = '12345678901234567891';
  /** A JSON Lines line of demo row `row` whose id is this JSON text, spliced in as written. */
  const lineWithId = (row: number, idJson: string) =>
    JSON.stringify({ ...typedRecord(data, data.rows[row - 1]!), transaction_id: '__ID__' }).replace(
      '"__ID__"',
      idJson,
    );

  it('JSON Lines: integer ids keep their digits (beyond 2^53 too); -0, 1e21, 1.5, 1.0 are rejected', async () => {
    const ids = [
      BIG,
      NEXT,
      '-0',
      '1e21',
      '1.5',
      '1.0',
      '"txn-\\ud800"',
      '""',
      `"${'x'.repeat(257)}"`,
      '"kund\u00e9-\u6771\u4eac-\ud83d\ude00"',
      '9'.repeat(257),
      '-42',
      `"${BIG}"`,
    ];
    const lines = ids.map((id, i) => lineWithId(i + 1, id));
    const outcome = await run('entity-ids.jsonl', lines.join('\n') + '\n');
    expectAccounted(outcome, ids.length);
    expect(outcome.predictions.map((p) => [p['row'], p['id']])).toEqual([
      [1, BIG],
      [2, NEXT],
      [10, 'kundé-東京-😀'],
      [12, '-42'],
      [13, BIG],
    ]);
    const digits = /transaction_id must be a string or an integer in plain digits/;
    expectRejected(outcome, 3, new RegExp(`${digits.source} .*got -0: send "-0" as a string`), [
      'transaction_id',
    ]);
    expectRejected(outcome, 4, new RegExp(`${digits.source} .*got 1e21`));
    expectRejected(outcome, 5, new RegExp(`${digits.source} .*got 1\\.5`));
    expectRejected(outcome, 6, new RegExp(`${digits.source} .*got 1\\.0`));
    expectRejected(outcome, 7, /transaction_id must be valid Unicode text \(it has an unpaired surrogate\)/);
    expectRejected(outcome, 8, /transaction_id must be a non-empty string/);
    expectRejected(outcome, 9, /transaction_id must be at most 256 characters, got 257/);
    expectRejected(outcome, 11, /transaction_id must be at most 256 characters, got 257/);
    // Two entities, two keys: each item is its own row's (the string "BIG" of row 13 is row 1's entity).
    expect((await tableItem(BIG))?.['sourceRow']).toEqual({ N: '13' });
    expect((await tableItem(NEXT))?.['sourceRow']).toEqual({ N: '2' });
    expect(await tableItem('12345678901234567000')).toBeUndefined();
    expect(await tableItem('0')).toBeUndefined();
  });

  it('CSV: an id is the exact text of its field, so -0, 1e21 and 1.5 are ids of their own', async () => {
    const ids = [BIG, NEXT, '-0', '0', '1e21', '1.5', '1.50', ' 7', 'kundé-東京-😀'];
    const rows = demoRows(ids.length).map((r, i) => [ids[i]!, ...r.slice(1)]);
    const outcome = await run('entity-ids.csv', csv(rows));
    expectAccounted(outcome, ids.length);
    expect(outcome.predictions.map((p) => p['id'])).toEqual(ids);
    for (const [i, id] of ids.entries()) {
      expectWithMessage((await tableItem(id))?.['sourceRow'], id).toEqual({ N: String(i + 1) });
    }
  });

  it('Parquet: INT64 ids are exact digits; a DOUBLE id must be a whole number a double holds exactly', async () => {
    const int64 = [
      1234567890123456789n,
      1234567890123456788n,
      9223372036854775807n,
      -9223372036854775808n,
      42n,
    ];
    const int64Rows = demoRows(int64.length);
    const exact = await run(
      'int64-ids.parquet',
      parquet(int64Rows, { transaction_id: { type: 'INT64', data: int64 } }),
    );
    expectAccounted(exact, int64.length);
    const digits = int64.map(String);
    expect(exact.predictions.map((p) => p['id'])).toEqual(digits);
    for (const [i, id] of digits.entries()) {
      expectWithMessage((await tableItem(id))?.['sourceRow'], id).toEqual({ N: String(i + 1) });
    }

    const doubles = [3, 1.5, -0, 1e21, 2 ** 53];
    const doubleRows = demoRows(doubles.length);
    const outcome = await run(
      'double-ids.parquet',
      parquet(doubleRows, { transaction_id: { type: 'DOUBLE', data: doubles } }),
    );
    expectAccounted(outcome, doubles.length);
    expect(outcome.predictions.map((p) => [p['row'], p['id']])).toEqual([[1, '3']]);
    const digitsRule = /transaction_id must be a string or an integer in plain digits/;
    expectRejected(outcome, 2, new RegExp(`${digitsRule.source} .*got 1\\.5`), ['transaction_id']);
    expectRejected(outcome, 3, new RegExp(`${digitsRule.source} .*got -0`));
    expectRejected(outcome, 4, new RegExp(`${digitsRule.source} .*got 1e\\+21`));
    expectRejected(outcome, 5, new RegExp(`${digitsRule.source} .*got 9007199254740992`));
  });
});

describe('bad input, batch: keys, models and options', () => {
  // Not a dataset: ignored before a run exists (issue 12.6), so no FAILED manifest and no alarm.
  it('starts no run for an unsupported extension: UNSUPPORTED_FORMAT', async () => {
    for (const name of ['data.xlsx', 'data.txt', 'data.parquet.gz', 'no-extension']) {
      await expectWithMessage(run(name, 'a,b\n1,2\n'), name).rejects.toMatchObject({
        name: 'UploadIgnoredError',
        reason: {
          code: 'UNSUPPORTED_FORMAT',
          message: expect.stringMatching(/supported are \.csv, \.jsonl/),
        },
      });
    }
  });

  it('fails an unknown model prefix; an upload outside a model folder starts no run', async () => {
    const unknown = await run('unknown-model.csv', csv(demoRows(3)), { model: 'no-such-model' });
    expectFailed(unknown, 'MODEL_NOT_FOUND', /no model named "no-such-model"/);
    expect(unknown.result.manifestKey).toMatch(/^results\/no-such-model\/unknown-model\//);
    await expect(run('loose.csv', csv(demoRows(3)), { key: 'incoming/loose.csv' })).rejects.toMatchObject({
      name: 'UploadIgnoredError',
      reason: { code: 'NO_MODEL_FOLDER', message: expect.stringMatching(/incoming\/<model>\/<file>/) },
    });
  });

  it('fails invalid options, naming each', async () => {
    const outcome = await run('options.csv', csv(demoRows(3)), {
      options: { chunkBytes: 10, microBatchRows: 0, tableWrites: 'some' as 'all' },
    });
    expectFailed(outcome, 'INVALID_OPTIONS', /chunkBytes .*; tableWrites .*; microBatchRows|chunkBytes/);
    expect(outcome.manifest.error?.message).toMatch(/microBatchRows/);
    expect(outcome.manifest.error?.message).toMatch(/tableWrites/);
  });

  it('fails an upload larger than maxInputBytes before reading it', async () => {
    const outcome = await run('large.csv', csv(demoRows(100)), { options: { maxInputBytes: 4096 } });
    expectFailed(outcome, 'INPUT_TOO_LARGE', /is \d+ bytes; the limit is 4096/);
    expect(outcome.manifest.chunks.planned).toBe(0);
  });
});

describe('bad input, batch: what the outputs carry', () => {
  /** A run's CSV part files as text, and its manifest. */
  async function runCsvOutput(name: string, content: string, options: Partial<BatchOptions>) {
    const file = path.join(dir, name);
    await writeFile(file, content);
    const result = await stack.runDataset(file, DEMO_MODEL, undefined, { outputFormat: 'csv', ...options });
    const manifest = await readJson<RunManifest>(stack.objects, LOCAL_BUCKET, result.manifestKey);
    let text = '';
    for (const key of manifest.outputs.parts)
      text += new TextDecoder().decode(await stack.objects.readBytes(LOCAL_BUCKET, key));
    return { manifest, text };
  }

  const formulas = ['=HYPERLINK("http://x","y")', '+1+2', '-2+3', '@SUM(A1)', '\tcmd', '\rcmd'];

  it('neutralizes formulas in CSV ids and pass-through values by default; numbers stay numbers', async () => {
    const header = [...data.header, 'note', 'delta'];
    const rows = demoRows(formulas.length + 1).map((fields, i) => {
      const copy = [...fields, formulas[i] ?? 'plain', i === 0 ? '-1.5' : '+7'];
      copy[col('transaction_id')] = formulas[i] ?? 'plain-id';
      return copy;
    });
    const { manifest, text } = await runCsvOutput('formulas.csv', csv(rows, header), {
      passThroughColumns: ['note', 'delta'],
    });
    expect(manifest.status).toBe('SUCCEEDED');
    expect(manifest.counts.scored).toBe(formulas.length + 1);
    const records = parseCsv(text).map((r) => r.fields);
    const [head, ...body] = records;
    const id = head!.indexOf('id');
    const note = head!.indexOf('note');
    const delta = head!.indexOf('delta');
    for (const formula of formulas) {
      const row = body.find((r) => r[id] === `'${formula}`);
      expectWithMessage(row, JSON.stringify(formula)).toBeDefined();
      expect(row![note]).toBe(`'${formula}`);
    }
    // Each neutralized field is quoted and starts with the quote mark, never with the formula.
    expect(text).toContain(`"'=HYPERLINK(""http://x"",""y"")"`);
    expect(body.find((r) => r[id] === 'plain-id')![note]).toBe('plain');
    expect(body.map((r) => r[delta]).sort()).toEqual(['+7', '+7', '+7', '+7', '+7', '+7', '-1.5']);
  });

  it('writes values exactly as read with csvFormulas "raw"', async () => {
    const header = [...data.header, 'note'];
    const rows = demoRows(2).map((fields, i) => [...fields, formulas[i]!]);
    rows[0]![col('transaction_id')] = '=1+1';
    const { manifest, text } = await runCsvOutput('formulas-raw.csv', csv(rows, header), {
      passThroughColumns: ['note'],
      csvFormulas: 'raw',
    });
    expect(manifest.status).toBe('SUCCEEDED');
    const body = parseCsv(text)
      .slice(1)
      .map((r) => r.fields);
    expect(body.map((r) => r[0])).toContain('=1+1');
    expect(body.map((r) => r.at(-1))).toEqual(expect.arrayContaining(formulas.slice(0, 2)));
  });

  it('fails an unknown csvFormulas value: INVALID_OPTIONS', async () => {
    const outcome = await run('formulas-bad-option.csv', csv(demoRows(3)), {
      options: { csvFormulas: 'escape' as 'raw' },
    });
    expectFailed(outcome, 'INVALID_OPTIONS', /csvFormulas must be "neutralize" or "raw"/);
  });

  const prototypeNames = ['constructor', 'toString', 'hasOwnProperty', '__proto__'];

  it('passes through columns named like Object.prototype members from CSV, in CSV and JSON Lines outputs', async () => {
    const header = [...data.header, ...prototypeNames];
    const rows = demoRows(3).map((fields, i) => [...fields, ...prototypeNames.map((n) => `${n}-${i + 1}`)]);
    const jsonl = await run('prototype-names.csv', csv(rows, header), {
      options: { passThroughColumns: prototypeNames },
    });
    expectAccounted(jsonl, 3);
    for (const p of jsonl.predictions) {
      const input = p['input'] as Record<string, unknown>;
      expect(Object.keys(input)).toEqual(prototypeNames);
      for (const n of prototypeNames)
        expect(Object.getOwnPropertyDescriptor(input, n)?.value).toBe(`${n}-${p['row'] as number}`);
    }
    const { text } = await runCsvOutput('prototype-names-out.csv', csv(rows, header), {
      passThroughColumns: prototypeNames,
    });
    const [head, ...body] = parseCsv(text).map((r) => r.fields);
    expect(head!.slice(-4)).toEqual(prototypeNames);
    expect(text).not.toMatch(/native code|undefined/);
    expect(body.map((r) => r.slice(-4))).toEqual(
      rows.map((_, i) => prototypeNames.map((n) => `${n}-${i + 1}`)),
    );
  });

  it('passes through JSON Lines fields named like Object.prototype members; a missing one is null, never inherited', async () => {
    const record = (row: number, extra: Record<string, unknown>) =>
      JSON.stringify({ ...typedRecord(data, data.rows[row - 1]!), ...extra });
    const lines = [
      // JSON.parse makes "__proto__" an own key, like any other.
      `{"__proto__": "p1", ${record(1, { constructor: 'c1', toString: 't1', hasOwnProperty: 'h1' }).slice(1)}`,
      record(2, { constructor: 'c2' }),
    ];
    const outcome = await run('prototype-names.jsonl', lines.join('\n') + '\n', {
      options: { passThroughColumns: prototypeNames },
    });
    expectAccounted(outcome, 2);
    const inputs = outcome.predictions.map((p) => p['input']);
    expect(inputs[0]).toEqual(
      JSON.parse('{"constructor":"c1","toString":"t1","hasOwnProperty":"h1","__proto__":"p1"}'),
    );
    expect(inputs[1]).toEqual(
      JSON.parse('{"constructor":"c2","toString":null,"hasOwnProperty":null,"__proto__":null}'),
    );
    const { text } = await runCsvOutput('prototype-names-jsonl-out.jsonl', lines.join('\n') + '\n', {
      passThroughColumns: prototypeNames,
    });
    expect(text).not.toMatch(/native code|undefined/);
    expect(parseCsv(text)[2]!.fields.slice(-4)).toEqual(['c2', '', '', '']);
  });

  it('fails JSON Lines whose first record lacks a pass-through field, as CSV fails without the column', async () => {
    const lines = [
      JSON.stringify(typedRecord(data, data.rows[0]!)),
      JSON.stringify({ ...typedRecord(data, data.rows[1]!), note: 'x' }),
    ];
    for (const name of ['note', 'constructor']) {
      const outcome = await run(`unknown-pass-${name}.jsonl`, lines.join('\n') + '\n', {
        options: { passThroughColumns: [name] },
      });
      expectFailed(outcome, 'UNKNOWN_PASS_THROUGH', new RegExp(`first record: ${name}$`));
    }
    const csvOutcome = await run('unknown-pass.csv', csv(demoRows(2)), {
      options: { passThroughColumns: ['constructor'] },
    });
    expectFailed(csvOutcome, 'UNKNOWN_PASS_THROUGH', /not in the dataset: constructor$/);
  });
});

type ParquetColumn = { type: string; data: unknown[]; nullable?: boolean };

/** The demo rows as Parquet (typed columns), with some columns replaced or left out. */
function parquet(
  rows: string[][],
  replace: Record<string, ParquetColumn> = {},
  omit: string[] = [],
): Uint8Array {
  const columnData = data.header
    .filter((name) => !omit.includes(name))
    .map((name) => {
      if (replace[name]) return { name, ...replace[name] };
      const type = data.types.get(name);
      const values = rows.map((r) => r[col(name)]!);
      return type === 'boolean'
        ? { name, type: 'BOOLEAN', data: values.map((v) => v === 'true') }
        : type === 'number'
          ? { name, type: 'DOUBLE', data: values.map(Number) }
          : type === 'integer'
            ? { name, type: 'INT32', data: values.map(Number) }
            : { name, type: 'STRING', data: values };
    });
  return new Uint8Array(parquetWriteBuffer({ columnData, rowGroupSize: 8 } as never));
}
