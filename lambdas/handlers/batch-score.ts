/** Step Functions task (Distributed Map child): score one chunk. */
import { Logger } from '@aws-lambda-powertools/logger';
import { batchDynamoClient, s3Client } from '../adapters/aws-clients.ts';
import { cachePolicyFromEnv, withCachePolicy } from '../adapters/cache-policy-override.ts';
import { DynamoDbPredictionStore } from '../adapters/dynamodb-prediction-store.ts';
import { modelSourceFor } from '../adapters/model-source.ts';
import { S3ObjectStore } from '../adapters/s3-object-store.ts';
import { recordChunkFailure } from '../core/batch/chunk-failures.ts';
import { ChunkScorer } from '../core/batch/chunk-scorer.ts';
import type { ChunkItem } from '../core/batch/contracts.ts';
import { requiredEnv } from './batch-env.ts';

const logger = new Logger({ serviceName: 'tandem-batch-score' });
const tableName = process.env['TABLE_NAME'];
const objects = new S3ObjectStore(s3Client());
// Plans and models stay loaded across invocations of a warm function.
const scorer = new ChunkScorer({
  objects,
  models: withCachePolicy(modelSourceFor(requiredEnv('MODELS_URI')), cachePolicyFromEnv(process.env)),
  ...(tableName ? { predictions: new DynamoDbPredictionStore(batchDynamoClient(), tableName) } : {}),
  lambdaMemoryMb: Number(process.env['AWS_LAMBDA_FUNCTION_MEMORY_SIZE']) || undefined,
});

export async function handler(
  item: ChunkItem,
): Promise<{ index: number; read: number; scored: number; rejected: number }> {
  logger.appendKeys({ runId: item.runId, chunk: item.index });
  let report;
  try {
    report = await scorer.score(item);
  } catch (error) {
    // Recorded for the run's manifest: a failed Distributed Map does not pass its children's errors on.
    const failure = await recordChunkFailure(objects, item, error);
    logger.error('chunk failed', { ...failure, error: error as Error });
    throw error;
  }
  logger.info('chunk scored', { ...report });
  return { index: report.index, read: report.read, scored: report.scored, rejected: report.rejected };
}
