/**
 * One batch worker scoring a whole CSV as one chunk: the chunk scorer the Step Functions map runs, over
 * a local folder instead of S3 (so the figure is the pipeline's, not an emulator's HTTP), table writes
 * off, predictions written to a part file. argv: <file.csv> <timed passes>. A warm-up pass on the first
 * rows loads the model first. Prints one JSON line: {rows, seconds: [...], report}.
 */
import { mkdtemp, rm, symlink, mkdir, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FsModelSource } from '../lambdas/adapters/fs-model-source.ts';
import { ChunkScorer } from '../lambdas/core/batch/chunk-scorer.ts';
import { planRun } from '../lambdas/core/batch/planner.ts';
import { FsObjectStore } from '../local/fs-object-store.ts';

const [file, passesText = '1'] = process.argv.slice(2);
if (!file) throw new Error('usage: batch-worker-child.ts <file.csv> [passes]');
const root = await mkdtemp(path.join(tmpdir(), 'tandem-bench-worker-'));
try {
  const incoming = path.join(root, 'data', 'incoming', 'fraud-detector');
  await mkdir(incoming, { recursive: true });
  await symlink(path.resolve(file), path.join(incoming, 'bench.csv'));
  const head = (await readFile(file, 'utf8')).split('\n', 201).join('\n') + '\n';
  await writeFile(path.join(incoming, 'warmup.csv'), head);
  const objects = new FsObjectStore(root);
  const models = new FsModelSource(path.resolve(import.meta.dirname, '..', 'models'));
  const scorer = new ChunkScorer({ objects, models });
  const options = { tableWrites: 'none' as const, chunkBytes: 2 ** 40 };
  const score = async (name: string, runId: string) => {
    const plan = await planRun(
      { runId, bucket: 'data', key: `incoming/fraud-detector/${name}`, model: 'fraud-detector', options },
      { objects, models },
    );
    return scorer.score({ runId, bucket: 'data', planKey: plan.planKey, index: 0 });
  };
  await score('warmup.csv', 'warmup');
  const seconds: number[] = [];
  let report;
  for (let i = 0; i < Number(passesText); i++) {
    const started = process.hrtime.bigint();
    report = await score('bench.csv', `pass-${i}`);
    seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
  }
  await scorer.close();
  process.stdout.write(`${JSON.stringify({ rows: report?.read ?? 0, seconds, report })}\n`);
} finally {
  await rm(root, { recursive: true, force: true });
}
