/**
 * Shadow scoring: after the live answer of a request is computed, a sample of its instances that carry
 * features is scored again by the pointer's shadow version and each pair of answers is compared. Nothing
 * of it is on the response path: `start` only picks the instances and starts the run, and returns; the
 * caller never awaits it, and its outcome (comparisons, an error, a timeout) goes to a sink (metrics and
 * capture), never to the caller.
 *
 * A run still running past its budget is abandoned (its answers, when they come, are dropped) and counted
 * as a timeout. Runs are checked against their budget when one settles and at the start of each
 * invocation. The budget counts time while the environment runs: on Lambda, nothing runs between
 * invocations (the environment is frozen once the response is sent), so a run the response outpaced
 * resumes, settles and is recorded at the start of the environment's next invocation, and the frozen time
 * in between is not counted against it (`freezesBetweenInvocations`). At most `maxInFlight` runs are
 * unfinished at once (abandoned ones included: their work still takes CPU); a request sampled while that
 * many are unfinished starts none and its sampled instances count as timeouts.
 */
import type { ServedModel } from '../model-loader.ts';
import type { ServingShadow } from '../model-registry.ts';
import type { PredictRequest } from '../predict-request.ts';
import type { InstanceResult, PredictOutcome } from '../prediction-service.ts';
import type { Prediction } from '../predictions.ts';
import { comparePredictions, type Comparison } from './comparison.ts';

/** One compared instance: the input, both answers, both versions. */
export interface ShadowComparison extends Comparison {
  readonly model: string;
  readonly liveVersion: string;
  readonly shadowVersion: string;
  readonly id: string | null;
  readonly features: unknown;
  readonly live: Prediction;
  readonly servedBy: InstanceResult['source'];
  readonly shadow: Prediction;
  readonly requestId: string;
  /** Epoch ms of the request. */
  readonly timeMs: number;
}

/** Where outcomes go (the handler wires metrics and capture). Called after the response, never throws to it. */
export interface ShadowSink {
  compared(comparisons: readonly ShadowComparison[]): void;
  failed(live: ServedModel, shadow: ServedModel, instances: number, error: unknown): void;
  timedOut(live: ServedModel, shadow: ServedModel, instances: number): void;
}

export interface ShadowRunnerOptions {
  /** How long a run may take (running time), ms. */
  readonly budgetMs: number;
  /** The environment is frozen between invocations (Lambda): time with no invocation in flight is not counted. */
  readonly freezesBetweenInvocations: boolean;
  /** @default 16 */
  readonly maxInFlight?: number;
  readonly random?: () => number;
  readonly now?: () => number;
}

interface Run {
  readonly startedAt: number;
  readonly live: ServedModel;
  readonly shadow: ServedModel;
  readonly instances: number;
  abandoned: boolean;
}

export class ShadowRunner {
  /** Instances compared, failed, and abandoned or not started (timeouts), since the runner was made. */
  readonly counts = { compared: 0, failed: 0, timedOut: 0 };
  private readonly runs = new Set<Run>();
  private readonly pending = new Set<Promise<void>>();
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly maxInFlight: number;
  private invocations = 0;
  private idleSince: number | undefined;
  /** Time the environment spent frozen (not counted against budgets). */
  private frozenMs = 0;

  constructor(
    private readonly sink: ShadowSink,
    private readonly options: ShadowRunnerOptions,
  ) {
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.maxInFlight = options.maxInFlight ?? 16;
  }

  /** The running-time clock: wall time less the time frozen between invocations. */
  private clock(): number {
    return this.now() - this.frozenMs;
  }

  invocationStarted(): void {
    if (this.invocations++ === 0 && this.idleSince !== undefined && this.options.freezesBetweenInvocations) {
      this.frozenMs += Math.max(0, this.now() - this.idleSince);
    }
    this.idleSince = undefined;
    this.sweep();
  }

  invocationEnded(): void {
    if (--this.invocations === 0) this.idleSince = this.now();
  }

  /** Runs unfinished (abandoned ones included). */
  get inFlight(): number {
    return this.runs.size;
  }

  /**
   * Starts the comparison of the sampled instances of a request that the live version answered and that
   * carry features. Returns at once; never throws.
   */
  start(
    request: PredictRequest,
    outcome: PredictOutcome,
    live: ServedModel,
    shadow: ServingShadow,
    requestId: string,
    timeMs: number,
  ): void {
    const picked: number[] = [];
    outcome.results.forEach((result, i) => {
      if (result.model.version !== live.version || request.instances[i]?.features === undefined) return;
      if (shadow.sample >= 1 || this.random() < shadow.sample) picked.push(i);
    });
    if (picked.length === 0) return;
    if (this.runs.size >= this.maxInFlight) {
      this.counts.timedOut += picked.length;
      this.report(() => this.sink.timedOut(live, shadow.model, picked.length));
      return;
    }
    const run: Run = {
      startedAt: this.clock(),
      live,
      shadow: shadow.model,
      instances: picked.length,
      abandoned: false,
    };
    this.runs.add(run);
    const features = picked.map((i) => request.instances[i]!.features);
    // Started from the event loop's next turn: the response is on its way before any shadow work is done.
    const settled = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => shadow.model.predict(features))
      .then(
        (answers) => {
          if (this.finish(run)) return;
          const comparisons = picked.map((index, k): ShadowComparison => {
            const result = outcome.results[index]!;
            const answer = answers[k]!;
            return {
              ...comparePredictions(result.prediction, answer),
              model: live.name,
              liveVersion: live.version,
              shadowVersion: shadow.model.version,
              id: result.id,
              features: features[k],
              live: result.prediction,
              servedBy: result.source,
              shadow: answer,
              requestId,
              timeMs,
            };
          });
          this.counts.compared += comparisons.length;
          this.report(() => this.sink.compared(comparisons));
        },
        (error: unknown) => {
          if (this.finish(run)) return;
          this.counts.failed += picked.length;
          this.report(() => this.sink.failed(live, shadow.model, picked.length, error));
        },
      )
      .finally(() => this.pending.delete(settled));
    this.pending.add(settled);
  }

  /** Resolves when every run started so far has settled (tests; a process about to stop). */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** A run settled: true when it was abandoned (or is now, being past its budget), and is not to be recorded. */
  private finish(run: Run): boolean {
    this.runs.delete(run);
    if (!run.abandoned && this.clock() - run.startedAt > this.options.budgetMs) this.abandon(run);
    this.sweep();
    return run.abandoned;
  }

  /** Abandons and counts every unfinished run past its budget. */
  private sweep(): void {
    const now = this.clock();
    for (const run of this.runs) {
      if (!run.abandoned && now - run.startedAt > this.options.budgetMs) this.abandon(run);
    }
  }

  private abandon(run: Run): void {
    run.abandoned = true;
    this.counts.timedOut += run.instances;
    this.report(() => this.sink.timedOut(run.live, run.shadow, run.instances));
  }

  /** A sink that throws must not break serving: its error is dropped. */
  private report(call: () => void): void {
    try {
      call();
    } catch {
      // The sink's own failure (a metric or capture that cannot be added) is not the caller's concern.
    }
  }
}
