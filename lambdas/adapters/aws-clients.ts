/**
 * The only place AWS SDK clients are built: once per process, from the environment (endpoints come
 * from the SDK's own AWS_ENDPOINT_URL_<SERVICE> variables, so the local stack needs no code path).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
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
