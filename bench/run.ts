/**
 * `npm run bench [-- --quick] [-- --only realtime,http,batch,coldStart]`: runs the benchmark sections,
 * prints a table (figures, spread, targets) and, as the last line of stdout, one JSON object.
 * Progress goes to stderr. Targets are reported, never enforced: the exit code is 0 whether they pass
 * or miss, and 1 only when a section could not run.
 */
import '../local/node-support.ts'; // first: before any AWS SDK client is made
import os from 'node:os';
import { parseArgs } from 'node:util';
import { measurePredictAssetMb } from './asset-size.ts';
import { BATCH_FULL, BATCH_QUICK, runBatchSection, type BatchResult } from './batch.ts';
import { setVerboseChildren } from './child.ts';
import { COLD_START_FULL, COLD_START_QUICK, runColdStartBench, type ColdStartResult } from './cold-start.ts';
import { HTTP_FULL, HTTP_QUICK, runHttpBench, type HttpResult } from './http.ts';
import { REALTIME_FULL, REALTIME_QUICK, runRealtimeBench, type RealtimeResult } from './realtime.ts';
import { fmt, round, spread } from './stats.ts';
import { runStreamBench, STREAM_FULL, STREAM_QUICK, streamFigures } from './stream.ts';

const HELP = `Usage: npm run bench [-- options]

Benchmarks Tandem against the bare work it wraps, side by side in one run:
  realtime   the predict handler in-process, models in the S3 emulator and a table configured as
             deployed (model path, cache hit) vs bare session.run / GetItem
  http       the local dev server's POST /predict vs a bare node:http + session.run server
             (autocannon); reported, no target
  batch      one batch worker (the chunk scorer over one chunk) vs a parse-only pass (papaparse fast
             mode) over the same CSV (efficiency reported, no target); peak RSS on N/4 and N rows;
             onnxruntime alone on the same rows
  stream     events at a steady rate through the local stream lane for several batching windows and
             batch sizes (end-to-end p50/p99, invocations per 1000 records), and a backlog consumed
             with full batches next to the batch lane on the same rows
  coldStart  fresh process to first prediction through the handler (models from the S3 emulator, a
             table configured) vs a bare function that creates the same clients and session

Options:
  --quick            fewer iterations and shorter loads (under 90 s on 2 cores)
  --only <list>      comma-separated sections to run (default: all)
  --verbose          stream the child processes' output to stderr
  -h, --help         show this help

Prints a table, then the figures as one JSON object on the last line of stdout. Targets are
reported as pass / MISS; the exit code is 0 either way (1 only if a section failed to run).
`;

const SECTIONS = ['realtime', 'http', 'batch', 'coldStart', 'stream'] as const;
type Section = (typeof SECTIONS)[number];

interface Target {
  readonly section: Section;
  readonly field: string;
  readonly op: '<=' | '>=';
  readonly limit: number;
}

/**
 * The local dev server's HTTP figure and the batch efficiency are reported with no target: the first
 * measures a server that is not deployed, and a batch's cost is its table writes, not its scoring.
 */
const TARGETS: readonly Target[] = [
  { section: 'realtime', field: 'modelOverheadRatio', op: '<=', limit: 2.0 },
  { section: 'realtime', field: 'cacheOverheadRatio', op: '<=', limit: 1.3 },
  { section: 'batch', field: 'rssGrowthRatio', op: '<=', limit: 1.25 },
  { section: 'coldStart', field: 'ratio', op: '<=', limit: 2.0 },
  { section: 'coldStart', field: 'predictAssetMb', op: '<=', limit: 60 },
  { section: 'stream', field: 'window1P99Ms', op: '<=', limit: 3000 },
  { section: 'stream', field: 'consumerToBatchRatio', op: '>=', limit: 0.5 },
];

const REQUIRED: Record<Section, readonly string[]> = {
  realtime: [
    'ortP50Us',
    'handlerModelP50Us',
    'handlerModelP99Us',
    'modelOverheadRatio',
    'sdkGetP50Us',
    'handlerCacheP50Us',
    'cacheOverheadRatio',
  ],
  http: ['bareRps', 'rps', 'ratio', 'p99Ms'],
  batch: [
    'rows',
    'rowsPerSec',
    'parseOnlyRowsPerSec',
    'efficiency',
    'peakRssMbSmall',
    'peakRssMbLarge',
    'rssGrowthRatio',
  ],
  coldStart: ['bareMs', 'ms', 'ratio', 'predictAssetMb'],
  stream: ['window1P99Ms', 'consumerToBatchRatio', 'consumerRowsPerSec', 'batchRowsPerSec'],
};

type Figures = Record<string, unknown>;

interface TableRow {
  readonly section: string;
  readonly figure: string;
  readonly value: string;
  readonly spread: string;
  readonly target: string;
  readonly result: string;
}

function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function parseSections(only: string | undefined): Section[] {
  if (!only) return [...SECTIONS];
  const byName = new Map<string, Section>(SECTIONS.map((s) => [s.toLowerCase(), s]));
  return only.split(',').map((raw) => {
    const name = raw.trim().toLowerCase().replaceAll('-', '');
    const section = byName.get(name);
    if (!section) throw new Error(`unknown section "${raw}" (sections: ${SECTIONS.join(', ')})`);
    return section;
  });
}

function targetResult(target: Target, value: unknown): 'pass' | 'MISS' | 'n/a' {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 'n/a';
  return (target.op === '<=' ? value <= target.limit : value >= target.limit) ? 'pass' : 'MISS';
}

function nulls(section: Section): Figures {
  return Object.fromEntries(REQUIRED[section].map((f) => [f, null]));
}

// --- sections: figures for the JSON line and rows for the table -----------------------------------------

function realtimeFigures(r: RealtimeResult): { json: Figures; rows: Omit<TableRow, 'target' | 'result'>[] } {
  const raw = r.raw;
  const us = (s: { p25: number; p75: number }) => spread(s.p25, s.p75, 'µs');
  return {
    json: {
      ortP50Us: round(r.ortP50Us),
      handlerModelP50Us: round(r.handlerModelP50Us),
      handlerModelP99Us: round(r.handlerModelP99Us),
      modelOverheadRatio: round(r.modelOverheadRatio),
      sdkGetP50Us: round(r.sdkGetP50Us),
      handlerCacheP50Us: round(r.handlerCacheP50Us),
      cacheOverheadRatio: round(r.cacheOverheadRatio),
      ortP99Us: round(r.ortP99Us),
      sdkGetP99Us: round(r.sdkGetP99Us),
      sdkBatchGetP50Us: round(r.sdkBatchGetP50Us),
      handlerCacheP99Us: round(r.handlerCacheP99Us),
      modelOverheadRatioBlocksP25P75: [round(raw.modelBlockRatios.p25), round(raw.modelBlockRatios.p75)],
      cacheOverheadRatioBlocksP25P75: [round(raw.cacheBlockRatios.p25), round(raw.cacheBlockRatios.p75)],
      iterations: r.iterations,
      errors: r.errors,
    },
    rows: [
      {
        section: 'realtime',
        figure: 'ortP50Us (bare session.run)',
        value: fmt(r.ortP50Us, 'µs'),
        spread: us(raw.ort),
      },
      {
        section: '',
        figure: 'handlerModelP50Us',
        value: fmt(r.handlerModelP50Us, 'µs'),
        spread: us(raw.handlerModel),
      },
      {
        section: '',
        figure: 'handlerModelP99Us',
        value: fmt(r.handlerModelP99Us, 'µs'),
        spread: `bare p99 ${fmt(r.ortP99Us, 'µs')}`,
      },
      {
        section: '',
        figure: 'modelOverheadRatio',
        value: fmt(r.modelOverheadRatio),
        spread: `blocks ${spread(raw.modelBlockRatios.p25, raw.modelBlockRatios.p75)} (n=${raw.modelBlockRatios.n})`,
      },
      {
        section: '',
        figure: 'sdkGetP50Us (bare GetItem)',
        value: fmt(r.sdkGetP50Us, 'µs'),
        spread: us(raw.sdkGet),
      },
      {
        section: '',
        figure: 'sdkBatchGetP50Us (extra)',
        value: fmt(r.sdkBatchGetP50Us, 'µs'),
        spread: us(raw.sdkBatchGet),
      },
      {
        section: '',
        figure: 'handlerCacheP50Us',
        value: fmt(r.handlerCacheP50Us, 'µs'),
        spread: us(raw.handlerCache),
      },
      {
        section: '',
        figure: 'cacheOverheadRatio',
        value: fmt(r.cacheOverheadRatio),
        spread: `blocks ${spread(raw.cacheBlockRatios.p25, raw.cacheBlockRatios.p75)} (n=${raw.cacheBlockRatios.n})`,
      },
      {
        section: '',
        figure: 'samples / failed',
        value: `${r.iterations.model} + ${r.iterations.cache}`,
        spread: `failed ${r.errors.model} + ${r.errors.cache}`,
      },
    ],
  };
}

function httpFigures(r: HttpResult): { json: Figures; rows: Omit<TableRow, 'target' | 'result'>[] } {
  const rounds = `rounds min-max, ${r.ours.rps.n} x ${r.secondsPerSide / r.ours.rps.n} s`;
  return {
    json: {
      bareRps: round(r.bareRps),
      rps: round(r.rps),
      ratio: round(r.ratio),
      p99Ms: round(r.p99Ms),
      bareP99Ms: round(r.bareP99Ms),
      p50Ms: round(r.p50Ms),
      bareP50Ms: round(r.bareP50Ms),
      ratioRoundsMinMax: [round(r.roundRatios.min), round(r.roundRatios.max)],
      connections: r.connections,
      secondsPerSide: r.secondsPerSide,
      failed: { ours: r.ours.non2xx + r.ours.errors, bare: r.bare.non2xx + r.bare.errors },
    },
    rows: [
      {
        section: 'http',
        figure: 'bareRps (node:http + session.run)',
        value: fmt(r.bareRps, 'req/s'),
        spread: spread(r.bare.rps.min, r.bare.rps.max),
      },
      {
        section: '',
        figure: 'rps (local dev server, bypassCache)',
        value: fmt(r.rps, 'req/s'),
        spread: spread(r.ours.rps.min, r.ours.rps.max),
      },
      {
        section: '',
        figure: 'ratio',
        value: fmt(r.ratio),
        spread: `paired ${spread(r.roundRatios.min, r.roundRatios.max)}`,
      },
      {
        section: '',
        figure: 'p99Ms (ours)',
        value: fmt(r.p99Ms, 'ms'),
        spread: `${spread(r.ours.p99Ms.min, r.ours.p99Ms.max)}; bare ${fmt(r.bareP99Ms, 'ms')}`,
      },
      {
        section: '',
        figure: 'setup / failed',
        value: `${r.connections} conns`,
        spread: `${rounds}; failed ${r.ours.non2xx + r.ours.errors} + ${r.bare.non2xx + r.bare.errors}`,
      },
    ],
  };
}

function batchFigures(r: BatchResult): { json: Figures; rows: Omit<TableRow, 'target' | 'result'>[] } {
  const passes = (x: { min: number; max: number; n: number }) => `${spread(x.min, x.max)} (${x.n} passes)`;
  const minMax = (values: readonly number[]) => spread(Math.min(...values), Math.max(...values));
  return {
    json: {
      rows: r.rows,
      rowsPerSec: round(r.rowsPerSec),
      parseOnlyRowsPerSec: round(r.parseOnlyRowsPerSec),
      efficiency: round(r.efficiency),
      peakRssMbSmall: round(r.peakRssMbSmall),
      peakRssMbLarge: round(r.peakRssMbLarge),
      rssGrowthRatio: round(r.rssGrowthRatio),
      smallRows: r.smallRows,
      fileMb: round(r.fileMb),
      workerPassesMinMax: [round(r.workerPasses.min), round(r.workerPasses.max)],
      parseOnlyPassesMinMax: [round(r.parseOnlyPasses.min), round(r.parseOnlyPasses.max)],
      roundEfficiencies: r.roundEfficiencies.map(round),
      peakRssMbSmallRuns: r.peakRssMbSmallRuns.map(round),
      peakRssMbLargeRuns: r.peakRssMbLargeRuns.map(round),
      parseOnlyPeakRssMbSmall: round(r.parseOnlyPeakRssMbSmall),
      parseOnlyPeakRssMbLarge: round(r.parseOnlyPeakRssMbLarge),
      workerCpuUsPerRow: round(r.workerCpuUsPerRow),
      parseOnlyCpuUsPerRow: round(r.parseOnlyCpuUsPerRow),
      ortRowsPerSec: round(r.ortRowsPerSec),
      ortUsPerRow: round(r.ortUsPerRow),
      planRowsPerSec: round(r.planRowsPerSec),
      scoringThreads: r.scoringThreads,
    },
    rows: [
      {
        section: 'batch',
        figure: 'rows',
        value: r.rows.toLocaleString('en-US'),
        spread: `${fmt(r.fileMb, 'MB')} CSV; small file ${r.smallRows.toLocaleString('en-US')} rows`,
      },
      {
        section: '',
        figure: 'parseOnlyRowsPerSec (papaparse fast)',
        value: fmt(r.parseOnlyRowsPerSec, 'rows/s'),
        spread: passes(r.parseOnlyPasses),
      },
      {
        section: '',
        figure: 'rowsPerSec (one worker)',
        value: fmt(r.rowsPerSec, 'rows/s'),
        spread: `${passes(r.workerPasses)}, ${r.scoringThreads} scoring thread(s)`,
      },
      {
        section: '',
        figure: 'efficiency',
        value: fmt(r.efficiency),
        spread: `rounds ${r.roundEfficiencies.map((e) => fmt(e)).join(', ')}`,
      },
      {
        section: '',
        figure: 'peakRssMbSmall / Large',
        value: `${fmt(r.peakRssMbSmall)} / ${fmt(r.peakRssMbLarge)}`,
        spread: `runs ${minMax(r.peakRssMbSmallRuns)} / ${minMax(r.peakRssMbLargeRuns)} MB`,
      },
      { section: '', figure: 'rssGrowthRatio', value: fmt(r.rssGrowthRatio), spread: '' },
      {
        section: '',
        figure: 'CPU per row: worker / parse-only',
        value: `${fmt(r.workerCpuUsPerRow)} / ${fmt(r.parseOnlyCpuUsPerRow)} µs`,
        spread: 'extra (all threads)',
      },
      {
        section: '',
        figure: 'onnxruntime alone (session.run)',
        value: fmt(r.ortRowsPerSec, 'rows/s'),
        spread: `extra: ${fmt(r.ortUsPerRow)} µs/row, one thread, ${r.ortRows.toLocaleString('en-US')} rows`,
      },
      {
        section: '',
        figure: 'planner scan (Plan state)',
        value: fmt(r.planRowsPerSec, 'rows/s'),
        spread: 'extra, not in rowsPerSec',
      },
      {
        section: '',
        figure: 'parse-only peak RSS small / large',
        value: `${fmt(r.parseOnlyPeakRssMbSmall)} / ${fmt(r.parseOnlyPeakRssMbLarge)} MB`,
        spread: 'extra',
      },
    ],
  };
}

function coldStartFigures(
  r: ColdStartResult | undefined,
  assetMb: number | null,
): { json: Figures; rows: Omit<TableRow, 'target' | 'result'>[] } {
  const asset = {
    section: r ? '' : 'coldStart',
    figure: 'predictAssetMb',
    value: fmt(assetMb, 'MB'),
    spread: assetMb === null ? 'pending: measurePredictAssetMb' : '',
  };
  if (!r) return { json: { ...nulls('coldStart'), predictAssetMb: round(assetMb) }, rows: [asset] };
  return {
    json: {
      bareMs: round(r.bareMs),
      ms: round(r.ms),
      ratio: round(r.ratio),
      predictAssetMb: round(assetMb),
      ratioRoundsMinMax: [round(r.roundRatios.min), round(r.roundRatios.max)],
      initMs: round(r.ours.initMs.p50),
      bareInitMs: round(r.bare.initMs.p50),
      bundleKb: round(r.ours.bundleKb),
      runs: r.ours.wallMs.n,
      mechanism: r.mechanism,
    },
    rows: [
      {
        section: 'coldStart',
        figure: 'bareMs (same clients, S3 model, session)',
        value: fmt(r.bareMs, 'ms'),
        spread: spread(r.bare.wallMs.min, r.bare.wallMs.max, 'ms'),
      },
      {
        section: '',
        figure: 'ms (handler, first prediction)',
        value: fmt(r.ms, 'ms'),
        spread: spread(r.ours.wallMs.min, r.ours.wallMs.max, 'ms'),
      },
      {
        section: '',
        figure: 'ratio',
        value: fmt(r.ratio),
        spread: `paired ${spread(r.roundRatios.min, r.roundRatios.max)} (n=${r.ours.wallMs.n})`,
      },
      {
        section: '',
        figure: 'init: handler / bare (in child)',
        value: `${fmt(r.ours.initMs.p50)} / ${fmt(r.bare.initMs.p50)} ms`,
        spread: `bundle ${fmt(r.ours.bundleKb / 1024, 'MB')}`,
      },
      asset,
    ],
  };
}

function printTable(rows: readonly TableRow[]): void {
  const headers: TableRow = {
    section: 'section',
    figure: 'figure',
    value: 'median',
    spread: 'spread',
    target: 'target',
    result: 'result',
  };
  const keys = Object.keys(headers) as (keyof TableRow)[];
  const all = [headers, ...rows];
  const widths = keys.map((k) => Math.max(...all.map((r) => r[k].length)));
  const line = (r: TableRow) =>
    keys
      .map((k, i) => (k === 'value' ? r[k].padStart(widths[i]!) : r[k].padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  process.stdout.write(`${line(headers)}\n${rule}\n`);
  for (const r of rows) {
    if (r.section && r !== rows[0]) process.stdout.write(`${rule}\n`);
    process.stdout.write(`${line(r)}\n`);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const quick = values.quick;
  const sections = parseSections(values.only);
  setVerboseChildren(values.verbose);
  const started = performance.now();
  log(
    `${quick ? 'quick' : 'full'} run: ${sections.join(', ')} (${os.cpus().length} CPUs, Node ${process.version})`,
  );

  const json: Record<Section, Figures> = {
    realtime: nulls('realtime'),
    http: nulls('http'),
    batch: nulls('batch'),
    coldStart: nulls('coldStart'),
    stream: nulls('stream'),
  };
  const rows: Omit<TableRow, 'target' | 'result'>[] = [];
  const failures: string[] = [];
  const sectionSeconds: Record<string, number> = {};

  const run = async (section: Section, body: () => Promise<{ json: Figures; rows: typeof rows }>) => {
    if (!sections.includes(section)) return;
    const t0 = performance.now();
    log(`${section}: start`);
    try {
      const out = await body();
      json[section] = out.json;
      rows.push(...out.rows);
    } catch (error) {
      const message = (error as Error).stack ?? String(error);
      failures.push(`${section}: ${message}`);
      json[section] = { ...nulls(section), error: (error as Error).message.split('\n')[0] };
      rows.push({
        section,
        figure: 'FAILED',
        value: '',
        spread: (error as Error).message.split('\n')[0]!.slice(0, 80),
      });
      log(`${section}: FAILED\n${message}`);
    }
    sectionSeconds[section] = round((performance.now() - t0) / 1000) ?? 0;
    log(`${section}: done in ${sectionSeconds[section]} s`);
  };

  await run('realtime', async () =>
    realtimeFigures(await runRealtimeBench(quick ? REALTIME_QUICK : REALTIME_FULL)),
  );
  await run('http', async () => httpFigures(await runHttpBench(quick ? HTTP_QUICK : HTTP_FULL, log)));
  await run('batch', async () =>
    batchFigures(await runBatchSection(quick ? BATCH_QUICK : BATCH_FULL, quick, log)),
  );
  await run('coldStart', async () => {
    const [cold, assetMb] = [
      await runColdStartBench(quick ? COLD_START_QUICK : COLD_START_FULL, log),
      await measurePredictAssetMb(),
    ];
    return coldStartFigures(cold, assetMb);
  });
  await run('stream', async () => streamFigures(await runStreamBench(quick ? STREAM_QUICK : STREAM_FULL)));

  // Targets: attached to the row of their figure.
  const table: TableRow[] = rows.map((r) => ({ ...r, target: '', result: '' }));
  const targets: Record<string, 'pass' | 'MISS' | 'n/a'> = {};
  let current: Section | undefined;
  for (const row of table) {
    if (row.section) current = SECTIONS.find((s) => s === row.section);
    const target = TARGETS.find((t) => t.section === current && row.figure.split(' ')[0] === t.field);
    if (!target) continue;
    const result = targetResult(target, json[target.section][target.field]);
    (row as { target: string }).target = `${target.op} ${target.limit}`;
    (row as { result: string }).result = result;
  }
  for (const t of TARGETS) {
    if (sections.includes(t.section))
      targets[`${t.section}.${t.field}`] = targetResult(t, json[t.section][t.field]);
  }

  const totalSeconds = round((performance.now() - started) / 1000);
  process.stdout.write('\n');
  printTable(table);
  const misses = Object.entries(targets)
    .filter(([, v]) => v === 'MISS')
    .map(([k]) => k);
  const pending = Object.entries(targets)
    .filter(([, v]) => v === 'n/a')
    .map(([k]) => k);
  process.stdout.write(
    `\n${quick ? 'quick' : 'full'} run, ${totalSeconds} s. Targets: ${Object.values(targets).filter((v) => v === 'pass').length} pass, ` +
      `${misses.length} miss${misses.length ? ` (${misses.join(', ')})` : ''}, ${pending.length} not measured${pending.length ? ` (${pending.join(', ')})` : ''}.\n` +
      'Medians; spread = p25-p75 of samples (realtime), min-max of rounds / runs / passes (http, coldStart, batch).\n',
  );
  if (failures.length > 0)
    process.stdout.write(
      `FAILED sections: ${failures.map((f) => f.split(':')[0]).join(', ')} (details on stderr)\n`,
    );

  const result = {
    ...json,
    targets,
    meta: {
      mode: quick ? 'quick' : 'full',
      sections,
      node: process.version,
      cpus: os.cpus().length,
      loadavg: os.loadavg().map((l) => round(l)),
      seconds: totalSeconds,
      sectionSeconds,
    },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
