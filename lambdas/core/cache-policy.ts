/** What a precomputed prediction is, and when it may be served. */
import type { Prediction } from './predictions.ts';

export interface StoredPrediction {
  readonly model: string;
  readonly entityId: string;
  readonly prediction: Prediction;
  readonly modelVersion: string;
  /** When the prediction was computed, epoch milliseconds. */
  readonly computedAt: number;
  /** When DynamoDB may delete the item (its TTL attribute), epoch seconds. */
  readonly expiresAt: number;
  readonly runId?: string;
  /** Batch: the dataset row it came from; of two rows with the same id in one run, the later one wins. */
  readonly sourceRow?: number;
  /** Stream: when the event happened (epoch ms); an older event never replaces a newer one's item. */
  readonly eventTime?: number;
  readonly source: 'batch' | 'online' | 'stream';
}

/** Why a stored prediction is or is not served. */
export type CacheVerdict = 'hit' | 'miss' | 'stale' | 'expired' | 'version-mismatch';

export interface CachePolicy {
  readonly nowMs: number;
  /** Entries older than this are stale. */
  readonly maxAgeSeconds: number;
  /** Only entries made by this model version are served. */
  readonly modelVersion: string;
}

/**
 * The table key of one version's prediction for an entity: `<model>#<version>#<entityId>`. Each version
 * has its own entries, so a candidate's predictions can be precomputed before it is promoted and a
 * promotion switches reads to entries that already exist; the old version's entries expire by TTL.
 * Model names and versions never contain `#` (lambdas/core/names.ts), so the key splits unambiguously.
 */
export function predictionKey(model: string, modelVersion: string, entityId: string): string {
  return `${model}#${modelVersion}#${entityId}`;
}

export function ageSeconds(computedAt: number, nowMs: number): number {
  return Math.max(0, Math.floor((nowMs - computedAt) / 1000));
}

/**
 * Expired items are misses even before DynamoDB's lazy TTL deletion removes them; entries from another
 * model version are never served, whatever their age.
 */
export function judgeCached(item: StoredPrediction | undefined, policy: CachePolicy): CacheVerdict {
  if (!item) return 'miss';
  if (item.expiresAt * 1000 <= policy.nowMs) return 'expired';
  if (item.modelVersion !== policy.modelVersion) return 'version-mismatch';
  if (ageSeconds(item.computedAt, policy.nowMs) > policy.maxAgeSeconds) return 'stale';
  return 'hit';
}

export function storedPrediction(
  fields: Omit<StoredPrediction, 'expiresAt'>,
  ttlSeconds: number,
): StoredPrediction {
  return { ...fields, expiresAt: Math.floor(fields.computedAt / 1000) + ttlSeconds };
}
