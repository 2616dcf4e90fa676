/**
 * A chunk worker in its own process, for the worker-death test: it scores one chunk against the
 * embedded S3 and DynamoDB (endpoints from the environment) and prints `WROTE <n>` after its first
 * table write, then stalls; the test kills it with SIGKILL there, mid-chunk, as Lambda would a worker
 * that ran out of memory or time: no cleanup, no report, the part upload never finished.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDbPredictionStore } from '../../lambdas/adapters/dynamodb-prediction-store.ts';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ObjectStore } from '../../lambdas/adapters/s3-object-store.ts';
import { ChunkScorer } from '../../lambdas/core/batch/chunk-scorer.ts';
import type { PredictionStore } from '../../lambdas/core/ports.ts';

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const s3 = new S3Client({
  endpoint: env('DYING_S3_ENDPOINT'),
  region: 'us-east-1',
  credentials,
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
const dynamo = new DynamoDBClient({
  endpoint: env('DYING_DYNAMO_ENDPOINT'),
  region: 'us-east-1',
  credentials,
});
const bucket = env('DYING_BUCKET');
const table = new DynamoDbPredictionStore(dynamo, env('DYING_TABLE'));
let writes = 0;
const stalling: PredictionStore = {
  getMany: (keys) => table.getMany(keys),
  async putMany(items) {
    if (writes > 0) return new Promise(() => undefined);
    const result = await table.putMany(items);
    writes += result.written;
    process.stdout.write(`WROTE ${writes}\n`);
    return result;
  },
};
const scorer = new ChunkScorer({
  objects: new S3ObjectStore(s3),
  models: new S3ModelSource(s3, bucket, 'models/'),
  predictions: stalling,
});
await scorer.score({
  runId: env('DYING_RUN_ID'),
  bucket,
  planKey: env('DYING_PLAN_KEY'),
  index: Number(env('DYING_INDEX')),
});
process.stdout.write('FINISHED\n');
