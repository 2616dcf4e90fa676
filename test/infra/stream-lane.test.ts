/** The stream lane in the template: off by default, and when on, streams, mapping, grants and alarms. */
import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from '@jest/globals';
import { readSettings } from '../../lib/settings.ts';
import { actionsOf, flat, resources, roleOf, statementsOf, templateOf } from './support.ts';

describe('stream lane', () => {
  it('is off by default: no stream, no event source mapping, no POST /events route', () => {
    const template = templateOf();
    template.resourceCountIs('AWS::Kinesis::Stream', 0);
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 0);
    expect(flat(resources(template, 'AWS::ApiGatewayV2::Route'))).not.toContain('/events');
  });

  const template = templateOf({
    streamLane: true,
    streamSettings: { batchSize: 250, batchingWindowSeconds: 2, retryAttempts: 5 },
  });

  it('creates two on-demand streams encrypted with the Kinesis-managed key', () => {
    template.resourceCountIs('AWS::Kinesis::Stream', 2);
    template.allResourcesProperties('AWS::Kinesis::Stream', {
      StreamModeDetails: { StreamMode: 'ON_DEMAND' },
      StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
    });
  });

  it('maps the input stream to the consumer with the settings, partial batch responses and an on-failure queue', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 250,
      MaximumBatchingWindowInSeconds: 2,
      MaximumRetryAttempts: 5,
      ParallelizationFactor: 1,
      MaximumRecordAgeInSeconds: 3600,
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      StartingPosition: 'TRIM_HORIZON',
      DestinationConfig: { OnFailure: { Destination: Match.anyValue() } },
    });
  });

  it('grants the consumer only what it does: PutItem, PutRecords on the output, models/ and rejected/stream/', () => {
    const statements = statementsOf(template, roleOf(template, 'StreamConsumer'));
    const actions = actionsOf(statements);
    expect(actions).toContain('dynamodb:PutItem');
    expect(actions).not.toContain('dynamodb:GetItem');
    expect(actions).toContain('kinesis:PutRecords');
    const s3Resources = flat(statements.filter((s) => flat(s.Action).includes('s3:PutObject')));
    expect(s3Resources).toContain('rejected/stream/*');
    expect(s3Resources).not.toContain('models/*');
    // No "*" statement: X-Ray is off (lib/tandem-function.ts), so there is no X-Ray grant either.
    const star = statements.filter((s) => s.Resource === '*');
    expect(star.flatMap((s) => actionsOf([s]))).toEqual([]);
  });

  it('lets the API put events (POST /events) and tells it the stream', () => {
    const predictActions = actionsOf(statementsOf(template, roleOf(template, 'ApiPredict')));
    expect(predictActions).toContain('kinesis:PutRecords');
    expect(flat(resources(template, 'AWS::ApiGatewayV2::Route'))).toContain('POST /events');
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ TANDEM_STREAM_LANE: 'true', STREAM_INPUT_NAME: Match.anyValue() }),
      },
    });
  });

  it('alarms on the consumer falling behind (IteratorAge) and on records sent to the on-failure queue', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'IteratorAge',
      Statistic: 'Maximum',
      Threshold: 60_000,
      AlarmActions: [Match.anyValue()],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      AlarmActions: [Match.anyValue()],
    });
  });

  it('adds dashboard widgets: consumer lag, records scored and rejected, latency', () => {
    const body = flat(
      Object.values(resources(template, 'AWS::CloudWatch::Dashboard'))[0]!.Properties!['DashboardBody'],
    );
    for (const metric of [
      'IteratorAge',
      'StreamRecordsScored',
      'StreamRecordsRejected',
      'StreamEventToScoredMaxMs',
    ]) {
      expect(body).toContain(metric);
    }
  });

  it('refuses settings out of range with the setting named', () => {
    expect(() => templateOf({ streamLane: true, streamSettings: { batchSize: 0 } })).toThrow(
      /streamBatchSize: expected an integer from 1 to 10000/,
    );
  });
});

describe('stream lane context keys', () => {
  it('reads the lane and its settings from -c strings and cdk.json values, naming bad ones', () => {
    const context: Record<string, unknown> = {
      streamLane: 'true',
      streamBatchSize: '500',
      streamBatchingWindowSeconds: 5,
      streamBisectOnError: false,
    };
    expect(readSettings((key) => context[key]).props).toMatchObject({
      streamLane: true,
      streamSettings: { batchSize: 500, batchingWindowSeconds: 5, bisectOnError: false },
    });
    const bad: Record<string, unknown> = { ...context, streamRetryAttempts: 'many' };
    expect(() => readSettings((key) => bad[key])).toThrow(
      /streamRetryAttempts: expected an integer from 0 to 10000, got "many"/,
    );
  });

  it('is read with the other settings (cdk synth -c streamLane=true), a bad value stopping the synth', () => {
    const context: Record<string, unknown> = { streamLane: 'true', streamBatchingWindowSeconds: '0' };
    expect(readSettings((key) => context[key]).props).toMatchObject({
      streamLane: true,
      streamSettings: { batchingWindowSeconds: 0 },
    });
    expect(() => readSettings((key) => ({ streamBatchSize: '0' })[key as string])).toThrow(
      /streamBatchSize: expected an integer from 1 to 10000/,
    );
  });
});
