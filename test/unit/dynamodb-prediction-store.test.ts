import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  DynamoDBClient,
  DynamoDBServiceException,
  GetItemCommand,
  InternalServerError,
  ProvisionedThroughputExceededException,
  PutItemCommand,
  RequestLimitExceeded,
  ResourceNotFoundException,
  ThrottlingException,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { afterEach, describe, expect, it } from '@jest/globals';
import { storedPrediction } from '../../lambdas/core/cache-policy.ts';
import { PredictionStoreError, type PredictionStoreErrorCode } from '../../lambdas/core/errors.ts';
import {
  DynamoDbPredictionStore,
  fromItem,
  toItem,
} from '../../lambdas/adapters/dynamodb-prediction-store.ts';

const dynamo = mockClient(DynamoDBClient);
afterEach(() => {
  dynamo.reset();
}, 60_000);

const item = storedPrediction(
  {
    model: 'fraud',
    entityId: 'txn#1',
    prediction: { label: 1, probabilities: { '0': 0.25, '1': 0.75 } },
    modelVersion: '1.0.0',
    computedAt: 1_750_000_000_123,
    source: 'batch',
    runId: 'r1',
  },
  3600,
);

describe('DynamoDbPredictionStore', () => {
  it('round-trips the item contract, ids with # included', () => {
    const marshalled = toItem(item);
    expect(marshalled['pk']).toEqual({ S: 'fraud#1.0.0#txn#1' });
    expect(marshalled['expiresAt']).toEqual({ N: String(Math.floor(1_750_000_000_123 / 1000) + 3600) });
    expect(fromItem(marshalled)).toEqual(item);
  });

  it('ignores items that do not follow the contract', () => {
    expect(fromItem({ pk: { S: 'fraud#1' }, prediction: { S: 'x' } })).toBeUndefined();
    // A key of the contract before versions were in it (<model>#<id>): never read as an item.
    expect(fromItem({ ...toItem(item), pk: { S: 'fraud#txn1' } })).toBeUndefined();
  });

  it('reads 250 keys in three parallel BatchGetItem calls of at most 100', async () => {
    dynamo.on(BatchGetItemCommand).resolves({ Responses: { table: [] } });
    const keys = Array.from({ length: 250 }, (_, i) => `fraud#${i}`);
    await new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').getMany(keys);
    const sizes = dynamo
      .commandCalls(BatchGetItemCommand)
      .map((c) => c.args[0].input.RequestItems!['table']!.Keys!.length);
    expect(sizes).toEqual([100, 100, 50]);
  });

  it('retries unprocessed keys until all are read', async () => {
    dynamo
      .on(BatchGetItemCommand)
      .resolvesOnce({
        Responses: { table: [] },
        UnprocessedKeys: { table: { Keys: [{ pk: { S: 'fraud#1.0.0#txn#1' } }] } },
      })
      .resolves({ Responses: { table: [toItem(item)] } });
    const found = await new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').getMany([
      'fraud#1.0.0#txn#1',
      'fraud#1.0.0#other',
    ]);
    expect(dynamo).toHaveReceivedCommandTimes(BatchGetItemCommand, 2);
    expect(found.get('fraud#1.0.0#txn#1')).toEqual(item);
  });

  it("passes throttling errors on to the caller (which skips the cache) as the port's STORE_THROTTLED", async () => {
    const throttled = new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} });
    dynamo.on(BatchGetItemCommand).rejects(throttled);
    const many = new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').getMany(['a#b', 'a#c']);
    await expect(many).rejects.toBeInstanceOf(PredictionStoreError);
    await expect(many).rejects.toMatchObject({
      code: 'STORE_THROTTLED',
      message: 'ProvisionedThroughputExceededException: slow down',
      cause: throttled,
    });
    dynamo.on(GetItemCommand).rejects(throttled);
    await expect(
      new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').getMany(['a#b']),
    ).rejects.toMatchObject({ code: 'STORE_THROTTLED', cause: throttled });
  });

  it('reads a single key with one GetItem', async () => {
    dynamo.on(GetItemCommand).resolves({ Item: toItem(item) });
    const found = await new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').getMany([
      'fraud#1.0.0#txn#1',
    ]);
    expect(found.get('fraud#1.0.0#txn#1')).toEqual(item);
    expect(dynamo).not.toHaveReceivedCommand(BatchGetItemCommand);
    expect(dynamo).toHaveReceivedCommandTimes(GetItemCommand, 1);
    expect(dynamo).toHaveReceivedCommandWith(GetItemCommand, {
      TableName: 'table',
      Key: { pk: { S: 'fraud#1.0.0#txn#1' } },
    });
  });

  it("passes write failures on as the port's kinds once the writes in flight have settled", async () => {
    const missing = new ResourceNotFoundException({ message: 'Requested resource not found', $metadata: {} });
    dynamo.on(PutItemCommand).resolvesOnce({}).rejects(missing);
    await expect(
      new DynamoDbPredictionStore(new DynamoDBClient({}), 'table', 1).putMany([item, item, item]),
    ).rejects.toMatchObject({ name: 'PredictionStoreError', code: 'STORE_TABLE_MISSING', cause: missing });
    expect(dynamo.commandCalls(PutItemCommand)).toHaveLength(2);
  });

  it('writes conditionally and counts items skipped because a fresher one is stored', async () => {
    dynamo
      .on(PutItemCommand)
      .resolvesOnce({})
      .rejects(new ConditionalCheckFailedException({ message: 'newer', $metadata: {} }));
    const result = await new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').putMany([item, item]);
    expect(result).toEqual({ written: 1, skipped: 1, unprocessed: [] });
    const input = dynamo.commandCalls(PutItemCommand)[0]!.args[0].input;
    expect(input.ConditionExpression).toBe('attribute_not_exists(pk) OR computedAt < :computedAt');
    expect(input.ExpressionAttributeValues).toEqual({ ':computedAt': { N: String(item.computedAt) } });
  });
});

/** An error as the SDK throws it for a service exception it has no class for (AccessDeniedException). */
function serviceError(name: string, status: number): DynamoDBServiceException {
  return new DynamoDBServiceException({
    name,
    $fault: status >= 500 ? 'server' : 'client',
    message: `${name} from the service`,
    $metadata: { httpStatusCode: status },
  });
}

describe('DynamoDbPredictionStore error kinds', () => {
  const cases: [string, () => Error, PredictionStoreErrorCode][] = [
    [
      'ProvisionedThroughputExceededException',
      () => new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }),
      'STORE_THROTTLED',
    ],
    [
      'ThrottlingException',
      () => new ThrottlingException({ message: 'Rate exceeded', $metadata: {} }),
      'STORE_THROTTLED',
    ],
    [
      'RequestLimitExceeded',
      () => new RequestLimitExceeded({ message: 'account limit', $metadata: {} }),
      'STORE_THROTTLED',
    ],
    [
      'ResourceNotFoundException',
      () => new ResourceNotFoundException({ message: 'Requested resource not found', $metadata: {} }),
      'STORE_TABLE_MISSING',
    ],
    ['AccessDeniedException', () => serviceError('AccessDeniedException', 400), 'STORE_FORBIDDEN'],
    [
      'UnrecognizedClientException',
      () => serviceError('UnrecognizedClientException', 400),
      'STORE_FORBIDDEN',
    ],
    [
      'InternalServerError',
      () => new InternalServerError({ message: 'Internal server error', $metadata: { httpStatusCode: 500 } }),
      'STORE_SERVER_ERROR',
    ],
    ['an unmodelled 503', () => serviceError('ServiceUnavailable', 503), 'STORE_SERVER_ERROR'],
    [
      'ECONNREFUSED',
      () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      'STORE_UNREACHABLE',
    ],
    [
      'ECONNRESET',
      () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      'STORE_UNREACHABLE',
    ],
    [
      'ECONNRESET renamed TimeoutError by the SDK',
      () => Object.assign(new Error('socket hang up'), { name: 'TimeoutError', code: 'ECONNRESET' }),
      'STORE_UNREACHABLE',
    ],
    [
      "the SDK's request timeout",
      () => Object.assign(new Error('Connection timed out after 300 ms'), { name: 'TimeoutError' }),
      'STORE_TIMEOUT',
    ],
    [
      'an aborted call',
      () => Object.assign(new Error('Request aborted'), { name: 'AbortError' }),
      'STORE_TIMEOUT',
    ],
    ['a validation error', () => serviceError('ValidationException', 400), 'STORE_FAILED'],
    ["an error that is not the SDK's", () => new TypeError('x is not a function'), 'STORE_FAILED'],
  ];

  it.each(cases)('reports %s on a read as %s', async (_name, error, code) => {
    const thrown = error();
    dynamo.on(GetItemCommand).rejects(thrown);
    const read = new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').getMany(['a#b']);
    await expect(read).rejects.toBeInstanceOf(PredictionStoreError);
    await expect(read).rejects.toMatchObject({ code, cause: thrown });
  });

  it.each(cases.filter(([, , code]) => code !== 'STORE_THROTTLED'))(
    'reports %s on a write as %s',
    async (_name, error, code) => {
      const thrown = error();
      dynamo.on(PutItemCommand).rejects(thrown);
      await expect(
        new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').putMany([item]),
      ).rejects.toMatchObject({ code, cause: thrown });
    },
  );

  // A throttled write is not an error of the batch writer's: the item comes back to be sent again, slower.
  it.each(cases.filter(([, , code]) => code === 'STORE_THROTTLED'))(
    'hands back a write refused with %s as unprocessed',
    async (_name, error) => {
      dynamo.on(PutItemCommand).rejects(error());
      await expect(
        new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').putMany([item]),
      ).resolves.toEqual({ written: 0, skipped: 0, unprocessed: [item] });
    },
  );

  it('names the SDK error and socket code in the message, for logs and run manifests', async () => {
    dynamo
      .on(GetItemCommand)
      .rejects(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    await expect(
      new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').getMany(['a#b']),
    ).rejects.toMatchObject({ message: 'Error ECONNREFUSED: connect ECONNREFUSED' });
  });
});
