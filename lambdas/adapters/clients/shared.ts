import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';

/** The process's clients, whichever factory (synchronous or lazy) made them first. */
export const shared: { dynamo?: DynamoDBClient; s3?: S3Client } = {};

/**
 * One attempt: the SDK's retry backoff (500 ms base for throttling) is longer than the cache read's
 * budget, so a retry would only spend the budget; the model answers at once and the response says why.
 */
export const REALTIME_MAX_ATTEMPTS = 1;

/** s3rver (local) serves path-style URLs only. */
export function s3Options(): { forcePathStyle: boolean } {
  return { forcePathStyle: process.env['TANDEM_S3_FORCE_PATH_STYLE'] === 'true' };
}
