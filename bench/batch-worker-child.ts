/**
 * One batch worker scoring a whole CSV as one chunk: the chunk scorer one Step Functions Map child runs,
 * over a local folder instead of S3 (so the figure is the pipeline's, not an emulator's HTTP), table writes
 * off, predictions written to a part file. argv: <file.csv> <timed passes> [scoring threads: auto | 0
 * (inline) | n]. A warm-up pass on the first rows loads the model first. Each pass plans the file (the Plan
 * state's work, timed apart: planSeconds) and then scores its one chunk (timed: seconds). Prints one JSON
 * line: {rows, seconds: [...], planSeconds: [...], cpuSeconds: [...] (all threads), scoringThreads, report}.
 */
import { mkdtemp, mkdir, open, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FsModelSource } from '../lambdas/adapters/fs-model-source.ts';
import { ChunkScorer } from '../lambdas/core/batch/chunk-scorer.ts';
import { planRun } from '../lambdas/core/batch/planner.ts';
import { resolveScoringThreads } from '../lambdas/core/batch/scoring-thread.ts';
import { FsObjectStore } from '../local/fs-object-store.ts';

const WARMUP_LINES = 201;

/** The first `lines` lines of a file, read from its first 256 KiB (not the whole file). */
async function headOf(file: string, lines: number): Promise<string> {
  const handle = await open(file);
  try {
    const buffer = Buffer.alloc(256 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return `${buffer.toString('utf8', 0, bytesRead).split('\n', lines).join('\n')}\n`;
  } finally {
    await handle.close();
  }
}

const [file, passesText = '1', threadText = 'auto'] = process.argv.slice(2);
if (!file)
  throw new Error('usage: batch-worker-child.ts <file.csv> [passes] [scoring threads: auto | 0 | n]');
const scoringThreads = threadText === 'auto' ? 'auto' : Number(threadText);
const root = await mkdtemp(path.join(tmpdir(), 'tandem-bench-worker-'));
try {
  const incoming = path.join(root, 'data', 'incoming', 'fraud-detector');
  await mkdir(incoming, { recursive: true });
  await symlink(path.resolve(file), path.join(incoming, 'bench.csv'));
  await writeFile(path.join(incoming, 'warmup.csv'), await headOf(file, WARMUP_LINES));
  const objects = new FsObjectStore(root);
  const models = new FsModelSource(path.resolve(import.meta.dirname, '..', 'models'));
  const scorer = new ChunkScorer({ objects, models, scoringThreads });
  const options = { tableWrites: 'none' as const, chunkBytes: 2 ** 40 };
  const plan = (name: string, runId: string) =>
    planRun(
      { runId, bucket: 'data', key: `incoming/fraud-detector/${name}`, model: 'fraud-detector', options },
      { objects, models },
    );
  const warmup = await plan('warmup.csv', 'warmup');
  await scorer.score({ runId: 'warmup', bucket: 'data', planKey: warmup.planKey, index: 0 });
  const seconds: number[] = [];
  const planSeconds: number[] = [];
  const cpuSeconds: number[] = [];
  let report;
  for (let i = 0; i < Number(passesText); i++) {
    const runId = `pass-${i}`;
    const planned = process.hrtime.bigint();
    const { planKey } = await plan('bench.csv', runId);
    const started = process.hrtime.bigint();
    planSeconds.push(Number(started - planned) / 1e9);
    const cpu = process.cpuUsage();
    report = await scorer.score({ runId, bucket: 'data', planKey, index: 0 });
    seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
    const used = process.cpuUsage(cpu);
    cpuSeconds.push((used.user + used.system) / 1e6);
    // Each pass writes its own part file; only the last one is kept until the end.
    if (i > 0)
      await rm(path.join(root, 'data', 'results', 'fraud-detector', 'bench', `pass-${i - 1}`), {
        recursive: true,
      });
  }
  await scorer.close();
  process.stdout.write(
    `${JSON.stringify({
      rows: report?.read ?? 0,
      seconds,
      planSeconds,
      cpuSeconds,
      scoringThreads: resolveScoringThreads(scoringThreads),
      report,
    })}\n`,
  );
} finally {
  await rm(root, { recursive: true, force: true });
}
