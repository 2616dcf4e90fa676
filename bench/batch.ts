/**
 * Batch section. Done here: a seeded CSV of the demo schema in the scratch folder, the parse-only
 * baseline (papaparse fast mode over a file stream, counting rows, in a child process) and peak-RSS
 * measurement (peak-rss.ts). Still to do (see runBatchBench): scoring the same file through the batch
 * worker, which gives rowsPerSec, efficiency and the peak-RSS figures.
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
  /** Rows of the small dataset, for peak-RSS growth (large / small). */
  readonly smallRows: number;
  readonly parsePasses: number;
  readonly parseWarmup: number;
  readonly seed: number;
}

export const BATCH_QUICK: BatchOptions = {
  rows: 200_000,
  smallRows: 20_000,
  parsePasses: 3,
  parseWarmup: 1,
  seed: 0x7a4d,
};
export const BATCH_FULL: BatchOptions = {
  rows: 2_000_000,
  smallRows: 200_000,
  parsePasses: 5,
  parseWarmup: 1,
  seed: 0x7a4d,
};

// --- the hook -------------------------------------------------------------------------------------------

export interface BatchBenchOptions {
  readonly quick: boolean;
  /** The generated dataset (demo schema, header row, LF line ends) and its number of data rows. */
  readonly csvFile: string;
  readonly rows: number;
  /** The same schema and seed, `smallRows` rows: peak RSS on it vs on csvFile gives rssGrowthRatio. */
  readonly smallCsvFile: string;
  readonly smallRows: number;
  /** Measures a child process's peak RSS (use it for peakRssMbSmall / peakRssMbLarge). */
  readonly runWithPeakRss: typeof runWithPeakRss;
  readonly log: (line: string) => void;
}

export interface BatchFigures {
  /** Rows scored per second, end to end through the batch worker, on csvFile. */
  readonly rowsPerSec: number;
  /** Peak RSS (MB) of the scoring process on smallCsvFile and on csvFile. */
  readonly peakRssMbSmall: number;
  readonly peakRssMbLarge: number;
  readonly [extra: string]: unknown;
}

/**
 * Scores the files through one batch worker (bench/batch-worker-child.ts: plan + the chunk scorer over a
 * local folder, table writes off) in child processes: rows/s is the median of the timed passes on the
 * large file (each pass plans and scores it; the model is loaded by a warm-up first); peak RSS is
 * measured on a one-pass run of each file, so both figures cover the same work.
 */
export async function runBatchBench(opts: BatchBenchOptions): Promise<BatchFigures | null> {
  const script = path.join(import.meta.dirname, 'batch-worker-child.ts');
  const run = async (file: string, passes: number) => {
    const result = await opts.runWithPeakRss({
      script,
      args: [file, String(passes)],
      timeoutMs: 30 * 60_000,
    });
    if (result.exitCode !== 0)
      throw new Error(`batch worker failed (exit ${result.exitCode}):\n${result.stderr}`);
    const report = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '') as {
      rows: number;
      seconds: number[];
    };
    if (report.rows !== opts.rows && file === opts.csvFile)
      throw new Error(`batch worker scored ${report.rows} rows, expected ${opts.rows}`);
    return { ...report, peakRssMb: result.peakRssMb };
  };
  opts.log('batch: scoring through one worker');
  const timed = await run(opts.csvFile, opts.quick ? 3 : 3);
  const passes = summarize(timed.seconds.map((s) => timed.rows / s));
  const medianRowsPerSec = median(timed.seconds.map((s) => timed.rows / s));
  const small = await run(opts.smallCsvFile, 1);
  const large = await run(opts.csvFile, 1);
  return {
    rowsPerSec: Math.round(medianRowsPerSec),
    peakRssMbSmall: small.peakRssMb,
    peakRssMbLarge: large.peakRssMb,
    workerPassesMinMax: [Math.round(passes.min), Math.round(passes.max)],
  };
}

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
  readonly rowsPerSec: number | null;
  readonly parseOnlyRowsPerSec: number;
  readonly efficiency: number | null;
  readonly peakRssMbSmall: number | null;
  readonly peakRssMbLarge: number | null;
  readonly rssGrowthRatio: number | null;
  // extras
  readonly fileMb: number;
  /** Rows/s of each timed parse-only pass. */
  readonly parseOnlyPasses: Summary;
  /** Peak RSS of the parse-only process on the small and the large file. */
  readonly parseOnlyPeakRssMbSmall: number;
  readonly parseOnlyPeakRssMbLarge: number;
  readonly scoring: BatchFigures | null;
}

async function parseOnly(file: string, passes: number, warmup: number) {
  const run = await runWithPeakRss({
    script: path.join(import.meta.dirname, 'parse-only-child.ts'),
    args: [file, String(passes), String(warmup)],
  });
  if (run.exitCode !== 0) throw new Error(`parse-only pass failed (exit ${run.exitCode}):\n${run.stderr}`);
  const line = run.stdout.trim().split('\n').at(-1) ?? '';
  const report = JSON.parse(line) as { rows: number; seconds: number[] };
  return { ...report, peakRssMb: run.peakRssMb };
}

export async function runBatchSection(
  options: BatchOptions,
  quick: boolean,
  log: (line: string) => void = () => undefined,
): Promise<BatchResult> {
  log(
    `batch: generating ${options.rows.toLocaleString('en-US')} + ${options.smallRows.toLocaleString('en-US')} rows`,
  );
  const large = await generateDataset(options.rows, options.seed);
  const small = await generateDataset(options.smallRows, options.seed);

  log('batch: parse-only passes');
  const parsedSmall = await parseOnly(small.file, 1, 0);
  const parsed = await parseOnly(large.file, options.parsePasses, options.parseWarmup);
  if (parsed.rows !== options.rows)
    throw new Error(`parse-only counted ${parsed.rows} rows, not ${options.rows}`);
  const passes = summarize(parsed.seconds.map((s) => parsed.rows / s));

  const scoring = await runBatchBench({
    quick,
    csvFile: large.file,
    rows: options.rows,
    smallCsvFile: small.file,
    smallRows: options.smallRows,
    runWithPeakRss,
    log,
  });
  return {
    rows: options.rows,
    rowsPerSec: scoring?.rowsPerSec ?? null,
    parseOnlyRowsPerSec: passes.p50,
    efficiency: ratio(scoring?.rowsPerSec, passes.p50),
    peakRssMbSmall: scoring?.peakRssMbSmall ?? null,
    peakRssMbLarge: scoring?.peakRssMbLarge ?? null,
    rssGrowthRatio: ratio(scoring?.peakRssMbLarge, scoring?.peakRssMbSmall),
    fileMb: large.bytes / 1_048_576,
    parseOnlyPasses: passes,
    parseOnlyPeakRssMbSmall: parsedSmall.peakRssMb,
    parseOnlyPeakRssMbLarge: parsed.peakRssMb,
    scoring,
  };
}
