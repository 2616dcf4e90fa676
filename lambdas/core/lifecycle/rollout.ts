/**
 * The steps of an automatic rollout (`tandem models rollout`), each run by one task of the rollout state
 * machine (lib/rollout-definition.ts), deployed by the rollout function and locally in the CLI's process.
 * The state machine's state is a `RolloutState`; every task takes it and returns it with the `decision`
 * the definition's one Choice state routes on.
 *
 * From a pointer without a canary: start (canary at the first percentage) -> bake -> check -> advance to
 * the next percentage ... -> check -> promote. A failed check rolls back (the canary ends; the live
 * version takes everything again). Every pointer write is a conditional write from the pointer the
 * rollout itself wrote last (its `change`): if an operator changed the pointer meanwhile, the rollout
 * stops and leaves the pointer as the operator set it. Change ids are derived from the rollout id and the
 * step, so a task retried after its write finds its own change and does not write twice.
 */
import { LifecycleRefusedError, PointerConflictError } from './errors.ts';
import { historyFile } from './history-file.ts';
import type { HistoryEntry, RolloutMark, RolloutVerdict } from './lifecycle.ts';
import type { PackageProblem } from './package-check.ts';
import {
  isInvalidPointer,
  readPointerDocument,
  writePointerDocument,
  type PointerDocument,
} from './pointer-document.ts';
import type { ModelStoreWriter, StoredPointer } from './ports.ts';
import { checkStep, EMPTY_WINDOW, type RolloutThresholds, type VersionWindow } from './rollout-checks.ts';
import { isCanaryPercent } from '../traffic-split.ts';

/** What `models rollout` asks for. */
export interface RolloutRequest {
  readonly rolloutId: string;
  readonly model: string;
  readonly candidate: string;
  /** Canary percentages, ascending, each in (0, 100]. */
  readonly steps: readonly number[];
  readonly bakeSeconds: number;
  readonly by: string;
  readonly reason?: string;
}

export type RolloutDecision =
  'bake' | 'advance' | 'promote' | 'rollback' | 'promoted' | 'rolled-back' | 'stopped';

export type RolloutStatus = 'running' | 'promoted' | 'rolled-back' | 'stopped' | 'interrupted';

/** The state machine's state between tasks. */
export interface RolloutState extends RolloutRequest {
  readonly live: string;
  /** The current step, 1-based. */
  readonly step: number;
  /** The pointer change the rollout wrote last (what the next write is conditional on). */
  readonly change: string;
  /** ms since the epoch. */
  readonly startedAt: number;
  readonly stepStartedAt: number;
  readonly decision: RolloutDecision;
  /** The last check's verdicts. */
  readonly checks?: readonly RolloutVerdict[];
  /** Set by the state machine when a task failed (Catch): what the rollback records. */
  readonly failure?: { readonly Error?: string; readonly Cause?: string };
  /** How the rollout ended (what the notification says). */
  readonly outcome?: {
    readonly status: Exclude<RolloutStatus, 'running' | 'interrupted'>;
    /** The Fail state's error name. */
    readonly error: string;
    readonly subject: string;
    readonly message: string;
  };
}

/** Each version's per-version metrics over a window (CloudWatch deployed, the local stack's files locally). */
export interface VersionMetricsSource {
  window(model: string, version: string, fromMs: number, toMs: number): Promise<VersionWindow>;
}

export interface RolloutDeps {
  readonly store: ModelStoreWriter;
  readonly metrics: VersionMetricsSource;
  readonly thresholds: RolloutThresholds;
  /**
   * Loads a version as the server does and says why it does not load ([] when it does): the CLI's check
   * before it starts a rollout. The rollout function does not ship onnxruntime and leaves it out: a
   * candidate that does not load takes no traffic, and the traffic check rolls it back.
   */
  readonly loadProblems?: (name: string, version: string) => Promise<readonly PackageProblem[]>;
  readonly now?: () => number;
}

export type RolloutAction = 'start' | 'check' | 'advance' | 'promote' | 'rollback';

export const DEFAULT_ROLLOUT_STEPS = [10, 50, 100] as const;
export const MAX_BAKE_SECONDS = 86_400;

/** `10,50,100` -> [10, 50, 100]; throws a message saying what is expected. */
export function parseSteps(text: string): number[] {
  const steps = text.split(',').map((part) => (part.trim() === '' ? NaN : Number(part)));
  const problem = stepsProblem(steps);
  if (problem) throw new LifecycleRefusedError('INVALID_STEPS', `--steps ${text}: ${problem}`);
  return steps;
}

function stepsProblem(steps: readonly number[]): string | undefined {
  if (steps.length === 0 || steps.length > 20) return 'expected 1 to 20 comma-separated percentages';
  for (const [i, step] of steps.entries()) {
    if (!isCanaryPercent(step) || step <= 0)
      return `each step is a percentage above 0 and at most 100 (to 0.01), not ${step}`;
    if (i > 0 && step <= steps[i - 1]!) return 'the percentages must go up';
  }
  return undefined;
}

/** `30s`, `5m`, `1h`, `90` (seconds) -> seconds; throws a message saying what is expected. */
export function parseDuration(text: string): number {
  const match = /^(\d+)(s|m|h)?$/.exec(text.trim());
  const seconds = match
    ? Number(match[1]) * { s: 1, m: 60, h: 3600 }[(match[2] ?? 's') as 's' | 'm' | 'h']
    : NaN;
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > MAX_BAKE_SECONDS) {
    throw new LifecycleRefusedError(
      'INVALID_BAKE',
      `--bake ${text}: expected a duration from 1s to 24h, such as 30s, 5m or 1h`,
    );
  }
  return seconds;
}

const pct = (percent: number) => `${percent}%`;

export class RolloutSteps {
  private readonly now: () => number;

  constructor(private readonly deps: RolloutDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Runs one task of the state machine. */
  run(action: RolloutAction, input: RolloutRequest | RolloutState): Promise<RolloutState> {
    const state = input as RolloutState;
    switch (action) {
      case 'start':
        return this.start(input);
      case 'check':
        return this.check(state);
      case 'advance':
        return this.advance(state);
      case 'promote':
        return this.promote(state);
      case 'rollback':
        return this.rollback(state);
    }
  }

  /**
   * What the rollout would start from, or why it is refused (nothing written): the pointer must name a
   * live version and no canary (one rollout per model at a time), and the candidate must be another
   * version that loads (when the deps can load).
   */
  async prepare(request: RolloutRequest): Promise<{ live: string; stored: StoredPointer }> {
    const problem = stepsProblem(request.steps);
    if (problem)
      throw new LifecycleRefusedError('INVALID_STEPS', `steps ${request.steps.join(',')}: ${problem}`);
    if (
      !Number.isSafeInteger(request.bakeSeconds) ||
      request.bakeSeconds < 1 ||
      request.bakeSeconds > MAX_BAKE_SECONDS
    ) {
      throw new LifecycleRefusedError(
        'INVALID_BAKE',
        `bake time ${request.bakeSeconds}: expected 1 to ${MAX_BAKE_SECONDS} seconds`,
      );
    }
    const { model, candidate } = request;
    const stored = await this.deps.store.readPointer(model);
    const document = stored ? readPointerDocument(stored.body) : undefined;
    if (!stored || !document || isInvalidPointer(document)) {
      throw new LifecycleRefusedError(
        'NO_LIVE_VERSION',
        `${model} has no ${stored ? 'valid ' : ''}current.json: a rollout needs a live version (promote one first)`,
      );
    }
    if (document.canary?.rollout !== undefined) {
      throw new LifecycleRefusedError(
        'ROLLOUT_RUNNING',
        `rollout ${document.canary.rollout} of ${model}@${document.canary.version} is running (${pct(document.canary.percent)}): one rollout per model at a time (models rollout-status ${model}; if the process running it was killed, end its canary: models canary ${model} ${document.canary.version} --percent 0)`,
      );
    }
    if (document.canary) {
      throw new LifecycleRefusedError(
        'CANARY_RUNNING',
        `${model}@${document.canary.version} is a canary (${pct(document.canary.percent)}): a rollout starts from a pointer without one (end it: models canary ${model} ${document.canary.version} --percent 0)`,
      );
    }
    if (document.version === candidate) {
      throw new LifecycleRefusedError(
        'ALREADY_LIVE',
        `${model}@${candidate} is the live version: nothing to roll out`,
      );
    }
    const problems = (await this.deps.loadProblems?.(model, candidate)) ?? [];
    if (problems.length > 0) {
      const code = problems[0]!.code;
      throw new LifecycleRefusedError(
        code,
        code === 'VERSION_NOT_FOUND'
          ? `${model}@${candidate} does not exist in ${this.deps.store.description}`
          : `${model}@${candidate} does not load (${code}): it would take no traffic; nothing was started`,
        { details: problems.map((p) => ({ ...(p.field ? { field: p.field } : {}), message: p.message })) },
      );
    }
    return { live: document.version, stored };
  }

  /** Refuses as `prepare` does, then sets the canary to the first percentage. */
  async start(request: RolloutRequest): Promise<RolloutState> {
    const change = changeId(request.rolloutId, 'step', 1);
    const stored = await this.deps.store.readPointer(request.model);
    const current = stored ? readPointerDocument(stored.body) : undefined;
    const at = this.now();
    if (current && !isInvalidPointer(current) && current.change === change) {
      // A retried start whose write went through: carry on from it.
      return this.initial(request, current.version, at);
    }
    const { live, stored: from } = await this.prepare(request);
    const state = this.initial(request, live, at);
    const document = readPointerDocument(from.body) as PointerDocument;
    const pointer: PointerDocument = {
      ...document,
      change,
      changedAt: new Date(at).toISOString(),
      changedBy: request.by,
      canary: { version: request.candidate, percent: request.steps[0]!, rollout: request.rolloutId },
    };
    try {
      await this.deps.store.writePointer(request.model, writePointerDocument(pointer), { tag: from.tag });
    } catch (error) {
      if (error instanceof PointerConflictError) {
        throw new LifecycleRefusedError(
          'POINTER_CONFLICT',
          `current.json of ${request.model} changed while the rollout started: nothing was written; look at models show and start again`,
          { cause: error },
        );
      }
      throw error;
    }
    await this.recordEntry(state, at, {
      change,
      action: 'rollout-step',
      to: request.candidate,
      percent: request.steps[0]!,
      rollout: { id: request.rolloutId, step: 1, steps: request.steps, bakeSeconds: request.bakeSeconds },
      reason: `rollout started: step 1 of ${request.steps.length}${request.reason ? `; ${request.reason}` : ''}`,
    });
    return state;
  }

  /** The health checks of the step that just baked; decides what comes next. */
  async check(state: RolloutState): Promise<RolloutState> {
    const moved = await this.pointerMoved(state);
    if (moved) return this.stop(state, moved);
    const at = this.now();
    const { metrics, thresholds } = this.deps;
    const [candidate, live] = await Promise.all([
      metrics.window(state.model, state.candidate, state.stepStartedAt, at),
      // At 100 % the live version answers nothing in the step: compare with all it answered since the start.
      metrics.window(state.model, state.live, state.startedAt, at).catch(() => EMPTY_WINDOW),
    ]);
    const checks = checkStep(candidate, live, { candidate: state.candidate, live: state.live }, thresholds);
    const passed = checks.every((c) => c.passed);
    const percent = state.steps[state.step - 1]!;
    await this.recordEntry(state, at, {
      change: changeId(state.rolloutId, 'check', state.step),
      action: 'rollout-check',
      to: state.candidate,
      percent,
      rollout: { id: state.rolloutId, step: state.step, checks, passed },
      reason: passed
        ? `step ${state.step} (${pct(percent)}) healthy`
        : `step ${state.step} (${pct(percent)}) failed: ${failedText(checks)}`,
    });
    const last = state.step === state.steps.length;
    return { ...state, checks, decision: passed ? (last ? 'promote' : 'advance') : 'rollback' };
  }

  /** The next percentage. */
  async advance(state: RolloutState): Promise<RolloutState> {
    const step = state.step + 1;
    const percent = state.steps[step - 1]!;
    const change = changeId(state.rolloutId, 'step', step);
    const written = await this.writeFrom(state, change, (document, stamp) => ({
      ...document,
      ...stamp,
      canary: { version: state.candidate, percent, rollout: state.rolloutId },
    }));
    if (written.stopped) return written.stopped;
    const next: RolloutState = { ...state, step, change, stepStartedAt: written.at, decision: 'bake' };
    if (written.wrote) {
      await this.recordEntry(next, written.at, {
        change,
        action: 'rollout-step',
        to: state.candidate,
        percent,
        rollout: { id: state.rolloutId, step },
        reason: `step ${step} of ${state.steps.length}`,
      });
    }
    return next;
  }

  /** Every step was healthy: the candidate becomes the live version (the canary ends). */
  async promote(state: RolloutState): Promise<RolloutState> {
    const change = changeId(state.rolloutId, 'promote');
    const written = await this.writeFrom(state, change, (_document, stamp) => ({
      version: state.candidate,
      previous: state.live,
      ...stamp,
    }));
    if (written.stopped) return written.stopped;
    const message = `rollout ${state.rolloutId}: ${state.model}@${state.candidate} promoted after ${state.steps.length} healthy step(s) (${state.steps.map(pct).join(', ')}); ${state.live} is the previous version`;
    if (written.wrote) {
      await this.recordEntry(state, written.at, {
        change,
        action: 'promote',
        to: state.candidate,
        rollout: { id: state.rolloutId },
        reason: `rollout promoted after ${state.steps.length} healthy step(s)${state.reason ? `; ${state.reason}` : ''}`,
      });
    }
    return {
      ...state,
      change,
      decision: 'promoted',
      outcome: { status: 'promoted', error: 'RolloutPromoted', subject: subject(state, 'promoted'), message },
    };
  }

  /** A check failed (or a task failed for good): the canary ends, the live version takes everything. */
  async rollback(state: RolloutState): Promise<RolloutState> {
    const why = state.failure
      ? `the rollout could not go on (${state.failure.Error ?? 'error'}: ${causeText(state.failure.Cause)})`
      : `step ${state.step} (${pct(state.steps[state.step - 1]!)}) failed: ${failedText(state.checks ?? [])}`;
    const change = changeId(state.rolloutId, 'abort');
    const written = await this.writeFrom(state, change, (document, stamp) => {
      const { canary: _ended, ...rest } = document;
      return { ...rest, ...stamp };
    });
    if (written.stopped) return written.stopped;
    if (written.wrote) {
      await this.recordEntry(state, written.at, {
        change,
        action: 'rollout-abort',
        to: state.candidate,
        percent: 0,
        rollout: { id: state.rolloutId, step: state.step },
        reason: `rolled back: ${why}`,
      });
    }
    return {
      ...state,
      change,
      decision: 'rolled-back',
      outcome: {
        status: 'rolled-back',
        error: 'RolloutRolledBack',
        subject: subject(state, 'rolled back'),
        message: `rollout ${state.rolloutId} of ${state.model}@${state.candidate} rolled back: ${why}. The canary ended; ${state.live} takes all the traffic.`,
      },
    };
  }

  private initial(request: RolloutRequest, live: string, at: number): RolloutState {
    return {
      ...request,
      live,
      step: 1,
      change: changeId(request.rolloutId, 'step', 1),
      startedAt: at,
      stepStartedAt: at,
      decision: 'bake',
    };
  }

  /**
   * A conditional write from the pointer this rollout wrote last. `wrote: false` when the pointer already
   * carries `change` (a retried task); `stopped` when someone else changed it.
   */
  private async writeFrom(
    state: RolloutState,
    change: string,
    build: (
      document: PointerDocument,
      stamp: { change: string; changedAt: string; changedBy: string },
    ) => PointerDocument,
  ): Promise<{ at: number; wrote: boolean; stopped?: RolloutState }> {
    const at = this.now();
    const stored = await this.deps.store.readPointer(state.model);
    const document = stored ? readPointerDocument(stored.body) : undefined;
    if (document && !isInvalidPointer(document) && document.change === change) return { at, wrote: false };
    const moved = describeMove(state, stored, document);
    if (moved || !stored || !document || isInvalidPointer(document)) {
      return { at, wrote: false, stopped: await this.stop(state, moved ?? 'current.json is unreadable') };
    }
    const stamp = { change, changedAt: new Date(at).toISOString(), changedBy: state.by };
    try {
      await this.deps.store.writePointer(state.model, writePointerDocument(build(document, stamp)), {
        tag: stored.tag,
      });
    } catch (error) {
      if (!(error instanceof PointerConflictError)) throw error;
      const again = await this.pointerMoved(state);
      return {
        at,
        wrote: false,
        stopped: await this.stop(state, again ?? 'current.json changed while the rollout was writing it'),
      };
    }
    return { at, wrote: true };
  }

  /** Why the pointer is no longer the one this rollout wrote, or undefined when it is. */
  private async pointerMoved(state: RolloutState): Promise<string | undefined> {
    const stored = await this.deps.store.readPointer(state.model);
    return describeMove(state, stored, stored ? readPointerDocument(stored.body) : undefined);
  }

  /** Records why the rollout stops without touching the pointer (an operator's change wins). */
  private async stop(state: RolloutState, why: string): Promise<RolloutState> {
    const at = this.now();
    await this.recordEntry(state, at, {
      change: changeId(state.rolloutId, 'stop'),
      action: 'rollout-stop',
      to: state.candidate,
      rollout: { id: state.rolloutId, step: state.step },
      reason: `stopped: ${why}`,
    });
    return {
      ...state,
      decision: 'stopped',
      outcome: {
        status: 'stopped',
        error: 'RolloutStopped',
        subject: subject(state, 'stopped'),
        message: `rollout ${state.rolloutId} of ${state.model}@${state.candidate} stopped at step ${state.step}: ${why}. The pointer is left as it is.`,
      },
    };
  }

  private async recordEntry(
    state: RolloutRequest & { readonly live: string },
    at: number,
    entry: Pick<HistoryEntry, 'change' | 'action' | 'to' | 'percent' | 'reason'> & { rollout: RolloutMark },
  ): Promise<void> {
    const time = new Date(at).toISOString();
    const record: HistoryEntry = {
      change: entry.change,
      model: state.model,
      action: entry.action,
      at: time,
      by: state.by,
      from: state.live,
      to: entry.to,
      ...(entry.percent !== undefined ? { percent: entry.percent } : {}),
      ...(entry.reason !== undefined ? { reason: entry.reason } : {}),
      rollout: entry.rollout,
    };
    // The pointer is the truth: a record that cannot be written is flagged by `models history`, and the
    // rollout goes on (the task fails only if its pointer write fails).
    await this.deps.store
      .writeHistory(state.model, historyFile(time, entry.change), `${JSON.stringify(record, null, 2)}\n`)
      .catch(() => undefined);
  }
}

/** Change ids of a rollout: `<rolloutId>-s<step>`, `-c<step>`, `-promote`, `-abort`, `-stop`. */
function changeId(
  rolloutId: string,
  kind: 'step' | 'check' | 'promote' | 'abort' | 'stop',
  step?: number,
): string {
  switch (kind) {
    case 'step':
      return `${rolloutId}-s${step}`;
    case 'check':
      return `${rolloutId}-c${step}`;
    default:
      return `${rolloutId}-${kind}`;
  }
}

function describeMove(
  state: RolloutState,
  stored: StoredPointer | undefined,
  document: ReturnType<typeof readPointerDocument> | undefined,
): string | undefined {
  if (!stored) return 'current.json was deleted';
  if (!document || isInvalidPointer(document)) {
    return `current.json was overwritten with an invalid pointer (${document && isInvalidPointer(document) ? document.invalid : 'unreadable'})`;
  }
  if (document.change === state.change) return undefined;
  const now = `live ${document.version}${document.canary ? `, canary ${document.canary.version} at ${pct(document.canary.percent)}` : ', no canary'}`;
  return `current.json was changed outside the rollout (change ${document.change ?? '(none)'}${document.changedBy ? ` by ${document.changedBy}` : ''}${document.changedAt ? ` at ${document.changedAt}` : ''}: ${now})`;
}

function failedText(checks: readonly RolloutVerdict[]): string {
  const failed = checks.filter((c) => !c.passed);
  return failed.length === 0 ? 'no check failed' : failed.map((c) => `${c.check}: ${c.message}`).join('; ');
}

function causeText(cause: string | undefined): string {
  if (cause === undefined) return 'no cause given';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: string };
    return parsed.errorMessage ?? cause;
  } catch {
    return cause;
  }
}

/** An SNS subject: at most 100 printable ASCII characters. */
function subject(state: RolloutRequest, what: string): string {
  return `Tandem rollout ${what}: ${state.model}@${state.candidate}`
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 100);
}

/** A rollout as its history records tell it (`models rollout-status`). */
export interface RolloutReport {
  readonly id: string;
  readonly model: string;
  readonly candidate: string;
  readonly live?: string;
  readonly steps?: readonly number[];
  readonly bakeSeconds?: number;
  readonly status: RolloutStatus;
  /** The step the rollout is at, or ended at. */
  readonly step?: number;
  readonly percent?: number;
  readonly startedAt: string;
  readonly endedAt?: string;
  /** Why it ended (rolled back, stopped) or how (promoted). */
  readonly ended?: string;
  readonly lastChecks?: readonly RolloutVerdict[];
  readonly entries: readonly HistoryEntry[];
}

/** The latest rollout of a model from its history, and whether the pointer still carries it. */
export function latestRollout(
  entries: readonly HistoryEntry[],
  pointer: PointerDocument | undefined,
): RolloutReport | undefined {
  const last = [...entries].reverse().find((e) => e.rollout !== undefined);
  if (!last?.rollout) return undefined;
  const id = last.rollout.id;
  const own = entries.filter((e) => e.rollout?.id === id);
  const first = own[0]!;
  const end = own.find(
    (e) => e.action === 'promote' || e.action === 'rollout-abort' || e.action === 'rollout-stop',
  );
  const lastStep = [...own].reverse().find((e) => e.action === 'rollout-step');
  const lastCheck = [...own].reverse().find((e) => e.action === 'rollout-check');
  const plan = own.find((e) => e.rollout?.steps !== undefined)?.rollout;
  const status: RolloutStatus = end
    ? end.action === 'promote'
      ? 'promoted'
      : end.action === 'rollout-abort'
        ? 'rolled-back'
        : 'stopped'
    : pointer?.canary?.rollout === id
      ? 'running'
      : 'interrupted';
  return {
    id,
    model: first.model,
    candidate: first.to,
    ...(first.from !== undefined ? { live: first.from } : {}),
    ...(plan?.steps ? { steps: plan.steps } : {}),
    ...(plan?.bakeSeconds !== undefined ? { bakeSeconds: plan.bakeSeconds } : {}),
    status,
    ...(lastStep?.rollout?.step !== undefined ? { step: lastStep.rollout.step } : {}),
    ...(lastStep?.percent !== undefined ? { percent: lastStep.percent } : {}),
    startedAt: first.at,
    ...(end ? { endedAt: end.at, ...(end.reason ? { ended: end.reason } : {}) } : {}),
    ...(lastCheck?.rollout?.checks ? { lastChecks: lastCheck.rollout.checks } : {}),
    entries: own,
  };
}
