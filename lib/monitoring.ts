/**
 * Alarms and a dashboard for the three lanes: API errors and latency, failed model promotions, failed and
 * throttled batch runs, dead-lettered uploads, table throttling, errors and throttles of every function,
 * and functions running close to their timeout. Alarms notify an encrypted SNS topic (optionally
 * subscribed by email) whose policy lets CloudWatch alarms of this account publish.
 */
import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

export interface MonitoringProps {
  readonly httpApi: apigwv2.IHttpApi;
  /** Functions whose errors raise an alarm, by a short name used in alarm descriptions and widgets. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  readonly stateMachine: sfn.IStateMachine;
  readonly table: dynamodb.ITable;
  /**
   * Timeouts of functions whose duration raises an alarm when it comes within `durationAlarmPercent` of
   * them, by the same short names as `functions`.
   * @default - no duration alarms
   */
  readonly timeouts?: Readonly<Record<string, Duration>>;
  /**
   * Percentage of a function's timeout that its maximum duration in 5 minutes may reach before the alarm.
   * @default 90 (a score invocation stops starting table writes a minute before its timeout, by design)
   */
  readonly durationAlarmPercent?: number;
  /** @default - no dead-letter alarm */
  readonly deadLetterQueue?: sqs.IQueue;
  /**
   * An address subscribed to the alarm topic (it receives a confirmation mail first).
   * @default - no subscription
   */
  readonly alarmEmail?: string;
  /**
   * API p99 latency (ms) that raises an alarm when exceeded for 15 minutes.
   * @default 1000
   */
  readonly apiLatencyP99Ms?: number;
  /**
   * API 5xx responses in 5 minutes that raise an alarm.
   * @default 5
   */
  readonly apiServerErrors?: number;
}

const FIVE_MINUTES = Duration.minutes(5);

export class Monitoring extends Construct {
  public readonly topic: sns.Topic;
  public readonly topicKey: kms.Key;
  public readonly dashboard: cloudwatch.Dashboard;
  /** The email subscription, when `alarmEmail` is set. */
  public readonly emailSubscription: sns.Subscription | undefined;
  /** Every alarm, by a short name. */
  public readonly alarms: Readonly<Record<string, cloudwatch.Alarm>>;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const latencyMs = props.apiLatencyP99Ms ?? 1000;
    const serverErrors = props.apiServerErrors ?? 5;

    // CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key: a key of our own lets it.
    this.topicKey = new kms.Key(this, 'TopicKey', {
      description: 'Tandem alarm topic encryption',
      enableKeyRotation: true,
      // Encrypts alarm notifications in transit through SNS only (no data at rest): scheduled for deletion
      // with the stack rather than billed forever.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    this.topicKey.grant(
      new iam.ServicePrincipal('cloudwatch.amazonaws.com'),
      'kms:Decrypt',
      'kms:GenerateDataKey*',
    );
    this.topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'Tandem alarms',
      masterKey: this.topicKey,
      enforceSSL: true,
    });
    // CloudWatch publishes alarm notifications as the service principal: without this statement the topic
    // policy (which holds only the TLS-only deny) refuses every one of them.
    const stack = Stack.of(this);
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsOfThisAccount',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: {
            'aws:SourceArn': stack.formatArn({
              service: 'cloudwatch',
              resource: 'alarm',
              resourceName: '*',
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          },
        },
      }),
    );
    this.emailSubscription = props.alarmEmail
      ? this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail))
      : undefined;
    const notify = new actions.SnsAction(this.topic);

    const alarms: Record<string, cloudwatch.Alarm> = {};
    const alarm = (
      name: string,
      metric: cloudwatch.IMetric,
      options: {
        threshold: number;
        description: string;
        evaluationPeriods?: number;
        greaterThan?: boolean;
        treatMissingData?: cloudwatch.TreatMissingData;
      },
    ): void => {
      const created = new cloudwatch.Alarm(this, `${name}Alarm`, {
        metric,
        threshold: options.threshold,
        evaluationPeriods: options.evaluationPeriods ?? 1,
        comparisonOperator: options.greaterThan
          ? cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
          : cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: options.treatMissingData ?? cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: options.description,
      });
      created.addAlarmAction(notify);
      created.addOkAction(notify);
      alarms[name] = created;
    };

    const api5xx = props.httpApi.metricServerError({ period: FIVE_MINUTES, statistic: 'Sum' });
    const apiP99 = props.httpApi.metricLatency({ period: FIVE_MINUTES, statistic: 'p99' });
    alarm('ApiServerErrors', api5xx, {
      threshold: serverErrors,
      description: `Tandem API: ${serverErrors} or more 5xx responses in 5 minutes`,
    });
    alarm('ApiLatencyP99', apiP99, {
      threshold: latencyMs,
      evaluationPeriods: 3,
      greaterThan: true,
      description: `Tandem API: p99 latency above ${latencyMs} ms for 15 minutes`,
    });

    // Published by the predict function at each pointer check (1: the pointer's version is not serving,
    // 0: it is), at most once a minute per model and environment while requests come. Without requests
    // there is no check: the alarm keeps its state until one finds the pointer good again.
    alarm(
      'ModelPointerErrors',
      new cloudwatch.Metric({
        namespace: 'Tandem',
        metricName: 'ModelPointerErrors',
        dimensionsMap: { service: 'tandem-api' },
        statistic: 'Maximum',
        period: FIVE_MINUTES,
      }),
      {
        threshold: 1,
        treatMissingData: cloudwatch.TreatMissingData.IGNORE,
        description:
          "Tandem API: a model's current.json names a version that cannot serve (the last good version keeps serving; GET /ready or /models/{name} and the log say why)",
      },
    );

    const runsFailed = new cloudwatch.MathExpression({
      expression: 'failed + timedOut + aborted',
      usingMetrics: {
        failed: props.stateMachine.metricFailed({ statistic: 'Sum' }),
        timedOut: props.stateMachine.metricTimedOut({ statistic: 'Sum' }),
        aborted: props.stateMachine.metricAborted({ statistic: 'Sum' }),
      },
      period: FIVE_MINUTES,
      label: 'Batch runs failed, timed out or aborted',
    });
    alarm('BatchRunsFailed', runsFailed, {
      threshold: 1,
      description:
        'Tandem batch: a run failed, timed out or was aborted (see results/<model>/<dataset>/<runId>/_manifest.json)',
    });

    alarm(
      'BatchRunsThrottled',
      props.stateMachine.metricThrottled({ period: FIVE_MINUTES, statistic: 'Sum' }),
      {
        threshold: 1,
        description:
          'Tandem batch: Step Functions throttled state transitions or executions of the batch state machine (runs are delayed; a sustained rate needs a quota increase)',
      },
    );

    const tableThrottles = new cloudwatch.MathExpression({
      expression: 'reads + writes',
      usingMetrics: {
        reads: props.table.metric('ReadThrottleEvents', { statistic: 'Sum' }),
        writes: props.table.metric('WriteThrottleEvents', { statistic: 'Sum' }),
      },
      period: FIVE_MINUTES,
      label: 'Table throttle events',
    });
    alarm('TableThrottles', tableThrottles, {
      threshold: 1,
      description: 'Tandem table: requests throttled (the cache read is skipped, batch writes are retried)',
    });

    for (const [name, fn] of Object.entries(props.functions)) {
      alarm(`${pascal(name)}Errors`, fn.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' }), {
        threshold: 1,
        description: `Tandem ${name} function: invocations failed`,
      });
      alarm(`${pascal(name)}Throttles`, fn.metricThrottles({ period: FIVE_MINUTES, statistic: 'Sum' }), {
        threshold: 1,
        description: `Tandem ${name} function: invocations throttled (account or function concurrency reached)`,
      });
    }
    const durationPercent = props.durationAlarmPercent ?? 90;
    for (const [name, timeout] of Object.entries(props.timeouts ?? {})) {
      const fn = props.functions[name];
      if (!fn) throw new Error(`Monitoring timeouts: no function named ${name}`);
      const thresholdMs = Math.floor((timeout.toMilliseconds() * durationPercent) / 100);
      alarm(
        `${pascal(name)}DurationNearTimeout`,
        fn.metricDuration({ period: FIVE_MINUTES, statistic: 'Maximum' }),
        {
          threshold: thresholdMs,
          description: `Tandem ${name} function: an invocation ran ${durationPercent}% or more of its ${timeout.toSeconds()} s timeout (${thresholdMs} ms); longer work fails`,
        },
      );
    }

    if (props.deadLetterQueue) {
      alarm(
        'DeadLetters',
        props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          period: FIVE_MINUTES,
          statistic: 'Maximum',
        }),
        {
          threshold: 1,
          description:
            'Tandem batch: uploads whose trigger failed after every retry are waiting in the dead-letter queue',
        },
      );
    }
    this.alarms = alarms;

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.hours(3),
    });
    const fns = Object.entries(props.functions);
    const service = { service: 'tandem-api' };
    const tandemMetric = (metricName: string, statistic = 'Sum'): cloudwatch.Metric =>
      new cloudwatch.Metric({
        namespace: 'Tandem',
        metricName,
        dimensionsMap: service,
        statistic,
        period: FIVE_MINUTES,
      });
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({
        title: 'Alarms',
        alarms: Object.values(alarms),
        width: 24,
        height: 3,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'API requests and errors',
        left: [
          props.httpApi.metricCount({ period: FIVE_MINUTES, statistic: 'Sum' }),
          props.httpApi.metricClientError({ period: FIVE_MINUTES, statistic: 'Sum' }),
          api5xx,
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'API latency (ms)',
        left: [
          props.httpApi.metricLatency({ period: FIVE_MINUTES, statistic: 'p50' }),
          apiP99,
          props.httpApi.metricIntegrationLatency({ period: FIVE_MINUTES, statistic: 'p99' }),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Cache (real-time lane)',
        left: ['CacheHit', 'CacheMiss', 'CacheStale', 'CacheVersionMismatch', 'CacheSkipped'].map((m) =>
          tandemMetric(m),
        ),
        right: [tandemMetric('ModelLatency', 'p99')],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Function errors',
        left: fns.map(([name, fn]) =>
          fn.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum', label: name }),
        ),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function duration p99 (ms)',
        left: fns.map(([name, fn]) =>
          fn.metricDuration({ period: FIVE_MINUTES, statistic: 'p99', label: name }),
        ),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function throttles',
        left: fns.map(([name, fn]) =>
          fn.metricThrottles({ period: FIVE_MINUTES, statistic: 'Sum', label: name }),
        ),
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Batch runs',
        left: [
          props.stateMachine.metricStarted({ period: FIVE_MINUTES, statistic: 'Sum' }),
          props.stateMachine.metricSucceeded({ period: FIVE_MINUTES, statistic: 'Sum' }),
          runsFailed,
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Table capacity used',
        left: [
          props.table.metricConsumedReadCapacityUnits({ period: FIVE_MINUTES, statistic: 'Sum' }),
          props.table.metricConsumedWriteCapacityUnits({ period: FIVE_MINUTES, statistic: 'Sum' }),
        ],
        right: [tableThrottles],
        width: 8,
      }),
      ...(props.deadLetterQueue
        ? [
            new cloudwatch.GraphWidget({
              title: 'Dead-lettered uploads',
              left: [
                props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: FIVE_MINUTES }),
              ],
              width: 8,
            }),
          ]
        : []),
    );
  }
}

function pascal(name: string): string {
  return name.replace(/(^|[^A-Za-z0-9])([a-z])/g, (_m, _sep: string, c: string) => c.toUpperCase());
}
