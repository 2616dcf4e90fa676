import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { REALTIME_MAX_ATTEMPTS, shared } from './shared.ts';

/**
 * The real-time lane makes one attempt (its cache read has a time budget shorter than any backoff);
 * batch writers use batchDynamoClient. One client per process: the first caller's setting holds.
 */
export function dynamoClient(maxAttempts = REALTIME_MAX_ATTEMPTS): DynamoDBClient {
  shared.dynamo ??= new DynamoDBClient({ maxAttempts });
  return shared.dynamo;
}

/**
 * The batch writers' DynamoDB settings: the standard retry strategy (exponential backoff with full
 * jitter, 500 ms base for throttling) up to 10 attempts, and a request that hangs is abandoned after
 * 10 s (connecting: 3 s) and retried; without these the SDK waits forever and one stuck write holds
 * the chunk until the function times out. After the last attempt the chunk fails and Step Functions
 * retries it (its writes are idempotent). Not the adaptive mode: after an early throttle its client-side
 * rate limiter fell to a few writes per second (a 60-row test run took 17 s instead of 1 s).
 */
export const BATCH_DYNAMODB_CONFIG = {
  maxAttempts: 10,
  requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000, throwOnRequestTimeout: true },
} as const satisfies DynamoDBClientConfig;

let batchDynamo: DynamoDBClient | undefined;

export function batchDynamoClient(): DynamoDBClient {
  batchDynamo ??= new DynamoDBClient({ ...BATCH_DYNAMODB_CONFIG });
  return batchDynamo;
}
