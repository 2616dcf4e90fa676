/**
 * The refresh deployed (lib/model-refresh.ts): the rule on pointer and manifest uploads, the staleness
 * alarm per model and its rule, the function's environment, and its IAM, least privilege statement by
 * statement.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { scheduledPrefixesOf } from '../../lambdas/handlers/refresh-schedules.ts';
import { readSettings } from '../../lib/settings.ts';
import { validateTandemProps } from '../../lib/tandem-stack.ts';
import { actionsOf, flat, list, resources, roleOf, statementsOf, templateOf } from './support.ts';

/** EventBridge's wildcard: `*` matches any characters, `/` included. */
const matches = (pattern: string, key: string) =>
  new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  ).test(key);

describe('ModelRefresh', () => {
  let template: Template;
  beforeAll(() => {
    template = templateOf({
      refreshModels: ['fraud-detector', 'churn'],
      refreshStaleShare: 0.3,
      refreshStaleMinutes: 12,
    });
  }, 60_000);

  it('sends only pointer and package manifest uploads of the data bucket to the function', () => {
    const rules = Object.values(resources(template, 'AWS::Events::Rule')).filter((r) =>
      (JSON.stringify(r.Properties!['EventPattern']) ?? '').includes('current.json'),
    );
    expect(rules).toHaveLength(1);
    const pattern = rules[0]!.Properties!['EventPattern'] as {
      source: string[];
      'detail-type': string[];
      detail: { bucket: { name: unknown[] }; object: { key: { wildcard: string }[] } };
    };
    expect(pattern.source).toEqual(['aws.s3']);
    expect(pattern['detail-type']).toEqual(['Object Created']);
    expect(flat(pattern.detail.bucket.name[0])).toMatch(/^\$\{TandemDataBucket/);
    const wildcards = pattern.detail.object.key.map((k) => k.wildcard);
    const matched = (key: string) => wildcards.some((w) => matches(w, key));
    expect(matched('models/fraud/current.json')).toBe(true);
    expect(matched('models/fraud/2.0.0/manifest.json')).toBe(true);
    expect(matched('models/fraud/2.0.0/model.onnx')).toBe(false);
    expect(matched('incoming/fraud/current.json')).toBe(false);
    expect(matched('models/fraud/history/0001.json')).toBe(false);
  });

  it('alarms per model on the share of outdated reads, over the threshold for the period', () => {
    const alarms = Object.values(resources(template, 'AWS::CloudWatch::Alarm')).filter((a) =>
      JSON.stringify(a.Properties!['Metrics'] ?? []).includes('CacheOutdated'),
    );
    expect(alarms).toHaveLength(2);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 0.3,
      ComparisonOperator: 'GreaterThanThreshold',
      // 12 minutes: three 5-minute periods, all of them above the threshold.
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      TreatMissingData: 'notBreaching',
      Metrics: Match.arrayWith([
        Match.objectLike({ Expression: 'IF(reads >= 20, outdated / reads, 0)', ReturnData: true }),
        Match.objectLike({
          Id: 'reads',
          MetricStat: Match.objectLike({
            Metric: Match.objectLike({
              Namespace: 'Tandem',
              MetricName: 'CacheReads',
              Dimensions: Match.arrayWith([{ Name: 'model', Value: 'churn' }]),
            }),
            Period: 300,
            Stat: 'Sum',
          }),
        }),
      ]),
    });
  });

  it("sends each alarm's transition into ALARM to the function as a staleness refresh of its model", () => {
    const rules = Object.values(resources(template, 'AWS::Events::Rule')).filter((r) =>
      (JSON.stringify(r.Properties!['EventPattern']) ?? '').includes('CloudWatch Alarm State Change'),
    );
    expect(rules).toHaveLength(2);
    for (const rule of rules) {
      const pattern = rule.Properties!['EventPattern'] as Record<string, unknown>;
      expect(pattern['source']).toEqual(['aws.cloudwatch']);
      expect(pattern['detail']).toEqual({ state: { value: ['ALARM'] } });
      expect(flat((pattern['resources'] as unknown[])[0])).toMatch(/StalenessAlarm\d.*\.Arn/);
      const [target] = rule.Properties!['Targets'] as { InputTransformer: { InputTemplate: string } }[];
      expect(target!.InputTransformer.InputTemplate).toMatch(
        /^\{"refresh":"staleness","model":"(fraud-detector|churn)","at":<time>\}$/,
      );
    }
  });

  it('gives the function its settings and nothing else', () => {
    const [, fn] = Object.entries(resources(template, 'AWS::Lambda::Function')).find(([id]) =>
      id.includes('RefreshFunction'),
    )!;
    const variables = (fn.Properties!['Environment'] as { Variables: Record<string, unknown> }).Variables;
    expect(Object.keys(variables).sort()).toEqual([
      'DATA_BUCKET',
      'NODE_OPTIONS',
      'REFRESH_ON',
      'STATE_MACHINE_ARN',
    ]);
    expect(variables['REFRESH_ON']).toBe('promote');
  });

  it('lets the function read models/, write and delete its markers, and start the batch state machine: no more', () => {
    const statements = statementsOf(template, roleOf(template, 'RefreshFunction'));
    expect(actionsOf(statements)).toEqual([
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      's3:DeleteObject',
      's3:GetObject',
      's3:ListBucket',
      's3:PutObject',
      // The on-failure destination (the batch lane's dead-letter queue), as CDK grants it.
      'sqs:GetQueueAttributes',
      'sqs:GetQueueUrl',
      'sqs:SendMessage',
      'states:StartExecution',
    ]);
    const on = (action: string) =>
      statements
        .filter((s) => list(s.Action).includes(action))
        .flatMap((s) => list(s.Resource as string).map(flat));
    expect(on('s3:GetObject')).toEqual([expect.stringMatching(/\/models\/\*$/)]);
    expect(on('s3:PutObject')).toEqual([expect.stringMatching(/\/refresh\/\*$/)]);
    expect(on('s3:DeleteObject')).toEqual([expect.stringMatching(/\/refresh\/\*$/)]);
    expect(on('states:StartExecution')).toEqual([expect.stringMatching(/^\$\{TandemBatchStateMachine/)]);
    const listing = statements.find((s) => list(s.Action).includes('s3:ListBucket'))!;
    expect(listing.Condition).toEqual({ StringLike: { 's3:prefix': ['models/*'] } });
  });

  it("gives the function the stack's schedules, whose prefixes are refresh sources too", () => {
    const withSchedules = templateOf({
      schedules: [{ model: 'fraud-detector', prefix: 'warehouse/daily', expression: 'rate(1 day)' }],
    });
    const [, fn] = Object.entries(resources(withSchedules, 'AWS::Lambda::Function')).find(([id]) =>
      id.includes('RefreshFunction'),
    )!;
    const variables = (fn.Properties!['Environment'] as { Variables: Record<string, string> }).Variables;
    const env = { SCHEDULES: variables['SCHEDULES'] };
    expect(scheduledPrefixesOf(env)('fraud-detector')).toEqual(['warehouse/daily/']);
    expect(scheduledPrefixesOf(env)('churn')).toEqual([]);
    expect(scheduledPrefixesOf({})('fraud-detector')).toEqual([]);
    expect(() => scheduledPrefixesOf({ SCHEDULES: '[{"model": "m"}]' })).toThrow(
      /^SCHEDULES: schedules\[0\]/,
    );
  }, 60_000);

  it('reads its settings from the context, as strings (-c) or JSON (cdk.json)', () => {
    const context: Record<string, unknown> = {
      refreshOn: 'push',
      refreshStaleShare: '0.5',
      refreshStaleMinutes: 60,
      refreshModels: 'fraud-detector, churn',
    };
    expect(readSettings((key) => context[key]).props).toMatchObject({
      refreshOn: 'push',
      refreshStaleShare: 0.5,
      refreshStaleMinutes: 60,
      refreshModels: ['fraud-detector', 'churn'],
    });
    const bad: Record<string, unknown> = { ...context, refreshModels: 'ok,../x' };
    expect(() => readSettings((key) => bad[key])).toThrow(/refreshModels: expected model names/);
    expect(validateTandemProps({ refreshModels: [] })).toBeUndefined();
  });

  it('watches the default model when no models are named, and refuses bad settings by name', () => {
    const defaults = templateOf({ modelName: 'churn' });
    defaults.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 0.2,
      EvaluationPeriods: 6,
      Metrics: Match.arrayWith([
        Match.objectLike({
          MetricStat: Match.objectLike({
            Metric: Match.objectLike({ Dimensions: Match.arrayWith([{ Name: 'model', Value: 'churn' }]) }),
          }),
        }),
      ]),
    });
    expect(() =>
      validateTandemProps({
        refreshOn: 'daily' as never,
        refreshStaleShare: 0,
        refreshStaleMinutes: 2,
        refreshModels: ['ok', '../x'],
      }),
    ).toThrow(/refreshOn: .*\n.*refreshStaleShare: .*\n.*refreshStaleMinutes: .*\n.*refreshModels: /);
  });
});
