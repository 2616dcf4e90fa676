/**
 * The API function's clients, whose SDK packages are imported when first asked for. A bundle hoists the
 * static imports of external packages (the Lambda runtime provides @aws-sdk/client-*) to its start, so
 * a function reaching clients/dynamodb.ts or clients/s3.ts loads both SDKs at every cold start, needed
 * or not; these go through import() instead. Same clients as the synchronous factories (shared.ts).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { REALTIME_MAX_ATTEMPTS, s3Options, shared } from './shared.ts';

export async function loadDynamoClient(): Promise<DynamoDBClient> {
  if (!shared.dynamo) {
    const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
    shared.dynamo ??= new DynamoDBClient({ maxAttempts: REALTIME_MAX_ATTEMPTS });
  }
  return shared.dynamo;
}

export async function loadS3Client(): Promise<S3Client> {
  if (!shared.s3) {
    const { S3Client } = await import('@aws-sdk/client-s3');
    shared.s3 ??= new S3Client(s3Options());
  }
  return shared.s3;
}
