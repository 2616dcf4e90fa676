/**
 * Which ids an outcome may be given for. An id is known to a model when a prediction of it exists for a
 * version that serves or may serve it now:
 *
 * 1. the prediction table holds `<model>#<version>#<id>` for the live version, the canary's candidate or
 *    the shadow version
 *    (one batched read of every id and version: the cache lookup /predict makes), written by a batch
 *    run, the stream lane, or write-through; or
 * 2. this execution environment predicted the id in real time recently (`RecentPredictions`: the last
 *    `capacity` ids per environment; the buffer that data capture fills, kept for every prediction).
 *
 * Anything else is unknown and rejected. Deployed with writeThrough off, an id predicted only in real
 * time by another environment is not in either: turn writeThrough on to make every real-time
 * prediction known everywhere (docs/api.md).
 */
import { predictionKey } from '../cache-policy.ts';
import type { PredictionStore } from '../ports.ts';

/** The ids this environment predicted recently, per model (bounded: the oldest are forgotten first). */
export class RecentPredictions {
  private readonly ids = new Map<string, true>();

  constructor(private readonly capacity = 100_000) {}

  note(model: string, id: string): void {
    const key = `${model}\0${id}`;
    if (this.ids.has(key)) this.ids.delete(key);
    this.ids.set(key, true);
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.keys().next().value!);
  }

  has(model: string, id: string): boolean {
    return this.ids.has(`${model}\0${id}`);
  }
}

/**
 * The ids (of `ids`, unique) with no prediction under any of `versions`; throws the store's error when
 * the table cannot be read (the caller answers 503: an outcome is never refused for a table outage).
 */
export async function unknownIds(
  model: string,
  versions: readonly string[],
  ids: readonly string[],
  store: PredictionStore | undefined,
  recent: RecentPredictions | undefined,
): Promise<Set<string>> {
  const unknown = new Set(ids.filter((id) => !recent?.has(model, id)));
  if (unknown.size === 0 || store === undefined || versions.length === 0) return unknown;
  const keys = [...unknown].flatMap((id) => versions.map((v) => predictionKey(model, v, id)));
  const found = await store.getMany([...new Set(keys)]);
  for (const item of found.values()) unknown.delete(item.entityId);
  return unknown;
}
