/**
 * Serving a request while a canary runs: each instance goes to the live version or the candidate (by the
 * stable hash of its id, at random without one), each group is answered by the PredictionService with
 * its own version (so canary traffic reads its own version's cache entries), and the results come back in
 * request order, each saying which version answered.
 */
import { TandemError, type ErrorDetail } from './errors.ts';
import type { ServedModel } from './model-loader.ts';
import type { ServingCanary } from './model-registry.ts';
import type { PredictRequest } from './predict-request.ts';
import type { CacheStatus, InstanceResult, PredictOutcome, PredictionService } from './prediction-service.ts';
import { goesToCanary } from './traffic-split.ts';

/** What one version answered of a request. */
export interface VersionOutcome {
  readonly model: ServedModel;
  readonly outcome: PredictOutcome;
  /** The number of the request's instances it answered. */
  readonly instances: number;
}

export interface SplitOutcome {
  /** The request's answer, in request order. */
  readonly outcome: PredictOutcome;
  /** Per version that answered something (one entry without a canary). */
  readonly byVersion: readonly VersionOutcome[];
}

/** An error of a sub-request with its instance indexes (and `instances.<i>` fields) as in the request. */
function remapped(error: unknown, indexes: readonly number[]): unknown {
  if (!(error instanceof TandemError) || !error.details) return error;
  const details: ErrorDetail[] = error.details.map((d) => {
    const instance = d.instance === undefined ? undefined : indexes[d.instance];
    const field = d.field?.replace(/^instances\.(\d+)/, (_, k: string) => `instances.${indexes[Number(k)]}`);
    return {
      ...d,
      ...(instance !== undefined ? { instance } : {}),
      ...(field !== undefined ? { field } : {}),
    };
  });
  const ErrorClass = error.constructor as new (
    code: string,
    message: string,
    options: { details: ErrorDetail[]; cause: unknown },
  ) => TandemError;
  return new ErrorClass(error.code, error.message, { details, cause: error.cause });
}

/** The cache outcome of the whole request: skipped if any group's read was, else used if any was. */
function mergedCache(a: CacheStatus, b: CacheStatus): CacheStatus {
  if (a.status === 'skipped') return a;
  if (b.status === 'skipped') return b;
  if (a.status === 'used') return a;
  return b;
}

function merge(
  request: PredictRequest,
  groups: readonly { indexes: number[]; outcome: PredictOutcome }[],
): PredictOutcome {
  const results = new Array<InstanceResult>(request.instances.length);
  for (const { indexes, outcome } of groups) {
    for (let k = 0; k < indexes.length; k++) results[indexes[k]!] = outcome.results[k]!;
  }
  const [first, second] = groups.map((g) => g.outcome) as [PredictOutcome, PredictOutcome];
  const a = first.stats;
  const b = second.stats;
  const verdicts = { ...a.verdicts };
  for (const key of Object.keys(verdicts) as (keyof typeof verdicts)[]) verdicts[key] += b.verdicts[key];
  const latencies = [a.modelLatencyMs, b.modelLatencyMs].filter((l): l is number => l !== undefined);
  return {
    results,
    cache: mergedCache(first.cache, second.cache),
    stats: {
      verdicts,
      servedAges: [...a.servedAges, ...b.servedAges],
      modelInstances: a.modelInstances + b.modelInstances,
      modelLatencyMs: latencies.length > 0 ? latencies.reduce((x, y) => x + y, 0) : undefined,
      writeThrough: a.writeThrough ?? b.writeThrough,
    },
  };
}

/**
 * Answers a request with the live model, or split between it and the canary's candidate. Without a
 * canary (or when every instance falls to one version) the service is called once, as before.
 */
export async function predictWithCanary(
  service: PredictionService,
  request: PredictRequest,
  live: ServedModel,
  canary: ServingCanary | undefined,
  options: {
    /** Told which version failed a request (for its error metric) before the error is thrown. */
    readonly failed?: (model: ServedModel) => void;
    readonly random?: () => number;
  } = {},
): Promise<SplitOutcome> {
  const { failed, random = Math.random } = options;
  const predictOne = async (model: ServedModel): Promise<PredictOutcome> => {
    try {
      return await service.predict(request, model);
    } catch (error) {
      failed?.(model);
      throw error;
    }
  };
  if (!canary) {
    const outcome = await predictOne(live);
    return { outcome, byVersion: [{ model: live, outcome, instances: request.instances.length }] };
  }
  const liveIndexes: number[] = [];
  const canaryIndexes: number[] = [];
  const { instances } = request;
  for (let index = 0; index < instances.length; index++) {
    const toCanary = goesToCanary(live.name, instances[index]!.id, canary.percent, random);
    (toCanary ? canaryIndexes : liveIndexes).push(index);
  }
  if (liveIndexes.length === 0 || canaryIndexes.length === 0) {
    const model = liveIndexes.length === 0 ? canary.model : live;
    const outcome = await predictOne(model);
    return { outcome, byVersion: [{ model, outcome, instances: instances.length }] };
  }
  const groups = await Promise.all(
    (
      [
        [live, liveIndexes],
        [canary.model, canaryIndexes],
      ] as const
    ).map(async ([model, indexes]) => {
      const part: PredictRequest = { ...request, instances: indexes.map((i) => instances[i]!) };
      try {
        return { model, indexes, outcome: await service.predict(part, model) };
      } catch (error) {
        failed?.(model);
        throw remapped(error, indexes);
      }
    }),
  );
  return {
    outcome: merge(request, groups),
    byVersion: groups.map((g) => ({ model: g.model, outcome: g.outcome, instances: g.indexes.length })),
  };
}
