/**
 * Gathers what live quality is computed from, for one model over a window, and computes it
 * (`measureQuality`, the one entry point: the `monitor quality` command and the monitor job call it):
 *
 * - outcomes: `feedback/<model>/dt=<day>/` from the window's start to now (an outcome is received at or
 *   after it is observed), those observed in the window;
 * - predictions: the captures of every source (`capture/<model>/<source>/dt=<day>/`; of a `shadow`
 *   comparison, the shadow version's answer) from `lookbackMs`
 *   before the window to its end, and the table's items `<model>#<version>#<id>` of the outcomes' ids for
 *   the versions asked for and the versions the captures name (the precomputed predictions; the table
 *   keeps one item per key: the latest written).
 *
 * The join and the figures are quality.ts's.
 */
import { gunzipSync } from 'node:zlib';
import { predictionKey, type StoredPrediction } from '../cache-policy.ts';
import { CAPTURE_ROOT, CAPTURE_SOURCES, type CaptureRecord } from '../capture/capture-record.ts';
import { feedbackPartitionsBetween, type FeedbackRecord } from '../feedback/feedback-record.ts';
import type { ClassLabel, Task } from '../manifest.ts';
import type { ObjectStore, PredictionStore } from '../ports.ts';
import type { Prediction } from '../predictions.ts';
import {
  qualityMetrics,
  qualityReport,
  type OutcomeInput,
  type PredictionInput,
  type QualityInputs,
  type QualityMetric,
  type QualityReport,
} from './quality.ts';

const DAY_MS = 86_400_000;
const READS_IN_FLIGHT = 8;

export interface QualitySources {
  readonly objects: ObjectStore;
  /** The data bucket (feedback/ and capture/). */
  readonly bucket: string;
  /** The prediction table; absent: captures only. */
  readonly predictions?: PredictionStore;
  /** Publishes the figures (CloudWatch through Powertools Metrics, deployed). */
  readonly publish?: (metrics: readonly QualityMetric[]) => void;
  readonly now?: () => number;
}

export interface QualityModel {
  readonly name: string;
  readonly task: Task;
  /** In probability order (the manifest's); undefined: from the predictions. */
  readonly classes?: readonly ClassLabel[];
  /** Versions whose table items are read (e.g. every version in the store). */
  readonly versions?: readonly string[];
}

export interface QualityWindow {
  /** Outcomes observed in the last `windowMs` before `toMs`. @default 7 days */
  readonly windowMs?: number;
  /** @default now */
  readonly toMs?: number;
  /** How long before the window a prediction may have been made. @default 7 days */
  readonly lookbackMs?: number;
}

/** Objects that could not be read or parsed (counted, skipped). */
export interface GatherProblems {
  unreadable: number;
}

function dayPrefixes(root: string, fromMs: number, toMs: number): string[] {
  const out: string[] = [];
  for (let t = Math.floor(fromMs / DAY_MS) * DAY_MS; t <= toMs; t += DAY_MS)
    out.push(`${root}dt=${new Date(t).toISOString().slice(0, 10)}/`);
  return out;
}

async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}

/** The JSON Lines of every object under the prefixes; an unreadable object is counted and skipped. */
async function readJsonLines<T>(
  sources: QualitySources,
  prefixes: readonly string[],
  problems: GatherProblems,
): Promise<T[]> {
  const keys = (
    await mapLimited(prefixes, READS_IN_FLIGHT, (p) => sources.objects.list(sources.bucket, p))
  ).flat();
  const objects = await mapLimited(keys, READS_IN_FLIGHT, async (key) => {
    try {
      const text = gunzipSync(await sources.objects.readBytes(sources.bucket, key)).toString('utf8');
      return text
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as T);
    } catch {
      problems.unreadable++;
      return [];
    }
  });
  return objects.flat();
}

function isPrediction(value: unknown): value is Prediction {
  return value !== null && typeof value === 'object' && ('label' in value || 'value' in value);
}

export async function gatherQualityInputs(
  sources: QualitySources,
  model: QualityModel,
  window: QualityWindow = {},
  problems: GatherProblems = { unreadable: 0 },
): Promise<QualityInputs> {
  const now = (sources.now ?? Date.now)();
  const toMs = window.toMs ?? now;
  const fromMs = toMs - (window.windowMs ?? 7 * DAY_MS);
  const predictionsFromMs = fromMs - (window.lookbackMs ?? 7 * DAY_MS);

  const feedback = await readJsonLines<FeedbackRecord>(
    sources,
    feedbackPartitionsBetween(model.name, fromMs, Math.max(toMs, now)),
    problems,
  );
  const outcomes: OutcomeInput[] = feedback.flatMap((r) => {
    const observedAtMs = Date.parse(r.observedAt);
    if (typeof r.id !== 'string' || Number.isNaN(observedAtMs)) return [];
    return [
      {
        id: r.id,
        ...(r.label !== undefined ? { label: r.label } : {}),
        ...(typeof r.value === 'number' ? { value: r.value } : {}),
        observedAtMs,
        receivedAtMs: Date.parse(r.receivedAt) || 0,
      },
    ];
  });
  const ids = new Set(outcomes.map((o) => o.id));

  const predictions: PredictionInput[] = [];
  const versions = new Set(model.versions ?? []);
  // Without an outcome no prediction can match: the captures (up to two weeks of them) are not read.
  for (const source of ids.size > 0 ? CAPTURE_SOURCES : []) {
    const root = `${CAPTURE_ROOT}${model.name}/${source}/`;
    const records = await readJsonLines<CaptureRecord>(
      sources,
      dayPrefixes(root, predictionsFromMs, toMs),
      problems,
    );
    for (const r of records) {
      const timeMs = Date.parse(r.time);
      // A shadow record's live answer is the real-time lane's; what it adds is the shadow version's answer.
      const version = source === 'shadow' ? r.shadowVersion : r.version;
      const prediction = source === 'shadow' ? r.shadowPrediction : r.prediction;
      if (r.id === null || !ids.has(r.id) || Number.isNaN(timeMs) || version === undefined) continue;
      if (!isPrediction(prediction)) continue;
      versions.add(version);
      predictions.push({ id: r.id, version, prediction, timeMs, origin: source });
    }
  }

  if (sources.predictions && ids.size > 0 && versions.size > 0) {
    const keys = [...ids].flatMap((id) => [...versions].map((v) => predictionKey(model.name, v, id)));
    const found: StoredPrediction[] = [];
    // A thousand keys a call: the store reads a call's keys all at once.
    for (let i = 0; i < keys.length; i += 1000)
      found.push(...(await sources.predictions.getMany(keys.slice(i, i + 1000))).values());
    for (const item of found) {
      predictions.push({
        id: item.entityId,
        version: item.modelVersion,
        prediction: item.prediction,
        timeMs: item.computedAt,
        origin: 'table',
      });
    }
  }

  return {
    model: model.name,
    task: model.task,
    ...(model.classes ? { classes: model.classes } : {}),
    window: { fromMs, toMs },
    outcomes,
    predictions,
  };
}

/** The quality per version of a model over a window; publishes its figures when `sources.publish` is set. */
export async function measureQuality(
  sources: QualitySources,
  model: QualityModel,
  window: QualityWindow = {},
): Promise<QualityReport & { readonly unreadableObjects: number }> {
  const problems: GatherProblems = { unreadable: 0 };
  const report = qualityReport(await gatherQualityInputs(sources, model, window, problems));
  sources.publish?.(qualityMetrics(report));
  return { ...report, unreadableObjects: problems.unreadable };
}
