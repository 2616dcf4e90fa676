/** Step Functions task (Distributed Map child): score one chunk. */
import { Logger } from '@aws-lambda-powertools/logger';
import { batchDynamoClient, s3Client } from '../adapters/aws-clients.ts';
import { cachePolicyFromEnv, withCachePolicy } from '../adapters/cache-policy-override.ts';
import { DynamoDbPredictionStore } from '../adapters/dynamodb-prediction-store.ts';
import { modelSourceFor } from '../adapters/model-source.ts';
import { S3ObjectStore } from '../adapters/s3-object-store.ts';
import { recordChunkFailure } from '../core/batch/chunk-failures.ts';
import { ChunkScorer } from '../core/batch/chunk-scorer.ts';
import { CHUNK_FINISH_RESERVE_MS, type ChunkItem } from '../core/batch/contracts.ts';
import { readScoreConfig } from './batch-env.ts';
import { captureFromEnv } from './capture-env.ts';

const logger = new Logger({ serviceName: 'tandem-batch-score' });
const { modelsUri, tableName } = readScoreConfig(process.env);
const objects = new S3ObjectStore(s3Client());
/** Sampled scored rows (capture/<model>/batch/), written before each invocation returns. */
const capture = captureFromEnv(
  'batch',
  process.env,
  objects,
  (lost, error) => logger.warn('captured predictions not written', { lost, error: (error as Error).message }),
  // Flushed per chunk: the size bound only keeps a huge chunk's memory in check.
  { maxRecords: 50_000 },
); // Plans and models stay loaded across invocations of a warm function.
const scorer = new ChunkScorer({
  objects,
  models: withCachePolicy(modelSourceFor(modelsUri), cachePolicyFromEnv(process.env)),
  ...(tableName ? { predictions: new DynamoDbPredictionStore(batchDynamoClient(), tableName) } : {}),
  lambdaMemoryMb: Number(process.env['AWS_LAMBDA_FUNCTION_MEMORY_SIZE']) || undefined,
  ...(capture ? { capture } : {}),
});

/**
 * The chunk's summary when it is done; when its table writes did not fit this invocation, the item to
 * continue with (it carries `resume`, and the state machine invokes the function again with it).
 */
export async function handler(
  item: ChunkItem,
  context?: { getRemainingTimeInMillis(): number },
): Promise<{ index: number; read: number; scored: number; rejected: number } | ChunkItem> {
  logger.appendKeys({ runId: item.runId, chunk: item.index });
  // Without a Lambda context (a direct call) the chunk runs to the end.
  const remaining = context?.getRemainingTimeInMillis();
  const deadline =
    remaining === undefined ? undefined : performance.now() + remaining - CHUNK_FINISH_RESERVE_MS;
  let outcome;
  try {
    outcome = await scorer.run(item, deadline === undefined ? {} : { deadline });
  } catch (error) {
    // Recorded for the run's manifest: a failed Distributed Map does not pass its children's errors on.
    const failure = await recordChunkFailure(objects, item, error);
    // Powertools drops a `message` attribute (a reserved key): the failure's message is logged as `reason`.
    const { message: reason, ...fields } = failure ?? { message: undefined };
    logger.error('chunk failed', { ...fields, reason, error: error as Error });
    throw error;
  }
  if (!outcome.done) {
    logger.info('chunk continues in another invocation', { resume: outcome.next.resume });
    return outcome.next;
  }
  const { report } = outcome;
  logger.info('chunk scored', { ...report });
  return { index: report.index, read: report.read, scored: report.scored, rejected: report.rejected };
}
