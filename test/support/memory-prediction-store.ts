/**
 * The prediction store in memory, for unit tests: the write rule of the DynamoDB adapter's conditional
 * write (test/integration/prediction-store-contract.test.ts runs the same cases on both), plus what a test
 * needs to watch or break it: the reads it was asked for, a read that never answers, a read that fails.
 */
import { predictionKey, type StoredPrediction } from '../../lambdas/core/cache-policy.ts';
import type { PredictionStore } from '../../lambdas/core/ports.ts';

/**
 * Whether `item` replaces `existing`: one computed later does; within one batch run (same computedAt and
 * runId) the later or same dataset row does. The adapter's ConditionExpression, in plain code.
 */
export function replaces(item: StoredPrediction, existing: StoredPrediction | undefined): boolean {
  if (existing === undefined || existing.computedAt < item.computedAt) return true;
  return (
    item.runId !== undefined &&
    item.sourceRow !== undefined &&
    existing.computedAt === item.computedAt &&
    existing.runId === item.runId &&
    existing.sourceRow !== undefined &&
    existing.sourceRow <= item.sourceRow
  );
}

export class MemoryPredictionStore implements PredictionStore {
  readonly items = new Map<string, StoredPrediction>();
  /** The keys of each getMany call, in order. */
  readonly gets: string[][] = [];
  /** Never answer a read (until aborted): only the caller's budget can end it. */
  hang = false;
  /** Reads aborted while hanging. */
  aborted = 0;
  /** Every read and write fails with this error. */
  failWith: Error | undefined;

  async getMany(keys: readonly string[], signal?: AbortSignal): Promise<Map<string, StoredPrediction>> {
    this.gets.push([...keys]);
    if (this.hang) {
      await new Promise((_, reject) => {
        signal?.addEventListener('abort', () => {
          this.aborted++;
          reject(new Error('aborted'));
        });
      });
    }
    if (this.failWith) throw this.failWith;
    return new Map(keys.filter((k) => this.items.has(k)).map((k) => [k, this.items.get(k)!]));
  }

  async putMany(
    items: readonly StoredPrediction[],
  ): Promise<{ written: number; skipped: number; unprocessed: readonly StoredPrediction[] }> {
    if (this.failWith) throw this.failWith;
    let written = 0;
    let skipped = 0;
    for (const item of items) {
      const key = predictionKey(item.model, item.modelVersion, item.entityId);
      if (replaces(item, this.items.get(key))) {
        this.items.set(key, item);
        written++;
      } else skipped++;
    }
    return { written, skipped, unprocessed: [] };
  }
}
