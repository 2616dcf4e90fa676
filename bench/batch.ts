/**
 * Batch section: a seeded CSV of the demo schema in the scratch folder (N rows, and N/4 for memory), scored
 * by one batch worker (batch-worker-child.ts: the chunk scorer over one chunk, table writes off) against a
 * parse-only pass over the same file (papaparse fast mode, parse-only-child.ts), in paired rounds so that
 * both sides see the same machine; peak RSS of one scoring pass on N/4 and on N rows, repeated; and, to
 * show what bounds the worker, onnxruntime alone on the same rows (batch-ort-child.ts) and CPU time per row.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { mulberry32 } from '../tools/mulberry32.ts';
import { readDemoManifest, SCRATCH_DIR, type DemoManifest } from './demo.ts';
import { runWithPeakRss } from './peak-rss.ts';
import { median, ratio, summarize, type Summary } from './stats.ts';

export interface BatchOptions {
  /** Rows of the large dataset (quick 200,000; full 2,000,000). */
  readonly rows: number;
  /** Rows of the small dataset, for peak-RSS growth (large / small): rows / 4. */
  readonly smallRows: number;
  /** Paired rounds: one parse-only child, then one worker child. */
  readonly rounds: number;
  /** Timed passes per child (after one warm-up). */
  readonly parsePasses: number;
  readonly parseWarmup: number;
  readonly workerPasses: number;
  /** One-pass runs per file for peak RSS. */
  readonly rssRuns: number;
  /** Rows (of the large file) onnxruntime alone is timed on. */
  readonly ortRows: number;
  readonly seed: number;
}

export const BATCH_QUICK: BatchOptions = {
  rows: 200_000,
  smallRows: 50_000,
  rounds: 2,
  parsePasses: 3,
  parseWarmup: 1,
  workerPasses: 3,
  rssRuns: 3,
  ortRows: 50_000,
  seed: 0x7a4d,
};
export const BATCH_FULL: BatchOptions = {
  rows: 2_000_000,
  smallRows: 500_000,
  rounds: 2,
  parsePasses: 3,
  parseWarmup: 1,
  workerPasses: 3,
  rssRuns: 3,
  ortRows: 200_000,
  seed: 0x7a4d,
};

// --- the children -------------------------------------------------------------------------------------------

interface PassReport {
  readonly rows: number;
  readonly seconds: number[];
  readonly cpuSeconds?: number[];
}

async function child<T extends PassReport>(script: string, args: string[], what: string) {
  const run = await runWithPeakRss({
    script: path.join(import.meta.dirname, script),
    args,
    timeoutMs: 30 * 60_000,
  });
  if (run.exitCode !== 0) throw new Error(`${what} failed (exit ${run.exitCode}):\n${run.stderr}`);
  const report = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '') as T;
  return { ...report, peakRssMb: run.peakRssMb };
}

interface WorkerReport extends PassReport {
  readonly planSeconds: number[];
  readonly scoringThreads: number;
}

function worker(file: string, passes: number) {
  return child<WorkerReport>('batch-worker-child.ts', [file, String(passes)], 'batch worker');
}

function parseOnly(file: string, passes: number, warmup: number) {
  return child<PassReport>('parse-only-child.ts', [file, String(passes), String(warmup)], 'parse-only pass');
}

const rates = (r: PassReport) => r.seconds.map((s) => r.rows / s);
const cpuUsPerRow = (r: PassReport) => (r.cpuSeconds ?? []).map((s) => (s * 1e6) / r.rows);

// --- the dataset -----------------------------------------------------------------------------------------

const DATASET_VERSION = 1;

function datasetFile(rows: number, seed: number): string {
  return path.join(
    SCRATCH_DIR,
    `fraud-detector-v${DATASET_VERSION}-${rows}-rows-seed-${seed.toString(16)}.csv`,
  );
}

function rowWriter(manifest: DemoManifest, seed: number): { header: string; row: (i: number) => string } {
  const rng = mulberry32(seed);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(rng() * values.length)]!;
  const categories = manifest.features.find((f) => f.name === 'merchant_category')?.values ?? ['other'];
  const channels = manifest.features.find((f) => f.name === 'channel')?.values ?? ['chip'];
  const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
  const names = ['transaction_id', ...manifest.features.map((f) => f.name)];
  return {
    header: names.join(','),
    row: (i) => {
      const channel = pick(channels);
      const present = channel === 'chip' || channel === 'contactless' || channel === 'swipe';
      const amount = clamp(Math.exp(3 + 1.2 * (rng() + rng() + rng() - 1.5)), 0.5, 100_000);
      const values: Record<string, string> = {
        transaction_id: `txn-b${String(i + 1).padStart(8, '0')}`,
        amount: amount.toFixed(2),
        hour_of_day: String(Math.floor(rng() * 24)),
        day_of_week: String(Math.floor(rng() * 7)),
        merchant_category: pick(categories),
        channel,
        card_present: String(present),
        is_international: String(rng() < 0.05),
        distance_from_home_km: clamp(-Math.log(1 - rng()) * 25, 0, 20_000).toFixed(2),
        txn_count_1h: String(Math.floor(-Math.log(1 - rng()) * 0.7)),
        txn_count_24h: String(Math.floor(-Math.log(1 - rng()) * 4)),
        amount_to_avg_ratio: clamp(amount / 40, 0, 10_000).toFixed(4),
        account_age_days: String(Math.floor(rng() * 3650)),
        customer_age: String(18 + Math.floor(rng() * 70)),
        failed_pin_24h: String(rng() < 0.02 ? 1 + Math.floor(rng() * 3) : 0),
        new_device: String(rng() < 0.08),
        merchant_risk_score: rng().toFixed(3),
        prior_chargebacks: String(rng() < 0.05 ? 1 : 0),
      };
      return names.map((n) => values[n] ?? '').join(',');
    },
  };
}

/**
 * A CSV of the demo schema with `rows` data rows, seeded (the same bytes every time), in the scratch
 * folder; reused when already there (written to a temp name and renamed, so never half-written).
 */
export async function generateDataset(rows: number, seed: number): Promise<{ file: string; bytes: number }> {
  const file = datasetFile(rows, seed);
  const existing = await stat(file).catch(() => undefined);
  if (existing?.isFile()) return { file, bytes: existing.size };
  await mkdir(SCRATCH_DIR, { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  const out = createWriteStream(temp);
  const writer = rowWriter(await readDemoManifest(), seed);
  let chunk = `${writer.header}\n`;
  for (let i = 0; i < rows; i++) {
    chunk += `${writer.row(i)}\n`;
    if (chunk.length > 1 << 20 || i === rows - 1) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end();
  await once(out, 'finish');
  await rename(temp, file);
  return { file, bytes: (await stat(file)).size };
}

// --- the section -------------------------------------------------------------------------------------------

export interface BatchResult {
  readonly rows: number;
  readonly rowsPerSec: number;
  readonly parseOnlyRowsPerSec: number;
  readonly efficiency: number | null;
  readonly peakRssMbSmall: number;
  readonly peakRssMbLarge: number;
  readonly rssGrowthRatio: number | null;
  // extras
  readonly smallRows: number;
  readonly fileMb: number;
  /** Rows/s of each timed pass, both sides, over all rounds. */
  readonly workerPasses: Summary;
  readonly parseOnlyPasses: Summary;
  /** efficiency of each round (its worker median / its parse-only median). */
  readonly roundEfficiencies: number[];
  /** Peak RSS (MB) of each one-pass run. */
  readonly peakRssMbSmallRuns: number[];
  readonly peakRssMbLargeRuns: number[];
  readonly parseOnlyPeakRssMbSmall: number;
  readonly parseOnlyPeakRssMbLarge: number;
  /** CPU time per row (all threads), medians. */
  readonly workerCpuUsPerRow: number;
  readonly parseOnlyCpuUsPerRow: number;
  /** onnxruntime alone (session.run, one thread) on the first ortRows rows: rows/s, and its CPU per row. */
  readonly ortRowsPerSec: number;
  readonly ortUsPerRow: number;
  readonly ortRows: number;
  /** The planner's scan of the file (the Plan state, timed apart from the worker). */
  readonly planRowsPerSec: number;
  readonly scoringThreads: number;
}

export async function runBatchSection(
  options: BatchOptions,
  _quick: boolean,
  log: (line: string) => void = () => undefined,
): Promise<BatchResult> {
  log(
    `batch: generating ${options.rows.toLocaleString('en-US')} + ${options.smallRows.toLocaleString('en-US')} rows`,
  );
  const large = await generateDataset(options.rows, options.seed);
  const small = await generateDataset(options.smallRows, options.seed);

  const workerRates: number[] = [];
  const parseRates: number[] = [];
  const workerCpu: number[] = [];
  const parseCpu: number[] = [];
  const planRates: number[] = [];
  const roundEfficiencies: number[] = [];
  let scoringThreads = 0;
  let parseOnlyPeakRssMbLarge = 0;
  for (let round = 1; round <= options.rounds; round++) {
    log(`batch: round ${round}/${options.rounds}: parse-only, then one worker`);
    const parsed = await parseOnly(large.file, options.parsePasses, options.parseWarmup);
    if (parsed.rows !== options.rows)
      throw new Error(`parse-only counted ${parsed.rows} rows, not ${options.rows}`);
    const scored = await worker(large.file, options.workerPasses);
    if (scored.rows !== options.rows)
      throw new Error(`batch worker scored ${scored.rows} rows, expected ${options.rows}`);
    parseRates.push(...rates(parsed));
    workerRates.push(...rates(scored));
    parseCpu.push(...cpuUsPerRow(parsed));
    workerCpu.push(...cpuUsPerRow(scored));
    planRates.push(...scored.planSeconds.map((s) => scored.rows / s));
    roundEfficiencies.push(median(rates(scored)) / median(rates(parsed)));
    scoringThreads = scored.scoringThreads;
    parseOnlyPeakRssMbLarge = Math.max(parseOnlyPeakRssMbLarge, parsed.peakRssMb);
  }

  log(`batch: peak RSS, ${options.rssRuns} one-pass runs on each file`);
  const smallRuns: number[] = [];
  const largeRuns: number[] = [];
  for (let i = 0; i < options.rssRuns; i++) {
    smallRuns.push((await worker(small.file, 1)).peakRssMb);
    largeRuns.push((await worker(large.file, 1)).peakRssMb);
  }
  const parsedSmall = await parseOnly(small.file, 1, 0);

  log(`batch: onnxruntime alone on ${options.ortRows.toLocaleString('en-US')} of the rows`);
  const ort = await child<PassReport>(
    'batch-ort-child.ts',
    [large.file, String(options.ortRows), '3'],
    'onnxruntime pass',
  );
  const ortRowsPerSec = median(rates(ort));

  const workerPasses = summarize(workerRates);
  const parseOnlyPasses = summarize(parseRates);
  const peakRssMbSmall = median(smallRuns);
  const peakRssMbLarge = median(largeRuns);
  return {
    rows: options.rows,
    rowsPerSec: workerPasses.p50,
    parseOnlyRowsPerSec: parseOnlyPasses.p50,
    efficiency: ratio(workerPasses.p50, parseOnlyPasses.p50),
    peakRssMbSmall,
    peakRssMbLarge,
    rssGrowthRatio: ratio(peakRssMbLarge, peakRssMbSmall),
    smallRows: options.smallRows,
    fileMb: large.bytes / 1_048_576,
    workerPasses,
    parseOnlyPasses,
    roundEfficiencies,
    peakRssMbSmallRuns: smallRuns,
    peakRssMbLargeRuns: largeRuns,
    parseOnlyPeakRssMbSmall: parsedSmall.peakRssMb,
    parseOnlyPeakRssMbLarge,
    workerCpuUsPerRow: median(workerCpu),
    parseOnlyCpuUsPerRow: median(parseCpu),
    ortRowsPerSec,
    ortUsPerRow: 1e6 / ortRowsPerSec,
    ortRows: ort.rows,
    planRowsPerSec: median(planRates),
    scoringThreads,
  };
}
