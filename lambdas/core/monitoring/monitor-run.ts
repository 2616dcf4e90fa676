/**
 * One monitor run of one model: reads the captures written since the last run (under
 * capture/<model>/<source>/, sources realtime, stream and batch; never shadow), bins them against the
 * live version's baseline, and writes a report to monitoring/<model>/drift/<time>.json and the window it
 * covered to monitoring/<model>/state.json (the next run starts there).
 *
 * A capture object belongs to the run whose window (from, to] holds the time in its key (the flush time),
 * so each object is read by exactly one run. The first run, or one whose state is unreadable, looks back
 * `firstLookbackMinutes`; a window never spans more than MAX_WINDOW_HOURS.
 */
import { gunzipSync } from 'node:zlib';
import type { ModelSource, ObjectStore } from '../ports.ts';
import type { Prediction } from '../predictions.ts';
import { BASELINE_FILE, parseBaseline, type Baseline } from './baseline.ts';
import { DriftAccumulator, driftFigures, type DriftFigures } from './drift.ts';
import { MonitoringError } from './errors.ts';
import type { MonitorQuality } from './monitor-quality.ts';

/** The capture sources the monitor reads (shadow predictions are not served answers: never read). */
export const MONITORED_SOURCES = ['realtime', 'stream', 'batch'] as const;
export type MonitoredSource = (typeof MONITORED_SOURCES)[number];

export const DRIFT_REPORT_SCHEMA_VERSION = 1;
/** The longest window one run reads (a monitor that was off for weeks catches up on the last week). */
export const MAX_WINDOW_HOURS = 7 * 24;

export function monitoringPrefix(model: string): string {
  return `monitoring/${model}/`;
}
export function monitorStateKey(model: string): string {
  return `${monitoringPrefix(model)}state.json`;
}
export function driftReportPrefix(model: string): string {
  return `${monitoringPrefix(model)}drift/`;
}
/** Compact ISO time (as capture keys use): keys sort by time. */
export function timeStamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:.]/g, '');
}
export function driftReportKey(model: string, ms: number): string {
  return `${driftReportPrefix(model)}${timeStamp(ms)}.json`;
}

const STAMP = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z/;
/** The time of a compact stamp at the start of a name; undefined when there is none. */
export function stampTime(name: string): number | undefined {
  const m = STAMP.exec(name);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`);
  return Number.isFinite(ms) ? ms : undefined;
}

export interface MonitorState {
  readonly schemaVersion: 1;
  /** ISO time: the end of the last run's window, the start of the next one's. */
  readonly lastWindowEnd: string;
  readonly lastReportKey: string;
}

export type MonitorStatus = 'drift' | 'ok' | 'no-data' | 'too-few-records' | 'no-baseline';

export interface DriftReport {
  readonly schemaVersion: typeof DRIFT_REPORT_SCHEMA_VERSION;
  readonly model: string;
  readonly generatedAt: string;
  readonly window: { readonly from: string; readonly to: string; readonly firstRun: boolean };
  /** drift: a feature passes the threshold; ok: none does; no-data: no captures; too-few-records: fewer than the minimum; no-baseline: nothing to compare with. */
  readonly status: MonitorStatus;
  readonly message: string;
  readonly records: {
    readonly total: number;
    readonly bySource: Readonly<Record<MonitoredSource, number>>;
    readonly byVersion: Readonly<Record<string, number>>;
    /** Capture objects read, and lines or objects that could not be read (skipped). */
    readonly objects: number;
    readonly unreadable: number;
    /** Records without features (id-only requests answered from the table): nothing to bin. */
    readonly withoutFeatures: number;
  };
  readonly minRecords: number;
  /** The baseline compared with: the live version's. */
  readonly baseline?: { readonly version: string; readonly key: string; readonly createdAt?: string };
  /** Present when there were enough records and a baseline. */
  readonly drift?: DriftFigures;
  /** Live quality per version over the week of outcomes before the run (POST /feedback). */
  readonly quality?: MonitorQuality;
  /** Why quality could not be measured (the drift figures stand). */
  readonly qualityError?: string;
}

export interface MonitorDeps {
  readonly objects: ObjectStore;
  readonly bucket: string;
  /** Where model packages are in the bucket (`models/`). */
  readonly modelsPrefix: string;
  /** The live version (current.json). */
  readonly models: Pick<ModelSource, 'currentVersion'>;
  /**
   * Live quality per version (monitor-quality.ts), carried beside `drift`; absent: the report has none.
   * A measurement that fails is reported as `qualityError`, never fails the drift run.
   */
  readonly quality?: (model: string, live: string, toMs: number) => Promise<MonitorQuality>;
  readonly now?: () => number;
}

export interface MonitorSettings {
  /** PSI above which a feature counts as drifted. */
  readonly threshold: number;
  /** Fewer records than this: "too few records", no drift figures. */
  readonly minRecords: number;
  /** The first run's window. */
  readonly firstLookbackMinutes: number;
}

export interface MonitorOutcome {
  readonly report: DriftReport;
  readonly key: string;
}

interface CapturedLine {
  readonly version?: unknown;
  readonly features?: unknown;
  readonly prediction?: unknown;
}

const utf8 = new TextDecoder();

/** The baseline of a version, or undefined when it has none (a malformed one throws INVALID_BASELINE). */
export async function readBaseline(
  deps: Pick<MonitorDeps, 'objects' | 'bucket' | 'modelsPrefix'>,
  model: string,
  version: string,
): Promise<{ baseline: Baseline; key: string } | undefined> {
  const key = baselineKey(deps.modelsPrefix, model, version);
  if (!(await deps.objects.head(deps.bucket, key))) return undefined;
  return { baseline: parseBaseline(await deps.objects.readBytes(deps.bucket, key), key), key };
}

export function baselineKey(modelsPrefix: string, model: string, version: string): string {
  return `${modelsPrefix}${model}/${version}/${BASELINE_FILE}`;
}

async function readState(deps: MonitorDeps, model: string): Promise<MonitorState | undefined> {
  const key = monitorStateKey(model);
  if (!(await deps.objects.head(deps.bucket, key))) return undefined;
  try {
    const state = JSON.parse(utf8.decode(await deps.objects.readBytes(deps.bucket, key))) as MonitorState;
    if (typeof state.lastWindowEnd !== 'string' || !Number.isFinite(Date.parse(state.lastWindowEnd)))
      throw new Error('no lastWindowEnd');
    return state;
  } catch (cause) {
    throw new MonitoringError(
      'INVALID_MONITOR_STATE',
      `${key} is not a monitor state (${(cause as Error).message}): delete it to start again from the look-back`,
      { cause },
    );
  }
}

/** The capture object keys of one source whose time is in (from, to]. */
async function captureKeys(
  deps: MonitorDeps,
  model: string,
  source: MonitoredSource,
  from: number,
  to: number,
): Promise<string[]> {
  const hour = 3_600_000;
  const keys: string[] = [];
  for (let t = Math.floor(from / hour) * hour; t <= to; t += hour) {
    const iso = new Date(t).toISOString();
    const partition = `capture/${model}/${source}/dt=${iso.slice(0, 10)}/hr=${iso.slice(11, 13)}/`;
    for (const key of await deps.objects.list(deps.bucket, partition)) {
      const at = stampTime(key.slice(partition.length));
      if (at !== undefined && at > from && at <= to) keys.push(key);
    }
  }
  return keys;
}

function parseLines(bytes: Uint8Array): { lines: CapturedLine[]; unreadable: number } {
  const text = utf8.decode(gunzipSync(bytes));
  const lines: CapturedLine[] = [];
  let unreadable = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const value = JSON.parse(line) as unknown;
      if (value !== null && typeof value === 'object' && !Array.isArray(value))
        lines.push(value as CapturedLine);
      else unreadable++;
    } catch {
      unreadable++;
    }
  }
  return { lines, unreadable };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Runs the monitor for one model now; writes the report and the state. */
export async function runMonitor(
  model: string,
  deps: MonitorDeps,
  settings: MonitorSettings,
): Promise<MonitorOutcome> {
  const to = (deps.now ?? Date.now)();
  const state = await readState(deps, model);
  const firstRun = state === undefined;
  const from = Math.max(
    state ? Date.parse(state.lastWindowEnd) : to - settings.firstLookbackMinutes * 60_000,
    to - MAX_WINDOW_HOURS * 3_600_000,
  );

  const live = await deps.models.currentVersion(model).catch(() => undefined);
  const found = live === undefined ? undefined : await readBaseline(deps, model, live);
  const accumulator = found ? new DriftAccumulator(found.baseline) : undefined;

  const bySource = { realtime: 0, stream: 0, batch: 0 } as Record<MonitoredSource, number>;
  const byVersion: Record<string, number> = {};
  let objects = 0;
  let unreadable = 0;
  let withoutFeatures = 0;
  for (const source of MONITORED_SOURCES) {
    for (const key of await captureKeys(deps, model, source, from, to)) {
      objects++;
      let parsed: { lines: CapturedLine[]; unreadable: number };
      try {
        parsed = parseLines(await deps.objects.readBytes(deps.bucket, key));
      } catch (error) {
        // A corrupt object is skipped and counted; an unreadable store fails the run (thrown by readBytes).
        if (
          error instanceof Error &&
          'code' in error &&
          typeof error.code === 'string' &&
          error.code.startsWith('Z_')
        ) {
          unreadable++;
          continue;
        }
        throw error;
      }
      unreadable += parsed.unreadable;
      for (const line of parsed.lines) {
        if (line.features === undefined || line.features === null) {
          withoutFeatures++;
          continue;
        }
        if (!isObject(line.features)) {
          unreadable++;
          continue;
        }
        const version = typeof line.version === 'string' ? line.version : '(unknown)';
        bySource[source]++;
        byVersion[version] = (byVersion[version] ?? 0) + 1;
        if (!accumulator) continue;
        const features = line.features;
        accumulator.addFeatures((name) => features[name]);
        // Predictions depend on the version: only the baseline version's are compared.
        if (version === found!.baseline.version && isObject(line.prediction))
          accumulator.addPrediction(line.prediction as Prediction);
      }
    }
  }

  const total = bySource.realtime + bySource.stream + bySource.batch;
  const window = { from: new Date(from).toISOString(), to: new Date(to).toISOString(), firstRun };
  let status: MonitorStatus;
  let message: string;
  let drift: DriftFigures | undefined;
  if (total === 0) {
    status = 'no-data';
    message = `no data: no captures of ${model} from ${window.from} to ${window.to} (not drift)`;
  } else if (!found) {
    status = 'no-baseline';
    message =
      live === undefined
        ? `${model} has no live version (current.json): no baseline to compare ${total} records with`
        : `${model}@${live} has no ${BASELINE_FILE}: make one with \`tandem monitor baseline ${model} --dataset <file>\``;
  } else if (total < settings.minRecords) {
    status = 'too-few-records';
    message = `too few records: ${total} captured, the minimum for drift figures is ${settings.minRecords} (not drift)`;
  } else {
    drift = driftFigures(found.baseline, accumulator!.counts, settings.threshold);
    status = drift.drifted.length > 0 ? 'drift' : 'ok';
    message =
      drift.drifted.length > 0
        ? `drift: ${drift.drifted.join(', ')} above PSI ${settings.threshold} (${total} records)`
        : `no feature above PSI ${settings.threshold} (${total} records)`;
  }
  let quality: Pick<DriftReport, 'quality' | 'qualityError'> = {};
  if (deps.quality && live !== undefined) {
    try {
      quality = { quality: await deps.quality(model, live, to) };
    } catch (error) {
      quality = { qualityError: error instanceof Error ? error.message : String(error) };
    }
  }
  const report: DriftReport = {
    schemaVersion: DRIFT_REPORT_SCHEMA_VERSION,
    model,
    generatedAt: new Date(to).toISOString(),
    window,
    status,
    message,
    records: { total, bySource, byVersion, objects, unreadable, withoutFeatures },
    minRecords: settings.minRecords,
    ...(found
      ? { baseline: { version: found.baseline.version, key: found.key, createdAt: found.baseline.createdAt } }
      : {}),
    ...(drift ? { drift } : {}),
    ...quality,
  };
  const key = driftReportKey(model, to);
  await deps.objects.writeBytes(deps.bucket, key, JSON.stringify(report, null, 2), 'application/json');
  const next: MonitorState = { schemaVersion: 1, lastWindowEnd: window.to, lastReportKey: key };
  await deps.objects.writeBytes(
    deps.bucket,
    monitorStateKey(model),
    JSON.stringify(next),
    'application/json',
  );
  return { report, key };
}

/** The latest report of a model, or undefined when the monitor never ran for it. */
export async function latestReport(
  deps: Pick<MonitorDeps, 'objects' | 'bucket'>,
  model: string,
): Promise<MonitorOutcome | undefined> {
  const keys = await deps.objects.list(deps.bucket, driftReportPrefix(model));
  const key = keys
    .filter((k) => k.endsWith('.json'))
    .sort()
    .at(-1);
  if (key === undefined) return undefined;
  return {
    key,
    report: JSON.parse(utf8.decode(await deps.objects.readBytes(deps.bucket, key))) as DriftReport,
  };
}

/** The models the monitor runs for: every model with a live version under models/. */
export async function monitoredModels(models: Pick<ModelSource, 'list'>): Promise<string[]> {
  return (await models.list()).sort();
}
