/**
 * Runs the batch state machine locally with aws-local-stepfunctions: the definition the CDK construct
 * deploys (lib/batch-definition.ts), with each Lambda task bound to the same core function its handler
 * calls. aws-local-stepfunctions has no ItemReader or ResultWriter, so the local runner supplies the
 * plan's items to the Map itself: it reads `items.json` after Plan and points the Map's ItemsPath at them.
 * Everything else (retries with backoff, catch to Finalize, max concurrency) is the library's.
 */
import './polyfills.ts';
import { StateMachine } from 'aws-local-stepfunctions';
import { batchDefinition, STATE_NAMES, type AslDefinition } from '../lib/batch-definition.ts';
import { recordChunkFailure } from '../lambdas/core/batch/chunk-failures.ts';
import { ChunkScorer } from '../lambdas/core/batch/chunk-scorer.ts';
import type { ChunkItem, ChunkReport, RunInput } from '../lambdas/core/batch/contracts.ts';
import { finalizeRun, type FinalizeResult } from '../lambdas/core/batch/finalizer.ts';
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
  readonly result: Promise<FinalizeResult>;
}

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
    });
  }

  async start(name: string, input: unknown): Promise<'started' | 'duplicate'> {
    if (this.runs.has(name)) return 'duplicate';
    const result = this.execute(input as RunInput);
    result.then((r) => this.options.onFinished?.(name, r)).catch(() => undefined);
    this.runs.set(name, { runId: name, result });
    return 'started';
  }

  /** The run started under this name, if any. */
  run(runId: string): LocalRun | undefined {
    return this.runs.get(runId);
  }

  /** Waits for every run started so far. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.runs.values()].map((r) => r.result));
  }

  async close(): Promise<void> {
    await this.settle();
    await this.scorer.close();
  }

  private async execute(input: RunInput): Promise<FinalizeResult> {
    const { objects, models, events } = this.options;
    let planned = 0;
    let finalized: FinalizeResult | undefined;
    const retry = this.options.retryIntervalMs ?? 50;
    const execution = this.machine.run({ ...input, startedAt: new Date().toISOString() } as never, {
      overrides: {
        taskResourceLocalHandlers: {
          [STATE_NAMES.plan]: async (state: RunInput): Promise<PlanResult & { items: ChunkItem[] }> => {
            const result = await planRun(state, { objects, models });
            planned = result.chunks;
            const items = JSON.parse(
              new TextDecoder().decode(await objects.readBytes(result.bucket, result.itemsKey)),
            ) as ChunkItem[];
            return { ...result, items };
          },
          [STATE_NAMES.score]: async (item: ChunkItem) => {
            if (this.ended.has(item.runId))
              throw new Error(`run ${item.runId} has ended: chunk ${item.index} not started`);
            const key = `${item.runId}#${item.index}`;
            const attempt = (this.attempts.get(key) ?? 0) + 1;
            this.attempts.set(key, attempt);
            let report: ChunkReport;
            try {
              await this.options.beforeChunk?.(item, attempt);
              report = await this.scorer.score(item, attempt);
            } catch (error) {
              await recordChunkFailure(objects, item, error, { attempt });
              throw error;
            }
            this.options.onChunk?.(item.runId, report, planned);
            return {
              index: report.index,
              read: report.read,
              scored: report.scored,
              rejected: report.rejected,
            };
          },
          [STATE_NAMES.finalize]: async (
            state: FinalizeState & { planned?: PlanResult & { items?: unknown } },
          ) => {
            // The local items list is not part of the deployed contract.
            const { items: _items, ...plannedResult } =
              state.planned ?? ({} as PlanResult & { items?: unknown });
            this.ended.add(state.runId);
            finalized = await finalizeRun(
              finalizeInputFromState({
                ...state,
                ...(state.planned ? { planned: plannedResult as PlanResult } : {}),
              }),
              { objects, ...(events ? { events } : {}) },
            );
            return finalized;
          },
        } as never,
        retryIntervalOverrides: {
          [STATE_NAMES.plan]: retry,
          [STATE_NAMES.score]: retry,
          [STATE_NAMES.finalize]: retry,
        } as never,
      },
    });
    try {
      await execution.result;
    } catch (error) {
      // A failed run still ran Finalize (the definition catches everything); its result says why.
      if (!finalized) throw error;
    }
    return finalized!;
  }
}
