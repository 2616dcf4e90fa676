/**
 * Runs the batch state machine locally with aws-local-stepfunctions: the definition the CDK construct
 * deploys (lib/batch-definition.ts), with each Lambda task bound to the same core function its handler
 * calls. aws-local-stepfunctions has no ItemReader or ResultWriter, so the local runner supplies the
 * plan's items to the Map itself: it reads `items.json` after Plan and points the Map's ItemsPath at them.
 * Everything else (retries with backoff, catch to Finalize, max concurrency) is the library's.
 *
 * A local run lives in this process, so the runner also does what Step Functions would do for a run
 * whose process went away: `resume` continues a run from its plan (the plan's pinned model version, the
 * chunks that have a report kept, the others scored again: chunks are idempotent), and `abandon` stops
 * every run in flight without writing a manifest, so that the next start resumes them.
 */
import './polyfills.ts';
import { StateMachine } from 'aws-local-stepfunctions';
import { batchDefinition, STATE_NAMES, type AslDefinition } from '../lib/batch-definition.ts';
import { recordChunkFailure } from '../lambdas/core/batch/chunk-failures.ts';
import { ChunkScorer } from '../lambdas/core/batch/chunk-scorer.ts';
import type { CaptureBuffer } from '../lambdas/core/capture/capture-buffer.ts';
import {
  chunkReportKey,
  itemsKey,
  planKey,
  type BatchPlan,
  type ChunkItem,
  type ChunkReport,
  type RunInput,
} from '../lambdas/core/batch/contracts.ts';
import { finalizeRun, type FinalizeResult } from '../lambdas/core/batch/finalizer.ts';
import { readDriftSettings } from '../lambdas/handlers/monitor/monitor-env.ts';
import { finalizeInputFromState, type FinalizeState } from '../lambdas/adapters/step-functions-failure.ts';
import { planRun, type PlanResult } from '../lambdas/core/batch/planner.ts';
import type {
  EventPublisher,
  ModelSource,
  ObjectStore,
  PredictionStore,
  RunStarter,
} from '../lambdas/core/ports.ts';

const LOCAL_ARN = (name: string) => `arn:aws:lambda:us-east-1:000000000000:function:tandem-${name}`;

export interface LocalBatchRunnerOptions {
  readonly bucket: string;
  readonly objects: ObjectStore;
  readonly models: ModelSource;
  readonly predictions?: PredictionStore;
  readonly events?: EventPublisher;
  /** Data capture of sampled scored rows (capture/<model>/batch/), flushed per chunk. */
  readonly capture?: CaptureBuffer;
  readonly maxConcurrency?: number;
  readonly toleratedFailurePercentage?: number;
  /** Retry pauses in ms (the definition's are seconds; tests shorten them). */
  readonly retryIntervalMs?: number;
  /** Called after each chunk is scored (for progress). */
  readonly onChunk?: (runId: string, report: ChunkReport, planned: number) => void;
  /** Called when a run has ended, successfully or not. */
  readonly onFinished?: (runId: string, result: FinalizeResult) => void;
  /** Fault injection for tests: runs before each chunk attempt and may throw. */
  readonly beforeChunk?: (item: ChunkItem, attempt: number) => void | Promise<void>;
}

export interface LocalRun {
  readonly runId: string;
  /** Rejects with RunAbandonedError when the run was abandoned (`abandon`). */
  readonly result: Promise<FinalizeResult>;
}

/** What a run in flight had done when it was abandoned. */
export interface AbandonedRun {
  readonly runId: string;
  readonly key: string;
  /** Undefined when the run had no plan yet (nothing to resume it from). */
  readonly chunks?: { readonly planned: number; readonly scored: number };
}

export class RunAbandonedError extends Error {
  override readonly name = 'RunAbandonedError';
  constructor(readonly runId: string) {
    super('the local stack is stopping: runs are abandoned, not started or continued');
  }
}

/** The live state of a run in this process. */
interface RunProgress {
  readonly input: RunInput;
  planned: number | undefined;
  readonly scored: Set<number>;
  abort?: () => void;
  ended: boolean;
}

/** How long `close` waits for chunks in flight after `abandon` before it leaves them. */
const ABANDON_GRACE_MS = 1_000;

/** The deployed definition with the Map reading its items from the state instead of S3. */
export function localDefinition(
  bucket: string,
  maxConcurrency: number,
  toleratedFailurePercentage: number,
): AslDefinition {
  const definition = batchDefinition({
    planFunctionArn: LOCAL_ARN('batch-plan'),
    scoreFunctionArn: LOCAL_ARN('batch-score'),
    finalizeFunctionArn: LOCAL_ARN('batch-finalize'),
    bucketName: bucket,
    maxConcurrency,
    toleratedFailurePercentage,
  });
  const map = definition.States[STATE_NAMES.map]!;
  delete map['ItemReader'];
  delete map['ResultWriter'];
  map['ItemsPath'] = '$.planned.items';
  // Child results stay out of the state, as the deployed ResultWriter keeps them out.
  map['ResultPath'] = null;
  return definition;
}

export class LocalBatchRunner implements RunStarter {
  private readonly runs = new Map<string, LocalRun>();
  private readonly machine: StateMachine;
  private readonly scorer: ChunkScorer;
  private readonly attempts = new Map<string, number>();
  /** Runs that reached Finalize: the library's Map still starts the chunks it had queued when one failed. */
  private readonly ended = new Set<string>();
  private readonly progress = new Map<string, RunProgress>();
  /** Task handlers in flight (a chunk being scored, a plan, a finalize). */
  private readonly inFlight = new Set<Promise<unknown>>();
  private abandoned = false;

  constructor(private readonly options: LocalBatchRunnerOptions) {
    this.machine = new StateMachine(
      localDefinition(
        options.bucket,
        options.maxConcurrency ?? 4,
        options.toleratedFailurePercentage ?? 0,
      ) as never,
    );
    this.scorer = new ChunkScorer({
      objects: options.objects,
      models: options.models,
      ...(options.predictions ? { predictions: options.predictions } : {}),
      ...(options.capture ? { capture: options.capture } : {}),
    });
  }

  async start(name: string, input: unknown): Promise<'started' | 'duplicate'> {
    return this.launch(name, input as RunInput, undefined);
  }

  /**
   * Continues a run found with a plan and no manifest: the Plan step reads the plan instead of planning
   * again (so the model version it pinned stays), and chunks that already have a report are not scored
   * again. The run then ends like any other, with its manifest and completion event.
   */
  resume(plan: BatchPlan): Promise<'started' | 'duplicate'> {
    const input: RunInput = {
      runId: plan.runId,
      bucket: plan.input.bucket,
      key: plan.input.key,
      ...(plan.input.versionId ? { versionId: plan.input.versionId } : {}),
      etag: plan.input.etag,
      model: plan.model,
      options: plan.options,
    };
    return this.launch(plan.runId, input, plan);
  }

  /** The run started under this name, if any. */
  run(runId: string): LocalRun | undefined {
    return this.runs.get(runId);
  }

  /**
   * Stops every run in flight without ending it: no chunk starts after this, no Finalize runs, no
   * manifest is written (a run's plan and chunk reports stay, so the next start resumes it). Returns
   * what each run had done.
   */
  abandon(): AbandonedRun[] {
    this.abandoned = true;
    const abandoned: AbandonedRun[] = [];
    for (const [runId, run] of this.progress) {
      if (run.ended) continue;
      run.abort?.();
      abandoned.push({
        runId,
        key: run.input.key,
        ...(run.planned === undefined ? {} : { chunks: { planned: run.planned, scored: run.scored.size } }),
      });
    }
    return abandoned;
  }

  /** Waits for every run started so far. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.runs.values()].map((r) => r.result));
  }

  async close(): Promise<void> {
    if (this.abandoned) {
      // A chunk being scored stops at the next S3 or table call once the emulators are gone; waiting for
      // a 64 MiB chunk to finish would keep Ctrl+C waiting for minutes.
      const settled = Promise.allSettled([...this.inFlight]).then(() => true);
      const allEnded = await Promise.race([settled, delay(ABANDON_GRACE_MS).then(() => false)]);
      // Models still in use by a chunk are left to the process's exit rather than closed under it.
      if (allEnded) await this.scorer.close();
      return;
    }
    await this.settle();
    await this.scorer.close();
  }

  private async launch(
    name: string,
    input: RunInput,
    plan: BatchPlan | undefined,
  ): Promise<'started' | 'duplicate'> {
    if (this.runs.has(name)) return 'duplicate';
    if (this.abandoned) throw new RunAbandonedError(name);
    const progress: RunProgress = { input, planned: plan?.chunks.length, scored: new Set(), ended: false };
    this.progress.set(name, progress);
    const result = this.execute(input, progress, plan);
    result
      .then((r) => this.options.onFinished?.(name, r))
      .catch(() => undefined)
      .finally(() => {
        progress.ended = true;
        this.progress.delete(name);
      });
    this.runs.set(name, { runId: name, result });
    return 'started';
  }

  /** Runs a task handler, tracked so that `close` can wait for it after `abandon`. */
  private track<T>(work: Promise<T>): Promise<T> {
    this.inFlight.add(work);
    void work.then(
      () => this.inFlight.delete(work),
      () => this.inFlight.delete(work),
    );
    return work;
  }

  private async execute(
    input: RunInput,
    progress: RunProgress,
    resumedPlan: BatchPlan | undefined,
  ): Promise<FinalizeResult> {
    const { objects, models, events } = this.options;
    let finalized: FinalizeResult | undefined;
    const retry = this.options.retryIntervalMs ?? 50;
    const planState = async (state: RunInput): Promise<PlanResult & { items: ChunkItem[] }> => {
      if (this.abandoned) throw new RunAbandonedError(state.runId);
      const result = resumedPlan ? planResultOf(resumedPlan) : await planRun(state, { objects, models });
      progress.planned = result.chunks;
      const items = resumedPlan
        ? resumedPlan.chunks.map((c) => ({
            runId: resumedPlan.runId,
            bucket: result.bucket,
            planKey: result.planKey,
            index: c.index,
          }))
        : (JSON.parse(
            new TextDecoder().decode(await objects.readBytes(result.bucket, result.itemsKey)),
          ) as ChunkItem[]);
      return { ...result, items };
    };
    const scoreState = async (item: ChunkItem) => {
      if (this.abandoned) throw new RunAbandonedError(item.runId);
      if (this.ended.has(item.runId))
        throw new Error(`run ${item.runId} has ended: chunk ${item.index} not started`);
      const key = `${item.runId}#${item.index}`;
      const attempt = (this.attempts.get(key) ?? 0) + 1;
      this.attempts.set(key, attempt);
      let report: ChunkReport | undefined = resumedPlan ? await scoredBefore(objects, item) : undefined;
      if (!report) {
        try {
          await this.options.beforeChunk?.(item, attempt);
          report = await this.scorer.score(item, attempt);
        } catch (error) {
          // An abandoned run's chunks fail because the stack is going away, not because of the data.
          if (!this.abandoned) await recordChunkFailure(objects, item, error, { attempt });
          throw error;
        }
      }
      progress.scored.add(item.index);
      this.options.onChunk?.(item.runId, report, progress.planned ?? 0);
      return { index: report.index, read: report.read, scored: report.scored, rejected: report.rejected };
    };
    const finalizeState = async (state: FinalizeState & { planned?: PlanResult & { items?: unknown } }) => {
      if (this.abandoned) throw new RunAbandonedError(state.runId);
      // The local items list is not part of the deployed contract.
      const { items: _items, ...plannedResult } = state.planned ?? ({} as PlanResult & { items?: unknown });
      this.ended.add(state.runId);
      finalized = await finalizeRun(
        finalizeInputFromState({
          ...state,
          ...(state.planned ? { planned: plannedResult as PlanResult } : {}),
        }),
        { objects, ...(events ? { events } : {}), drift: readDriftSettings(process.env) },
      );
      return finalized;
    };
    const startedAt = resumedPlan?.createdAt ?? new Date().toISOString();
    const execution = this.machine.run({ ...input, startedAt } as never, {
      overrides: {
        taskResourceLocalHandlers: {
          [STATE_NAMES.plan]: (state: RunInput) => this.track(planState(state)),
          [STATE_NAMES.score]: (item: ChunkItem) => this.track(scoreState(item)),
          [STATE_NAMES.finalize]: (state: Parameters<typeof finalizeState>[0]) =>
            this.track(finalizeState(state)),
        } as never,
        retryIntervalOverrides: {
          [STATE_NAMES.plan]: retry,
          [STATE_NAMES.score]: retry,
          [STATE_NAMES.finalize]: retry,
        } as never,
      },
    });
    progress.abort = () => execution.abort();
    if (this.abandoned) execution.abort();
    try {
      await execution.result;
    } catch (error) {
      if (this.abandoned && !finalized) throw new RunAbandonedError(input.runId);
      // A failed run still ran Finalize (the definition catches everything); its result says why.
      if (!finalized) throw error;
    }
    return finalized!;
  }
}

/** What the Plan step returned for a plan already written. */
function planResultOf(plan: BatchPlan): PlanResult {
  return {
    bucket: plan.input.bucket,
    planKey: planKey(plan.runId),
    itemsKey: itemsKey(plan.runId),
    chunks: plan.chunks.length,
    totalRows: plan.totalRows,
    modelVersion: plan.modelVersion,
    resultsPrefix: plan.resultsPrefix,
  };
}

/** A chunk's report, when an earlier attempt finished it (the scorer writes the report last). */
async function scoredBefore(objects: ObjectStore, item: ChunkItem): Promise<ChunkReport | undefined> {
  const key = chunkReportKey(item.runId, item.index);
  if (!(await objects.head(item.bucket, key))) return undefined;
  return JSON.parse(new TextDecoder().decode(await objects.readBytes(item.bucket, key))) as ChunkReport;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
