/**
 * The local stack in one call, for `npm start`, `npm run batch`, the integration tests and the
 * benchmarks: embedded DynamoDB and S3, the model packages uploaded, the batch state machine run
 * locally on every upload to `incoming/`, the demo dataset scored into the table through that same
 * batch pipeline, and the real API handler behind the API Gateway event adapter.
 *
 * The upload watcher stands in for S3 -> EventBridge -> trigger: each s3rver notification becomes the
 * EventBridge "Object Created" event the deployed trigger reads (keys raw, as EventBridge sends them), and
 * nothing it meets can stop the stack (an error is caught, logged once and counted). On start, runs that
 * a previous process left with a plan and no manifest (killed mid-run) are resumed.
 */
import { VersionMetricsRecorder } from './version-metrics.ts';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { DynamoDbPredictionStore } from '../lambdas/adapters/dynamodb-prediction-store.ts';
import { S3ModelSource } from '../lambdas/adapters/s3-model-source.ts';
import { S3ObjectStore } from '../lambdas/adapters/s3-object-store.ts';
import {
  planKey,
  type BatchOptions,
  type BatchPlan,
  type ChunkReport,
  type RunCompletedEvent,
} from '../lambdas/core/batch/contracts.ts';
import type { FinalizeResult } from '../lambdas/core/batch/finalizer.ts';
import { uploadsFromEvent } from '../lambdas/adapters/upload-events.ts';
import {
  startFolderRun,
  triggerRuns,
  type IgnoredReason,
  type TriggerOutcome,
  type UploadedObject,
} from '../lambdas/core/batch/trigger.ts';
import { createApiServer, DEFAULT_MAX_QUEUED, listen } from './api-server.ts';
import { ConcurrencyGate } from './concurrency-gate.ts';
import { LocalBatchRunner } from './batch-runner.ts';
import {
  ensureBucket,
  ensureTable,
  startEmbeddedAws,
  type EmbeddedAws,
  type S3rverNotification,
} from './embedded-aws.ts';
import { startStreamLane, streamEnv, type LocalStreamLane, type LocalStreamOptions } from './stream-lane.ts';
import { uploadModelPackages } from './uploader.ts';
import type { CaptureBuffer } from '../lambdas/core/capture/capture-buffer.ts';
import { refreshEventsFromEvent } from '../lambdas/adapters/refresh-events.ts';
import { S3RefreshStore } from '../lambdas/adapters/s3-refresh-store.ts';
import {
  NO_REFRESH_SOURCES,
  refresh,
  type RefreshDeps,
  type RefreshEvent,
  type RefreshOutcome,
  type RefreshPolicy,
} from '../lambdas/core/refresh/refresh.ts';
import { StalenessEvaluator, stalenessPeriods } from '../lambdas/core/refresh/staleness.ts';
import { SETTINGS, STALENESS_PERIOD_SECONDS } from '../lambdas/core/settings.ts';
import { scheduledPrefixes, type Schedule } from '../lambdas/core/batch/schedules.ts';
import {
  monitoredModels,
  runMonitor,
  type MonitorDeps,
  type MonitorOutcome,
} from '../lambdas/core/monitoring/monitor-run.ts';
import { monitorQuality } from '../lambdas/core/monitoring/monitor-quality.ts';
import { readMonitorSettings } from '../lambdas/handlers/monitor/monitor-env.ts';
import { LocalScheduler, type LocalSchedulerOptions } from './scheduler.ts';
import { localCapture } from './local-capture.ts';
import type { ShadowRunner } from '../lambdas/core/shadow/shadow-runner.ts';

export const LOCAL_BUCKET = 'tandem-data';
export const LOCAL_TABLE = 'tandem-predictions';
export const DEMO_MODEL = 'fraud-detector';
export const DEMO_DATASET_KEY = `incoming/${DEMO_MODEL}/demo-transactions.csv`;
export const REPO_ROOT = path.resolve(import.meta.dirname, '..');
export const DEFAULT_API_CONCURRENCY = 8;
const LOCAL_WRITE_CONCURRENCY = 4;
export const LOCAL_CACHE_BUDGET_MS = 1000;

export interface LocalStackOptions {
  /** API port; 0 picks a free one; undefined starts no API (batch only). */
  readonly apiPort?: number;
  readonly dynamoPort?: number;
  readonly s3Port?: number;
  /** The stream lane (local/stream-lane.ts): Kinesis emulator, both streams, consumer poller. Default off. */
  readonly stream?: LocalStreamOptions & { readonly kinesisPort?: number };
  /** Where data is kept; undefined keeps it in memory / a temp folder. */
  readonly dataDir?: string;
  /** Folder of model packages to upload. Default: the repo's models/. */
  readonly modelsDir?: string;
  /**
   * A folder of the user's packages (\`--models <dir>\`), served alongside those of \`modelsDir\`: it is
   * uploaded first, so a model of the same name takes its pointer (current.json) from here.
   */
  readonly userModelsDir?: string;
  /** Score the demo dataset into the table through the batch lane before serving. Default true. */
  readonly seed?: boolean;
  /** Extra environment for the API handler (CACHE_BUDGET_MS, WRITE_THROUGH, ...). */
  readonly handlerEnv?: Record<string, string>;
  /**
   * Handler invocations in flight at once; more requests wait for a free slot, as they would for a
   * free Lambda instance (local/concurrency-gate.ts says why). Default 8.
   */
  readonly apiConcurrency?: number;
  /**
   * Continue the runs a previous process left unfinished (a plan and no manifest) once the stack is up.
   * @default true
   */
  readonly resumeRuns?: boolean;
  /** Options for the runs the upload watcher starts (the deployed trigger's BATCH_OPTIONS). */
  readonly batchOptions?: Partial<BatchOptions>;
  /**
   * The checked `schedules` setting (lib/settings.ts readScheduleSetting): each fires a folder run of its
   * prefix at its expression's fire times (local/scheduler.ts). Default: none.
   */
  readonly schedules?: readonly Schedule[];
  /** The schedules' clock and timers (tests drive them: `{ now, timers: false }` and `tick()`). */
  readonly scheduleClock?: Pick<LocalSchedulerOptions, 'now' | 'timers' | 'onEnded'>;
  /** Where the stack's own lines go (ignored uploads, watcher errors, resumed runs). Default: stderr. */
  readonly log?: (line: string) => void;
  /** Refresh on a version change and on staleness (docs/lifecycle.md#refresh), as deployed. */
  readonly refresh?: LocalRefreshOptions;
  /**
   * Minutes between drift monitor runs of every model (as the deployed schedule), or false for none.
   * @default SETTINGS.monitorIntervalMinutes.default (15)
   */
  readonly monitorIntervalMinutes?: number | false;
  readonly batch?: {
    readonly maxConcurrency?: number;
    readonly toleratedFailurePercentage?: number;
    readonly retryIntervalMs?: number;
    readonly onChunk?: (runId: string, report: ChunkReport, planned: number) => void;
    readonly onFinished?: (runId: string, result: FinalizeResult) => void;
    readonly beforeChunk?: ConstructorParameters<typeof LocalBatchRunner>[0]['beforeChunk'];
  };
}

export interface LocalStack {
  readonly apiUrl: string | undefined;
  readonly aws: EmbeddedAws;
  readonly dynamo: DynamoDBClient;
  readonly s3: S3Client;
  readonly objects: S3ObjectStore;
  readonly batch: LocalBatchRunner;
  /** The stream lane, when started. */
  readonly stream: LocalStreamLane | undefined;
  /** Completion events published by batch runs, oldest first. */
  readonly events: RunCompletedEvent[];
  readonly uploadedKeys: readonly string[];
  /** The demo dataset's batch run, when seeded. */
  readonly seed: FinalizeResult | undefined;
  /** What the upload watcher did, counted since start. */
  readonly watcher: Readonly<WatcherCounts>;
  /** What each refresh event did (runs started, duplicates, skips with their reason), oldest first. */
  readonly refreshes: readonly RefreshOutcome[];
  /** The schedules running on this stack, when there are any. */
  readonly scheduler: LocalScheduler | undefined;
  /** The runs found unfinished on start and resumed (resolves once they are started, not ended). */
  readonly resumed: Promise<readonly ResumedRun[]>;
  /** Uploads a file to incoming/<model>/ and runs it (as the upload watcher would); resolves when it ends. */
  runDataset(
    file: string,
    model: string,
    key?: string,
    options?: Partial<BatchOptions>,
  ): Promise<FinalizeResult>;
  /** Runs every data file under a prefix of the local bucket as one run; resolves when it ends. */
  runFolder(prefix: string, model: string, options?: Partial<BatchOptions>): Promise<FinalizeResult>;
  /**
   * Writes the buffered captures (API, stream consumer, batch) now, after the shadow comparisons in flight
   * have settled (docs/monitoring.md).
   */
  flushCaptures(): Promise<void>;
  /** Runs the drift monitor for a model now (`tandem monitor run` does the same from outside). */
  runMonitor(model: string): Promise<MonitorOutcome>;
  stop(): Promise<void>;
}

export interface LocalRefreshOptions {
  /** The policy of models whose manifest has no refresh.on. @default SETTINGS.refreshOn.default */
  readonly on?: RefreshPolicy;
  /** @default SETTINGS.refreshStaleShare.default */
  readonly staleShare?: number;
  /** @default SETTINGS.refreshStaleMinutes.default */
  readonly staleMinutes?: number;
  /**
   * One staleness period, ms: the window the API's cache reads are counted over (deployed: 5 minutes).
   * Short in tests. 0 evaluates no staleness.
   * @default STALENESS_PERIOD_SECONDS * 1000
   */
  readonly stalePeriodMs?: number;
  /** The prefixes of a model's schedules (refresh sources besides its manifest's). @default those of `schedules` */
  readonly scheduledPrefixes?: (model: string) => readonly string[];
}

export interface WatcherCounts {
  started: number;
  duplicate: number;
  ignored: number;
  /** Notifications the watcher could not handle (logged once per distinct message). */
  errors: number;
}

export interface ResumedRun {
  readonly runId: string;
  readonly key: string;
  readonly chunks: number;
}

/** An upload runDataset was asked to run that the trigger ignores (not a dataset). */
export class UploadIgnoredError extends Error {
  override readonly name = 'UploadIgnoredError';
  constructor(
    readonly key: string,
    readonly reason: IgnoredReason,
  ) {
    super(`[${reason.code}] ${key} starts no run: ${reason.message}`);
  }
}

/**
 * The EventBridge "Object Created" events S3 would send for s3rver's notification (s3rver's keys are
 * the keys themselves, not form-encoded as S3 notifications are).
 */
export function eventBridgeEvents(notification: S3rverNotification): unknown[] {
  return notification.Records.filter((r) => r.eventName.startsWith('ObjectCreated')).map((r) => ({
    version: '0',
    'detail-type': 'Object Created',
    source: 'aws.s3',
    time: r.eventTime,
    detail: {
      version: '0',
      bucket: { name: r.s3.bucket.name },
      object: {
        key: r.s3.object.key,
        ...(r.s3.object.size === undefined ? {} : { size: r.s3.object.size }),
        ...(r.s3.object.eTag === undefined ? {} : { etag: r.s3.object.eTag }),
        sequencer: r.s3.object.sequencer,
      },
    },
  }));
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const aws = await startEmbeddedAws({
    dataDir: options.dataDir,
    dynamoPort: options.dynamoPort ?? 0,
    s3Port: options.s3Port ?? 0,
    ...(options.stream ? { kinesisPort: options.stream.kinesisPort ?? 0 } : {}),
    buckets: [LOCAL_BUCKET],
  });
  const cleanups: (() => void | Promise<void>)[] = [];
  try {
    const dynamo = new DynamoDBClient({ ...aws.clientConfig('dynamodb'), maxAttempts: 10 });
    const s3 = new S3Client(aws.clientConfig('s3'));
    // An emulator's failure names the call that met it (the SDK's error alone says "UnknownError").
    s3.middlewareStack.add(
      (next, context) => async (args) => {
        try {
          return await next(args);
        } catch (error) {
          if (error instanceof Error) {
            const key =
              (args.input as { Key?: string; Prefix?: string }).Key ??
              (args.input as { Prefix?: string }).Prefix;
            error.message = `${error.message} (${context.commandName}${key ? ` ${key}` : ''}, HTTP ${(error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? '?'})`;
          }
          throw error;
        }
      },
      { step: 'initialize', name: 'tandemNameTheFailingCall' },
    );
    await ensureTable(dynamo, LOCAL_TABLE);
    await ensureBucket(s3, LOCAL_BUCKET);
    const uploadedKeys = [
      ...(options.userModelsDir ? await uploadModelPackages(s3, LOCAL_BUCKET, options.userModelsDir) : []),
      ...(await uploadModelPackages(s3, LOCAL_BUCKET, options.modelsDir ?? path.join(REPO_ROOT, 'models'))),
    ];

    const objects = new S3ObjectStore(s3);
    const events: RunCompletedEvent[] = [];
    const batchCapture = localCapture('batch', objects, LOCAL_BUCKET, (line) =>
      (options.log ?? ((l: string) => void process.stderr.write(`${l}\n`)))(line),
    );
    const batch = new LocalBatchRunner({
      bucket: LOCAL_BUCKET,
      objects,
      models: new S3ModelSource(s3, LOCAL_BUCKET, 'models/'),
      // A few writes in flight per worker: the emulator answers one request at a time, so more in
      // flight would not write faster, only lengthen the queue every cache read of the API waits in.
      predictions: new DynamoDbPredictionStore(dynamo, LOCAL_TABLE, LOCAL_WRITE_CONCURRENCY),
      events: { publish: async (_type, detail) => void events.push(detail as RunCompletedEvent) },
      ...(batchCapture ? { capture: batchCapture } : {}),
      ...options.batch,
    });
    cleanups.push(() => batch.close());

    const runDataset = async (
      file: string,
      model: string,
      key?: string,
      runOptions?: Partial<BatchOptions>,
    ): Promise<FinalizeResult> => {
      const upload: UploadedObject = {
        bucket: LOCAL_BUCKET,
        key: key ?? `incoming/${model}/${path.basename(file)}`,
        sequencer: `manual-${Date.now().toString(16)}-${Math.random().toString(16).slice(2)}`,
      };
      // Uploaded with the watcher unaware of it (the manual sequencer names the run).
      pendingManual.add(upload.key);
      try {
        await objects.writeBytes(LOCAL_BUCKET, upload.key, await readFile(file), 'application/octet-stream');
      } finally {
        setTimeout(() => pendingManual.delete(upload.key), 1000).unref();
      }
      const [outcome] = await triggerRuns([upload], batch, runOptions);
      if (outcome?.reason) throw new UploadIgnoredError(upload.key, outcome.reason);
      const run = outcome?.runId ? batch.run(outcome.runId) : undefined;
      if (!run) throw new Error(`no run started for ${upload.key}`);
      return run.result;
    };
    const pendingManual = new Set<string>();
    const runFolder = async (prefix: string, model: string, runOptions?: Partial<BatchOptions>) => {
      const started = await startFolderRun(
        { bucket: LOCAL_BUCKET, model, prefix, ...(runOptions ? { options: runOptions } : {}) },
        batch,
      );
      const run = batch.run(started.runId);
      if (!run) throw new Error(`no run started for ${prefix}`);
      return run.result;
    };

    let seed: FinalizeResult | undefined;
    if (options.seed ?? true) {
      seed = await runDataset(
        path.join(REPO_ROOT, 'models', DEMO_MODEL, 'demo-transactions.csv'),
        DEMO_MODEL,
        DEMO_DATASET_KEY,
      );
      if (seed.status !== 'SUCCEEDED') throw new Error(`seeding the demo dataset failed: ${seed.message}`);
    }

    // Every other upload to incoming/ (AWS CLI, SDK) starts a run, as S3 -> EventBridge -> trigger does.
    const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
    const watcher: WatcherCounts = { started: 0, duplicate: 0, ignored: 0, errors: 0 };
    const errorsSeen = new Set<string>();
    const watcherFailed = (error: unknown) => {
      watcher.errors++;
      const message = error instanceof Error ? error.message : String(error);
      if (errorsSeen.has(message)) return;
      errorsSeen.add(message);
      log(`[batch] upload watcher: ${message} (logged once; the stack keeps running)`);
    };
    const counted = (outcomes: readonly TriggerOutcome[]) => {
      for (const outcome of outcomes) {
        watcher[outcome.result]++;
        if (outcome.reason)
          log(`[batch] ignored ${outcome.key} (${outcome.reason.code}): ${outcome.reason.message}`);
        else if (outcome.result === 'started') log(`[batch] ${outcome.key}: run ${outcome.runId} started`);
      }
    };
    const refreshes: RefreshOutcome[] = [];
    const refreshStore = new S3RefreshStore(s3, LOCAL_BUCKET);
    const refreshDeps: RefreshDeps = {
      bucket: LOCAL_BUCKET,
      models: refreshStore,
      markers: refreshStore,
      starter: batch,
      defaultPolicy: options.refresh?.on ?? (SETTINGS.refreshOn.default as RefreshPolicy),
      scheduledPrefixes:
        options.refresh?.scheduledPrefixes ?? ((model) => scheduledPrefixes(options.schedules ?? [], model)),
      ...(options.batchOptions ? { batchOptions: options.batchOptions } : {}),
    };
    const refreshed = (outcomes: readonly RefreshOutcome[]) => {
      for (const outcome of outcomes) {
        refreshes.push(outcome);
        const what = `${outcome.model}${outcome.version ? `@${outcome.version}` : ''} (${outcome.cause ?? '?'})`;
        if (outcome.result === 'started')
          log(`[refresh] ${what}: run ${outcome.runId} of ${outcome.source} started`);
        // A model without refresh sources is the common case: every pointer change would say so.
        else if (outcome.result === 'skipped' && outcome.reason !== NO_REFRESH_SOURCES)
          log(`[refresh] ${what}: nothing to refresh, ${outcome.reason}`);
      }
    };
    const startRefresh = (event: RefreshEvent) => refresh(event, refreshDeps).then(refreshed, watcherFailed);
    cleanups.push(
      aws.onS3Event((notification) => {
        try {
          const created = eventBridgeEvents(notification);
          const uploads = created
            .flatMap((event) => uploadsFromEvent(event))
            // The deployed EventBridge rule matches incoming/ only: the stack's own writes never reach the trigger.
            .filter((u) => u.key.startsWith('incoming/') && !pendingManual.has(u.key));
          if (uploads.length > 0)
            triggerRuns(uploads, batch, options.batchOptions).then(counted, watcherFailed);
          // The deployed refresh rule: pointers and package manifests, to the same core.
          for (const event of created.flatMap((e) => refreshEventsFromEvent(e))) void startRefresh(event);
        } catch (error) {
          watcherFailed(error);
        }
      }),
    );

    let stream: LocalStreamLane | undefined;
    const streamCapture = options.stream ? localCapture('stream', objects, LOCAL_BUCKET, log) : undefined;
    if (streamCapture) {
      const timer = setInterval(() => streamCapture.flushIfDue(), 1000);
      timer.unref();
      cleanups.push(async () => {
        clearInterval(timer);
        await streamCapture.flush();
      });
    }
    if (options.stream) {
      stream = await startStreamLane({
        ...(streamCapture ? { capture: streamCapture } : {}),
        aws,
        s3,
        dynamo,
        bucket: LOCAL_BUCKET,
        table: LOCAL_TABLE,
        defaultModel: DEMO_MODEL,
        dataDir: options.dataDir,
        log,
        options: options.stream,
      });
      cleanups.push(() => stream!.stop());
    }

    const resumed = options.resumeRuns === false ? Promise.resolve([]) : resumeRuns(s3, objects, batch, log);

    // The drift monitor on the deployed schedule's interval: every model with a current.json.
    const monitorSource = new S3ModelSource(s3, LOCAL_BUCKET, 'models/');
    const monitorQualitySources = {
      objects,
      bucket: LOCAL_BUCKET,
      modelsPrefix: 'models/',
      predictions: new DynamoDbPredictionStore(dynamo, LOCAL_TABLE),
    };
    const monitorDeps: MonitorDeps = {
      objects,
      bucket: LOCAL_BUCKET,
      modelsPrefix: 'models/',
      models: monitorSource,
      quality: (model, live, toMs) => monitorQuality(monitorQualitySources, model, live, toMs),
    };
    const monitorSettings = readMonitorSettings(process.env);
    const runMonitorNow = (model: string) => runMonitor(model, monitorDeps, monitorSettings);
    const monitorMinutes =
      options.monitorIntervalMinutes ?? (SETTINGS.monitorIntervalMinutes.default as number);
    if (monitorMinutes !== false) {
      const tick = async () => {
        for (const model of await monitoredModels(monitorSource)) {
          const { report } = await runMonitorNow(model);
          log(`[monitor] ${model}: ${report.message}`);
        }
      };
      const timer = setInterval(() => {
        tick().catch((error: unknown) => log(`[monitor] run failed: ${(error as Error).message}`));
      }, monitorMinutes * 60_000);
      timer.unref();
      cleanups.push(() => clearInterval(timer));
    }
    let scheduler: LocalScheduler | undefined;
    if (options.schedules && options.schedules.length > 0) {
      scheduler = new LocalScheduler({
        schedules: options.schedules,
        runner: batch,
        bucket: LOCAL_BUCKET,
        ...(options.batchOptions ? { batchOptions: options.batchOptions } : {}),
        log,
        ...options.scheduleClock,
      });
      cleanups.push(() => scheduler!.stop());
    }

    let apiUrl: string | undefined;
    let capture: CaptureBuffer | undefined;
    let shadowRunner: ShadowRunner | undefined;
    if (options.apiPort !== undefined) {
      // The handler reads its settings from the environment at import, exactly as in Lambda.
      delete process.env['AWS_PROFILE'];
      Object.assign(process.env, aws.env(), {
        MODELS_URI: `s3://${LOCAL_BUCKET}/models/`,
        DEFAULT_MODEL: DEMO_MODEL,
        TABLE_NAME: LOCAL_TABLE,
        POWERTOOLS_METRICS_DISABLED: process.env['POWERTOOLS_METRICS_DISABLED'] ?? 'true',
        // The emulator answers in about a millisecond when idle but queues behind batch writes and shares
        // two cores with everything here; DynamoDB answers in a few. Deployed, the budget is 150 ms.
        CACHE_BUDGET_MS: process.env['CACHE_BUDGET_MS'] ?? String(LOCAL_CACHE_BUDGET_MS),
        // Every request is captured locally, so that the monitoring loop can be tried end to end.
        CAPTURE_BUCKET: LOCAL_BUCKET,
        DATA_BUCKET: LOCAL_BUCKET,
        CAPTURE_REALTIME_RATE: process.env['CAPTURE_REALTIME_RATE'] ?? '1',
        CAPTURE_FLUSH_SECONDS: process.env['CAPTURE_FLUSH_SECONDS'] ?? '5',
        ...(stream ? streamEnv(stream.settings) : {}),
        ...options.handlerEnv,
      });
      const {
        handler,
        capture: predictCapture,
        shadow: predictShadow,
        metrics: apiMetrics,
        cacheReads,
      } = await import('../lambdas/handlers/predict.ts');
      shadowRunner = predictShadow;
      if (options.dataDir !== undefined) {
        // Per-version windows for `models rollout` (another process), in the data folder.
        const versionMetrics = new VersionMetricsRecorder(options.dataDir);
        apiMetrics.tap(versionMetrics.record);
        const metricsTimer = setInterval(() => void versionMetrics.flush(), 1000);
        metricsTimer.unref();
        cleanups.push(async () => {
          clearInterval(metricsTimer);
          await versionMetrics.flush(true);
        });
      }
      const periodMs = options.refresh?.stalePeriodMs ?? STALENESS_PERIOD_SECONDS * 1000;
      if (periodMs > 0) {
        // The staleness alarm, evaluated from the API's own counters over the same periods and rule.
        const evaluator = new StalenessEvaluator({
          threshold: options.refresh?.staleShare ?? SETTINGS.refreshStaleShare.default,
          periods: stalenessPeriods(options.refresh?.staleMinutes ?? SETTINGS.refreshStaleMinutes.default),
        });
        cacheReads.take();
        const timer = setInterval(() => {
          const at = new Date().toISOString();
          for (const model of evaluator.closePeriod(cacheReads.take())) {
            log(`[refresh] ${model}: cache reads stale or of another version above the threshold`);
            void startRefresh({ kind: 'staleness', model, at });
          }
        }, periodMs);
        timer.unref();
        cleanups.push(() => clearInterval(timer));
      }
      if (predictCapture) {
        // A long-lived process flushes on a timer too (Lambda only can at the start of an invocation).
        const timer = setInterval(() => predictCapture.flushIfDue(), 1000);
        timer.unref();
        capture = predictCapture;
        cleanups.push(async () => {
          clearInterval(timer);
          await predictShadow.settled();
          await predictCapture.flush();
          const { compared, failed, timedOut } = predictShadow.counts;
          if (compared + failed + timedOut > 0)
            log(
              `shadow comparisons: ${compared} compared, ${failed} failed, ${timedOut} timed out (SHADOW_BUDGET_MS)`,
            );
        });
      }
      const server = createApiServer(handler, {
        gate: new ConcurrencyGate(options.apiConcurrency ?? DEFAULT_API_CONCURRENCY, DEFAULT_MAX_QUEUED),
      });
      const address = await listen(server, options.apiPort, '127.0.0.1');
      apiUrl = `http://127.0.0.1:${address.port}`;
      cleanups.push(async () => {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      });
    }

    return {
      apiUrl,
      aws,
      dynamo,
      s3,
      objects,
      batch,
      stream,
      events,
      uploadedKeys,
      seed,
      watcher,
      refreshes,
      scheduler,
      resumed,
      runDataset,
      runFolder,
      flushCaptures: async () => {
        await shadowRunner?.settled();
        await Promise.all([capture?.flush(), streamCapture?.flush(), batchCapture?.flush()]);
      },
      runMonitor: runMonitorNow,
      async stop() {
        await resumed.catch(() => undefined);
        for (const cleanup of cleanups.reverse()) await cleanup();
        dynamo.destroy();
        s3.destroy();
        await aws.stop();
      },
    };
  } catch (error) {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
    await aws.stop();
    throw error;
  }
}

/**
 * Resumes the runs a previous process on this data folder left with a plan and no manifest: killed
 * mid-run, or stopped with Ctrl+C. A run with no plan yet left nothing to resume from.
 */
async function resumeRuns(
  s3: S3Client,
  objects: S3ObjectStore,
  batch: LocalBatchRunner,
  log: (line: string) => void,
): Promise<ResumedRun[]> {
  let prefixes: string[];
  try {
    prefixes = await runPrefixes(s3);
  } catch (error) {
    log(`[batch] could not look for unfinished runs: ${(error as Error).message}`);
    return [];
  }
  const resumed: ResumedRun[] = [];
  for (const runPrefix of prefixes) {
    const runId = runPrefix.slice('runs/'.length, -1);
    try {
      const key = planKey(runId);
      if (!(await objects.head(LOCAL_BUCKET, key))) continue;
      const plan = JSON.parse(
        new TextDecoder().decode(await objects.readBytes(LOCAL_BUCKET, key)),
      ) as BatchPlan;
      if (await objects.head(LOCAL_BUCKET, `${plan.resultsPrefix}_manifest.json`)) continue;
      if ((await batch.resume(plan)) !== 'started') continue;
      resumed.push({ runId, key: plan.input.key, chunks: plan.chunks.length });
      log(
        `[batch] resuming run ${runId} (${plan.input.key}, ${plan.chunks.length} chunks): the last process stopped before it ended`,
      );
    } catch (error) {
      // One unreadable run (a plan cut short by the crash) does not keep the others from resuming.
      log(`[batch] cannot resume run ${runId}: ${(error as Error).message}`);
    }
  }
  return resumed;
}

/** The `runs/<runId>/` folders of the local bucket. */
async function runPrefixes(s3: S3Client): Promise<string[]> {
  const prefixes: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({
        Bucket: LOCAL_BUCKET,
        Prefix: 'runs/',
        Delimiter: '/',
        ContinuationToken: token,
      }),
    );
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix) prefixes.push(p.Prefix);
    token = page.NextContinuationToken;
  } while (token);
  return prefixes;
}
