/**
 * The local stack in one call, for `npm start`, the integration tests and the benchmarks: embedded
 * DynamoDB and S3, the model packages uploaded, the demo dataset scored into the table, and the real
 * API handler behind the API Gateway event adapter.
 */
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDbPredictionStore } from '../lambdas/adapters/dynamodb-prediction-store.ts';
import { S3ModelSource } from '../lambdas/adapters/s3-model-source.ts';
import { ModelRegistry } from '../lambdas/core/model-registry.ts';
import { createApiServer, listen } from './api-gateway-adapter.ts';
import { ensureBucket, ensureTable, startEmbeddedAws, type EmbeddedAws } from './embedded-aws.ts';
import { seedDemoDataset, type SeedSummary } from './seed-demo.ts';
import { uploadModelPackages } from './uploader.ts';

export const LOCAL_BUCKET = 'tandem-data';
export const LOCAL_TABLE = 'tandem-predictions';
export const DEMO_MODEL = 'fraud-detector';
export const REPO_ROOT = path.resolve(import.meta.dirname, '..');

export interface LocalStackOptions {
  /** API port; 0 picks a free one. */
  readonly apiPort: number;
  readonly dynamoPort?: number;
  readonly s3Port?: number;
  /** Where data is kept; undefined keeps it in memory / a temp folder. */
  readonly dataDir?: string;
  /** Folder of model packages to upload. Default: the repo's models/. */
  readonly modelsDir?: string;
  readonly seed?: boolean;
  /** Extra environment for the handler (CACHE_BUDGET_MS, WRITE_THROUGH, ...). */
  readonly handlerEnv?: Record<string, string>;
}

export interface LocalStack {
  readonly apiUrl: string;
  readonly aws: EmbeddedAws;
  readonly dynamo: DynamoDBClient;
  readonly s3: S3Client;
  readonly uploadedKeys: readonly string[];
  readonly seed: SeedSummary | undefined;
  stop(): Promise<void>;
}

export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const aws = await startEmbeddedAws({
    dataDir: options.dataDir,
    dynamoPort: options.dynamoPort ?? 0,
    s3Port: options.s3Port ?? 0,
    buckets: [LOCAL_BUCKET],
  });
  try {
    const dynamo = new DynamoDBClient(aws.clientConfig('dynamodb'));
    const s3 = new S3Client(aws.clientConfig('s3'));
    await ensureTable(dynamo, LOCAL_TABLE);
    await ensureBucket(s3, LOCAL_BUCKET);
    const uploadedKeys = await uploadModelPackages(
      s3,
      LOCAL_BUCKET,
      options.modelsDir ?? path.join(REPO_ROOT, 'models'),
    );

    // The handler reads its settings from the environment at import, exactly as in Lambda.
    delete process.env['AWS_PROFILE'];
    Object.assign(process.env, aws.env(), {
      MODELS_URI: `s3://${LOCAL_BUCKET}/models/`,
      DEFAULT_MODEL: DEMO_MODEL,
      TABLE_NAME: LOCAL_TABLE,
      POWERTOOLS_METRICS_DISABLED: process.env['POWERTOOLS_METRICS_DISABLED'] ?? 'true',
      ...options.handlerEnv,
    });
    const { handler } = await import('../lambdas/handlers/predict.ts');

    let seed: SeedSummary | undefined;
    if (options.seed ?? true) {
      const registry = new ModelRegistry(new S3ModelSource(s3, LOCAL_BUCKET, 'models/'), {
        defaultModel: DEMO_MODEL,
        refreshSeconds: 0,
        retryFailedSeconds: 0,
      });
      try {
        seed = await seedDemoDataset(
          path.join(REPO_ROOT, 'models', DEMO_MODEL, 'demo-transactions.csv'),
          await registry.get(),
          new DynamoDbPredictionStore(dynamo, LOCAL_TABLE),
          `demo-seed-${new Date().toISOString()}`,
        );
      } finally {
        await registry.close();
      }
    }

    const server = createApiServer(handler);
    const address = await listen(server, options.apiPort, '127.0.0.1');
    return {
      apiUrl: `http://127.0.0.1:${address.port}`,
      aws,
      dynamo,
      s3,
      uploadedKeys,
      seed,
      async stop() {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        dynamo.destroy();
        s3.destroy();
        await aws.stop();
      },
    };
  } catch (error) {
    await aws.stop();
    throw error;
  }
}
