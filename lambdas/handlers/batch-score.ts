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
import { readScoreConfig } from './batch-env.ts';

const logger = new Logger({ serviceName: 'tandem-batch-score' });
const { modelsUri, tableName } = readScoreConfig(process.env);
const objects = new S3ObjectStore(s3Client());
// Plans and models stay loaded across invocations of a warm function.
const scorer = new ChunkScorer({
  objects,
  models: withCachePolicy(modelSourceFor(modelsUri), cachePolicyFromEnv(process.env)),
  ...(tableName ? { predictions: new DynamoDbPredictionStore(batchDynamoClient(), tableName) } : {}),
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
    // Powertools drops a `message` attribute (a reserved key): the failure's message is logged as `reason`.
    const { message: reason, ...fields } = failure ?? { message: undefined };
    logger.error('chunk failed', { ...fields, reason, error: error as Error });
    throw error;
  }
  logger.info('chunk scored', { ...report });
  return { index: report.index, read: report.read, scored: report.scored, rejected: report.rejected };
}
