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
import { validateFeatureObjects } from './features.ts';
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

const THROTTLING = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
]);
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * Why the store failed: a plain reason for the caller (no AWS error names or messages) and the error's
 * name and code for the logs.
 */
function describeFailure(error: unknown): { reason: string; cause: string } {
  if (error instanceof Deadline) return { reason: error.message, cause: 'Deadline' };
  const e = error as { name?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  const name = e.name ?? 'Error';
  const cause = e.code && e.code !== name ? `${name} ${e.code}` : name;
  let reason = 'the table read failed';
  if (THROTTLING.has(name)) reason = 'the table is throttling requests';
  else if (name === 'ResourceNotFoundException') reason = 'the table does not exist';
  else if (name === 'AccessDeniedException') reason = 'the function may not read the table';
  else if ((e.code && UNREACHABLE.has(e.code)) || name === 'TimeoutError')
    reason = 'the table could not be reached';
  else if ((e.$metadata?.httpStatusCode ?? 0) >= 500) reason = 'the table answered with a server error';
  return { reason, cause };
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
    const withFeatures: { index: number; features: unknown }[] = [];
    instances.forEach((instance, index) => {
      if (instance.features !== undefined) withFeatures.push({ index, features: instance.features });
    });
    const rows = validateFeatureObjects(model.validator, withFeatures, request.single);
    const rowByIndex = new Map(withFeatures.map((w, i) => [w.index, rows[i]!]));

    const verdicts: Record<CacheVerdict, number> = {
      hit: 0,
      miss: 0,
      stale: 0,
      expired: 0,
      'version-mismatch': 0,
    };
    const servedAges: number[] = [];
    const results = new Array<InstanceResult>(instances.length);
    const startedAt = this.now();
    const computedAt = new Date(startedAt).toISOString();
    const modelRef = { name: model.name, version: model.version };

    const ids = instances.map((i) => i.id).filter((id): id is string => id !== undefined);
    let cache: CacheStatus;
    let found: Map<string, StoredPrediction> | undefined;
    if (request.bypassCache) {
      cache = { status: 'bypassed' };
    } else if (!this.store || ids.length === 0) {
      cache = { status: 'not-needed' };
    } else {
      const keys = [...new Set(ids.map((id) => predictionKey(model.name, id)))];
      const readStart = performance.now();
      try {
        found = await readWithin(this.store, keys, this.options.cacheBudgetMs);
        cache = { status: 'used', latencyMs: performance.now() - readStart };
      } catch (error) {
        cache = { status: 'skipped', ...describeFailure(error), latencyMs: performance.now() - readStart };
      }
    }

    const policy = {
      nowMs: this.now(),
      maxAgeSeconds: request.maxStalenessSeconds ?? model.manifest.cache.maxAgeSeconds,
      modelVersion: model.version,
    };
    const toScore: { index: number; status: InstanceResult['cacheStatus'] }[] = [];
    const unanswerable: ErrorDetail[] = [];
    instances.forEach((instance, index) => {
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
          return;
        }
      }
      if (rowByIndex.has(index)) {
        toScore.push({ index, status });
      } else {
        unanswerable.push({
          instance: index,
          field: request.single ? 'id' : `instances.${index}.id`,
          message: `"${instance.id}": ${status === 'skipped' ? 'the prediction store is unavailable' : `no usable precomputed prediction (${status})`} and no features to score`,
        });
      }
    });

    if (unanswerable.length > 0) {
      const one = unanswerable.length === 1;
      const instancesText = one ? 'an instance' : `${unanswerable.length} instances`;
      const fix = `send "features" to have the model score ${one ? 'it' : 'them'}`;
      if (cache.status === 'skipped') {
        throw new CacheUnavailableError(
          `the prediction store is unavailable (${cache.reason}) and ${instancesText} without features cannot be answered: retry, or ${fix}`,
          unanswerable,
        );
      }
      throw new NotPrecomputedError(
        `nothing is precomputed for ${instancesText} without features: ${fix}`,
        unanswerable,
      );
    }

    let modelLatencyMs: number | undefined;
    if (toScore.length > 0) {
      const runStart = performance.now();
      const predictions = await model.score(toScore.map(({ index }) => rowByIndex.get(index)!));
      modelLatencyMs = performance.now() - runStart;
      toScore.forEach(({ index, status }, k) => {
        results[index] = {
          id: instances[index]!.id ?? null,
          prediction: predictions[k]!,
          source: 'model',
          model: modelRef,
          computedAt,
          ageSeconds: 0,
          cacheStatus: status,
        };
      });
    }

    const writeThrough = await this.writeThrough(
      model,
      toScore.map(({ index }) => results[index]!),
      startedAt,
    );
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
      const failure = describeFailure(error);
      return { error: `${failure.reason} (${failure.cause})` };
    } finally {
      clearTimeout(timer);
    }
  }
}
