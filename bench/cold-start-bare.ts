/**
 * Cold-start child, "bare": bundled and run like cold-start-handler.ts. Creates the clients the API
 * function creates (DynamoDB, S3), reads the ZipMap-free model file from S3 (BENCH_MODEL_BUCKET,
 * BENCH_MODEL_KEY), creates a session with the same SESSION_OPTIONS (BENCH_SESSION_OPTIONS, JSON), and
 * runs the same payload once. Prints the same marked JSON line.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import ort from 'onnxruntime-node';
import { bareEncoder, type BareLayout } from './bare-encoder.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const s3 = new S3Client({ forcePathStyle: process.env['TANDEM_S3_FORCE_PATH_STYLE'] === 'true' });
// The handler's cache client: built at init, as the function builds it, though this run reads no item.
new DynamoDBClient({ maxAttempts: 1 });
const object = await s3.send(
  new GetObjectCommand({ Bucket: env('BENCH_MODEL_BUCKET'), Key: env('BENCH_MODEL_KEY') }),
);
const session = await ort.InferenceSession.create(
  await object.Body!.transformToByteArray(),
  JSON.parse(env('BENCH_SESSION_OPTIONS')) as ort.InferenceSession.SessionOptions,
);
const initMs = performance.now();
const encode = bareEncoder(JSON.parse(env('BENCH_LAYOUT')) as BareLayout);
const { features } = JSON.parse(env('BENCH_PAYLOAD')) as { features: Record<string, unknown> };
const results = await session.run(encode(features), ['probabilities']);
const firstPredictionMs = performance.now();
const ok = results['probabilities'] !== undefined;
process.stdout.write(`BENCH_RESULT ${JSON.stringify({ ok, initMs, firstPredictionMs })}\n`, () =>
  process.exit(0),
);
