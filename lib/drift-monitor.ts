/**
 * The drift monitor: a function that an EventBridge schedule invokes every `intervalMinutes` (15 by default,
 * 5 at the finest), which runs the monitor for every served model (lambdas/handlers/monitor.ts), an alarm
 * on the highest feature PSI of a run, and dashboard widgets that plot the PSI of every feature and of the
 * predictions over time. Least privilege: the function reads pointers, baselines, captures and its own
 * state, and writes only under monitoring/ (lib/bucket-access.ts).
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Validations } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { parseSetting, SETTINGS, type Setting } from '../lambdas/core/settings.ts';
import { FUNCTION_ACCESS, grantObjectAccess, patternsOf } from './bucket-access.ts';
import { keyPatternFindings, REASONS } from './nag-suppressions.ts';
import { TandemFunction, settingsEnvironment } from './tandem-function.ts';

export interface DriftMonitorProps {
  /** The data bucket: captures, model packages (models/) and reports (monitoring/). */
  readonly bucket: s3.IBucket;
  /**
   * Minutes between runs, 5 to 1440.
   * @default 15
   */
  readonly intervalMinutes?: number;
  /**
   * PSI above which a feature counts as drifted (reports and the alarm).
   * @default 0.2
   */
  readonly threshold?: number;
  /**
   * Fewer captured records than this give "too few records", no figures.
   * @default 100
   */
  readonly minRecords?: number;
  /**
   * The prediction table: live quality matches outcomes to precomputed predictions too (GetItem,
   * BatchGetItem).
   * @default - none: live quality from captured predictions only
   */
  readonly table?: dynamodb.ITable;
  /** @default lambda.Architecture.X86_64 */
  readonly architecture?: lambda.Architecture;
  /** @default SETTINGS.logRetentionDays */
  readonly logRetention?: logs.RetentionDays;
}

export class DriftMonitor extends Construct {
  public readonly monitor: TandemFunction;
  public readonly schedule: events.Rule;
  /** A feature's PSI passed the threshold in a run (any model). */
  public readonly driftAlarm: cloudwatch.Alarm;
  public readonly intervalMinutes: number;
  public readonly threshold: number;

  constructor(scope: Construct, id: string, props: DriftMonitorProps) {
    super(scope, id);
    this.intervalMinutes = checked('intervalMinutes', SETTINGS.monitorIntervalMinutes, props.intervalMinutes);
    this.threshold = checked('threshold', SETTINGS.driftThreshold, props.threshold);
    const minRecords = checked('minRecords', SETTINGS.driftMinRecords, props.minRecords);

    this.monitor = new TandemFunction(this, 'Function', {
      entry: 'lambdas/handlers/monitor.ts',
      description:
        'Tandem drift monitor (captures vs each live version baseline -> monitoring/<model>/drift/)',
      memorySize: 1024,
      timeout: Duration.minutes(5),
      ...(props.architecture ? { architecture: props.architecture } : {}),
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
      environment: settingsEnvironment('monitor', {
        dataBucket: props.bucket.bucketName,
        modelsUri: props.bucket.s3UrlForObject('models/'),
        driftThreshold: this.threshold,
        driftMinRecords: minRecords,
        ...(props.table ? { tableName: props.table.tableName } : {}),
      }),
    });
    grantObjectAccess(this.monitor.role, props.bucket, FUNCTION_ACCESS.monitor);
    props.table?.grant(this.monitor.role, 'dynamodb:GetItem', 'dynamodb:BatchGetItem');

    this.schedule = new events.Rule(this, 'Schedule', {
      description: `Tandem drift monitor: every ${this.intervalMinutes} minutes`,
      schedule: events.Schedule.rate(Duration.minutes(this.intervalMinutes)),
      targets: [
        new targets.LambdaFunction(this.monitor.function, {
          // A run that fails is retried; one that never runs is covered by the next (its window starts
          // where the last written report ended).
          retryAttempts: 2,
          maxEventAge: Duration.minutes(this.intervalMinutes),
        }),
      ],
    });

    this.driftAlarm = new cloudwatch.Alarm(this, 'DriftAlarm', {
      metric: this.maxFeaturePsi(),
      threshold: this.threshold,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `Tandem drift: a feature's PSI passed ${this.threshold} against its model's baseline (npm run tandem -- monitor report <model>; monitoring/<model>/drift/)`,
    });
  }

  /** The highest feature PSI of the runs in a period (all models). */
  maxFeaturePsi(): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'Tandem',
      metricName: 'MaxFeaturePSI',
      dimensionsMap: { service: 'tandem-monitor' },
      statistic: 'Maximum',
      period: Duration.minutes(this.intervalMinutes),
    });
  }

  /** PSI over time: every feature of every model, and every model's predictions. */
  dashboardWidgets(): cloudwatch.IWidget[] {
    const seconds = this.intervalMinutes * 60;
    const search = (metric: string, dimensions: string, label: string) =>
      new cloudwatch.MathExpression({
        expression: `SEARCH('{Tandem,${dimensions}} MetricName="${metric}"', 'Maximum', ${seconds})`,
        label,
        period: Duration.minutes(this.intervalMinutes),
      });
    const threshold = { value: this.threshold, label: `drift threshold ${this.threshold}` };
    return [
      new cloudwatch.GraphWidget({
        title: 'Feature PSI (per model and feature)',
        left: [search('FeaturePSI', 'feature,model,service', '')],
        leftAnnotations: [threshold],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Prediction PSI (per model)',
        left: [search('PredictionPSI', 'model,service', '')],
        leftAnnotations: [threshold],
        width: 12,
      }),
    ];
  }

  /** cdk-nag: the function's findings, each with its reason. */
  acknowledgeNagFindings(bucket: s3.IBucket): void {
    const fn = this.monitor.function;
    const tick = `Invoked by a schedule every ${this.intervalMinutes} minutes with an empty event: EventBridge retries a failed invocation twice, the next run covers the window a failed one left (it starts where the last written report ended), and the function's Errors alarm reports failures; a dead-lettered tick would hold nothing to redrive.`;
    Validations.of(fn).acknowledge({ id: 'AwsSolutions-L1', reason: REASONS.runtime });
    Validations.of(fn).acknowledge({ id: 'Serverless-LambdaTracing', reason: REASONS.noTracing });
    Validations.of(fn).acknowledge({ id: 'Serverless-LambdaLatestVersion', reason: REASONS.runtime });
    Validations.of(fn).acknowledge({ id: 'Serverless-LambdaDLQ', reason: tick });
    Validations.of(this.schedule).acknowledge({ id: 'Serverless-EventBusDLQ', reason: tick });
    keyPatternFindings(this.monitor.role, bucket, patternsOf(FUNCTION_ACCESS.monitor));
  }
}

function checked<T>(label: string, setting: Setting, value: T | undefined): T {
  if (value === undefined) return setting.default as T;
  const parsed = parseSetting(setting, value);
  if (!parsed.ok) throw new Error(`DriftMonitor ${label}: ${parsed.problem}`);
  return value;
}
