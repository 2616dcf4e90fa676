/**
 * At most `limit` invocations in flight; up to `maxQueued` more wait their turn, first come first
 * served; beyond that a request is turned away at once. In Lambda each execution environment takes one
 * request at a time, so the handler's own time budgets (the cache read's, above all) measure the store,
 * never a queue of other requests: with the gate, a local backlog is waited out before the handler
 * starts, as requests wait for a free instance. The bound stands for the account's concurrency limit,
 * past which Lambda throttles instead of queueing.
 */
export class GateFullError extends Error {}

/** The waiter's signal fired before a slot was free: it never runs. */
export class GateAbandonedError extends Error {}

export class ConcurrencyGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly limit: number,
    readonly maxQueued: number,
  ) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new Error(`limit must be a positive integer, got ${limit}`);
    }
    if (!Number.isInteger(maxQueued) || maxQueued < 0) {
      throw new Error(`maxQueued must be an integer >= 0, got ${maxQueued}`);
    }
  }

  get inFlight(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Resolves once the caller holds a slot (it must call leave() when done). Rejects with GateFullError
   * when the queue is full, and with GateAbandonedError when `signal` fires while waiting.
   */
  async enter(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw new GateAbandonedError('abandoned before it was queued');
    if (this.running < this.limit) {
      this.running++;
      return;
    }
    if (this.waiting.length >= this.maxQueued) {
      throw new GateFullError(`${this.running} running and ${this.waiting.length} waiting`);
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiting.splice(this.waiting.indexOf(admit), 1);
        reject(new GateAbandonedError('abandoned while queued'));
      };
      const admit = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(admit);
    });
  }

  /** Frees the caller's slot: the longest waiter takes it. */
  leave(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}
