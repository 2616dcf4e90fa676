import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  ProvisionedThroughputExceededException,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { storedPrediction } from '../../lambdas/core/cache-policy.ts';
import {
  DynamoDbPredictionStore,
  fromItem,
  toItem,
} from '../../lambdas/adapters/dynamodb-prediction-store.ts';

const dynamo = mockClient(DynamoDBClient);
afterEach(() => dynamo.reset());

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
    expect(dynamo.commandCalls(BatchGetItemCommand)).toHaveLength(2);
    expect(found.get('fraud#1.0.0#txn#1')).toEqual(item);
  });

  it('passes throttling errors on to the caller (which skips the cache)', async () => {
    dynamo
      .on(BatchGetItemCommand)
      .rejects(new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }));
    await expect(
      new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').getMany(['a#b', 'a#c']),
    ).rejects.toThrow(ProvisionedThroughputExceededException);
    dynamo
      .on(GetItemCommand)
      .rejects(new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }));
    await expect(
      new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').getMany(['a#b']),
    ).rejects.toThrow(ProvisionedThroughputExceededException);
  });

  it('reads a single key with one GetItem', async () => {
    dynamo.on(GetItemCommand).resolves({ Item: toItem(item) });
    const found = await new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').getMany([
      'fraud#1.0.0#txn#1',
    ]);
    expect(found.get('fraud#1.0.0#txn#1')).toEqual(item);
    expect(dynamo.commandCalls(BatchGetItemCommand)).toHaveLength(0);
    expect(dynamo.commandCalls(GetItemCommand)[0]!.args[0].input).toMatchObject({
      TableName: 'table',
      Key: { pk: { S: 'fraud#1.0.0#txn#1' } },
    });
  });

  it('writes conditionally and counts items skipped because a fresher one is stored', async () => {
    dynamo
      .on(PutItemCommand)
      .resolvesOnce({})
      .rejects(new ConditionalCheckFailedException({ message: 'newer', $metadata: {} }));
    const result = await new DynamoDbPredictionStore(new DynamoDBClient({}), 'table').putMany([item, item]);
    expect(result).toEqual({ written: 1, skipped: 1 });
    const input = dynamo.commandCalls(PutItemCommand)[0]!.args[0].input;
    expect(input.ConditionExpression).toBe('attribute_not_exists(pk) OR computedAt < :computedAt');
    expect(input.ExpressionAttributeValues).toEqual({ ':computedAt': { N: String(item.computedAt) } });
  });
});
