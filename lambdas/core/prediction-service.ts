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
import {
  CacheUnavailableError,
  NotPrecomputedError,
  PrecomputedTooOldError,
  PredictionStoreError,
  type ErrorDetail,
  type PredictionStoreErrorCode,
} from './errors.ts';
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
  | {
      readonly status: 'skipped';
      /** For the caller: what happened, in plain words. */
      readonly reason: string;
      /** For the logs only: the error's name and code, which callers never see. */
      readonly cause: string;
      readonly latencyMs: number;
    };

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

/** What each kind of store failure means, for the caller. */
const STORE_FAILURE_REASONS: Readonly<Record<PredictionStoreErrorCode, string>> = {
  STORE_THROTTLED: 'the table is throttling requests',
  STORE_TABLE_MISSING: 'the table does not exist',
  STORE_FORBIDDEN: 'the function may not read the table',
  STORE_UNREACHABLE: 'the table could not be reached',
  STORE_TIMEOUT: 'the table did not answer in time',
  STORE_SERVER_ERROR: 'the table answered with a server error',
  STORE_FAILED: 'the table read failed',
};

/**
 * Why the store failed: a plain reason for the caller, by the kind the adapter reported (never a
 * service's error name or message), and what the adapter said about it for the logs.
 */
function describeFailure(error: unknown): { reason: string; cause: string } {
  if (error instanceof Deadline) return { reason: error.message, cause: 'Deadline' };
  if (error instanceof PredictionStoreError) {
    return { reason: STORE_FAILURE_REASONS[error.code], cause: error.message };
  }
  return { reason: STORE_FAILURE_REASONS.STORE_FAILED, cause: error instanceof Error ? error.name : 'Error' };
}

const NO_VERDICTS: Readonly<Record<CacheVerdict, number>> = Object.freeze({
  hit: 0,
  miss: 0,
  stale: 0,
  expired: 0,
  'version-mismatch': 0,
});
const NO_AGES: readonly number[] = Object.freeze([]);
const BYPASSED = Object.freeze({ cache: Object.freeze({ status: 'bypassed' as const }), found: undefined });
const NOT_NEEDED = Object.freeze({
  cache: Object.freeze({ status: 'not-needed' as const }),
  found: undefined,
});

/** The cache outcome of a request that reads nothing. */
function noRead(request: PredictRequest): typeof BYPASSED | typeof NOT_NEEDED {
  return request.bypassCache ? BYPASSED : NOT_NEEDED;
}

/** The validated row of each instance with features (by instance index); throws on any invalid one. */
function validateInstances(request: PredictRequest, model: ServedModel): (FeatureRow | undefined)[] {
  const { instances } = request;
  const withFeatures: { index: number; features: unknown }[] = [];
  for (let index = 0; index < instances.length; index++) {
    const features = instances[index]!.features;
    if (features !== undefined) withFeatures.push({ index, features });
  }
  const rows = validateFeatureObjects(model.validator, withFeatures, request.single);
  const rowOf = new Array<FeatureRow | undefined>(instances.length);
  for (let k = 0; k < rows.length; k++) rowOf[withFeatures[k]!.index] = rows[k];
  return rowOf;
}

/** What the cache answered, and which instances the model scores (with the cache status of each). */
interface AnswerPlan {
  readonly results: InstanceResult[];
  /** Instance indexes to score, in request order. */
  readonly toScore: number[];
  /** The cache status of each instance in `toScore`. */
  readonly statuses: InstanceResult['cacheStatus'][];
  /** Only when the table was read. */
  readonly verdicts: Record<CacheVerdict, number> | undefined;
  readonly servedAges: number[] | undefined;
}

function answerFromCache(
  request: PredictRequest,
  model: ServedModel,
  rowOf: readonly (FeatureRow | undefined)[],
  cache: CacheStatus,
  found: Map<string, StoredPrediction> | undefined,
  nowMs: number,
): AnswerPlan {
  const { instances } = request;
  const plan: AnswerPlan = {
    results: new Array<InstanceResult>(instances.length),
    toScore: [],
    statuses: [],
    verdicts: found ? { hit: 0, miss: 0, stale: 0, expired: 0, 'version-mismatch': 0 } : undefined,
    servedAges: found ? [] : undefined,
  };
  const policy = found && {
    nowMs,
    maxAgeSeconds: request.maxStalenessSeconds ?? model.manifest.cache.maxAgeSeconds,
    modelVersion: model.version,
  };
  let unanswerable: ErrorDetail[] | undefined;
  // Whether every unanswerable instance has a precomputed prediction that is only too old, or none at all.
  let allTooOld = true;
  let noneFound = true;
  for (let index = 0; index < instances.length; index++) {
    const instance = instances[index]!;
    let status: InstanceResult['cacheStatus'] =
      instance.id === undefined ? 'no-id' : request.bypassCache ? 'bypassed' : 'skipped';
    let item: StoredPrediction | undefined;
    if (found && policy && instance.id !== undefined) {
      item = found.get(predictionKey(model.name, model.version, instance.id));
      status = judgeCached(item, policy);
      plan.verdicts![status]++;
      if (status === 'hit' && item) {
        const age = ageSeconds(item.computedAt, nowMs);
        plan.servedAges!.push(age);
        plan.results[index] = {
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
      plan.toScore.push(index);
      plan.statuses.push(status);
      continue;
    }
    const tooOld = item !== undefined && (status === 'stale' || status === 'expired');
    allTooOld &&= tooOld;
    noneFound &&= item === undefined;
    let why = `no usable precomputed prediction (${status})`;
    if (status === 'skipped') why = 'the prediction store is unavailable';
    else if (tooOld && status === 'stale')
      why = `its precomputed prediction is ${ageSeconds(item!.computedAt, nowMs)} s old, more than the ${policy!.maxAgeSeconds} s allowed`;
    else if (tooOld) why = 'its precomputed prediction is past its expiry time';
    (unanswerable ??= []).push({
      instance: index,
      field: request.single ? 'id' : `instances.${index}.id`,
      message: `"${instance.id}": ${why} and no features to score`,
    });
  }
  if (unanswerable) {
    const one = unanswerable.length === 1;
    const instancesText = one ? 'an instance' : `${unanswerable.length} instances`;
    const fix = `send "features" to have the model score ${one ? 'it' : 'them'}`;
    if (cache.status === 'skipped') {
      throw new CacheUnavailableError(
        'CACHE_UNAVAILABLE',
        `the prediction store is unavailable (${cache.reason}) and ${instancesText} without features cannot be answered: retry, or ${fix}`,
        { details: unanswerable },
      );
    }
    if (allTooOld) {
      throw new PrecomputedTooOldError(
        'PRECOMPUTED_TOO_OLD',
        `the precomputed prediction for ${instancesText} without features is too old to serve: ${fix}, or allow older predictions with a larger "maxStalenessSeconds"`,
        { details: unanswerable },
      );
    }
    throw new NotPrecomputedError(
      'NOT_PRECOMPUTED',
      noneFound
        ? `nothing is precomputed for ${instancesText} without features: ${fix}`
        : `no usable precomputed prediction for ${instancesText} without features (see details): ${fix}`,
      { details: unanswerable },
    );
  }
  return plan;
}

function fillScored(
  plan: AnswerPlan,
  request: PredictRequest,
  model: ServedModel,
  predictions: readonly Prediction[],
  computedAt: string,
): void {
  const modelRef = model.ref;
  for (let k = 0; k < plan.toScore.length; k++) {
    const index = plan.toScore[k]!;
    plan.results[index] = {
      id: request.instances[index]!.id ?? null,
      prediction: predictions[k]!,
      source: 'model',
      model: modelRef,
      computedAt,
      ageSeconds: 0,
      cacheStatus: plan.statuses[k]!,
    };
  }
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
    // Every instance is validated before anything is read or scored: one invalid instance rejects all.
    const rowOf = validateInstances(request, model);
    const startedAt = this.now();
    const { cache, found } = this.needsRead(request) ? await this.readCache(request, model) : noRead(request);
    const plan = answerFromCache(request, model, rowOf, cache, found, found ? this.now() : startedAt);
    let modelLatencyMs: number | undefined;
    if (plan.toScore.length > 0) {
      const runStart = performance.now();
      const predictions = await model.score(plan.toScore.map((index) => rowOf[index]!));
      modelLatencyMs = performance.now() - runStart;
      fillScored(plan, request, model, predictions, new Date(startedAt).toISOString());
    }
    const writeThrough = this.options.writeThrough
      ? await this.writeThrough(
          model,
          plan.toScore.map((index) => plan.results[index]!),
          startedAt,
        )
      : undefined;
    return {
      results: plan.results,
      cache,
      stats: {
        verdicts: plan.verdicts ?? NO_VERDICTS,
        servedAges: plan.servedAges ?? NO_AGES,
        modelInstances: plan.toScore.length,
        modelLatencyMs,
        writeThrough,
      },
    };
  }

  private needsRead(request: PredictRequest): boolean {
    return (
      !request.bypassCache && this.store !== undefined && request.instances.some((i) => i.id !== undefined)
    );
  }

  /** Reads the instances' ids within the time budget (when needsRead). */
  private async readCache(
    request: PredictRequest,
    model: ServedModel,
  ): Promise<{ cache: CacheStatus; found: Map<string, StoredPrediction> | undefined }> {
    const { instances } = request;
    const keys = new Set<string>();
    for (const instance of instances) {
      if (instance.id !== undefined) keys.add(predictionKey(model.name, model.version, instance.id));
    }
    const readStart = performance.now();
    try {
      const found = await readWithin(this.store!, [...keys], this.options.cacheBudgetMs);
      return { cache: { status: 'used', latencyMs: performance.now() - readStart }, found };
    } catch (error) {
      return {
        cache: { status: 'skipped', ...describeFailure(error), latencyMs: performance.now() - readStart },
        found: undefined,
      };
    }
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
      const result = await this.store.putMany([...latest.values()], controller.signal);
      // Write-through is best effort: a throttled table is reported, not retried on the request's time.
      if (result.unprocessed?.length)
        return { error: `the table is throttling requests (${result.unprocessed.length} not written)` };
      return { written: result.written, skipped: result.skipped };
    } catch (error) {
      const failure = describeFailure(error);
      return { error: `${failure.reason} (${failure.cause})` };
    } finally {
      clearTimeout(timer);
    }
  }
}
