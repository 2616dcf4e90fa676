/**
 * Refresh (docs/lifecycle.md#refresh): a model version's refresh sources are re-scored by the batch lane
 * when its package is uploaded or the pointer names it (S3 "Object Created" events for
 * `models/<name>/<version>/manifest.json` and `models/<name>/current.json`), and the live version's when a
 * model's cache reads are too often stale or another version's (a CloudWatch alarm per model, whose
 * "CloudWatch Alarm State Change" event into ALARM invokes the same function). The function starts one
 * folder run of the batch state machine per source and records each refresh under `refresh/`.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { BatchOptions } from '../lambdas/core/batch/contracts.ts';
import type { ScheduleSpec } from '../lambdas/core/batch/schedules.ts';
import { isPackageName } from '../lambdas/core/names.ts';
import { SETTINGS, STALENESS_MIN_READS, STALENESS_PERIOD_SECONDS } from '../lambdas/core/settings.ts';
import { grantObjectAccess, KEY_PATTERNS, type ObjectAccess } from './bucket-access.ts';
import { DATA_PREFIXES } from './data-bucket.ts';
import { settingsEnvironment, TandemFunction } from './tandem-function.ts';

export const REFRESH_HANDLER = 'lambdas/handlers/refresh.ts';

/**
 * What the refresh function does in the data bucket: reads pointers and manifests (ListBucket on models/
 * so that a missing pointer reads as missing, not forbidden), creates its markers, and deletes a marker
 * whose run could not be started (so that the event's retry starts it).
 */
export const REFRESH_ACCESS = {
  read: ['models'],
  list: ['models'],
  put: ['refreshMarkers'],
} as const satisfies ObjectAccess;

/** The object keys whose creation asks for a refresh: pointers and package manifests. */
export function modelChangeKeyPatterns(): string[] {
  return [`${DATA_PREFIXES.models}*/current.json`, `${DATA_PREFIXES.models}*/*/manifest.json`];
}

/** The period of the staleness alarm's metrics (npm start evaluates the same periods). */
export const STALENESS_PERIOD = Duration.seconds(STALENESS_PERIOD_SECONDS);

export interface ModelRefreshProps {
  readonly bucket: s3.IBucket;
  readonly stateMachine: sfn.IStateMachine;
  /** Events and invocations that failed after every retry. */
  readonly deadLetterQueue: sqs.IQueue;
  /**
   * The models whose staleness raises an alarm (and a refresh).
   * @default - none
   */
  readonly models?: readonly string[];
  /** @default SETTINGS.refreshOn.default ('promote') */
  readonly refreshOn?: 'push' | 'promote' | 'off';
  /** @default SETTINGS.refreshStaleShare.default (0.2) */
  readonly staleShare?: number;
  /** @default SETTINGS.refreshStaleMinutes.default (30) */
  readonly staleMinutes?: number;
  /**
   * The stack's schedules: their prefixes are refresh sources of their models (SCHEDULES).
   * @default - none
   */
  readonly schedules?: readonly ScheduleSpec[];
  /** Options of every run (the trigger's BATCH_OPTIONS). @default - DEFAULT_BATCH_OPTIONS */
  readonly batchOptions?: Partial<BatchOptions>;
  /** @default lambda.Architecture.X86_64 */
  readonly architecture?: lambda.Architecture;
  /** @default SETTINGS.logRetentionDays (30) */
  readonly logRetention?: logs.RetentionDays;
}

export class ModelRefresh extends Construct {
  public readonly function: TandemFunction;
  /** The rule that sends pointer and manifest uploads to the function. */
  public readonly modelChangeRule: events.Rule;
  /** Per model: the alarm on its share of outdated cache reads. */
  public readonly stalenessAlarms: Readonly<Record<string, cloudwatch.Alarm>>;
  /** Per model: the rule that sends the alarm's transition into ALARM to the function. */
  public readonly stalenessRules: Readonly<Record<string, events.Rule>>;

  constructor(scope: Construct, id: string, props: ModelRefreshProps) {
    super(scope, id);
    const models = props.models ?? [];
    const bad = models.filter((m) => !isPackageName(m));
    if (bad.length > 0)
      throw new Error(
        `ModelRefresh: models are 1-128 letters, digits, '.', '_' or '-'; got ${bad.map((m) => JSON.stringify(m)).join(', ')}`,
      );
    const share = props.staleShare ?? SETTINGS.refreshStaleShare.default;
    const minutes = props.staleMinutes ?? SETTINGS.refreshStaleMinutes.default;
    const periods = Math.max(1, Math.ceil((minutes * 60) / STALENESS_PERIOD.toSeconds()));

    this.function = new TandemFunction(this, 'Function', {
      ...(props.architecture ? { architecture: props.architecture } : {}),
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
      entry: REFRESH_HANDLER,
      description: "Tandem refresh: re-score a model version's refresh sources",
      memorySize: 256,
      timeout: Duration.seconds(60),
      onFailure: props.deadLetterQueue,
      retryAttempts: 2,
      environment: settingsEnvironment('refresh', {
        stateMachineArn: props.stateMachine.stateMachineArn,
        dataBucket: props.bucket.bucketName,
        refreshOn: props.refreshOn,
        batchOptions: props.batchOptions,
        // Only what the refresh reads of them: a model's prefixes.
        schedules:
          props.schedules && props.schedules.length > 0
            ? props.schedules.map(({ model, prefix, expression }) => ({ model, prefix, expression }))
            : undefined,
      }),
    });
    grantObjectAccess(this.function.role, props.bucket, REFRESH_ACCESS);
    iam.Grant.addToPrincipal({
      grantee: this.function.role,
      actions: ['s3:DeleteObject'],
      resourceArns: [props.bucket.arnForObjects(KEY_PATTERNS.refreshMarkers.pattern)],
    });
    props.stateMachine.grantStartExecution(this.function.role);

    const target = (input?: events.RuleTargetInput) =>
      new targets.LambdaFunction(this.function.function, {
        deadLetterQueue: props.deadLetterQueue,
        retryAttempts: 8,
        maxEventAge: Duration.hours(6),
        ...(input ? { event: input } : {}),
      });

    this.modelChangeRule = new events.Rule(this, 'ModelChangeRule', {
      description: 'Tandem: model packages and pointers written start a refresh of the version',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [props.bucket.bucketName] },
          object: {
            key: events.Match.anyOf(...modelChangeKeyPatterns().map((p) => events.Match.wildcard(p))),
          },
        },
      },
    });
    this.modelChangeRule.addTarget(target());

    const alarms: Record<string, cloudwatch.Alarm> = {};
    const rules: Record<string, events.Rule> = {};
    models.forEach((model, index) => {
      const metric = (metricName: string) =>
        new cloudwatch.Metric({
          namespace: 'Tandem',
          metricName,
          dimensionsMap: { service: 'tandem-api', model },
          statistic: 'Sum',
          period: STALENESS_PERIOD,
        });
      const alarm = new cloudwatch.Alarm(this, `StalenessAlarm${index}`, {
        metric: new cloudwatch.MathExpression({
          expression: `IF(reads >= ${STALENESS_MIN_READS}, outdated / reads, 0)`,
          usingMetrics: { reads: metric('CacheReads'), outdated: metric('CacheOutdated') },
          period: STALENESS_PERIOD,
          label: `${model}: share of cache reads stale or of another version`,
        }),
        threshold: share,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: periods,
        datapointsToAlarm: periods,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `Tandem refresh: more than ${share * 100}% of ${model}'s cache reads were stale or another version's for ${periods * 5} minutes; its refresh sources are re-scored with the live version`,
      });
      alarms[model] = alarm;
      const rule = new events.Rule(this, `StalenessRule${index}`, {
        description: `Tandem: ${model}'s staleness alarm starts a refresh of its live version`,
        eventPattern: {
          source: ['aws.cloudwatch'],
          detailType: ['CloudWatch Alarm State Change'],
          resources: [alarm.alarmArn],
          detail: { state: { value: ['ALARM'] } },
        },
      });
      rule.addTarget(
        target(
          events.RuleTargetInput.fromObject({
            refresh: 'staleness',
            model,
            at: events.EventField.time,
          }),
        ),
      );
      rules[model] = rule;
    });
    this.stalenessAlarms = alarms;
    this.stalenessRules = rules;
  }

  /** The share of outdated cache reads of each watched model, against its threshold. */
  public dashboardWidgets(): cloudwatch.IWidget[] {
    return Object.entries(this.stalenessAlarms).map(
      ([model, alarm]) =>
        new cloudwatch.AlarmWidget({ title: `${model}: cache reads stale or of another version`, alarm }),
    );
  }
}
