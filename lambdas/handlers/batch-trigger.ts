/** S3 upload (EventBridge "Object Created" on incoming/) -> one batch run per object version. */
import { Logger } from '@aws-lambda-powertools/logger';
import { sfnClient } from '../adapters/aws-clients.ts';
import { StepFunctionsRunStarter } from '../adapters/step-functions-starter.ts';
import { triggerRuns, uploadsFromEvent, type TriggerOutcome } from '../core/batch/trigger.ts';
import { readTriggerConfig } from './batch-env.ts';

const logger = new Logger({ serviceName: 'tandem-batch-trigger' });
const config = readTriggerConfig(process.env);
const starter = new StepFunctionsRunStarter(sfnClient(), config.stateMachineArn);
const options = config.batchOptions;

export async function handler(event: unknown): Promise<TriggerOutcome[]> {
  const outcomes = await triggerRuns(uploadsFromEvent(event), starter, options);
  for (const outcome of outcomes) logger.info('upload', { ...outcome });
  return outcomes;
}
