/**
 * Scheduled re-scoring (the `schedules` setting): one EventBridge Scheduler schedule per entry, whose target
 * is the batch state machine itself with the input `tandem runs start <model> --prefix` gives it
 * (scheduledRunInput), the run id made unique by Scheduler's `<aws.scheduler.execution-id>`. No function
 * in between: nothing to deploy, bundle or watch, and Scheduler's own retry policy and dead-letter queue
 * cover a StartExecution that fails. The batch functions may read exactly the scheduled prefixes.
 */
import { Duration, TimeZone } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { BatchOptions } from '../lambdas/core/batch/contracts.ts';
import {
  parseSchedules,
  scheduledRunId,
  scheduledRunInput,
  type ScheduleSpec,
} from '../lambdas/core/batch/schedules.ts';
import { grantPrefixRead } from './bucket-access.ts';

/** Retries of a StartExecution that fails (throttled, service error), and for how long. */
export const SCHEDULE_RETRY = { attempts: 8, maxEventAge: Duration.hours(1) } as const;

export interface BatchSchedulesProps {
  readonly bucket: s3.IBucket;
  readonly stateMachine: sfn.IStateMachine;
  /** The schedules; checked here too (the construct may be used without `Tandem`). */
  readonly schedules: readonly ScheduleSpec[];
  /** The functions that read a run's input files: the plan lists and reads them, the score reads them. */
  readonly readers: { readonly plan: iam.IGrantable; readonly score: iam.IGrantable };
  /**
   * The stack's options for every run; a schedule's own options override them.
   * @default - none
   */
  readonly batchOptions?: Partial<BatchOptions>;
}

export class BatchSchedules extends Construct {
  /** One per entry of `schedules`, in order. */
  public readonly schedules: scheduler.Schedule[] = [];
  /** Invocations Scheduler gave up on after every retry (the message says which schedule and why). */
  public readonly deadLetterQueue: sqs.Queue;
  /** Messages visible in the dead-letter queue: a scheduled run did not start. */
  public readonly deadLettersAlarm: cloudwatch.Alarm;
  /** The prefixes the batch functions may read because of a schedule. */
  public readonly prefixes: string[];

  constructor(scope: Construct, id: string, props: BatchSchedulesProps) {
    super(scope, id);
    const parsed = parseSchedules(props.schedules);
    if (!parsed.ok)
      throw new Error(`Invalid schedules:\n${parsed.problems.map((p) => `  - ${p}`).join('\n')}`);

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.deadLettersAlarm = new cloudwatch.Alarm(this, 'DeadLettersAlarm', {
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(5),
        statistic: 'Maximum',
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription:
        'Tandem schedules: a scheduled batch run could not be started after every retry (see the dead-letter queue)',
    });

    parsed.schedules.forEach((schedule, index) => {
      const input = scheduledRunInput(
        schedule,
        props.bucket.bucketName,
        scheduledRunId(schedule.model, scheduler.ContextAttribute.executionId),
        props.batchOptions,
      );
      this.schedules.push(
        new scheduler.Schedule(this, `Schedule${index}`, {
          description: `Tandem: re-score ${schedule.prefix} with ${schedule.model}`.slice(0, 512),
          schedule: scheduler.ScheduleExpression.expression(schedule.expression, TimeZone.ETC_UTC),
          timeWindow: scheduler.TimeWindow.off(),
          target: new targets.StepFunctionsStartExecution(props.stateMachine, {
            input: scheduler.ScheduleTargetInput.fromObject(input),
            deadLetterQueue: this.deadLetterQueue,
            retryAttempts: SCHEDULE_RETRY.attempts,
            maxEventAge: SCHEDULE_RETRY.maxEventAge,
          }),
        }),
      );
    });

    this.prefixes = [...new Set(parsed.schedules.map((s) => s.prefix))];
    grantPrefixRead(props.readers.plan, props.bucket, this.prefixes, { list: true });
    grantPrefixRead(props.readers.score, props.bucket, this.prefixes, { list: false });
  }
}
