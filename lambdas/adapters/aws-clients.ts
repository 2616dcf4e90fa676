/**
 * The only place AWS SDK clients are built: once per process, from the environment (endpoints come
 * from the SDK's own AWS_ENDPOINT_URL_<SERVICE> variables, so the local stack needs no code path).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';

let dynamo: DynamoDBClient | undefined;
let s3: S3Client | undefined;

export function dynamoClient(): DynamoDBClient {
  dynamo ??= new DynamoDBClient({ maxAttempts: 3 });
  return dynamo;
}

export function s3Client(): S3Client {
  // s3rver (local) serves path-style URLs only.
  s3 ??= new S3Client({ forcePathStyle: process.env['TANDEM_S3_FORCE_PATH_STYLE'] === 'true' });
  return s3;
}
