/**
 * Staleness: the share of a model's cache reads that found an entry it could not serve because it was too
 * old (stale, expired) or another version's (version-mismatch), out of every read that looked an id up.
 * Deployed, a CloudWatch alarm computes it from the API's per-model metrics (`CacheReads`,
 * `CacheOutdated`, dimension `model`) in 5-minute periods; `npm start` computes the same from the API's
 * counters (CacheReadCounter) with StalenessEvaluator. Both go into ALARM when the share is above the
 * threshold in every period of the window, and a period with fewer than STALENESS_MIN_READS reads counts as
 * below it (a handful of requests is no evidence). Each transition into ALARM starts one refresh.
 */
import type { CacheVerdict } from '../cache-policy.ts';
import { STALENESS_MIN_READS, STALENESS_PERIOD_SECONDS } from '../settings.ts';

export { STALENESS_MIN_READS, STALENESS_PERIOD_SECONDS };

/** How many consecutive periods make `minutes` (rounded up). */
export function stalenessPeriods(minutes: number): number {
  return Math.max(1, Math.ceil((minutes * 60) / STALENESS_PERIOD_SECONDS));
}

export interface CacheReadCounts {
  /** Reads that looked an id up (hit, miss, stale, expired, version-mismatch). */
  reads: number;
  /** Of them: stale, expired or version-mismatch. */
  outdated: number;
}

/** The verdicts of one request's cache reads as CacheReadCounts. */
export function cacheReadCounts(verdicts: Readonly<Record<CacheVerdict, number>>): CacheReadCounts {
  const outdated = verdicts.stale + verdicts.expired + verdicts['version-mismatch'];
  return { reads: verdicts.hit + verdicts.miss + outdated, outdated };
}

/** The share that counts for a period: 0 below the minimum of reads. */
export function outdatedShare(counts: CacheReadCounts, minReads = STALENESS_MIN_READS): number {
  return counts.reads < minReads || counts.reads === 0 ? 0 : counts.outdated / counts.reads;
}

/** The API's cache reads per model since the last `take` (what npm start evaluates). */
export class CacheReadCounter {
  private counts = new Map<string, CacheReadCounts>();

  record(model: string, verdicts: Readonly<Record<CacheVerdict, number>>): void {
    const { reads, outdated } = cacheReadCounts(verdicts);
    if (reads === 0) return;
    const counts = this.counts.get(model);
    if (counts) {
      counts.reads += reads;
      counts.outdated += outdated;
    } else this.counts.set(model, { reads, outdated });
  }

  /** The counts since the last call, and starts counting afresh. */
  take(): ReadonlyMap<string, CacheReadCounts> {
    const taken = this.counts;
    this.counts = new Map();
    return taken;
  }
}

export interface StalenessRule {
  /** The share above which a period breaches (refreshStaleShare). */
  readonly threshold: number;
  /** Consecutive breaching periods that raise the alarm (stalenessPeriods(refreshStaleMinutes)). */
  readonly periods: number;
  readonly minReads?: number;
}

/** The alarm's logic, per model, period by period. */
export class StalenessEvaluator {
  private readonly streaks = new Map<string, number>();
  private readonly alarming = new Set<string>();

  constructor(private readonly rule: StalenessRule) {}

  /**
   * Closes a period with each model's counts (a model absent read nothing: below the threshold) and returns
   * the models that went into ALARM with it. A model stays in ALARM, starting nothing more, until a period
   * falls below the threshold.
   */
  closePeriod(counts: ReadonlyMap<string, CacheReadCounts>): string[] {
    const raised: string[] = [];
    for (const model of new Set([...this.streaks.keys(), ...counts.keys()])) {
      const period = counts.get(model) ?? { reads: 0, outdated: 0 };
      if (outdatedShare(period, this.rule.minReads) > this.rule.threshold) {
        const streak = (this.streaks.get(model) ?? 0) + 1;
        this.streaks.set(model, streak);
        if (streak >= this.rule.periods && !this.alarming.has(model)) {
          this.alarming.add(model);
          raised.push(model);
        }
      } else {
        this.streaks.delete(model);
        this.alarming.delete(model);
      }
    }
    return raised;
  }
}
