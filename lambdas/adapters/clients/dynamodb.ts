/** The process's DynamoDB clients: built on first use, once per process, from the environment. */
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';

/**
 * The real-time lane makes one attempt: the SDK's retry backoff (500 ms base for throttling) is longer
 * than the cache read's budget, so a retry would only spend the budget; the model answers at once and
 * the response says why.
 */
export const REALTIME_DYNAMODB_CONFIG = { maxAttempts: 1 } as const satisfies DynamoDBClientConfig;

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

let realtime: DynamoDBClient | undefined;
let batch: DynamoDBClient | undefined;

/** The API function's client (one attempt per call). */
export function dynamoClient(): DynamoDBClient {
  realtime ??= new DynamoDBClient({ ...REALTIME_DYNAMODB_CONFIG });
  return realtime;
}

/** The batch writers' client (retries with backoff, request timeouts). */
export function batchDynamoClient(): DynamoDBClient {
  batch ??= new DynamoDBClient({ ...BATCH_DYNAMODB_CONFIG });
  return batch;
}
