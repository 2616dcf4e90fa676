/**
 * The batch lane end to end: uploads to s3rver run the state machine definition the CDK construct
 * deploys, executed locally by aws-local-stepfunctions (which has no ItemReader: the local runner hands
 * the plan's items to the Map), writing to s3rver and dynalite.
 */
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DynamoDbPredictionStore } from '../../lambdas/adapters/dynamodb-prediction-store.ts';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { ChunkScorer } from '../../lambdas/core/batch/chunk-scorer.ts';
import type { RunManifest } from '../../lambdas/core/batch/contracts.ts';
import type { FinalizeResult } from '../../lambdas/core/batch/finalizer.ts';
import { parseCsv } from '../../lambdas/core/codecs/csv.ts';
import {
  DEMO_MODEL,
  LOCAL_BUCKET,
  LOCAL_TABLE,
  REPO_ROOT,
  startLocalStack,
  type LocalStack,
} from '../../local/stack.ts';
import { expectWithMessage } from '../support/expect-message.ts';

let stack: LocalStack;
let dir: string;
let header: string[];
let demoRows: string[][];
const failOnce = new Set<string>();

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tandem-batch-'));
  const [head, ...rows] = parseCsv(
    await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, 'demo-transactions.csv'), 'utf8'),
  );
  header = head!.fields;
  demoRows = rows.map((r) => r.fields);
  stack = await startLocalStack({
    apiPort: 0,
    seed: false,
    handlerEnv: { CACHE_BUDGET_MS: '2000' },
    batch: {
      maxConcurrency: 3,
      retryIntervalMs: 10,
      beforeChunk: (item, attempt) => {
        if (failOnce.has(`${item.index}`) && attempt === 1)
          throw new Error('injected: S3 read cut mid-stream');
      },
    },
  });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

function csvLine(fields: readonly string[]): string {
  return fields.map((f) => (/[",\r\n]/.test(f) ? `"${f.replace(/"/g, '""')}"` : f)).join(',');
}

async function manifestOf(result: FinalizeResult): Promise<RunManifest> {
  return JSON.parse(
    new TextDecoder().decode(await stack.objects.readBytes(LOCAL_BUCKET, result.manifestKey)),
  ) as RunManifest;
}

async function readLines(keys: readonly string[]): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  for (const key of keys) {
    const text = new TextDecoder().decode(await stack.objects.readBytes(LOCAL_BUCKET, key));
    for (const line of text.split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
  }
  return lines;
}

/** 300 demo rows, with bad rows of several kinds and duplicate ids, as CSV text. */
function mixedCsv(): { text: string; bad: Map<number, RegExp>; rows: number; duplicate: string } {
  const lines = [csvLine(header)];
  const bad = new Map<number, RegExp>();
  const col = (name: string) => header.indexOf(name);
  for (let i = 0; i < 300; i++) {
    const fields = [...demoRows[i]!];
    const row = i + 1;
    if (row === 7) {
      fields[col('amount')] = '-12';
      bad.set(row, /amount must be >= 0/);
    } else if (row === 50) {
      fields[col('merchant_category')] = 'casino';
      bad.set(row, /unknown category "casino"/);
    } else if (row === 120) {
      fields.pop();
      bad.set(row, /expected 18 fields/);
    } else if (row === 200) {
      fields[col('hour_of_day')] = 'noon';
      bad.set(row, /hour_of_day must be an integer/);
    } else if (row === 250) {
      fields[col('transaction_id')] = '';
      bad.set(row, /transaction_id is required/);
    } else if (row === 260) {
      // A quoted field with a newline and the delimiter inside: one record over two lines.
      fields[col('channel')] = 'on\nline, "web"';
      bad.set(row, /unknown category/);
    }
    if (row === 290) fields[col('transaction_id')] = demoRows[10]![0]!; // duplicate id of row 11
    lines.push(csvLine(fields));
  }
  return { text: `${lines.join('\r\n')}\r\n`, bad, rows: 300, duplicate: demoRows[10]![0]! };
}

describe('batch lane', () => {
  it('scores a CSV in several chunks, accounting for every row exactly once, and fills the table', async () => {
    const { text, bad, rows, duplicate } = mixedCsv();
    const file = path.join(dir, 'mixed.csv');
    await writeFile(file, text);
    failOnce.add('1');
    const result = await stack.runDataset(file, DEMO_MODEL, undefined, { chunkBytes: 8 * 1024 });
    failOnce.clear();
    expect(result.status).toBe('SUCCEEDED');
    const manifest = await manifestOf(result);
    expect(manifest.chunks.planned).toBeGreaterThanOrEqual(3);
    expect(manifest.chunks).toMatchObject({ completed: manifest.chunks.planned, failed: 0 });
    expect(manifest.counts).toMatchObject({ read: rows, scored: rows - bad.size, rejected: bad.size });
    expect(manifest.model).toEqual({ name: DEMO_MODEL, version: '1.0.0' });
    expect(manifest.input.etag).toMatch(/^[0-9a-f]{32}$/);
    // The chunk that failed once was retried: reported on its second attempt, its output not duplicated.
    expect(manifest.chunkStats.find((c) => c.index === 1)?.attempt).toBe(2);

    const predictions = await readLines(manifest.outputs.parts);
    const rejected = await readLines(manifest.outputs.rejected);
    const seen = [
      ...predictions.map((p) => p['row'] as number),
      ...rejected.map((r) => r['row'] as number),
    ].sort((a, b) => a - b);
    expect(seen).toEqual(Array.from({ length: rows }, (_, i) => i + 1));
    for (const r of rejected) {
      expectWithMessage(r['reason'], `row ${String(r['row'])}`).toMatch(bad.get(r['row'] as number)!);
      expect(r['record']).toBeDefined();
    }
    expect(rejected.find((r) => r['row'] === 260)?.['line']).toBe(261);
    expect((rejected.find((r) => r['row'] === 261) ?? {})['line']).toBeUndefined();

    // Batch predictions equal the real-time lane's for the same rows (model path, cache bypassed).
    const sample = predictions.slice(0, 200);
    const instances = sample.map((p) => {
      const fields = demoRows[(p['row'] as number) - 1]!;
      const features = Object.fromEntries(
        header.slice(1).map((name, i) => {
          const value = fields[i + 1]!;
          return [
            name,
            value === 'true'
              ? true
              : value === 'false'
                ? false
                : Number.isNaN(Number(value))
                  ? value
                  : Number(value),
          ];
        }),
      );
      return { features };
    });
    const response = await fetch(`${stack.apiUrl}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instances, bypassCache: true }),
    });
    const realtime = (await response.json()) as { predictions: { prediction: unknown }[] };
    expect(realtime.predictions.map((p) => p.prediction)).toEqual(sample.map((p) => p['prediction']));

    // Table items: the pinned version, TTL from the manifest; of two rows with one id, the later row wins.
    const item = await stack.dynamo.send(
      new GetItemCommand({ TableName: LOCAL_TABLE, Key: { pk: { S: `${DEMO_MODEL}#1.0.0#${duplicate}` } } }),
    );
    expect(item.Item?.['modelVersion']).toEqual({ S: '1.0.0' });
    expect(item.Item?.['sourceRow']).toEqual({ N: '290' });
    expect(item.Item?.['source']).toEqual({ S: 'batch' });
    const computedAt = Number(item.Item?.['computedAt']?.N);
    expect(Number(item.Item?.['expiresAt']?.N)).toBe(Math.floor(computedAt / 1000) + 604_800);
    expect(manifest.counts.writtenToTable + manifest.counts.tableSkipped).toBe(rows - bad.size);

    // The precomputed lane now serves the batch's answer.
    const cached = await fetch(`${stack.apiUrl}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: demoRows[0]![0] }),
    });
    const body = (await cached.json()) as { source: string; prediction: unknown };
    expect(body.source).toBe('cache');
    expect(body.prediction).toEqual(predictions.find((p) => p['row'] === 1)?.['prediction']);

    expect(stack.events.at(-1)).toMatchObject({
      runId: manifest.runId,
      status: 'SUCCEEDED',
      counts: manifest.counts,
    });
  });

  it('re-running a chunk rewrites the same part and the same items', async () => {
    const file = path.join(dir, 'rerun.csv');
    await writeFile(file, [csvLine(header), ...demoRows.slice(0, 40).map(csvLine)].join('\n') + '\n');
    const result = await stack.runDataset(file, DEMO_MODEL);
    const manifest = await manifestOf(result);
    const before = await stack.objects.readBytes(LOCAL_BUCKET, manifest.outputs.parts[0]!);
    const scorer = new ChunkScorer({
      objects: stack.objects,
      models: new S3ModelSource(stack.s3, LOCAL_BUCKET, 'models/'),
      predictions: new DynamoDbPredictionStore(stack.dynamo, LOCAL_TABLE),
    });
    const report = await scorer.score({
      runId: manifest.runId,
      bucket: LOCAL_BUCKET,
      planKey: `runs/${manifest.runId}/plan.json`,
      index: 0,
    });
    await scorer.close();
    expect(report).toMatchObject({ read: 40, scored: 40, tableWritten: 40, tableSkipped: 0 });
    expect(await stack.objects.readBytes(LOCAL_BUCKET, manifest.outputs.parts[0]!)).toEqual(before);
  });

  it('reads JSON Lines, gzipped CSV and JSON Lines, and Parquet, with the same predictions', async () => {
    const slice = demoRows.slice(0, 60);
    const types = new Map<string, string>([['transaction_id', 'string']]);
    const manifestJson = JSON.parse(
      await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, '1.0.0', 'manifest.json'), 'utf8'),
    ) as {
      features: { name: string; type: string }[];
    };
    for (const f of manifestJson.features) types.set(f.name, f.type);
    const typed = (fields: string[]) =>
      Object.fromEntries(
        header.map((name, i) => {
          const type = types.get(name);
          const text = fields[i]!;
          return [
            name,
            type === 'boolean'
              ? text === 'true'
              : type === 'number' || type === 'integer'
                ? Number(text)
                : text,
          ];
        }),
      );
    const csv = [csvLine(header), ...slice.map(csvLine)].join('\n') + '\n';
    const jsonl = slice.map((f) => JSON.stringify(typed(f))).join('\n') + '\n';
    const parquet = parquetWriteBuffer({
      columnData: header.map((name, i) => {
        const type = types.get(name);
        const data = slice.map((f) => typed(f)[name]);
        return {
          name,
          data: type === 'integer' ? slice.map((f) => Number(f[i])) : data,
          type:
            type === 'boolean'
              ? 'BOOLEAN'
              : type === 'number'
                ? 'DOUBLE'
                : type === 'integer'
                  ? 'INT32'
                  : 'STRING',
        };
      }),
      rowGroupSize: 25,
    } as never);
    const files: [string, Uint8Array | string][] = [
      ['formats.csv', csv],
      ['formats.csv.gz', gzipSync(csv)],
      ['formats.jsonl', jsonl],
      ['formats.jsonl.gz', gzipSync(jsonl)],
      ['formats.parquet', new Uint8Array(parquet)],
    ];
    let reference: unknown[] | undefined;
    for (const [name, content] of files) {
      const file = path.join(dir, name);
      await writeFile(file, content);
      const result = await stack.runDataset(file, DEMO_MODEL, undefined, { chunkBytes: 2048 });
      expectWithMessage(result.status, `${name}: ${result.message}`).toBe('SUCCEEDED');
      const manifest = await manifestOf(result);
      expectWithMessage(manifest.counts, name).toMatchObject({ read: 60, scored: 60, rejected: 0 });
      if (name === 'formats.parquet') expectWithMessage(manifest.chunks.planned, name).toBe(3);
      else expectWithMessage(manifest.chunks.planned, name).toBeGreaterThan(1);
      const predictions = (await readLines(manifest.outputs.parts)).sort(
        (a, b) => (a['row'] as number) - (b['row'] as number),
      );
      const values = predictions.map((p) => [p['id'], p['prediction']]);
      reference ??= values;
      expectWithMessage(values, name).toEqual(reference);
    }
  });

  it('fails runs that cannot be scored, with the reason in the manifest and the event', async () => {
    const gzipped = gzipSync([csvLine(header), ...demoRows.map(csvLine)].join('\n'));
    const cases: [string, string | Uint8Array, string][] = [
      ['truncated.csv.gz', gzipped.subarray(0, Math.floor(gzipped.length / 2)), 'CORRUPT_GZIP'],
      ['empty.csv', '', 'EMPTY_FILE'],
      ['columns.csv', 'transaction_id,amount\nt1,5\n', 'MISSING_COLUMNS'],
      ['corrupt.parquet', 'PAR1 this is not parquet PAR1', 'CORRUPT_PARQUET'],
    ];
    for (const [name, content, code] of cases) {
      const file = path.join(dir, name);
      await writeFile(file, content);
      const result = await stack.runDataset(file, DEMO_MODEL);
      expect([name, result.status]).toEqual([name, 'FAILED']);
      const manifest = await manifestOf(result);
      expectWithMessage(manifest.error?.code, `${name}: ${manifest.error?.message}`).toBe(code);
      expect(stack.events.at(-1)).toMatchObject({ status: 'FAILED', error: { code } });
    }
    const notADataset = path.join(dir, 'data.xlsx');
    await writeFile(notADataset, 'not a dataset');
    await expect(stack.runDataset(notADataset, DEMO_MODEL)).rejects.toMatchObject({
      name: 'UploadIgnoredError',
      reason: { code: 'UNSUPPORTED_FORMAT' },
    });
    const unknownModel = path.join(dir, 'unknown-model.csv');
    await writeFile(unknownModel, 'a\n1\n');
    const result = await stack.runDataset(unknownModel, 'no-such-model');
    const manifest = await manifestOf(result);
    expect(manifest.error?.code).toBe('MODEL_NOT_FOUND');
    expect(result.manifestKey).toMatch(/^results\/no-such-model\/unknown-model\//);
  });

  it('a header-only file completes with zero rows', async () => {
    const file = path.join(dir, 'header-only.csv');
    await writeFile(file, `${csvLine(header)}\n`);
    const result = await stack.runDataset(file, DEMO_MODEL);
    expect(result.status).toBe('SUCCEEDED');
    expect(result.counts).toMatchObject({ read: 0, scored: 0, rejected: 0 });
  });

  it('an upload to incoming/ starts one run; a duplicate notification starts none', async () => {
    const before = stack.events.length;
    await stack.s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `incoming/${DEMO_MODEL}/uploaded.csv`,
        Body: [csvLine(header), ...demoRows.slice(100, 110).map(csvLine)].join('\n'),
      }),
    );
    const deadline = Date.now() + 20_000;
    while (stack.events.length === before && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const event = stack.events.at(-1)!;
    expect(event).toMatchObject({
      status: 'SUCCEEDED',
      dataset: 'uploaded',
      counts: { read: 10, scored: 10 },
    });
    expect(await stack.batch.start(event.runId, {})).toBe('duplicate');
  });
});
