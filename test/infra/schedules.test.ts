/**
 * The `schedules` setting deployed: one EventBridge Scheduler schedule per entry targeting the batch state
 * machine with a folder run's input, a retry policy and a dead-letter queue with an alarm on the alarm
 * topic; the batch functions read exactly the scheduled prefixes; a bad schedule fails synthesis by name.
 */
import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { SCHEDULE_RETRY } from '../../lib/batch-schedules.ts';
import { readSettings, SettingsError, TandemPropsError } from '../../lib/settings.ts';
import type { SettingName } from '../../lib/settings.ts';
import {
  onlyResource,
  resources,
  roleOf,
  statementsOf,
  templateOf,
  testApp,
  testStack,
  type Statement,
} from './support.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const SCHEDULES = [
  { model: 'fraud-detector', prefix: 'warehouse/transactions/daily', expression: 'cron(0 6 * * ? *)' },
  {
    model: 'churn',
    prefix: 'exports/customers/',
    expression: 'rate(6 hours)',
    options: { outputFormat: 'csv', tableWrites: 'none' },
  },
] as const;

/** The statements of a role that name an object or list condition under `prefix`. */
function mentioning(statements: Statement[], text: string): Statement[] {
  return statements.filter((s) => JSON.stringify(s).includes(text));
}

describe('schedules: deployed', () => {
  let template: Template;
  beforeAll(() => {
    template = templateOf({ schedules: SCHEDULES, batchOptions: { chunkBytes: 8_388_608 } });
  }, 60_000);

  it('makes one schedule per entry, in UTC, its expression as given, no flexible window', () => {
    const schedules = Object.values(resources(template, 'AWS::Scheduler::Schedule'));
    expect(schedules).toHaveLength(2);
    expect(schedules.map((s) => s.Properties!['ScheduleExpression'])).toEqual([
      'cron(0 6 * * ? *)',
      'rate(6 hours)',
    ]);
    for (const s of schedules) {
      expect(s.Properties!['ScheduleExpressionTimezone']).toBe('Etc/UTC');
      expect(s.Properties!['FlexibleTimeWindow']).toEqual({ Mode: 'OFF' });
    }
  });

  it('targets the batch state machine with the input of a folder run, a unique run id per invocation', () => {
    const [stateMachineId] = onlyResource(template, 'AWS::StepFunctions::StateMachine');
    const [first, second] = Object.values(resources(template, 'AWS::Scheduler::Schedule')).map(
      (s) =>
        s.Properties!['Target'] as {
          Arn: unknown;
          Input: string;
          RetryPolicy: unknown;
          DeadLetterConfig: unknown;
        },
    );
    expect(first!.Arn).toEqual({ Ref: stateMachineId });
    const input = (target: { Input: unknown }) =>
      JSON.parse(resolveJoin(target.Input)) as Record<string, unknown>;
    expect(input(first!)).toEqual({
      runId: 'fraud-detector-schedule-<aws.scheduler.execution-id>',
      bucket: '<bucket>',
      key: 'warehouse/transactions/daily/',
      model: 'fraud-detector',
      folder: true,
      options: { chunkBytes: 8_388_608 },
    });
    expect(input(second!)).toMatchObject({
      runId: 'churn-schedule-<aws.scheduler.execution-id>',
      key: 'exports/customers/',
      options: { chunkBytes: 8_388_608, outputFormat: 'csv', tableWrites: 'none' },
    });
  });

  it('retries a failed start, then sends it to an encrypted dead-letter queue whose messages raise an alarm on the alarm topic', () => {
    const [queueId, queue] = onlyResource(template, 'AWS::SQS::Queue', 'SchedulesDeadLetterQueue');
    expect(queue.Properties!['SqsManagedSseEnabled']).toBe(true);
    for (const s of Object.values(resources(template, 'AWS::Scheduler::Schedule'))) {
      const target = s.Properties!['Target'] as Record<string, unknown>;
      expect(target['RetryPolicy']).toEqual({
        MaximumRetryAttempts: SCHEDULE_RETRY.attempts,
        MaximumEventAgeInSeconds: SCHEDULE_RETRY.maxEventAge.toSeconds(),
      });
      expect(target['DeadLetterConfig']).toEqual({ Arn: { 'Fn::GetAtt': [queueId, 'Arn'] } });
    }
    const [topicId] = onlyResource(template, 'AWS::SNS::Topic');
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueId, 'QueueName'] } }],
      Threshold: 1,
      AlarmActions: [{ Ref: topicId }],
    });
  });

  it("lets the scheduler's role start the state machine and send to the dead-letter queue, nothing else", () => {
    const [, role] = onlyResource(template, 'AWS::IAM::Role', 'SchedulerRole');
    expect(JSON.stringify(role.Properties!['AssumeRolePolicyDocument'])).toContain('scheduler.amazonaws.com');
    const roleId = Object.entries(resources(template, 'AWS::IAM::Role')).find(([id]) =>
      id.includes('SchedulerRole'),
    )![0];
    const actions = statementsOf(template, roleId)
      .flatMap((s) => [s.Action].flat())
      .sort();
    expect(actions).toEqual(['sqs:SendMessage', 'states:StartExecution']);
  });

  it('lets the plan list and read, and the score read, exactly the scheduled prefixes', () => {
    const plan = statementsOf(template, roleOf(template, 'BatchPlan'));
    const score = statementsOf(template, roleOf(template, 'BatchScore'));
    for (const prefix of ['warehouse/transactions/daily/', 'exports/customers/']) {
      expectWithMessage(
        mentioning(plan, `/${prefix}*`)
          .flatMap((s) => [s.Action].flat())
          .sort(),
        prefix,
      ).toEqual(['s3:GetObject', 's3:GetObjectVersion']);
      expectWithMessage(
        mentioning(score, `/${prefix}*`)
          .flatMap((s) => [s.Action].flat())
          .sort(),
        prefix,
      ).toEqual(['s3:GetObject', 's3:GetObjectVersion']);
      expectWithMessage(
        plan.filter((s) => JSON.stringify(s.Condition ?? {}).includes(`"${prefix}*"`)).map((s) => s.Action),
        prefix,
      ).toEqual(['s3:ListBucket']);
    }
    // Nothing else of the bucket: no folder the schedules do not name.
    expect(mentioning(plan, '/warehouse/*')).toEqual([]);
    expect(mentioning(score, 's3:ListBucket')).toEqual([]);
  });

  it('outputs the schedules (without options) for `tandem schedules list --stack`', () => {
    expect(JSON.parse(template.toJSON().Outputs.Schedules.Value as string)).toEqual([
      { model: 'fraud-detector', prefix: 'warehouse/transactions/daily/', expression: 'cron(0 6 * * ? *)' },
      { model: 'churn', prefix: 'exports/customers/', expression: 'rate(6 hours)' },
    ]);
  });

  it('makes no schedule resources without schedules', () => {
    const plain = templateOf();
    expect(Object.keys(resources(plain, 'AWS::Scheduler::Schedule'))).toEqual([]);
    expect(Object.keys(resources(plain, 'AWS::SQS::Queue'))).toHaveLength(1);
  });
});

describe('schedules: bad ones fail synthesis, named', () => {
  it('refuses bad construct props with a message naming each schedule and field', () => {
    const app = testApp();
    expect(() =>
      testStack(app, {
        schedules: [
          { model: 'fraud-detector', prefix: 'results/fraud-detector/', expression: 'cron(0 6 * * ? *)' },
          { model: 'fraud-detector', prefix: 'data/', expression: 'cron(0 6 * * *)' },
        ],
      }),
    ).toThrow(TandemPropsError);
    try {
      testStack(testApp(), {
        schedules: [
          { model: 'fraud-detector', prefix: 'results/fraud-detector/', expression: 'cron(0 6 * * ? *)' },
          { model: 'fraud-detector', prefix: 'data/', expression: 'cron(0 6 * * *)' },
        ],
      });
    } catch (error) {
      const message = (error as Error).message;
      expect(message).toMatch(
        /schedules\[0\] \(fraud-detector results\/fraud-detector\/\) prefix: .* is under results\//,
      );
      expect(message).toMatch(/schedules\[1\] \(fraud-detector data\/\) expression: .*6 fields/);
    }
  });

  it('refuses bad context (cdk.json or -c schedules=...) by name, as cdk synth reports it', () => {
    const from = (context: Record<string, unknown>) => readSettings((key: SettingName) => context[key]);
    expect(() => from({ schedules: '{"model": "m"}' })).toThrow(/schedules: expected a JSON list/);
    let error: unknown;
    try {
      from({
        schedules: JSON.stringify([
          {
            model: 'fraud detector',
            prefix: '../x/',
            expression: 'rate(1 minutes)',
            options: { chunkSize: 1 },
          },
        ]),
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SettingsError);
    const problems = (error as SettingsError).problems;
    expect(problems).toEqual([
      expect.stringMatching(
        /^schedules\[0\] \(fraud detector \.\.\/x\/\) model: "fraud detector" is not a model name/,
      ),
      expect.stringMatching(/^schedules\[0\] \(fraud detector \.\.\/x\/\) prefix: .*"\.\." folder/),
      expect.stringMatching(
        /^schedules\[0\] \(fraud detector \.\.\/x\/\) expression: rate\(1 minutes\): the unit is singular/,
      ),
      expect.stringMatching(
        /^schedules\[0\] \(fraud detector \.\.\/x\/\) options: unknown option\(s\) chunkSize/,
      ),
    ]);
    expect(
      from({ schedules: [{ model: 'm', prefix: 'data/daily', expression: 'rate(1 day)' }] }).props.schedules,
    ).toEqual([{ model: 'm', prefix: 'data/daily/', expression: 'rate(1 day)' }]);
    expect(from({ schedules: [] }).props).toEqual({});
  });
});

/** The Input of a target with the bucket name's reference replaced by `<bucket>`. */
function resolveJoin(input: unknown): string {
  if (typeof input === 'string') return input;
  const join = (input as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
  return join[1].map((part) => (typeof part === 'string' ? part : '<bucket>')).join(join[0]);
}
