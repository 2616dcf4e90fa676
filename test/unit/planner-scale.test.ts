/**
 * A plan of close to 10,000 chunks, the most a run takes (a 10 GB upload in 1 MiB chunks): the planner
 * writes it to the object store, the Map's items list one entry per chunk, the chunks tile the data
 * exactly, and what goes back into the state machine's payload stays small whatever the chunk count.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { MAX_CHUNKS, type BatchPlan, type ChunkItem } from '../../lambdas/core/batch/contracts.ts';
import { planRun } from '../../lambdas/core/batch/planner.ts';
import { FsObjectStore } from '../../local/fs-object-store.ts';
import { DEMO_MODEL, REPO_ROOT } from '../../local/stack.ts';

const MIN_CHUNK_BYTES = 1024;
let root: string;
let rows: number;
let dataStart: number;
let fileBytes: number;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tandem-plan-scale-'));
  const demo = (await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, 'demo-transactions.csv'), 'utf8'))
    .trimEnd()
    .split('\n');
  const [header, ...body] = demo;
  const lines = [header!];
  // ~9.5 MB: at the smallest chunk size that is close to (and within) the 10,000-chunk limit.
  for (let i = 0; lines.length <= 108_000; i++) {
    const fields = body[i % body.length]!.split(',');
    fields[0] = `scale-${i}`;
    lines.push(fields.join(','));
  }
  rows = lines.length - 1;
  const text = `${lines.join('\n')}\n`;
  dataStart = Buffer.byteLength(`${header}\n`);
  fileBytes = Buffer.byteLength(text);
  await mkdir(path.join(root, 'data', 'incoming', DEMO_MODEL), { recursive: true });
  await writeFile(path.join(root, 'data', 'incoming', DEMO_MODEL, 'big.csv'), text);
}, 60_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
}, 60_000);

describe('planning a large upload', () => {
  it('plans close to 10,000 chunks into the store, with a small state payload', async () => {
    const objects = new FsObjectStore(root);
    const result = await planRun(
      {
        runId: 'scale-run',
        bucket: 'data',
        key: `incoming/${DEMO_MODEL}/big.csv`,
        model: DEMO_MODEL,
        options: { chunkBytes: MIN_CHUNK_BYTES, tableWrites: 'none' },
      },
      { objects, models: new FsModelSource(path.join(REPO_ROOT, 'models')) },
    );
    expect(result.chunks).toBeGreaterThan(9_000);
    expect(result.chunks).toBeLessThanOrEqual(MAX_CHUNKS);
    expect(result.totalRows).toBe(rows);
    // The payload handed to the next state does not grow with the plan (the 256 KB state limit).
    expect(JSON.stringify(result).length).toBeLessThan(1024);

    const plan = JSON.parse(await readFile(path.join(root, 'data', result.planKey), 'utf8')) as BatchPlan;
    const items = JSON.parse(await readFile(path.join(root, 'data', result.itemsKey), 'utf8')) as ChunkItem[];
    expect(plan.chunks).toHaveLength(result.chunks);
    expect(items.map((i) => i.index)).toEqual(plan.chunks.map((_, i) => i));
    expect(new Set(items.map((i) => i.planKey))).toEqual(new Set([result.planKey]));

    // The byte ranges tile the data after the header, and the row numbers follow on.
    let offset = dataStart;
    let nextRow = 1;
    let counted = 0;
    for (const chunk of plan.chunks) {
      if (chunk.kind !== 'bytes') throw new Error(`a CSV chunk of kind ${chunk.kind}`);
      expect([chunk.start, chunk.firstRow]).toEqual([offset, nextRow]);
      expect(chunk.end).toBeGreaterThan(chunk.start);
      offset = chunk.end;
      nextRow += chunk.rows;
      counted += chunk.rows;
    }
    expect(offset).toBe(fileBytes);
    expect(counted).toBe(rows);
  }, 60_000);
});
