/**
 * `tandem monitor baseline|run|report`: make a version's baseline from a dataset, run the drift monitor
 * now, print the latest report. Local stack or deployed (`--stack`: the same monitor code runs here with
 * the caller's credentials against the stack's bucket; it publishes no metrics, the scheduled function does).
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ObjectStore } from '../../lambdas/adapters/s3-object-store.ts';
import {
  BASELINE_DATASET,
  buildBaseline,
  type DatasetFile,
} from '../../lambdas/core/monitoring/baseline-builder.ts';
import type { Baseline } from '../../lambdas/core/monitoring/baseline.ts';
import { MonitoringError } from '../../lambdas/core/monitoring/errors.ts';
import type { FeatureDrift } from '../../lambdas/core/monitoring/drift.ts';
import {
  baselineKey,
  latestReport,
  runMonitor,
  type DriftReport,
  type MonitorOutcome,
} from '../../lambdas/core/monitoring/monitor-run.ts';
import { monitorQuality } from '../../lambdas/core/monitoring/monitor-quality.ts';
import { loadModelVersion } from '../../lambdas/core/model-registry.ts';
import { readMonitorSettings } from '../../lambdas/handlers/monitor/monitor-env.ts';
import { qualityTable, tablePredictions } from './quality-cli.ts';
import type { Target } from './target.ts';

async function localDataset(file: string): Promise<DatasetFile[] | undefined> {
  const info = await stat(file).catch(() => undefined);
  if (!info) return undefined;
  const names = info.isDirectory()
    ? (await readdir(file, { recursive: true })).map((n) => path.join(file, String(n))).sort()
    : [file];
  return names.map((name) => ({ name, bytes: () => createReadStream(name) }));
}

async function bucketDataset(target: Target, objects: S3ObjectStore, key: string): Promise<DatasetFile[]> {
  const keys = (await objects.list(target.bucket, key)).filter(
    (k) => k === key || key.endsWith('/') || k.startsWith(`${key}/`),
  );
  return keys
    .filter((k) => BASELINE_DATASET.test(k))
    .map((k) => ({ name: k, bytes: () => objects.read(target.bucket, k) }));
}

export interface BaselineOutcome {
  readonly key: string;
  readonly baseline: Baseline;
}

/** Scores the dataset (a local file or folder, else a key or prefix of the data bucket) and stores the baseline. */
export async function makeBaseline(
  target: Target,
  model: string,
  version: string | undefined,
  dataset: string,
  cwd: string,
): Promise<BaselineOutcome> {
  const objects = new S3ObjectStore(target.s3);
  const source = new S3ModelSource(target.s3, target.bucket, target.prefix);
  const resolved = version ?? (await source.currentVersion(model));
  const local = await localDataset(path.resolve(cwd, dataset));
  const files = local ?? (await bucketDataset(target, objects, dataset.replace(/^\/+/, '')));
  if (!local && files.length === 0) {
    throw new MonitoringError(
      'EMPTY_DATASET',
      `${dataset}: no such file or folder here (${path.resolve(cwd, dataset)}), and no dataset file (.csv, .jsonl or .ndjson, optionally .gz) under s3://${target.bucket}/${dataset.replace(/^\/+/, '')}`,
    );
  }
  const description = local ? dataset : `s3://${target.bucket}/${dataset}`;
  const served = await loadModelVersion(source, model, resolved);
  try {
    const baseline = await buildBaseline(served, files, { description, createdAt: new Date().toISOString() });
    const key = baselineKey(target.prefix, model, resolved);
    await objects.writeBytes(
      target.bucket,
      key,
      `${JSON.stringify(baseline, null, 2)}\n`,
      'application/json',
    );
    return { key, baseline };
  } finally {
    await served.close();
  }
}

export async function monitorNow(target: Target, model: string): Promise<MonitorOutcome> {
  const objects = new S3ObjectStore(target.s3);
  // A typo must not leave a report and a state under monitoring/ for a model that does not exist.
  if ((await objects.list(target.bucket, `${target.prefix}${model}/`)).length === 0) {
    throw new MonitoringError(
      'MODEL_NOT_FOUND',
      `no model named "${model}" under s3://${target.bucket}/${target.prefix} (\`models list\` shows the models there)`,
    );
  }
  const table = tablePredictions(target);
  try {
    return await runMonitor(
      model,
      {
        objects,
        bucket: target.bucket,
        modelsPrefix: target.prefix,
        models: new S3ModelSource(target.s3, target.bucket, target.prefix),
        quality: (name, live, toMs) =>
          monitorQuality(
            {
              objects,
              bucket: target.bucket,
              modelsPrefix: target.prefix,
              ...(table ? { predictions: table.store } : {}),
            },
            name,
            live,
            toMs,
          ),
      },
      readMonitorSettings(process.env),
    );
  } finally {
    table?.destroy();
  }
}

export async function latest(target: Target, model: string): Promise<MonitorOutcome | undefined> {
  return latestReport({ objects: new S3ObjectStore(target.s3), bucket: target.bucket }, model);
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const fixed = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(4));

export function baselineText(outcome: BaselineOutcome, bucket: string): string {
  const b = outcome.baseline;
  const p = b.prediction;
  const predictionLine =
    p.kind === 'classifier'
      ? `predictions: ${Object.entries(p.labels)
          .map(([label, n]) => `${label} ${pct(n / p.n)}`)
          .join(', ')}; ${p.score} binned`
      : `predictions: values binned at ${p.value.edges.length - 1} quantile bins`;
  return [
    `baseline of ${b.model}@${b.version} written to s3://${bucket}/${outcome.key}`,
    `dataset: ${b.dataset.description}: ${b.dataset.scored} rows scored, ${b.dataset.rejected} rejected`,
    `features: ${Object.keys(b.features).length}`,
    predictionLine,
  ].join('\n');
}

/** A bar of `width` characters for a share. */
function bar(share: number, width = 20): string {
  const n = Math.round(share * width);
  return `${'#'.repeat(n)}${' '.repeat(width - n)}`;
}

function histogram(feature: FeatureDrift): string[] {
  const labelWidth = Math.min(24, Math.max(...feature.bins.map((b) => b.bin.length)));
  return [
    `${feature.name} (PSI ${fixed(feature.psi)}): baseline | current`,
    ...feature.bins.map(
      (b) =>
        `  ${b.bin.slice(0, 24).padEnd(labelWidth)}  ${bar(b.baseline)} ${pct(b.baseline).padStart(6)} | ${bar(b.current)} ${pct(b.current).padStart(6)}`,
    ),
  ];
}

/** The report as a table: features by PSI, then histograms of the worst ones. */
export function reportText(key: string, report: DriftReport, bucket: string): string {
  const r = report.records;
  const lines = [
    `${report.model}: drift report s3://${bucket}/${key}`,
    `window: ${report.window.from} -> ${report.window.to}${report.window.firstRun ? ' (first run: look-back)' : ''}`,
    // The message starts with the status where it says it (drift: ..., no data: ...).
    `status: ${report.message.startsWith(report.status.replace(/-/g, ' ')) ? report.message : `${report.status}: ${report.message}`}`,
    `records: ${r.total} (realtime ${r.bySource.realtime}, stream ${r.bySource.stream}, batch ${r.bySource.batch}; ` +
      `versions ${
        Object.entries(r.byVersion)
          .map(([v, n]) => `${v} ${n}`)
          .join(', ') || '-'
      })${r.unreadable > 0 ? `, ${r.unreadable} unreadable` : ''}` +
      (r.withoutFeatures > 0 ? `; ${r.withoutFeatures} without features (id-only) not binned` : ''),
  ];
  if (report.baseline) lines.push(`baseline: ${report.baseline.version} (${report.baseline.key})`);
  const drift = report.drift;
  if (!drift) return [...lines, ...qualityLines(report)].join('\n');
  lines.push(
    '',
    `${'FEATURE'.padEnd(24)} ${'PSI'.padStart(8)}  ${'MISSING base -> now'.padEnd(20)} UNSEEN`,
    ...drift.features.map(
      (f) =>
        `${f.name.padEnd(24)} ${fixed(f.psi).padStart(8)}${f.drifted ? '!' : ' '} ${`${pct(f.missingRate.baseline)} -> ${pct(f.missingRate.current)}`.padEnd(20)} ${(
          f.unseen ?? []
        )
          .slice(0, 3)
          .map((u) => `${u.value} (${u.count})`)
          .join(', ')}`,
    ),
    `${`prediction (${drift.prediction.score ?? 'value'})`.padEnd(24)} ${fixed(drift.prediction.psi).padStart(8)}  ` +
      (drift.prediction.labels
        ? `labels ${Object.entries(drift.prediction.labels.current)
            .map(([l, s]) => `${l} ${pct(s)}`)
            .join(', ')} (baseline ${Object.entries(drift.prediction.labels.baseline)
            .map(([l, s]) => `${l} ${pct(s)}`)
            .join(', ')})`
        : ''),
    `(! = above the threshold ${drift.threshold})`,
  );
  const worst = drift.features.filter((f) => f.psi !== undefined).slice(0, 2);
  for (const f of worst) lines.push('', ...histogram(f));
  return [...lines, ...qualityLines(report)].join('\n');
}

/** The report's live quality section (the table `monitor quality` prints), or why it is missing. */
function qualityLines(report: DriftReport): string[] {
  if (report.quality) return ['', 'live quality:', qualityTable(report.quality)];
  if (report.qualityError) return ['', `live quality: not measured: ${report.qualityError}`];
  return [];
}
