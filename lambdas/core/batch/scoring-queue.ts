/**
 * The micro-batches of one chunk on their way through the model: the chunk scorer fills `batch`, and
 * `dispatch` hands it to the runner and takes the next one. Up to `depth` runs are in flight, so that a
 * scoring thread always has the next batch queued while the chunk scorer fills another; results are
 * handled strictly in order (`onScored`), then the batch (and its tensors) is reused.
 */
import { FeedBatch } from './feed-batch.ts';
import type { BatchModel } from './batch-model.ts';
import type { Outputs, RunResult } from './scoring-thread.ts';

interface InFlight {
  readonly batch: FeedBatch;
  readonly result: Promise<RunResult>;
  /** Set when the run has finished (either way). */
  settled: boolean;
}

export class ScoringQueue {
  /** The batch being filled. */
  batch: FeedBatch;
  /** Time spent in session.run (on whichever thread). */
  scoreMs = 0;
  /** Time the caller waited for runs to finish. */
  waitMs = 0;
  private readonly free: FeedBatch[] = [];
  private readonly inFlight: InFlight[] = [];

  constructor(
    private readonly model: BatchModel,
    private readonly capacity: number,
    private readonly depth: number,
    private readonly onScored: (batch: FeedBatch, outputs: Outputs) => Promise<void>,
  ) {
    this.batch = new FeedBatch(model.inputPlans, capacity, model.dictionaries);
  }

  /**
   * Sends the filled batch to the model, then handles the runs that have finished, in order; waits for
   * the oldest only when `depth` are in flight.
   */
  async dispatch(): Promise<void> {
    const batch = this.batch;
    if (batch.count === 0) return;
    const result = this.model.runner.run(batch.feeds(), this.model.fetches);
    const entry: InFlight = { batch, result, settled: false };
    // Awaited in order below; a failure is reported there, not as an unhandled rejection.
    result.then(
      () => (entry.settled = true),
      () => (entry.settled = true),
    );
    this.inFlight.push(entry);
    this.batch =
      this.free.pop() ?? new FeedBatch(this.model.inputPlans, this.capacity, this.model.dictionaries);
    while (this.inFlight.length >= this.depth || this.inFlight[0]?.settled) await this.completeOldest();
  }

  /** Dispatches what is left and handles every result. */
  async finish(): Promise<void> {
    await this.dispatch();
    while (this.inFlight.length > 0) await this.completeOldest();
  }

  private async completeOldest(): Promise<void> {
    const { batch, result } = this.inFlight.shift()!;
    const waited = performance.now();
    let run: RunResult;
    try {
      run = await result;
    } finally {
      this.waitMs += performance.now() - waited;
    }
    this.scoreMs += run.runMs;
    // The inputs first: onScored may read the rows' features back (data capture).
    batch.reclaim(run.inputs);
    await this.onScored(batch, run.outputs);
    batch.clear();
    this.free.push(batch);
  }
}
