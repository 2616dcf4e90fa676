/**
 * The `schedules` setting on `npm start`: what EventBridge Scheduler does deployed, in this process. Each
 * schedule fires at the next fire time of its expression (UTC; a rate every interval from when the
 * scheduler started), and each firing starts a folder run of its prefix with the input a deployed schedule
 * gives the state machine (scheduledRunInput).
 *
 * Two differences, both deliberate: a schedule whose previous run is still going when it fires again is
 * skipped (logged, counted) rather than started twice over the same folder; and fire times missed while
 * the process was not running, or while it was busy, make one run, not one per missed time.
 */
import { createHash } from 'node:crypto';
import type { BatchOptions } from '../lambdas/core/batch/contracts.ts';
import type { FinalizeResult } from '../lambdas/core/batch/finalizer.ts';
import { nextFireTime } from '../lambdas/core/batch/schedule-expression.ts';
import { scheduledRunId, scheduledRunInput, type Schedule } from '../lambdas/core/batch/schedules.ts';
import type { RunStarter } from '../lambdas/core/ports.ts';

/** What runs a scheduled run and tells when it ends (the local batch runner). */
export interface ScheduledRunner extends RunStarter {
  run(runId: string): { readonly result: Promise<FinalizeResult> } | undefined;
}

export interface LocalSchedulerOptions {
  readonly schedules: readonly Schedule[];
  readonly runner: ScheduledRunner;
  readonly bucket: string;
  /** The stack's options of every run (BATCH_OPTIONS); a schedule's own override them. */
  readonly batchOptions?: Partial<BatchOptions>;
  /** The clock, ms since the epoch. @default Date.now */
  readonly now?: () => number;
  /**
   * Fire on timers. Tests turn them off and call tick() after moving their clock.
   * @default true
   */
  readonly timers?: boolean;
  readonly log?: (line: string) => void;
  /** Each scheduled run once it has ended. */
  readonly onEnded?: (run: ScheduledRun, result: FinalizeResult) => void;
}

export interface ScheduledRun {
  readonly schedule: Schedule;
  readonly runId: string;
  /** The fire time it was started for (ms). */
  readonly firedAt: number;
  readonly result: Promise<FinalizeResult>;
}

export interface ScheduleState {
  readonly schedule: Schedule;
  /** The next fire time (ms), or undefined when the expression fires no more. */
  readonly next: number | undefined;
  /** The run started by the last firing, while it is going. */
  readonly running: string | undefined;
  /** Firings skipped because the previous run was still going. */
  readonly skipped: number;
}

/** A timer never waits longer than this, so that a clock change or a suspended laptop is caught up. */
const MAX_WAIT_MS = 60_000;

interface Entry {
  readonly schedule: Schedule;
  next: number | undefined;
  running: string | undefined;
  skipped: number;
}

export class LocalScheduler {
  private readonly now: () => number;
  private readonly anchor: number;
  private readonly entries: Entry[];
  private readonly log: (line: string) => void;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private ticking: Promise<ScheduledRun[]> | undefined;

  constructor(private readonly options: LocalSchedulerOptions) {
    this.now = options.now ?? Date.now;
    this.log = options.log ?? (() => undefined);
    this.anchor = this.now();
    this.entries = options.schedules.map((schedule) => ({
      schedule,
      next: nextFireTime(schedule.parsed, this.anchor, this.anchor),
      running: undefined,
      skipped: 0,
    }));
    if (options.timers ?? true) this.arm();
  }

  /** Each schedule with its next fire time and its run in progress. */
  state(): ScheduleState[] {
    return this.entries.map((e) => ({ ...e }));
  }

  /** When the scheduler started: the anchor of rate expressions. */
  get startedAt(): number {
    return this.anchor;
  }

  /**
   * Fires every schedule whose fire time has come; resolves with the runs it started (not ended).
   * Concurrent calls share one pass.
   */
  tick(): Promise<ScheduledRun[]> {
    this.ticking ??= this.fireDue().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async fireDue(): Promise<ScheduledRun[]> {
    const started: ScheduledRun[] = [];
    const now = this.now();
    for (const entry of this.entries) {
      if (this.stopped || entry.next === undefined || entry.next > now) continue;
      const firedAt = entry.next;
      entry.next = nextFireTime(entry.schedule.parsed, now, this.anchor);
      const label = entry.schedule.label;
      const nextText = entry.next === undefined ? 'it fires no more' : `next at ${iso(entry.next)}`;
      if (entry.running !== undefined) {
        entry.skipped++;
        this.log(
          `[schedule] ${label}: fire time ${iso(firedAt)} skipped, run ${entry.running} is still going; ${nextText}`,
        );
        continue;
      }
      try {
        const run = await this.start(entry, firedAt);
        started.push(run);
        this.log(`[schedule] ${label}: run ${run.runId} started for ${iso(firedAt)}; ${nextText}`);
      } catch (error) {
        this.log(
          `[schedule] ${label}: the run for ${iso(firedAt)} did not start: ${(error as Error).message}`,
        );
      }
    }
    return started;
  }

  private async start(entry: Entry, firedAt: number): Promise<ScheduledRun> {
    const { schedule } = entry;
    const digest = createHash('sha256').update(`${schedule.prefix}\n${schedule.expression}`).digest('hex');
    const runId = scheduledRunId(schedule.model, `${firedAt.toString(36)}-${digest.slice(0, 8)}`);
    const input = scheduledRunInput(schedule, this.options.bucket, runId, this.options.batchOptions);
    if ((await this.options.runner.start(runId, input)) === 'duplicate')
      throw new Error(`run ${runId} exists already`);
    const run = this.options.runner.run(runId);
    if (!run) throw new Error(`run ${runId} was not started`);
    entry.running = runId;
    const scheduled: ScheduledRun = { schedule, runId, firedAt, result: run.result };
    run.result.then(
      (result) => {
        entry.running = undefined;
        this.log(
          `[schedule] ${schedule.label}: run ${runId} ${result.status}, manifest ${result.manifestKey}`,
        );
        this.options.onEnded?.(scheduled, result);
      },
      (error: unknown) => {
        // Abandoned by a stop (it resumes on the next start) or an error of the local stack itself.
        entry.running = undefined;
        if (!this.stopped)
          this.log(`[schedule] ${schedule.label}: run ${runId} did not end: ${(error as Error).message}`);
      },
    );
    return scheduled;
  }

  private arm(): void {
    if (this.stopped) return;
    const next = Math.min(...this.entries.map((e) => e.next ?? Infinity));
    if (next === Infinity) return;
    const wait = Math.min(Math.max(next - this.now(), 0), MAX_WAIT_MS);
    this.timer = setTimeout(() => {
      void this.tick().finally(() => this.arm());
    }, wait);
    this.timer.unref();
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
