/**
 * Drift in batch manifests: a run's chunks count their rows against the scoring version's baseline (the
 * CSV fast path and the general path alike) and the finalizer sums them; no baseline, a malformed one or
 * too few rows are said, not reported as drift.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { ChunkScorer } from '../../lambdas/core/batch/chunk-scorer.ts';
import type { ChunkItem, RunInput, RunManifest } from '../../lambdas/core/batch/contracts.ts';
import { finalizeRun } from '../../lambdas/core/batch/finalizer.ts';
import { planRun } from '../../lambdas/core/batch/planner.ts';
import type { ModelSource } from '../../lambdas/core/ports.ts';
import { MemoryObjectStore } from '../support/memory-object-store.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');
const BUCKET = 'data';
const models = new FsModelSource(path.join(REPO_ROOT, 'models'));
const scorers: ChunkScorer[] = [];
const folders: string[] = [];

afterAll(async () => {
  for (const scorer of scorers) await scorer.close();
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

/** The demo transactions (600 rows) as CSV, `amount` multiplied by `factor`. */
async function demoCsv(factor: number, rows = 600): Promise<string> {
  const lines = (await readFile(path.join(REPO_ROOT, 'models/fraud-detector/demo-transactions.csv'), 'utf8'))
    .trim()
    .split('\n');
  const header = lines[0]!.split(',');
  const amount = header.indexOf('amount');
  const body = lines.slice(1, rows + 1).map((line) => {
    const fields = line.split(',');
    fields[amount] = String(Math.min(100_000, Number(fields[amount]) * factor));
    return fields.join(',');
  });
  return `${[lines[0], ...body].join('\n')}\n`;
}

/** The same rows as JSON Lines (typed values): the general path. */
function asJsonl(csv: string): string {
  const [head, ...lines] = csv.trim().split('\n');
  const header = head!.split(',');
  return lines
    .map((line) => {
      const fields = line.split(',');
      const record: Record<string, unknown> = {};
      header.forEach((name, i) => {
        const v = fields[i]!;
        record[name] =
          name === 'transaction_id' || name === 'merchant_category' || name === 'channel'
            ? v
            : v === 'true' || v === 'false'
              ? v === 'true'
              : Number(v);
      });
      return JSON.stringify(record);
    })
    .join('\n');
}

async function run(file: string, body: string, source: ModelSource = models, chunkBytes = 16_384) {
  const store = new MemoryObjectStore();
  const key = `incoming/fraud-detector/${file}`;
  store.put(BUCKET, key, body);
  const input: RunInput = {
    runId: `run-${file.replace(/\W/g, '-')}`,
    bucket: BUCKET,
    key,
    model: 'fraud-detector',
    options: { chunkBytes, tableWrites: 'none' },
  };
  const planned = await planRun(input, { objects: store, models: source });
  const scorer = new ChunkScorer({ objects: store, models: source, scoringThreads: 0 });
  scorers.push(scorer);
  for (let index = 0; index < planned.chunks; index++) {
    const item: ChunkItem = { runId: input.runId, bucket: BUCKET, planKey: planned.planKey, index };
    await scorer.score(item);
  }
  const result = await finalizeRun({ ...input, planned }, { objects: store });
  return {
    chunks: planned.chunks,
    manifest: JSON.parse(store.text(BUCKET, result.manifestKey)!) as RunManifest,
  };
}

describe('drift in a batch run manifest', () => {
  it('flags amount x 20 against the baseline, not the unshifted features, summed over chunks', async () => {
    const { chunks, manifest } = await run('shifted.csv', await demoCsv(20));
    expect(chunks).toBeGreaterThan(1);
    const drift = manifest.drift!;
    expect(drift.status).toBe('drift');
    if (drift.status !== 'drift') return;
    expect(drift.records).toBe(600);
    expect(drift.drifted).toEqual(['amount']);
    expect(drift.features[0]!.name).toBe('amount');
    expect(drift.features[0]!.psi).toBeGreaterThan(1);
    expect(drift.features.slice(1).every((f) => (f.psi ?? 0) < 0.2)).toBe(true);
    expect(drift.prediction.n).toBe(600);
    // Per-chunk counts stay in the chunk reports, not in the manifest's chunk stats.
    expect(manifest.chunkStats.some((c) => 'drift' in c)).toBe(false);
  });

  it('gives the same figures from the CSV fast path and from JSON Lines (the general path)', async () => {
    const csv = await demoCsv(1);
    const fromCsv = (await run('plain.csv', csv)).manifest.drift!;
    const fromJsonl = (await run('plain.jsonl', asJsonl(csv))).manifest.drift!;
    expect(fromCsv.status).toBe('ok');
    expect(fromJsonl).toEqual(fromCsv);
  });

  it('says too few rows, not drift, under the minimum', async () => {
    const { manifest } = await run('few.csv', await demoCsv(20, 40));
    expect(manifest.drift).toEqual({
      status: 'too-few-records',
      message: 'too few records: 40 scored, the minimum for drift figures is 100 (not drift)',
      records: 40,
    });
    expect(manifest.status).toBe('SUCCEEDED');
  });

  it('says when the version has no baseline or a malformed one, and the run succeeds', async () => {
    const folder = await mkdtemp(path.join(tmpdir(), 'tandem-drift-'));
    folders.push(folder);
    await cp(path.join(REPO_ROOT, 'models/fraud-detector'), path.join(folder, 'fraud-detector'), {
      recursive: true,
    });
    const baselinePath = path.join(folder, 'fraud-detector/1.0.0/baseline.json');
    await rm(baselinePath);
    const missing = (await run('a.csv', await demoCsv(1), new FsModelSource(folder))).manifest;
    expect(missing.status).toBe('SUCCEEDED');
    expect(missing.drift).toEqual({
      status: 'no-baseline',
      message: 'fraud-detector@1.0.0 has no baseline.json: no drift figures',
    });
    await writeFile(baselinePath, '{"schemaVersion": 1, "model": "fraud-detector"}');
    const malformed = (await run('b.csv', await demoCsv(1), new FsModelSource(folder))).manifest;
    expect(malformed.status).toBe('SUCCEEDED');
    expect(malformed.drift?.message).toMatch(
      /^fraud-detector\/1\.0\.0\/baseline\.json is not a baseline \(schemaVersion 1\): version: .*no drift figures$/,
    );
  });
});
