/**
 * The local stack's per-version metrics, for the automatic rollout's checks. Deployed, the API's
 * per-version metrics go to CloudWatch and the rollout function reads them with GetMetricData; locally
 * Powertools publishes nothing, so `npm start` taps the same values (ApiMetrics.tap) and appends one line
 * per model version and second to `<data-dir>/version-metrics/<model>/<version>.jsonl`:
 *
 *   {"t": 1765000000000, "instances": 12, "errors": 0, "latencyMs": [1.2, ...],
 *    "labels": {"0": 11, "1": 1}, "probabilitySums": {"0": 10.4, "1": 1.6}, "valueSum": 3.2}
 *
 * The CLI (another process) reads them back as windows (`FileVersionMetrics`). A second's line is written
 * about a second after it ends; latency values are kept up to 1,000 a second. A file that passes
 * `maxFileBytes` (32 MB by default: hours of heavy traffic) is renamed `<version>.jsonl.1`, replacing the
 * previous one, and a new file is started: at most twice that per version on disk, and a window reads both.
 */
import { appendFile, mkdir, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import type { VersionMetricsSource } from '../lambdas/core/lifecycle/rollout.ts';
import { p99, type VersionWindow } from '../lambdas/core/lifecycle/rollout-checks.ts';
import type { VersionDimensions } from '../lambdas/handlers/api/api-metrics.ts';

export const VERSION_METRICS_FOLDER = 'version-metrics';
const MAX_LATENCIES_PER_SECOND = 1000;
export const MAX_VERSION_METRICS_FILE_BYTES = 32 * 1024 * 1024;

interface SecondLine {
  t: number;
  instances: number;
  errors: number;
  latencyMs: number[];
  labels: Record<string, number>;
  probabilitySums: Record<string, number>;
  valueSum?: number;
}

const newLine = (t: number): SecondLine => ({
  t,
  instances: 0,
  errors: 0,
  latencyMs: [],
  labels: {},
  probabilitySums: {},
});

function versionFile(dataDir: string, model: string, version: string): string {
  return path.join(dataDir, VERSION_METRICS_FOLDER, model, `${version}.jsonl`);
}

/** Collects the API's per-version values by second and appends the seconds that have ended. */
export class VersionMetricsRecorder {
  private readonly open = new Map<string, { model: string; version: string; line: SecondLine }>();
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly dataDir: string,
    private readonly now: () => number = Date.now,
    private readonly maxFileBytes = MAX_VERSION_METRICS_FILE_BYTES,
  ) {}

  /** An ApiMetrics tap. */
  readonly record = (name: string, value: number, { name: model, version }: VersionDimensions): void => {
    const t = Math.floor(this.now() / 1000) * 1000;
    const key = `${model}\0${version}`;
    let entry = this.open.get(key);
    if (entry && entry.line.t !== t) {
      this.write(entry.model, entry.version, [entry.line]);
      entry = undefined;
    }
    if (!entry) {
      entry = { model, version, line: newLine(t) };
      this.open.set(key, entry);
    }
    const line = entry.line;
    if (name === 'Instances') line.instances += value;
    else if (name === 'Errors') line.errors += value;
    else if (name === 'ModelLatency') {
      if (line.latencyMs.length < MAX_LATENCIES_PER_SECOND)
        line.latencyMs.push(Math.round(value * 1000) / 1000);
    } else if (name === 'ValueSum') line.valueSum = (line.valueSum ?? 0) + value;
    else if (name.startsWith('Label.')) add(line.labels, name.slice('Label.'.length), value);
    else if (name.startsWith('ProbabilitySum.'))
      add(line.probabilitySums, name.slice('ProbabilitySum.'.length), value);
  };

  /** Writes the seconds that have ended (every second on a timer), or all of them (`all`, at stop). */
  flush(all = false): Promise<void> {
    const t = Math.floor(this.now() / 1000) * 1000;
    for (const [key, entry] of this.open) {
      if (!all && entry.line.t >= t) continue;
      this.open.delete(key);
      this.write(entry.model, entry.version, [entry.line]);
    }
    return this.writing;
  }

  private write(model: string, version: string, lines: SecondLine[]): void {
    const file = versionFile(this.dataDir, model, version);
    const text = lines.map((l) => `${JSON.stringify(l)}\n`).join('');
    // One write at a time, in order; a failed write loses that second (the checks see less traffic).
    this.writing = this.writing
      .then(() => mkdir(path.dirname(file), { recursive: true }))
      .then(() => this.rotateIfFull(file))
      .then(() => appendFile(file, text))
      .catch(() => undefined);
  }

  /** Keeps the file bounded: past maxFileBytes it becomes `<file>.1` (replacing the older one). */
  private async rotateIfFull(file: string): Promise<void> {
    const size = await stat(file).then(
      (info) => info.size,
      () => 0,
    );
    if (size >= this.maxFileBytes) await rename(file, `${file}.1`);
  }
}

function add(sums: Record<string, number>, key: string, value: number): void {
  sums[key] = (sums[key] ?? 0) + value;
}

/** Reads the windows the local stack wrote. */
export class FileVersionMetrics implements VersionMetricsSource {
  constructor(private readonly dataDir: string) {}

  async window(model: string, version: string, fromMs: number, toMs: number): Promise<VersionWindow> {
    const file = versionFile(this.dataDir, model, version);
    // The rotated file first (older seconds), then the current one.
    const text = `${await readIfPresent(`${file}.1`)}\n${await readIfPresent(file)}`;
    const lines: SecondLine[] = [];
    for (const row of text.split('\n')) {
      if (row.trim() === '') continue;
      let line: SecondLine;
      try {
        line = JSON.parse(row) as SecondLine;
      } catch {
        continue; // a line cut short by a crash
      }
      // A second counts when it started within the window (it may end a little after `toMs`).
      if (line.t + 1000 > fromMs && line.t <= toMs) lines.push(line);
    }
    return sumLines(lines);
  }
}

async function readIfPresent(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw error;
  }
}

function sumLines(lines: readonly SecondLine[]): VersionWindow {
  const labels: Record<string, number> = {};
  const probabilitySums: Record<string, number> = {};
  let instances = 0;
  let errors = 0;
  let valueSum: number | undefined;
  const latencies: number[] = [];
  for (const line of lines) {
    instances += line.instances;
    errors += line.errors;
    latencies.push(...line.latencyMs);
    for (const [k, v] of Object.entries(line.labels)) add(labels, k, v);
    for (const [k, v] of Object.entries(line.probabilitySums)) add(probabilitySums, k, v);
    if (line.valueSum !== undefined) valueSum = (valueSum ?? 0) + line.valueSum;
  }
  const latencyP99Ms = p99(latencies);
  return {
    instances,
    errors,
    ...(latencyP99Ms !== undefined ? { latencyP99Ms } : {}),
    labels,
    probabilitySums,
    ...(valueSum !== undefined ? { valueSum } : {}),
  };
}
