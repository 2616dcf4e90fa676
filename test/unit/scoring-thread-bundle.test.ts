/**
 * The scoring thread starts from its function's source text (scoring-thread-main.ts): this proves it still
 * runs when the chunk scorer is bundled the way the score function is (esbuild, ESM, minified, keepNames,
 * onnxruntime-node external; lib/tandem-function.ts), where a function that reached outside itself, or a
 * name helper the bundle adds, would break the thread. The bundle scores the demo dataset on a scoring
 * thread and inline, in a fresh Node process, and both part files must be the same.
 */
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ESM_REQUIRE_BANNER } from '../../lib/tandem-function.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

const ENTRY = `
import { readFile } from 'node:fs/promises';
import { FsModelSource } from '${REPO}/lambdas/adapters/fs-model-source.ts';
import { ChunkScorer } from '${REPO}/lambdas/core/batch/chunk-scorer.ts';
import { planRun } from '${REPO}/lambdas/core/batch/planner.ts';
import { FsObjectStore } from '${REPO}/local/fs-object-store.ts';

const objects = new FsObjectStore(process.argv[2]);
const models = new FsModelSource('${REPO}/models');
const csv = await readFile('${REPO}/models/fraud-detector/demo-transactions.csv');
const parts = [];
for (const threads of [1, 0]) {
  const runId = 'bundle-' + threads;
  const key = 'incoming/fraud-detector/' + runId + '.csv';
  await objects.writeBytes('data', key, csv);
  const plan = await planRun(
    { runId, bucket: 'data', key, model: 'fraud-detector', options: { tableWrites: 'none', microBatchRows: 16 } },
    { objects, models },
  );
  const scorer = new ChunkScorer({ objects, models, scoringThreads: threads });
  const report = await scorer.score({ runId, bucket: 'data', planKey: plan.planKey, index: 0 });
  await scorer.close();
  parts.push({ threads, scored: report.scored, part: Buffer.from(await objects.readBytes('data', report.partKey)).toString() });
}
console.log(JSON.stringify(parts));
`;

describe('the scoring thread in a bundle built like the score function', () => {
  let dir: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-thread-bundle-'));
    // Externals resolve from the repository's node_modules, as the bundle's own folder provides them.
    fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  }, 60_000);

  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('scores on a scoring thread exactly as inline', async () => {
    const outfile = path.join(dir, 'index.mjs');
    await build({
      stdin: { contents: ENTRY, resolveDir: REPO, sourcefile: 'entry.ts', loader: 'ts' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      minify: true,
      keepNames: true,
      external: ['onnxruntime-node', 'hyparquet', 'hyparquet-compressors', '@aws-sdk/*'],
      banner: { js: ESM_REQUIRE_BANNER },
      outfile,
      logLevel: 'silent',
    });
    const result = spawnSync(process.execPath, [outfile, path.join(dir, 'store')], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const [threaded, inline] = JSON.parse(result.stdout) as {
      threads: number;
      scored: number;
      part: string;
    }[];
    expect(threaded!.scored).toBe(2000);
    expect(threaded!.part.split('\n').filter(Boolean)).toHaveLength(2000);
    expect(threaded!.part).toBe(inline!.part);
  }, 120_000);
});
