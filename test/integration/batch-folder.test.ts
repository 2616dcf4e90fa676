/**
 * Folder runs on the local state machine: every part file under a prefix (as Spark, Athena or Glue
 * write them) scored as one run with one manifest, and the folder catalogue: an empty prefix, mixed
 * formats, a file that breaks mid-way.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RunManifest } from '../../lambdas/core/batch/contracts.ts';
import type { FinalizeResult } from '../../lambdas/core/batch/finalizer.ts';
import { parseCsv } from '../../lambdas/core/codecs/csv.ts';
import { runCli } from '../../local/cli/tandem-cli.ts';
import { writeEndpointsFile } from '../../local/endpoints-file.ts';
import {
  DEMO_MODEL,
  LOCAL_BUCKET,
  LOCAL_TABLE,
  REPO_ROOT,
  startLocalStack,
  type LocalStack,
} from '../../local/stack.ts';

let stack: LocalStack;
let dataDir: string;
let header: string[];
let demoRows: string[][];
const failOnce = new Set<number>();

beforeAll(async () => {
  const [head, ...rows] = parseCsv(
    await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, 'demo-transactions.csv'), 'utf8'),
  );
  header = head!.fields;
  demoRows = rows.map((r) => r.fields);
  dataDir = await mkdtemp(path.join(tmpdir(), 'tandem-folder-'));
  stack = await startLocalStack({
    apiPort: 0,
    seed: false,
    batch: {
      maxConcurrency: 3,
      retryIntervalMs: 10,
      beforeChunk: (item, attempt) => {
        if (failOnce.has(item.index) && attempt === 1) throw new Error('injected: S3 read cut mid-stream');
      },
    },
  });
  await writeEndpointsFile(dataDir, {
    apiUrl: stack.apiUrl,
    s3Endpoint: stack.aws.s3Endpoint,
    dynamoEndpoint: stack.aws.dynamoEndpoint,
    region: stack.aws.region,
    credentials: stack.aws.credentials,
    bucket: LOCAL_BUCKET,
    table: LOCAL_TABLE,
    modelsPrefix: 'models/',
    pid: process.pid,
  });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  await rm(dataDir, { recursive: true, force: true });
}, 60_000);

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli([...argv, '--data-dir', dataDir], {
    out: (t) => void (out += `${t}\n`),
    err: (t) => void (err += `${t}\n`),
    cwd: process.cwd(),
  });
  return { code, out, err };
}

const csvText = (rows: readonly string[][]) => [header, ...rows].map((r) => r.join(',')).join('\n') + '\n';

async function put(key: string, body: string | Uint8Array): Promise<void> {
  await stack.objects.writeBytes(LOCAL_BUCKET, key, body, 'application/octet-stream');
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

describe('folder runs', () => {
  it('scores the part files under a prefix as one run, each row once, rejected rows naming their file', async () => {
    const prefix = 'exports/daily/';
    const first = demoRows.slice(0, 120).map((r) => [...r]);
    first[9]![header.indexOf('amount')] = '-5';
    const second = demoRows.slice(120, 250);
    await put(`${prefix}part-00000.csv`, csvText(first));
    await put(`${prefix}part-00001.csv.gz`, gzipSync(csvText(second)));
    await put(`${prefix}part-00002.csv`, ''); // an empty partition
    await put(`${prefix}_SUCCESS`, '');
    await put(`${prefix}.part-00000.csv.crc`, 'crc');
    failOnce.add(1);
    const result = await stack.runFolder(prefix, DEMO_MODEL, { chunkBytes: 4 * 1024 });
    failOnce.clear();
    expect(result.status).toBe('SUCCEEDED');
    const manifest = await manifestOf(result);
    expect(manifest.dataset).toBe('daily');
    expect(manifest.input).toMatchObject({ key: prefix, folder: true });
    expect(manifest.files).toEqual([
      expect.objectContaining({ key: `${prefix}part-00000.csv`, rows: 120 }),
      expect.objectContaining({ key: `${prefix}part-00001.csv.gz`, rows: 130 }),
      { key: `${prefix}part-00002.csv`, size: 0, rows: 0 },
    ]);
    expect(manifest.counts).toMatchObject({ planned: 250, read: 250, scored: 249, rejected: 1 });
    expect(manifest.chunks).toMatchObject({ completed: manifest.chunks.planned, failed: 0 });
    // Several chunks per file, none spanning two; the one that failed once was retried, not duplicated.
    const files = new Set(manifest.chunkStats.map((c) => c.file));
    expect(files).toEqual(new Set([`${prefix}part-00000.csv`, `${prefix}part-00001.csv.gz`]));
    expect(manifest.chunks.planned).toBeGreaterThan(2);
    expect(manifest.chunkStats.find((c) => c.index === 1)?.attempt).toBe(2);

    const predictions = await readLines(manifest.outputs.parts);
    const ids = predictions.map((p) => p['id']).sort();
    const expected = [...first.filter((_, i) => i !== 9), ...second].map((r) => r[0]).sort();
    expect(ids).toEqual(expected);
    const rejected = await readLines(manifest.outputs.rejected);
    expect(rejected).toEqual([
      expect.objectContaining({
        file: `${prefix}part-00000.csv`,
        row: 10,
        reason: expect.stringMatching(/amount/),
      }),
    ]);
  }, 120_000);

  it('reads JSON Lines part files (.json, gzipped or not) as Spark writes them', async () => {
    const prefix = 'exports/json/';
    const object = (r: string[]) =>
      JSON.stringify(
        Object.fromEntries(
          header.map((name, i) => {
            const text = r[i]!;
            const n = Number(text);
            return [
              name,
              text === 'true' ? true : text === 'false' ? false : i > 0 && !Number.isNaN(n) ? n : text,
            ];
          }),
        ),
      );
    await put(`${prefix}part-00000.json`, demoRows.slice(0, 30).map(object).join('\n') + '\n');
    await put(`${prefix}part-00001.json.gz`, gzipSync(demoRows.slice(30, 70).map(object).join('\n') + '\n'));
    const manifest = await manifestOf(await stack.runFolder(prefix, DEMO_MODEL));
    expect(manifest).toMatchObject({ status: 'SUCCEEDED', format: 'jsonl' });
    expect(manifest.counts).toMatchObject({ read: 70, scored: 70, rejected: 0 });
  }, 120_000);

  it('an empty prefix makes a run that says so, not a failure', async () => {
    const result = await stack.runFolder('exports/nothing-here/', DEMO_MODEL);
    expect(result.status).toBe('SUCCEEDED');
    expect(result.message).toMatch(/NO_FILES/);
    const manifest = await manifestOf(result);
    expect(manifest.notice).toEqual({ code: 'NO_FILES', message: expect.stringMatching(/no data files/) });
    expect(manifest.counts).toMatchObject({ planned: 0, read: 0, scored: 0 });
    expect(stack.events.at(-1)).toMatchObject({ runId: manifest.runId, status: 'SUCCEEDED' });
  }, 60_000);

  it('refuses a folder that mixes formats, naming them', async () => {
    const prefix = 'exports/mixed/';
    await put(`${prefix}part-00000.csv`, csvText(demoRows.slice(0, 5)));
    await put(`${prefix}part-00001.jsonl`, '{}\n');
    const result = await stack.runFolder(prefix, DEMO_MODEL);
    expect(result.status).toBe('FAILED');
    const manifest = await manifestOf(result);
    expect(manifest.error?.code).toBe('MIXED_FORMATS');
    expect(manifest.error?.message).toMatch(
      /csv: exports\/mixed\/part-00000\.csv; jsonl: exports\/mixed\/part-00001\.jsonl/,
    );
  }, 60_000);

  it('refuses files whose format cannot be told from their name', async () => {
    const prefix = 'exports/athena/';
    await put(`${prefix}20261206_0001_00000_abc`, csvText(demoRows.slice(0, 5)));
    const manifest = await manifestOf(await stack.runFolder(prefix, DEMO_MODEL));
    expect(manifest.error).toMatchObject({
      code: 'UNSUPPORTED_FORMAT',
      message: expect.stringMatching(/20261206_0001_00000_abc/),
    });
  }, 60_000);

  it('fails the run naming the file when one breaks mid-way', async () => {
    const prefix = 'exports/broken/';
    const gz = gzipSync(csvText(demoRows.slice(0, 200)));
    await put(`${prefix}part-00000.csv`, csvText(demoRows.slice(200, 210)));
    await put(`${prefix}part-00001.csv.gz`, gz.subarray(0, Math.floor(gz.length / 2)));
    const result = await stack.runFolder(prefix, DEMO_MODEL);
    expect(result.status).toBe('FAILED');
    const manifest = await manifestOf(result);
    expect(manifest.error).toMatchObject({
      code: 'CORRUPT_GZIP',
      message: expect.stringMatching(/^part-00001\.csv\.gz: /),
    });
  }, 60_000);

  it('refuses a prefix that is not a folder', async () => {
    const manifest = await manifestOf(await stack.runFolder('/etc/../', DEMO_MODEL));
    expect(manifest.error?.code).toBe('INVALID_PREFIX');
  }, 60_000);

  it('`runs start --prefix` runs a folder on the local stack; `runs list` and `runs show` print it', async () => {
    const prefix = 'exports/cli/';
    await put(`${prefix}part-00000.csv`, csvText(demoRows.slice(0, 40)));
    await put(`${prefix}part-00001.csv`, csvText(demoRows.slice(40, 55)));
    const started = await cli(
      'runs',
      'start',
      DEMO_MODEL,
      '--prefix',
      'exports/cli',
      '--option',
      'tableWrites=none',
      '--json',
    );
    expect(started.err).toBe('');
    expect(started.code).toBe(0);
    const run = JSON.parse(started.out) as { runId: string; result: { status: string; scored: number } };
    expect(run.result).toMatchObject({ status: 'SUCCEEDED', scored: 55 });

    const listed = await cli('runs', 'list', '--model', DEMO_MODEL);
    expect(listed.code).toBe(0);
    expect(listed.out).toMatch(
      new RegExp(`${run.runId}\\s+SUCCEEDED\\s+${DEMO_MODEL}\\s+55\\s+0\\s+exports/cli/`),
    );
    const shown = await cli('runs', 'show', run.runId, '--json');
    const manifest = (JSON.parse(shown.out) as { manifest: RunManifest }).manifest;
    expect(manifest.files?.map((f) => f.rows)).toEqual([40, 15]);
    expect((await cli('runs', 'show', 'no-such-run')).code).toBe(1);
    const bad = await cli(
      'runs',
      'start',
      DEMO_MODEL,
      '--prefix',
      'exports/cli/',
      '--option',
      'chunkBytes=-1',
    );
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/FAILED.*INVALID_OPTIONS/);
    expect((await cli('runs', 'start', DEMO_MODEL)).err).toMatch(/missing --prefix/);
  }, 120_000);
});
