/**
 * S3 upload (EventBridge "Object Created" on incoming/) -> one batch run per object version; objects
 * that are not a dataset under incoming/<model>/ start nothing.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { sfnClient } from '../adapters/aws-clients.ts';
import { StepFunctionsRunStarter } from '../adapters/step-functions-starter.ts';
import { uploadsFromEvent } from '../adapters/upload-events.ts';
import { triggerRuns, type TriggerOutcome } from '../core/batch/trigger.ts';
import { readTriggerConfig } from './batch-env.ts';

const logger = new Logger({ serviceName: 'tandem-batch-trigger' });
const config = readTriggerConfig(process.env);
const starter = new StepFunctionsRunStarter(sfnClient(), config.stateMachineArn);
const options = config.batchOptions;

export async function handler(event: unknown): Promise<TriggerOutcome[]> {
  const outcomes = await triggerRuns(uploadsFromEvent(event), starter, options);
  // An ignored upload is logged once, at info: it is not a failure anyone is paged for.
  for (const outcome of outcomes)
    logger.info(outcome.result === 'ignored' ? 'upload ignored: not a dataset' : 'upload', { ...outcome });
  return outcomes;
}
