/** The alarm on failed model promotions: the metric the predict function publishes, and how it behaves. */
import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from '@jest/globals';
import { POINTER_ERRORS_METRIC } from '../../lambdas/handlers/api/serving-reporter.ts';
import { resources, templateOf } from './support.ts';

describe('model pointer alarm', () => {
  const template = templateOf();

  it('alarms when any model pointer names a version that cannot serve, and stays raised without traffic', () => {
    const alarms = Object.values(resources(template, 'AWS::CloudWatch::Alarm')).filter(
      (a) => a.Properties!['MetricName'] === POINTER_ERRORS_METRIC,
    );
    expect(alarms).toHaveLength(1);
    expect(alarms[0]!.Properties).toMatchObject({
      Namespace: 'Tandem',
      Dimensions: [{ Name: 'service', Value: 'tandem-api' }],
      Statistic: 'Maximum',
      Period: 300,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'ignore',
      AlarmActions: [{ Ref: expect.any(String) }],
      OKActions: [{ Ref: expect.any(String) }],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: POINTER_ERRORS_METRIC,
      AlarmDescription: Match.stringLikeRegexp('current.json'),
    });
  });
});
