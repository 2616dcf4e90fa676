/** Step Functions task: plan a batch run (chunks, pinned model version). */
import { Logger } from '@aws-lambda-powertools/logger';
import { s3Client } from '../adapters/aws-clients.ts';
import { modelSourceFor } from '../adapters/model-source.ts';
import { S3ObjectStore } from '../adapters/s3-object-store.ts';
import type { RunInput } from '../core/batch/contracts.ts';
import { planRun, type PlanResult } from '../core/batch/planner.ts';
import { readPlanConfig } from './batch-env.ts';

const logger = new Logger({ serviceName: 'tandem-batch-plan' });
const deps = {
  objects: new S3ObjectStore(s3Client()),
  models: modelSourceFor(readPlanConfig(process.env).modelsUri),
};

export async function handler(input: RunInput): Promise<PlanResult> {
  logger.appendKeys({ runId: input.runId });
  const result = await planRun(input, deps);
  logger.info('planned', { ...result });
  return result;
}
