/**
 * Tandem on AWS: the `Tandem` construct (usable inside any CDK app) and `TandemStack`, the deployable stack
 * that holds one Tandem and its outputs. One construct per concern: data bucket, prediction table,
 * real-time API, batch pipeline, monitoring.
 */
import { Annotations, CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { BatchOptions } from '../lambdas/core/batch/contracts.ts';
import { isPackageName } from '../lambdas/core/names.ts';
import { SETTINGS } from '../lambdas/core/settings.ts';
import { BatchPipeline } from './batch-pipeline.ts';
import { BatchSchedules } from './batch-schedules.ts';
import { normalisePrefix, type ScheduleSpec } from '../lambdas/core/batch/schedules.ts';
import { DATA_PREFIXES, DataBucket, type DataBucketProps } from './data-bucket.ts';
import { ModelRefresh } from './model-refresh.ts';
import { DriftMonitor } from './drift-monitor.ts';
import { Monitoring } from './monitoring.ts';
import { addTandemNagSuppressions } from './nag-suppressions.ts';
import { PredictionTable } from './prediction-table.ts';
import { RealtimeApi, type ApiAuth } from './realtime-api.ts';
import { Rollout } from './rollout.ts';
import type { RolloutThresholds } from '../lambdas/core/lifecycle/rollout-checks.ts';
import { validateTandemProps } from './settings.ts';

export { validateTandemProps };
import { STREAM_API_ROUTE, StreamLane } from './stream-lane.ts';
import type { StreamSettings } from '../lambdas/core/settings.ts';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';

export type TandemArchitecture = 'x86_64' | 'arm64';

export interface TandemProps {
  /**
   * The model served when a request names none (`DEFAULT_MODEL`); its package is expected under
   * `models/<modelName>/` in the data bucket.
   * @default 'fraud-detector'
   */
  readonly modelName?: string;
  /**
   * Memory of the predict function (MB). Lambda gives CPU in proportion to memory: 1769 MB is one
   * vCPU-second per second, which the predict function's one onnxruntime thread uses fully.
   * @default 1769
   */
  readonly predictMemorySize?: number;
  /**
   * Memory of the batch score function (MB). CPU is proportional: 1769 MB = 1 vCPU, 3008 MB = 1.7 vCPU
   * (over 2 visible cores), 3538 MB = 2 vCPU (what a scorer keeping two threads busy needs for both to run
   * at full speed), 10240 MB = 5.8 vCPU (6 cores). New accounts may not go above 3008 MB until Lambda's
   * memory quota is raised. See docs/deploy.md, "CPU and memory".
   * @default 3008
   */
  readonly scoreMemorySize?: number;
  /**
   * CPU architecture of every function (onnxruntime-node ships a build for both).
   * @default 'x86_64'
   */
  readonly architecture?: TandemArchitecture;
  /**
   * Provisioned concurrency on the predict function's `live` alias. 0 = none (on-demand only).
   * @default 0
   */
  readonly provisionedConcurrency?: number;
  /**
   * How API callers authenticate: SigV4 with IAM credentials, or a JWT from an OIDC issuer.
   * @default 'iam'
   */
  readonly auth?: ApiAuth;
  /**
   * API stage throttling, requests per second.
   * @default { rateLimit: 500, burstLimit: 1000 }
   */
  readonly apiThrottle?: { readonly rateLimit: number; readonly burstLimit: number };
  /**
   * Most chunks of one batch run scored at once.
   * @default 40
   */
  readonly batchMaxConcurrency?: number;
  /**
   * Percentage of a run's chunks that may fail without failing the run.
   * @default 0
   */
  readonly toleratedFailurePercentage?: number;
  /**
   * Options of every batch run (CSV delimiter, pass-through columns, table writes, chunk size, ...), checked
   * at synth with the planner's own rules.
   * @default - DEFAULT_BATCH_OPTIONS of lambdas/core/batch/contracts.ts
   */
  readonly batchOptions?: Partial<BatchOptions>;
  /**
   * Share of real-time predictions captured with their features under the data bucket's capture/ for drift
   * monitoring (docs/monitoring.md); 0 = off. Captured features may be personal data (SECURITY.md).
   * @default 0.05
   */
  readonly captureRealtimeRate?: number;
  /**
   * Share of stream events captured with their features and prediction under capture/<model>/stream/
   * (docs/monitoring.md); 0 = off. Only with `streamLane`.
   * @default 0.05
   */
  readonly captureStreamRate?: number;
  /**
   * Share of a batch run's scored rows captured under capture/<model>/batch/, written once per chunk
   * (docs/monitoring.md); 0 = off.
   * @default 0.01
   */
  readonly captureBatchRate?: number;
  /**
   * Time budget of the API's table read (ms); past it the model answers.
   * @default 150
   */
  readonly cacheBudgetMs?: number;
  /**
   * Age (seconds) past which a precomputed prediction is not served (the model answers instead), for every
   * model: overrides the manifests' `cache.maxAgeSeconds` (`CACHE_MAX_AGE_SECONDS` of the predict function).
   * A request's `maxStalenessSeconds` still overrides it.
   * @default - each model manifest's `cache.maxAgeSeconds` (86400, one day, when the manifest has none;
   *   the demo model's says 86400)
   */
  readonly cacheMaxAgeSeconds?: number;
  /**
   * Lifetime (seconds) of a table item, after which DynamoDB deletes it (its `expiresAt`), for every model:
   * overrides the manifests' `cache.ttlSeconds` (`CACHE_TTL_SECONDS` of the score and predict functions).
   * Must be at least the max age in force.
   * @default - each model manifest's `cache.ttlSeconds` (604800, seven days, when the manifest has none;
   *   the demo model's says 604800)
   */
  readonly cacheTtlSeconds?: number;
  /**
   * Store the API's model answers in the table (see README: off because a caller's features are not the
   * batch's canonical features for an entity).
   * @default false
   */
  readonly writeThrough?: boolean;
  /**
   * An email address subscribed to the alarm topic.
   * @default - no subscription (the topic is still created)
   */
  readonly alarmEmail?: string;
  /**
   * Retention of every log group (functions, state machine, API access logs).
   * @default 30 (logs.RetentionDays.ONE_MONTH)
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Lifecycle of the data bucket.
   * @default - runs/ expire after 14 days, results/ move to Standard-IA after 30 and expire after 365,
   *   replaced versions expire after 30
   */
  readonly dataBucket?: DataBucketProps;
  /**
   * Deploy the near-real-time lane (docs/stream.md): two on-demand Kinesis streams, the consumer, its
   * event source mapping, an on-failure queue and alarms, and POST /events on the API. Off by default:
   * an on-demand stream is billed per stream-hour even when idle (about 29 USD a month each in us-east-1).
   * @default false
   */
  readonly streamLane?: boolean;
  /**
   * Folders of the data bucket re-scored on a schedule: each becomes an EventBridge Scheduler schedule
   * (retries, a dead-letter queue with an alarm) that starts a batch run of its prefix, as
   * `tandem runs start <model> --prefix` does; the batch functions may read exactly these prefixes.
   * Checked at synth: a bad expression, model name, prefix (under the stack's output prefixes, with "..",
   * a leading "/") or option fails with a message naming the schedule (docs/batch.md, "Schedules").
   * @default - no schedules
   */
  readonly schedules?: readonly ScheduleSpec[];
  /**
   * Settings of the stream lane (batch size, window, retries, ...).
   * @default DEFAULT_STREAM_SETTINGS (lambdas/core/settings.ts)
   */
  readonly streamSettings?: Partial<StreamSettings>;
  /**
   * How often the drift monitor runs for every served model (minutes, 5 to 1440; docs/monitoring.md).
   * @default 15
   */
  readonly monitorIntervalMinutes?: number;
  /**
   * PSI above which a feature counts as drifted (the monitor's alarm, reports, batch manifests).
   * @default 0.2
   */
  readonly driftThreshold?: number;
  /**
   * Fewer captured records than this are reported as too few, with no drift figures.
   * @default 100
   */
  readonly driftMinRecords?: number;
  /**
   * Thresholds of the automatic rollout's checks between steps (docs/lifecycle.md, "Automatic rollout").
   * @default - rolloutMaxErrorRate 0.01, rolloutMaxLatencyMs 250, rolloutMaxShift 0.1,
   *   rolloutMinInstances 20 (lambdas/core/settings.ts)
   */
  readonly rolloutThresholds?: Partial<RolloutThresholds>;
  /**
   * When a model version's refresh sources are re-scored, for models whose manifest has no `refresh.on`
   * (docs/lifecycle.md#refresh): on `push`, on `promote` (live, canary or shadow), or `off`.
   * @default 'promote'
   */
  readonly refreshOn?: 'push' | 'promote' | 'off';
  /**
   * The share of a model's cache reads stale or of another version above which (for refreshStaleMinutes)
   * its refresh sources are re-scored with the live version.
   * @default 0.2
   */
  readonly refreshStaleShare?: number;
  /**
   * How long the share must stay above refreshStaleShare, minutes (5-minute periods, rounded up).
   * @default 30
   */
  readonly refreshStaleMinutes?: number;
  /**
   * The models whose staleness is watched (an alarm each, which starts a refresh); `[]` watches none.
   * @default - the default model (modelName)
   */
  readonly refreshModels?: readonly string[];
}

export class Tandem extends Construct {
  public readonly data: DataBucket;
  public readonly predictions: PredictionTable;
  public readonly api: RealtimeApi;
  public readonly batch: BatchPipeline;
  public readonly monitoring: Monitoring;
  public readonly driftMonitor: DriftMonitor;
  /** The automatic rollout's state machine and step function. */
  public readonly rollout: Rollout;
  /** The stream lane, when `streamLane` is on. */
  public readonly stream: StreamLane | undefined;
  /** Refresh on a version change and on staleness (docs/lifecycle.md#refresh). */
  public readonly refresh: ModelRefresh;
  /** The scheduled re-scoring runs, when `schedules` has any. */
  public readonly batchSchedules: BatchSchedules | undefined;
  /** How API callers authenticate: `iam` (SigV4) or `jwt`. */
  public readonly authMode: 'iam' | 'jwt';

  constructor(scope: Construct, id: string, props: TandemProps = {}) {
    super(scope, id);
    validateTandemProps(props);
    const architecture =
      (props.architecture ?? SETTINGS.architecture.default) === 'arm64'
        ? lambda.Architecture.ARM_64
        : lambda.Architecture.X86_64;
    const logRetention = props.logRetention ?? (SETTINGS.logRetentionDays.default as logs.RetentionDays);
    if ((props.cacheMaxAgeSeconds === undefined) !== (props.cacheTtlSeconds === undefined)) {
      Annotations.of(this).addWarningV2(
        'tandem:cache-policy-half-set',
        `only ${props.cacheTtlSeconds === undefined ? 'cacheMaxAgeSeconds' : 'cacheTtlSeconds'} is set: the other comes from each model manifest, and a model whose TTL ends up shorter than its max age fails to load`,
      );
    }
    const cachePolicy = {
      ...(props.cacheMaxAgeSeconds !== undefined ? { maxAgeSeconds: props.cacheMaxAgeSeconds } : {}),
      ...(props.cacheTtlSeconds !== undefined ? { ttlSeconds: props.cacheTtlSeconds } : {}),
    };

    this.data = new DataBucket(this, 'Data', props.dataBucket);
    this.predictions = new PredictionTable(this, 'Predictions');
    const bucket = this.data.bucket;
    const table = this.predictions.table;

    this.api = new RealtimeApi(this, 'Api', {
      bucket,
      table,
      defaultModel: props.modelName ?? SETTINGS.modelName.default,
      architecture,
      logRetention,
      auth: props.auth ?? 'iam',
      memorySize: props.predictMemorySize ?? SETTINGS.predictMemorySize.default,
      provisionedConcurrency: props.provisionedConcurrency ?? SETTINGS.provisionedConcurrency.default,
      cacheBudgetMs: props.cacheBudgetMs ?? SETTINGS.cacheBudgetMs.default,
      captureRealtimeRate: props.captureRealtimeRate ?? SETTINGS.captureRealtimeRate.default,
      cachePolicy,
      writeThrough: props.writeThrough ?? SETTINGS.writeThrough.default,
      throttle: props.apiThrottle ?? {
        rateLimit: SETTINGS.apiRateLimit.default,
        burstLimit: SETTINGS.apiBurstLimit.default,
      },
    });

    this.batch = new BatchPipeline(this, 'Batch', {
      bucket,
      table,
      architecture,
      logRetention,
      scoreMemorySize: props.scoreMemorySize ?? SETTINGS.scoreMemorySize.default,
      maxConcurrency: props.batchMaxConcurrency ?? SETTINGS.batchMaxConcurrency.default,
      toleratedFailurePercentage:
        props.toleratedFailurePercentage ?? SETTINGS.toleratedFailurePercentage.default,
      ...(props.batchOptions ? { batchOptions: props.batchOptions } : {}),
      cachePolicy,
      captureBatchRate: props.captureBatchRate ?? SETTINGS.captureBatchRate.default,
      drift: { threshold: props.driftThreshold, minRecords: props.driftMinRecords },
    });

    this.driftMonitor = new DriftMonitor(this, 'DriftMonitor', {
      bucket,
      table,
      architecture,
      logRetention,
      ...(props.monitorIntervalMinutes !== undefined
        ? { intervalMinutes: props.monitorIntervalMinutes }
        : {}),
      ...(props.driftThreshold !== undefined ? { threshold: props.driftThreshold } : {}),
      ...(props.driftMinRecords !== undefined ? { minRecords: props.driftMinRecords } : {}),
    });

    this.monitoring = new Monitoring(this, 'Monitoring', {
      httpApi: this.api.api,
      functions: {
        predict: this.api.predict.function,
        trigger: this.batch.trigger.function,
        plan: this.batch.plan.function,
        score: this.batch.score.function,
        finalize: this.batch.finalize.function,
        monitor: this.driftMonitor.monitor.function,
      },
      stateMachine: this.batch.stateMachine,
      table,
      // A chunk that runs close to its timeout is one table slowdown away from failing (Express child: 5 min).
      timeouts: { score: this.batch.score.timeout },
      deadLetterQueue: this.batch.deadLetterQueue,
      ...(props.alarmEmail ? { alarmEmail: props.alarmEmail } : {}),
    });

    this.rollout = new Rollout(this, 'Rollout', {
      bucket,
      topic: this.monitoring.topic,
      topicKey: this.monitoring.topicKey,
      architecture,
      logRetention,
      ...(props.rolloutThresholds ? { thresholds: props.rolloutThresholds } : {}),
    });
    this.refresh = new ModelRefresh(this, 'Refresh', {
      bucket,
      stateMachine: this.batch.stateMachine,
      deadLetterQueue: this.batch.deadLetterQueue,
      models: props.refreshModels ?? [props.modelName ?? SETTINGS.modelName.default],
      refreshOn: props.refreshOn ?? (SETTINGS.refreshOn.default as 'promote'),
      staleShare: props.refreshStaleShare ?? SETTINGS.refreshStaleShare.default,
      staleMinutes: props.refreshStaleMinutes ?? SETTINGS.refreshStaleMinutes.default,
      ...(props.batchOptions ? { batchOptions: props.batchOptions } : {}),
      ...(props.schedules ? { schedules: props.schedules } : {}),
      architecture,
      logRetention,
    });
    this.monitoring.dashboard.addWidgets(...this.refresh.dashboardWidgets());
    // A refresh costs runs and table writes: whoever watches the alarms hears of each one.
    const notifyRefresh = new cwActions.SnsAction(this.monitoring.topic);
    for (const alarm of Object.values(this.refresh.stalenessAlarms)) {
      alarm.addAlarmAction(notifyRefresh);
      alarm.addOkAction(notifyRefresh);
    }

    if (props.streamLane) {
      this.stream = new StreamLane(this, 'Stream', {
        bucket,
        table,
        defaultModel: props.modelName ?? 'fraud-detector',
        architecture,
        logRetention,
        cachePolicy,
        captureStreamRate: props.captureStreamRate ?? SETTINGS.captureStreamRate.default,
        ...(props.streamSettings ? { settings: props.streamSettings } : {}),
      });
      this.stream.grantPutEvents(this.api.predict.role);
      for (const [name, value] of Object.entries(this.stream.apiEnvironment()))
        this.api.predict.function.addEnvironment(name, value);
      this.api.addFunctionRoute(apigwv2.HttpMethod.POST, STREAM_API_ROUTE.path);
      const notify = new cwActions.SnsAction(this.monitoring.topic);
      this.stream.iteratorAgeAlarm.addAlarmAction(notify);
      this.stream.failuresAlarm.addAlarmAction(notify);
      this.monitoring.dashboard.addWidgets(...this.stream.dashboardWidgets());
    }

    if (props.schedules && props.schedules.length > 0) {
      this.batchSchedules = new BatchSchedules(this, 'Schedules', {
        bucket,
        stateMachine: this.batch.stateMachine,
        schedules: props.schedules,
        readers: { plan: this.batch.plan.role, score: this.batch.score.role },
        ...(props.batchOptions ? { batchOptions: props.batchOptions } : {}),
      });
      const notify = new cwActions.SnsAction(this.monitoring.topic);
      this.batchSchedules.deadLettersAlarm.addAlarmAction(notify);
      this.batchSchedules.deadLettersAlarm.addOkAction(notify);
    }

    const notifyDrift = new cwActions.SnsAction(this.monitoring.topic);
    this.driftMonitor.driftAlarm.addAlarmAction(notifyDrift);
    this.driftMonitor.driftAlarm.addOkAction(notifyDrift);
    this.monitoring.dashboard.addWidgets(...this.driftMonitor.dashboardWidgets());

    this.authMode = props.auth === undefined || props.auth === 'iam' ? 'iam' : 'jwt';
    addTandemNagSuppressions(this);
    this.stream?.acknowledgeNagFindings(bucket);
    this.driftMonitor.acknowledgeNagFindings(bucket);
  }

  /**
   * Lets a principal call the real-time API (`execute-api:Invoke`). Only meaningful with IAM authorization:
   * with a JWT authorizer callers need a token from the issuer, and this throws to say so.
   */
  public grantInvokeApi(grantee: iam.IGrantable): iam.Grant {
    if (this.authMode !== 'iam') {
      throw new Error(
        'Tandem.grantInvokeApi: the API uses a JWT authorizer; callers need a token from its issuer, not an IAM permission',
      );
    }
    return this.api.grantInvoke(grantee);
  }

  /**
   * Lets a principal upload datasets to score (`incoming/<model>/...`, multipart uploads included): each
   * upload starts a batch run.
   * @param model only under `incoming/<model>/` (default: any model)
   */
  public grantUploadDatasets(grantee: iam.IGrantable, model?: string): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
      resourceArns: [this.data.bucket.arnForObjects(`${DATA_PREFIXES.incoming}${modelFolder(model)}*`)],
    });
  }

  /**
   * Lets a principal list and read batch results (`results/<model>/<dataset>/<runId>/...`: part files,
   * rejected rows, run manifests).
   * @param model only under `results/<model>/` (default: any model)
   */
  public grantReadResults(grantee: iam.IGrantable, model?: string): iam.Grant {
    const prefix = `${DATA_PREFIXES.results}${modelFolder(model)}`;
    const list = iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:ListBucket'],
      resourceArns: [this.data.bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } },
    });
    const read = iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:GetObject'],
      resourceArns: [this.data.bucket.arnForObjects(`${prefix}*`)],
    });
    return list.combine(read);
  }

  /**
   * Lets a principal publish model packages and move the `current.json` pointer (`models/<model>/...`,
   * multipart uploads included), i.e. change what every lane serves.
   * @param model only under `models/<model>/` (default: any model)
   */
  public grantPublishModels(grantee: iam.IGrantable, model?: string): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
      resourceArns: [this.data.bucket.arnForObjects(`${DATA_PREFIXES.models}${modelFolder(model)}*`)],
    });
  }
}

/** The schedules as JSON for a stack output: without their options, and as many as fit in 4,096 characters. */
export function schedulesOutput(schedules: readonly ScheduleSpec[]): string {
  const specs = schedules.map(({ model, prefix, expression }) => ({
    model,
    prefix: normalisePrefix(prefix),
    expression,
  }));
  while (specs.length > 0 && JSON.stringify(specs).length > 4096) specs.pop();
  return JSON.stringify(specs);
}

function modelFolder(model: string | undefined): string {
  if (model === undefined) return '';
  if (!isPackageName(model)) {
    throw new Error(`Tandem: a model name is 1-128 letters, digits, '.', '_' or '-', got "${model}"`);
  }
  return `${model}/`;
}

export interface TandemStackProps extends StackProps, TandemProps {}

/** The deployable stack: one Tandem, and the outputs a caller needs. */
export class TandemStack extends Stack {
  public readonly tandem: Tandem;

  constructor(scope: Construct, id: string, props: TandemStackProps = {}) {
    super(scope, id, {
      description:
        'Tandem: one ONNX model served as a real-time API, S3 batch scoring and a precomputed cache',
      ...props,
    });
    this.tandem = new Tandem(this, 'Tandem', props);
    const { api, data, predictions, batch, monitoring } = this.tandem;

    new CfnOutput(this, 'ApiUrl', { value: api.url, description: 'Base URL of the real-time API' });
    new CfnOutput(this, 'ApiAuth', {
      value: this.tandem.authMode,
      description:
        'iam: sign requests with SigV4 (service execute-api); jwt: send Authorization: Bearer <token>',
    });
    new CfnOutput(this, 'PredictFunctionName', { value: api.predict.function.functionName });
    new CfnOutput(this, 'DataBucketName', {
      value: data.bucket.bucketName,
      description: 'models/<name>/<version>/, models/<name>/current.json, incoming/<model>/<file>, results/',
    });
    new CfnOutput(this, 'PredictionTableName', { value: predictions.table.tableName });
    new CfnOutput(this, 'BatchStateMachineArn', { value: batch.stateMachine.stateMachineArn });
    new CfnOutput(this, 'UploadRuleName', {
      value: batch.uploadRule.ruleName,
      description: 'EventBridge rule: Object Created under incoming/ -> batch trigger',
    });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: batch.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'AlarmTopicArn', { value: monitoring.topic.topicArn });
    new CfnOutput(this, 'DashboardName', { value: monitoring.dashboard.dashboardName });
    new CfnOutput(this, 'RolloutStateMachineArn', {
      value: this.tandem.rollout.stateMachine.stateMachineArn,
      description: 'tandem models rollout --stack: the automatic rollout state machine',
    });
    new CfnOutput(this, 'Schedules', {
      // What `tandem schedules list --stack` prints (an output value holds at most 4,096 characters).
      value: schedulesOutput(props.schedules ?? []),
      description:
        'The schedules setting: folders re-scored by EventBridge Scheduler (model, prefix, expression)',
    });
  }
}
