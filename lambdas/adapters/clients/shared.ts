import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';

/** The process's clients, whichever factory (synchronous or lazy) made them first. */
export const shared: { dynamo?: DynamoDBClient; s3?: S3Client } = {};

/** The real-time lane keeps retries few: its cache read has a time budget. */
export const REALTIME_MAX_ATTEMPTS = 3;

/** s3rver (local) serves path-style URLs only. */
export function s3Options(): { forcePathStyle: boolean } {
  return { forcePathStyle: process.env['TANDEM_S3_FORCE_PATH_STYLE'] === 'true' };
}
