/** The drift monitor in the template: schedule, environment, alarm to the alarm topic, least-privilege IAM. */
import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from '@jest/globals';
import { readSettings, SettingsError } from '../../lib/settings.ts';
import { actionsOf, flat, onlyResource, resources, roleOf, statementsOf, templateOf } from './support.ts';

describe('drift monitor', () => {
  const template = templateOf();

  it('runs every 15 minutes by default, through a rule that retries the function', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(15 minutes)',
      State: 'ENABLED',
      Targets: [
        Match.objectLike({
          RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 900 },
        }),
      ],
    });
    const [, fn] = onlyResource(template, 'AWS::Lambda::Function', 'DriftMonitorFunction');
    expect(fn.Properties!['Environment']).toMatchObject({
      Variables: { DRIFT_THRESHOLD: '0.2', DRIFT_MIN_RECORDS: '100' },
    });
  });

  it('takes the interval and threshold from the settings, down to 5 minutes', () => {
    const custom = templateOf({ monitorIntervalMinutes: 5, driftThreshold: 0.25 });
    custom.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(5 minutes)' });
    custom.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'MaxFeaturePSI',
      Threshold: 0.25,
      Period: 300,
    });
  });

  it('fails synthesis on an interval under 5 minutes or a threshold out of range, naming the setting', () => {
    expect(() => templateOf({ monitorIntervalMinutes: 4 })).toThrow(
      /monitorIntervalMinutes: expected an integer from 5 to 1440, got 4/,
    );
    expect(() => readSettings((key) => (key === 'monitorIntervalMinutes' ? '2' : undefined))).toThrow(
      SettingsError,
    );
    expect(() => readSettings((key) => (key === 'driftThreshold' ? 'high' : undefined))).toThrow(
      /driftThreshold: expected a number from 0.01 to 10/,
    );
  });

  it('alarms to the alarm topic when the highest feature PSI of a run passes the threshold', () => {
    const [topicId] = onlyResource(template, 'AWS::SNS::Topic', 'AlarmTopic');
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'Tandem',
      MetricName: 'MaxFeaturePSI',
      Dimensions: [{ Name: 'service', Value: 'tandem-monitor' }],
      Statistic: 'Maximum',
      Threshold: 0.2,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: topicId }],
    });
  });

  it('plots feature and prediction PSI on the dashboard', () => {
    const body = flat(resources(template, 'AWS::CloudWatch::Dashboard'));
    expect(body).toContain('MetricName=\\\\\\"FeaturePSI\\\\\\"');
    expect(body).toContain('PredictionPSI');
  });

  it('may read pointers, manifests, baselines, captures, outcomes and its state, read the table, write only monitoring/', () => {
    const statements = statementsOf(template, roleOf(template, 'DriftMonitorFunction'));
    const s3Statements = statements.filter((s) => actionsOf([s]).some((a) => a.startsWith('s3:')));
    expect(actionsOf(s3Statements).sort()).toEqual(['s3:GetObject', 's3:ListBucket', 's3:PutObject']);
    const text = flat(s3Statements);
    for (const key of [
      '/models/*/current.json',
      '/models/*/manifest.json',
      '/models/*/baseline.json',
      '/capture/*',
      '/monitoring/*',
      '/feedback/*',
    ])
      expect(text).toContain(key);
    const put = s3Statements.find((s) => actionsOf([s]).includes('s3:PutObject'))!;
    expect(flat(put.Resource)).toContain('/monitoring/*');
    expect(flat(put.Resource)).not.toContain('capture');
    // Live quality reads the precomputed predictions of the outcomes' ids; nothing else.
    expect(
      actionsOf(statements)
        .filter((a) => !a.startsWith('s3:') && !a.startsWith('logs:'))
        .sort(),
    ).toEqual(['dynamodb:BatchGetItem', 'dynamodb:GetItem']);
  });
});
