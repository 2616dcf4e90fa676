/**
 * The only place AWS SDK clients are built: once per process, from the environment (endpoints come
 * from the SDK's own AWS_ENDPOINT_URL_<SERVICE> variables, so the local stack needs no code path).
 */
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';

let dynamo: DynamoDBClient | undefined;
let s3: S3Client | undefined;
let sfn: SFNClient | undefined;
let events: EventBridgeClient | undefined;

/**
 * The real-time lane makes one attempt (its cache read has a time budget shorter than any backoff);
 * batch writers retry throttling longer, with the SDK's backoff, before failing the chunk for Step
 * Functions to retry. One client per process: the first caller's setting holds.
 */
export function dynamoClient(maxAttempts = 3): DynamoDBClient {
  dynamo ??= new DynamoDBClient({ maxAttempts });
  return dynamo;
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

export function sfnClient(): SFNClient {
  sfn ??= new SFNClient({});
  return sfn;
}

export function eventBridgeClient(): EventBridgeClient {
  events ??= new EventBridgeClient({});
  return events;
}

export function s3Client(): S3Client {
  // s3rver (local) serves path-style URLs only.
  s3 ??= new S3Client({ forcePathStyle: process.env['TANDEM_S3_FORCE_PATH_STYLE'] === 'true' });
  return s3;
}
