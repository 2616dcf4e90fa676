import { DynamoDBClient } from '@aws-sdk/client-dynamodb';

let dynamo: DynamoDBClient | undefined;

/**
 * The real-time lane keeps retries few (its cache read has a time budget); batch writers retry
 * throttling longer, with the SDK's backoff, before failing the chunk for Step Functions to retry.
 */
export function dynamoClient(maxAttempts = 3): DynamoDBClient {
  dynamo ??= new DynamoDBClient({ maxAttempts });
  return dynamo;
}
