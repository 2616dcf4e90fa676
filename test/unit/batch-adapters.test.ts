/**
 * The batch lane's adapters on their error paths, at the SDK boundary (aws-sdk-client-mock): what is
 * retried where, what a caller sees, and that no AWS error text leaks into our own error messages.
 */
import {
  DynamoDBClient,
  InternalServerError,
  ProvisionedThroughputExceededException,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import {
  GetObjectCommand,
  HeadObjectCommand,
  NoSuchKey,
  NotFound,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { afterEach, describe, expect, it } from '@jest/globals';
import { BATCH_DYNAMODB_CONFIG } from '../../lambdas/adapters/aws-clients.ts';
import { DynamoDbPredictionStore } from '../../lambdas/adapters/dynamodb-prediction-store.ts';
import { EventBridgePublisher } from '../../lambdas/adapters/eventbridge-publisher.ts';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ObjectStore } from '../../lambdas/adapters/s3-object-store.ts';
import { StepFunctionsRunStarter } from '../../lambdas/adapters/step-functions-starter.ts';
import { triggerRuns } from '../../lambdas/core/batch/trigger.ts';
import { storedPrediction } from '../../lambdas/core/cache-policy.ts';
import { ModelLoadError, PredictionStoreError } from '../../lambdas/core/errors.ts';

const dynamo = mockClient(DynamoDBClient);
const s3 = mockClient(S3Client);
const sfn = mockClient(SFNClient);
const events = mockClient(EventBridgeClient);
afterEach(() => {
  dynamo.reset();
  s3.reset();
  sfn.reset();
  events.reset();
}, 60_000);

const items = Array.from({ length: 20 }, (_, i) =>
  storedPrediction(
    {
      model: 'fraud',
      entityId: `t${i}`,
      prediction: { label: 0, probabilities: { '0': 0.9, '1': 0.1 } },
      modelVersion: '1.0.0',
      computedAt: 1_750_000_000_000,
      source: 'batch',
      runId: 'run-1',
      sourceRow: i + 1,
    },
    3600,
  ),
);

const unavailable = () =>
  new InternalServerError({ message: 'Internal server error', $metadata: { httpStatusCode: 500 } });

const throttled = () =>
  new ProvisionedThroughputExceededException({
    message: 'Rate of requests exceeds the allowed throughput.',
    $metadata: {},
  });

describe('DynamoDbPredictionStore.putMany (batch writes)', () => {
  it('throws the first failure once the writes in flight have settled, and starts no new write', async () => {
    let inFlight = 0;
    let inFlightAtFailure = -1;
    dynamo.on(PutItemCommand).callsFake(async (input: { Item: { entityId: { S: string } } }) => {
      if (input.Item.entityId.S === 't2') throw unavailable();
      inFlight++;
      await new Promise((resolve) => setTimeout(resolve, 20));
      inFlight--;
      return {};
    });
    const store = new DynamoDbPredictionStore(new DynamoDBClient({}), 'table', 4);
    const failed = store.putMany(items).catch((error: unknown) => {
      inFlightAtFailure = inFlight;
      return error;
    });
    const error = await failed;
    expect(error).toBeInstanceOf(PredictionStoreError);
    expect(error).toMatchObject({ code: 'STORE_SERVER_ERROR' });
    expect((error as Error).cause).toBeInstanceOf(InternalServerError);
    expect(inFlightAtFailure).toBe(0);
    // Four workers started t0..t3; after t2 failed none took another item.
    expect(dynamo.commandCalls(PutItemCommand).map((c) => c.args[0].input.Item?.['entityId']?.S)).toEqual([
      't0',
      't1',
      't2',
      't3',
    ]);
  });

  it('counts a conditional-check failure recognised by name as skipped, not as an error', async () => {
    dynamo
      .on(PutItemCommand)
      .resolvesOnce({})
      .rejects(
        Object.assign(new Error('The conditional request failed'), {
          name: 'ConditionalCheckFailedException',
        }),
      );
    const result = await new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').putMany(
      items.slice(0, 3),
    );
    expect(result).toEqual({ written: 1, skipped: 2, unprocessed: [] });
  });

  it('hands back throttled and unstarted items as unprocessed (the same objects), without throwing', async () => {
    dynamo.on(PutItemCommand).callsFake(async (input: { Item: { entityId: { S: string } } }) => {
      if (input.Item.entityId.S === 't1') throw throttled();
      return {};
    });
    const result = await new DynamoDbPredictionStore(new DynamoDBClient({}), 'table', 1).putMany(
      items.slice(0, 5),
    );
    expect(result.written).toBe(1);
    expect(result.skipped).toBe(0);
    // One worker: t0 written, t1 throttled, and no write started after it.
    expect(result.unprocessed).toEqual(items.slice(1, 5));
    expect(result.unprocessed[0]).toBe(items[1]);
    expect(dynamo.commandCalls(PutItemCommand)).toHaveLength(2);
  });

  it('uses request timeouts and standard retries for batch writers', () => {
    expect(BATCH_DYNAMODB_CONFIG).toEqual({
      maxAttempts: 10,
      requestHandler: { connectionTimeout: 3000, requestTimeout: 10_000, throwOnRequestTimeout: true },
    });
  });
});

describe('S3ObjectStore', () => {
  it('reads a missing object as undefined, and lets other head errors through', async () => {
    s3.on(HeadObjectCommand).rejectsOnce(
      new NotFound({ message: 'Not Found', $metadata: { httpStatusCode: 404 } }),
    );
    const store = new S3ObjectStore(new S3Client({}));
    expect(await store.head('b', 'k')).toBeUndefined();
    s3.on(HeadObjectCommand).rejects(
      new S3ServiceException({
        name: 'AccessDenied',
        $fault: 'client',
        message: 'Access Denied',
        $metadata: { httpStatusCode: 403 },
      }),
    );
    await expect(store.head('b', 'k')).rejects.toMatchObject({ name: 'AccessDenied' });
  });

  it('reads [start, end) as an inclusive HTTP range, and an empty range without a request', async () => {
    s3.on(GetObjectCommand).resolves({
      Body: (async function* () {
        yield Buffer.from('abc');
      })() as never,
    });
    const store = new S3ObjectStore(new S3Client({}));
    expect(Buffer.from(await store.readBytes('b', 'k', { start: 10, end: 13 })).toString()).toBe('abc');
    expect(s3).toHaveReceivedCommandWith(GetObjectCommand, { Range: 'bytes=10-12' });
    expect(await store.readBytes('b', 'k', { start: 5, end: 5 })).toHaveLength(0);
    expect(s3).toHaveReceivedCommandTimes(GetObjectCommand, 1);
  });
});

describe('S3ModelSource', () => {
  it('tells a missing file from an unreachable store, without AWS error text in the message', async () => {
    s3.on(GetObjectCommand).rejectsOnce(
      new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} }),
    );
    const source = new S3ModelSource(new S3Client({}), 'b', 'models/');
    await expect(source.read('fraud', '1.0.0', 'model.onnx')).rejects.toMatchObject({
      code: 'MODEL_FILE_MISSING',
      message: 'model.onnx of fraud@1.0.0 is missing',
    });
    s3.on(GetObjectCommand).rejects(
      new S3ServiceException({
        name: 'SlowDown',
        $fault: 'server',
        message: 'Please reduce your request rate. RequestId: 4442587FB7D0A2F9',
        $metadata: { httpStatusCode: 503 },
      }),
    );
    const error = (await source
      .read('fraud', '1.0.0', 'model.onnx')
      .catch((e: unknown) => e)) as ModelLoadError;
    expect(error).toBeInstanceOf(ModelLoadError);
    expect(error.code).toBe('MODEL_STORE_UNAVAILABLE');
    expect(error.message).toBe('the model store is unavailable (SlowDown)');
  });
});

describe('StepFunctionsRunStarter and triggerRuns', () => {
  it('a redelivered event after a throttled start starts the missing run only', async () => {
    const uploads = [
      { bucket: 'b', key: 'incoming/fraud/a.csv', versionId: 'v1' },
      { bucket: 'b', key: 'incoming/fraud/b.csv', versionId: 'v1' },
    ];
    const starter = new StepFunctionsRunStarter(
      new SFNClient({}),
      'arn:aws:states:us-east-1:1:stateMachine:batch',
    );
    sfn
      .on(StartExecutionCommand)
      .resolvesOnce({ executionArn: 'a', startDate: new Date() })
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }))
      .rejectsOnce(new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} }))
      .resolvesOnce({ executionArn: 'b', startDate: new Date() });
    // The trigger fails, so EventBridge (or Lambda's async retry) delivers the event again.
    await expect(triggerRuns(uploads, starter)).rejects.toMatchObject({ name: 'ThrottlingException' });
    const outcomes = await triggerRuns(uploads, starter);
    expect(outcomes.map((o) => o.result)).toEqual(['duplicate', 'started']);
    const names = sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.name);
    // The same execution names both times: a run is started once per object version, whatever happens.
    expect(names).toEqual([names[0], names[1], names[0], names[1]]);
    expect(names[0]).not.toBe(names[1]);
  });
});

describe('EventBridgePublisher', () => {
  it('throws when the event was not accepted, so that Finalize is retried', async () => {
    events.on(PutEventsCommand).resolves({
      FailedEntryCount: 1,
      Entries: [{ ErrorCode: 'InternalFailure', ErrorMessage: 'try again' }],
    });
    await expect(
      new EventBridgePublisher(new EventBridgeClient({}), 'default').publish('t', {}),
    ).rejects.toThrow(/PutEvents failed: InternalFailure/);
  });
});
