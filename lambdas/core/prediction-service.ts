/**
 * The real-time lane: precomputed predictions first (one batched read within a time budget), the model
 * for the rest (one run), results in request order.
 */
import {
  ageSeconds,
  judgeCached,
  predictionKey,
  storedPrediction,
  type CacheVerdict,
  type StoredPrediction,
} from './cache-policy.ts';
import { CacheUnavailableError, NotPrecomputedError, type ErrorDetail } from './errors.ts';
import { validateFeatureObjects, type FeatureRow } from './features.ts';
import type { ServedModel } from './model-loader.ts';
import type { PredictRequest } from './predict-request.ts';
import type { Prediction } from './predictions.ts';
import type { PredictionStore } from './ports.ts';

export interface PredictionServiceOptions {
  /** How long the cache read may take before the model answers without it. */
  readonly cacheBudgetMs: number;
  /** Store model answers for ids in the table (source `online`). */
  readonly writeThrough: boolean;
  readonly now?: () => number;
}

export interface InstanceResult {
  readonly id: string | null;
  readonly prediction: Prediction;
  readonly source: 'cache' | 'model';
  readonly model: { readonly name: string; readonly version: string };
  readonly computedAt: string;
  readonly ageSeconds: number;
  /** What the cache said for this instance. */
  readonly cacheStatus: CacheVerdict | 'bypassed' | 'skipped' | 'no-id';
}

export type CacheStatus =
  | { readonly status: 'used'; readonly latencyMs: number }
  | { readonly status: 'bypassed' | 'not-needed' }
  | { readonly status: 'skipped'; readonly reason: string; readonly latencyMs: number };

export interface PredictOutcome {
  readonly results: InstanceResult[];
  readonly cache: CacheStatus;
  readonly stats: {
    readonly verdicts: Readonly<Record<CacheVerdict, number>>;
    /** Ages of the cache entries served, seconds. */
    readonly servedAges: readonly number[];
    readonly modelInstances: number;
    readonly modelLatencyMs: number | undefined;
    readonly writeThrough: { written: number; skipped: number } | { error: string } | undefined;
  };
}

class Deadline extends Error {}

let lastIsoMs = Number.NaN;
let lastIso = '';

/** `new Date(ms).toISOString()`, remembered for the last millisecond asked (many requests share one). */
function isoTime(ms: number): string {
  if (ms !== lastIsoMs) {
    lastIso = new Date(ms).toISOString();
    lastIsoMs = ms;
  }
  return lastIso;
}

async function readWithin(
  store: PredictionStore,
  keys: readonly string[],
  budgetMs: number,
): Promise<Map<string, StoredPrediction>> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new Deadline(`no answer within ${budgetMs} ms`));
    }, budgetMs);
  });
  try {
    return await Promise.race([store.getMany(keys, controller.signal), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function describeFailure(error: unknown): string {
  if (error instanceof Deadline) return error.message;
  const name = (error as { name?: string }).name ?? 'Error';
  return `store error (${name})`;
}

export class PredictionService {
  private readonly now: () => number;

  constructor(
    private readonly store: PredictionStore | undefined,
    private readonly options: PredictionServiceOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  async predict(request: PredictRequest, model: ServedModel): Promise<PredictOutcome> {
    const { instances } = request;
    const count = instances.length;
    const withFeatures: { index: number; features: unknown }[] = [];
    for (let index = 0; index < count; index++) {
      const features = instances[index]!.features;
      if (features !== undefined) withFeatures.push({ index, features });
    }
    // Every instance is validated before anything is read or scored: one invalid instance rejects all.
    const rows = validateFeatureObjects(model.validator, withFeatures, request.single);
    const rowOf = new Array<FeatureRow | undefined>(count);
    for (let k = 0; k < rows.length; k++) rowOf[withFeatures[k]!.index] = rows[k];

    const verdicts: Record<CacheVerdict, number> = {
      hit: 0,
      miss: 0,
      stale: 0,
      expired: 0,
      'version-mismatch': 0,
    };
    const servedAges: number[] = [];
    const results = new Array<InstanceResult>(count);
    const startedAt = this.now();

    let cache: CacheStatus;
    let found: Map<string, StoredPrediction> | undefined;
    if (request.bypassCache) {
      cache = { status: 'bypassed' };
    } else if (!this.store || !instances.some((i) => i.id !== undefined)) {
      cache = { status: 'not-needed' };
    } else {
      const keys = new Set<string>();
      for (const instance of instances) {
        if (instance.id !== undefined) keys.add(predictionKey(model.name, instance.id));
      }
      const readStart = performance.now();
      try {
        found = await readWithin(this.store, [...keys], this.options.cacheBudgetMs);
        cache = { status: 'used', latencyMs: performance.now() - readStart };
      } catch (error) {
        cache = {
          status: 'skipped',
          reason: describeFailure(error),
          latencyMs: performance.now() - readStart,
        };
      }
    }

    const policy = {
      nowMs: found ? this.now() : startedAt,
      maxAgeSeconds: request.maxStalenessSeconds ?? model.manifest.cache.maxAgeSeconds,
      modelVersion: model.version,
    };
    const toScore: { index: number; status: InstanceResult['cacheStatus'] }[] = [];
    const unanswerable: ErrorDetail[] = [];
    for (let index = 0; index < count; index++) {
      const instance = instances[index]!;
      let status: InstanceResult['cacheStatus'] =
        instance.id === undefined ? 'no-id' : request.bypassCache ? 'bypassed' : 'skipped';
      if (found && instance.id !== undefined) {
        const item = found.get(predictionKey(model.name, instance.id));
        status = judgeCached(item, policy);
        verdicts[status]++;
        if (status === 'hit' && item) {
          const age = ageSeconds(item.computedAt, policy.nowMs);
          servedAges.push(age);
          results[index] = {
            id: instance.id,
            prediction: item.prediction,
            source: 'cache',
            model: { name: model.name, version: item.modelVersion },
            computedAt: new Date(item.computedAt).toISOString(),
            ageSeconds: age,
            cacheStatus: 'hit',
          };
          continue;
        }
      }
      if (rowOf[index] !== undefined) {
        toScore.push({ index, status });
      } else {
        unanswerable.push({
          instance: index,
          field: request.single ? 'id' : `instances.${index}.id`,
          message: `"${instance.id}": ${status === 'skipped' ? 'the prediction store is unavailable' : `no usable precomputed prediction (${status})`} and no features to score`,
        });
      }
    }

    if (unanswerable.length > 0) {
      const ErrorType = cache.status === 'skipped' ? CacheUnavailableError : NotPrecomputedError;
      const what =
        cache.status === 'skipped'
          ? `the prediction store is unavailable (${cache.reason})`
          : 'nothing is precomputed for';
      throw new ErrorType(
        `${what} ${unanswerable.length === 1 ? 'an instance' : `${unanswerable.length} instances`} without features: send "features" to have the model score ${unanswerable.length === 1 ? 'it' : 'them'}`,
        unanswerable,
      );
    }

    let modelLatencyMs: number | undefined;
    if (toScore.length > 0) {
      const scoredRows = new Array<FeatureRow>(toScore.length);
      for (let k = 0; k < toScore.length; k++) scoredRows[k] = rowOf[toScore[k]!.index]!;
      const runStart = performance.now();
      const predictions = await model.score(scoredRows);
      modelLatencyMs = performance.now() - runStart;
      const modelRef = { name: model.name, version: model.version };
      const computedAt = isoTime(startedAt);
      for (let k = 0; k < toScore.length; k++) {
        const { index, status } = toScore[k]!;
        results[index] = {
          id: instances[index]!.id ?? null,
          prediction: predictions[k]!,
          source: 'model',
          model: modelRef,
          computedAt,
          ageSeconds: 0,
          cacheStatus: status,
        };
      }
    }

    const writeThrough = this.options.writeThrough
      ? await this.writeThrough(
          model,
          toScore.map(({ index }) => results[index]!),
          startedAt,
        )
      : undefined;
    return {
      results,
      cache,
      stats: { verdicts, servedAges, modelInstances: toScore.length, modelLatencyMs, writeThrough },
    };
  }

  /**
   * Off by default: callers' features are not the batch's canonical features, so storing answers keyed
   * by entity would serve one caller's inputs to another; it also adds a write to each miss.
   */
  private async writeThrough(
    model: ServedModel,
    scored: readonly InstanceResult[],
    computedAt: number,
  ): Promise<PredictOutcome['stats']['writeThrough']> {
    if (!this.options.writeThrough || !this.store) return undefined;
    const latest = new Map<string, StoredPrediction>();
    for (const result of scored) {
      if (result.id === null) continue;
      latest.set(
        result.id,
        storedPrediction(
          {
            model: model.name,
            entityId: result.id,
            prediction: result.prediction,
            modelVersion: model.version,
            computedAt,
            source: 'online',
          },
          model.manifest.cache.ttlSeconds,
        ),
      );
    }
    if (latest.size === 0) return undefined;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.options.cacheBudgetMs);
    try {
      return await this.store.putMany([...latest.values()], controller.signal);
    } catch (error) {
      return { error: describeFailure(error) };
    } finally {
      clearTimeout(timer);
    }
  }
}
