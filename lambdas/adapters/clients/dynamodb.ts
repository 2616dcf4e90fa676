import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { REALTIME_MAX_ATTEMPTS, shared } from './shared.ts';

/**
 * The real-time lane keeps retries few (its cache read has a time budget); batch writers retry
 * throttling longer, with the SDK's backoff, before failing the chunk for Step Functions to retry.
 */
export function dynamoClient(maxAttempts = REALTIME_MAX_ATTEMPTS): DynamoDBClient {
  shared.dynamo ??= new DynamoDBClient({ maxAttempts });
  return shared.dynamo;
}
