/**
 * Writes a chunk's predictions to the table at the rate the table accepts. A throttled table slows the
 * chunk, it never fails it: the store hands back what it could not write (`unprocessed`), and the write
 * rate adapts (AIMD, as TCP and the AWS SDKs' adaptive retry mode do: halved when the table throttles,
 * raised by a constant for every second without throttling, never above the run's ceiling).
 *
 * A chunk has a deadline (its invocation's time, less what reading and scoring the rest takes): past it
 * no write starts, and `position` says where the next invocation resumes (contracts.ts ChunkResume).
 * Items are numbered in the chunk's scoring order, which is the same on every invocation.
 */
import type { StoredPrediction } from '../cache-policy.ts';
import type { PredictionStore } from '../ports.ts';
import type { ChunkResume } from './contracts.ts';

export interface Clock {
  /** Milliseconds on any monotonic scale. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** The lowest rate the writer slows to: one attempt a second keeps probing a throttled table. */
export const MIN_WRITES_PER_SECOND = 1;
/** Added to the rate for every second without throttling. */
export const RATE_INCREASE_PER_SECOND = 50;
/** A rate-limited write call sends at most this much of a second's rate, so that pacing stays smooth. */
const SLICE_SECONDS = 0.25;

export interface TableWriterOptions {
  readonly store: PredictionStore;
  /** Writes per second never exceeded (0: no ceiling, the rate only adapts to throttling). */
  readonly ceilingPerSecond: number;
  readonly clock?: Clock;
  /** On the clock's scale; no write starts after it. @default no deadline */
  readonly deadline?: number;
  /** Where a previous invocation of the chunk stopped. */
  readonly resume?: ChunkResume;
}

export class TableWriter {
  written: number;
  skipped: number;
  /** Times the table refused writes for throttling. */
  throttled = 0;
  /** True once the deadline stopped the writes: the chunk needs another invocation. */
  stopped = false;
  private readonly clock: Clock;
  private readonly deadline: number;
  private readonly ceiling: number;
  /** Writes per second allowed now; Infinity until the table first throttles (when there is no ceiling). */
  private rate: number;
  /** Items [0, done) are in the table, and the ones in `ahead`. */
  private done: number;
  private readonly ahead: Set<number>;
  /** The ordinal of the next item handed to write(). */
  private next = 0;
  private sentAt = -Infinity;
  private cleanSince: number;

  constructor(private readonly options: TableWriterOptions) {
    this.clock = options.clock ?? systemClock;
    this.deadline = options.deadline ?? Infinity;
    this.ceiling = options.ceilingPerSecond > 0 ? options.ceilingPerSecond : Infinity;
    this.rate = this.ceiling;
    this.done = options.resume?.tableRows ?? 0;
    this.ahead = new Set(options.resume?.tableRowsAhead ?? []);
    this.written = options.resume?.tableWritten ?? 0;
    this.skipped = options.resume?.tableSkipped ?? 0;
    this.cleanSince = this.clock.now();
  }

  /** Where the next invocation starts: meaningful once `stopped`. */
  get position(): Pick<ChunkResume, 'tableRows' | 'tableRowsAhead'> {
    return { tableRows: this.done, tableRowsAhead: [...this.ahead].sort((a, b) => a - b) };
  }

  /** Writes the next items of the chunk (in scoring order), or only numbers them once stopped. */
  async write(items: readonly StoredPrediction[]): Promise<void> {
    const first = this.next;
    this.next += items.length;
    let pending: { item: StoredPrediction; ordinal: number }[] = [];
    for (let i = 0; i < items.length; i++) {
      const ordinal = first + i;
      if (ordinal >= this.done && !this.ahead.has(ordinal)) pending.push({ item: items[i]!, ordinal });
    }
    while (pending.length > 0 && !this.stopped) {
      if (this.clock.now() >= this.deadline) {
        this.stopped = true;
        break;
      }
      const slice = pending.slice(0, this.sliceSize());
      await this.pace(slice.length);
      const result = await this.options.store.putMany(slice.map((p) => p.item));
      this.written += result.written;
      this.skipped += result.skipped;
      const refused = new Set(result.unprocessed ?? []);
      if (refused.size > 0) this.slowDown(slice.length - refused.size);
      else this.speedUp();
      for (const p of slice) if (!refused.has(p.item)) this.ahead.add(p.ordinal);
      pending = [...pending.filter((p) => refused.has(p.item)), ...pending.slice(slice.length)];
      this.advance();
    }
    // Stopped: the items not written are left for the next invocation, which numbers them the same way.
  }

  private sliceSize(): number {
    return Number.isFinite(this.rate) ? Math.max(1, Math.floor(this.rate * SLICE_SECONDS)) : Infinity;
  }

  /** Waits until `count` more writes keep within the rate. */
  private async pace(count: number): Promise<void> {
    if (!Number.isFinite(this.rate)) return;
    const now = this.clock.now();
    const start = Math.max(now, this.sentAt);
    if (start > now) await this.clock.sleep(start - now);
    this.sentAt = start + (count / this.rate) * 1000;
  }

  /** Multiplicative decrease: half of what the table took in that call, or half the rate. */
  private slowDown(accepted: number): void {
    this.throttled++;
    const basis = Number.isFinite(this.rate) ? this.rate : Math.max(accepted, 2 * MIN_WRITES_PER_SECOND);
    this.rate = Math.max(MIN_WRITES_PER_SECOND, basis / 2);
    this.cleanSince = this.clock.now();
    // Wait a whole slice before the retry, as a throttled table needs time to admit more.
    this.sentAt = Math.max(this.sentAt, this.clock.now()) + SLICE_SECONDS * 1000;
  }

  /** Additive increase, for each whole second since the last throttle or increase. */
  private speedUp(): void {
    if (!Number.isFinite(this.rate)) return;
    const seconds = Math.floor((this.clock.now() - this.cleanSince) / 1000);
    if (seconds < 1) return;
    this.rate = Math.min(this.ceiling, this.rate + seconds * RATE_INCREASE_PER_SECOND);
    this.cleanSince += seconds * 1000;
  }

  private advance(): void {
    while (this.ahead.delete(this.done)) this.done++;
  }
}
