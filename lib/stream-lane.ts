/**
 * The near-real-time lane (docs/stream.md): the input stream `tandem-events` and output stream
 * `tandem-predictions` (on-demand, encrypted with the Kinesis-managed key), the consumer function with its
 * event source mapping (settings of lambdas/core/settings.ts; partial batch responses), an SQS
 * on-failure destination for batches that exhausted their retries, and alarms on the consumer's
 * IteratorAge and on that queue. Off unless the `streamLane` setting is on: an on-demand stream is billed
 * per stream-hour even when idle.
 */
import { Duration, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { KinesisEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, type IConstruct } from 'constructs';
import type { CachePolicyOverride } from '../lambdas/adapters/cache-policy-override.ts';
import {
  DEFAULT_STREAM_SETTINGS,
  parseSetting,
  SETTINGS,
  STREAM_SETTING_NAMES,
  type Setting,
  type SettingName,
  type StreamSettings,
} from '../lambdas/core/settings.ts';
import { nagResourceName, REASONS } from './nag-suppressions.ts';
import { KEY_PATTERNS } from './bucket-access.ts';
import { settingsEnvironment, TandemFunction } from './tandem-function.ts';

export interface StreamLaneProps {
  readonly bucket: s3.IBucket;
  readonly table: dynamodb.ITable;
  readonly defaultModel: string;
  /** @default lambda.Architecture.X86_64 */
  readonly architecture?: lambda.Architecture;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Batch size, window, parallelization, retries, record age, bisect, largest event.
   * @default DEFAULT_STREAM_SETTINGS (lambdas/core/settings.ts)
   */
  readonly settings?: Partial<StreamSettings>;
  /** @default - each model manifest's cache policy */
  readonly cachePolicy?: CachePolicyOverride;
  /**
   * Consumer memory, MB (CPU is proportional; one onnxruntime thread uses one vCPU).
   * @default 1769
   */
  readonly memorySize?: number;
  /**
   * IteratorAge (ms, maximum over a minute) above which the lag alarm fires, three minutes in a row.
   * @default 60000
   */
  readonly iteratorAgeAlarmMs?: number;
  /**
   * Share of scored events captured under the bucket's capture/<model>/stream/ (0 = off).
   * @default SETTINGS.captureStreamRate (0.05, `CAPTURE_STREAM_RATE`)
   */
  readonly captureStreamRate?: number;
}

/** Checks the settings against their definitions (lambdas/core/settings.ts), with messages that name the setting. */
export function validateStreamSettings(settings: Partial<StreamSettings>): void {
  const problems: string[] = [];
  for (const [field, name] of Object.entries(STREAM_SETTING_NAMES) as [keyof StreamSettings, SettingName][]) {
    const value = settings[field];
    if (value === undefined) continue;
    const parsed = parseSetting(SETTINGS[name] as Setting, value);
    if (!parsed.ok) problems.push(`${name}: ${parsed.problem}`);
  }
  if (problems.length > 0) throw new Error(`Invalid Tandem stream settings: ${problems.join('; ')}`);
}

/** The API route the lane adds (POST /events puts events on the input stream). */
export const STREAM_API_ROUTE = { method: 'POST', path: '/events' } as const;

export class StreamLane extends Construct {
  public readonly input: kinesis.Stream;
  public readonly output: kinesis.Stream;
  public readonly consumer: TandemFunction;
  /** Batches that exhausted their retries (Lambda's Kinesis batch info: shard and sequence range). */
  public readonly failures: sqs.Queue;
  public readonly iteratorAgeAlarm: cloudwatch.Alarm;
  public readonly failuresAlarm: cloudwatch.Alarm;
  public readonly settings: StreamSettings;

  constructor(scope: Construct, id: string, props: StreamLaneProps) {
    super(scope, id);
    validateStreamSettings(props.settings ?? {});
    const settings: StreamSettings = { ...DEFAULT_STREAM_SETTINGS, ...props.settings, streamLane: true };
    this.settings = settings;

    this.input = new kinesis.Stream(this, 'Events', {
      streamMode: kinesis.StreamMode.ON_DEMAND,
      encryption: kinesis.StreamEncryption.MANAGED,
    });
    this.output = new kinesis.Stream(this, 'Predictions', {
      streamMode: kinesis.StreamMode.ON_DEMAND,
      encryption: kinesis.StreamEncryption.MANAGED,
    });
    this.failures = new sqs.Queue(this, 'Failures', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    this.consumer = new TandemFunction(this, 'Consumer', {
      entry: 'lambdas/handlers/stream-score.ts',
      description: 'Tandem stream consumer (micro-batches of tandem-events -> table + tandem-predictions)',
      memorySize: props.memorySize ?? 1769,
      timeout: Duration.seconds(60),
      onnxRuntime: true,
      ...(props.architecture ? { architecture: props.architecture } : {}),
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
      environment: settingsEnvironment('stream', {
        modelsUri: props.bucket.s3UrlForObject('models/'),
        modelName: props.defaultModel,
        tableName: props.table.tableName,
        dataBucket: props.bucket.bucketName,
        captureBucket: props.bucket.bucketName,
        captureStreamRate: props.captureStreamRate ?? SETTINGS.captureStreamRate.default,
        streamOutputName: this.output.streamName,
        streamMaxEventBytes: settings.maxEventBytes,
        cacheMaxAgeSeconds: props.cachePolicy?.maxAgeSeconds,
        cacheTtlSeconds: props.cachePolicy?.ttlSeconds,
      }),
    });
    const fn = this.consumer.function;
    fn.addEventSource(
      new KinesisEventSource(this.input, {
        // Nothing put before the function existed is skipped (it is the first reader of a new stream).
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: settings.batchSize,
        maxBatchingWindow: Duration.seconds(settings.batchingWindowSeconds),
        parallelizationFactor: settings.parallelizationFactor,
        retryAttempts: settings.retryAttempts,
        maxRecordAge: Duration.seconds(settings.maxRecordAgeSeconds),
        bisectBatchOnError: settings.bisectOnError,
        reportBatchItemFailures: true,
        onFailure: new SqsDlq(this.failures),
      }),
    );

    const role = this.consumer.role;
    // Writes only: predictions are put conditionally one by one (PutItem), never read.
    props.table.grant(role, 'dynamodb:PutItem');
    iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['kinesis:PutRecords', 'kinesis:PutRecord'],
      resourceArns: [this.output.streamArn],
    });
    iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['s3:GetObject'],
      resourceArns: [props.bucket.arnForObjects('models/*')],
    });
    iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['s3:PutObject'],
      resourceArns: [
        props.bucket.arnForObjects('rejected/stream/*'),
        props.bucket.arnForObjects(KEY_PATTERNS.captures.pattern),
      ],
    });
    // A missing current.json must read as 404 (an unknown model: the record is rejected), not 403.
    iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['s3:ListBucket'],
      resourceArns: [props.bucket.bucketArn],
    });

    this.iteratorAgeAlarm = new cloudwatch.Alarm(this, 'IteratorAgeAlarm', {
      alarmDescription:
        'The stream consumer is falling behind: the oldest record of a batch waited longer than the threshold',
      metric: fn.metric('IteratorAge', { statistic: 'Maximum', period: Duration.minutes(1) }),
      threshold: props.iteratorAgeAlarmMs ?? 60_000,
      evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.failuresAlarm = new cloudwatch.Alarm(this, 'FailuresAlarm', {
      alarmDescription:
        'Stream records went to the on-failure queue after their retries (see docs/stream.md)',
      metric: this.failures.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
      threshold: 0,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  /** The cdk-nag findings of the lane, each acknowledged with its reason (see lib/nag-suppressions.ts). */
  public acknowledgeNagFindings(bucket: s3.IBucket): void {
    const acknowledge = (scope: IConstruct, id: string, reason: string) =>
      Validations.of(scope).acknowledge({ id, reason });
    const { role, function: fn } = this.consumer;
    acknowledge(fn, 'AwsSolutions-L1', REASONS.runtime);
    acknowledge(fn, 'Serverless-LambdaTracing', REASONS.noTracing);
    acknowledge(fn, 'Serverless-LambdaLatestVersion', REASONS.runtime);
    acknowledge(
      fn,
      'Serverless-LambdaDLQ',
      "Invoked by a Kinesis event source mapping, not asynchronously: batches that exhaust their retries go to the mapping's on-failure destination (the Failures queue), which a DeadLetterConfig would not receive.",
    );
    acknowledge(
      role,
      `AwsSolutions-IAM5[Resource::${nagResourceName(role, bucket.arnForObjects('models/*'))}]`,
      'Objects under models/ only: model packages and current.json pointers, whose names and versions are chosen at run time (a new model or version needs no redeploy).',
    );
    acknowledge(
      role,
      `AwsSolutions-IAM5[Resource::${nagResourceName(role, bucket.arnForObjects('rejected/stream/*'))}]`,
      'Rejected stream records only (rejected/stream/<model>/<yyyy>/<mm>/<dd>/<shard>-<sequence number>.jsonl): model, date, shard and sequence number are known only when the records arrive.',
    );
    acknowledge(
      role,
      `AwsSolutions-IAM5[Resource::${nagResourceName(role, bucket.arnForObjects(KEY_PATTERNS.captures.pattern))}]`,
      KEY_PATTERNS.captures.reason,
    );
    const queueReason =
      "This queue is itself the on-failure destination of the stream consumer's event source mapping; its messages (shard and sequence range of a failed batch) are inspected by an operator, not moved to yet another queue.";
    acknowledge(this.failures, 'AwsSolutions-SQS3', queueReason);
    acknowledge(this.failures, 'Serverless-SQSRedrivePolicy', queueReason);
  }

  /** Dashboard widgets: the consumer's lag, records scored and rejected, and end-to-end latency. */
  public dashboardWidgets(): cloudwatch.IWidget[] {
    const fn = this.consumer.function;
    const custom = (name: string, statistic: string, label: string) =>
      new cloudwatch.Metric({
        namespace: 'Tandem',
        metricName: name,
        dimensionsMap: { service: 'tandem-stream' },
        statistic,
        period: Duration.minutes(1),
        label,
      });
    return [
      new cloudwatch.GraphWidget({
        title: 'Stream: consumer lag (IteratorAge, ms)',
        left: [fn.metric('IteratorAge', { statistic: 'Maximum', period: Duration.minutes(1) })],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Stream: records scored and rejected',
        left: [
          custom('StreamRecordsScored', 'Sum', 'scored'),
          custom('StreamRecordsRejected', 'Sum', 'rejected'),
          this.failures.metricApproximateNumberOfMessagesVisible({ label: 'failed batches waiting' }),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Stream: latency (ms)',
        left: [
          custom('StreamEventToScoredMaxMs', 'Maximum', 'event -> scored (max)'),
          custom('StreamArrivalToScoredMaxMs', 'Maximum', 'arrival -> scored (max)'),
          custom('StreamModelLatency', 'Average', 'model run'),
        ],
        width: 8,
      }),
    ];
  }

  /** Lets a principal put events on the input stream (what POST /events does). */
  public grantPutEvents(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['kinesis:PutRecords', 'kinesis:PutRecord'],
      resourceArns: [this.input.streamArn],
    });
  }

  /** The API function's environment for POST /events. */
  public apiEnvironment(): Record<string, string> {
    return {
      TANDEM_STREAM_LANE: 'true',
      STREAM_INPUT_NAME: this.input.streamName,
      STREAM_MAX_EVENT_BYTES: String(this.settings.maxEventBytes),
    };
  }
}
