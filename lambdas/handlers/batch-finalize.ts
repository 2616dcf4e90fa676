/** Step Functions task: write the run manifest and publish the completion event. */
import { Logger } from '@aws-lambda-powertools/logger';
import { eventBridgeClient, s3Client } from '../adapters/aws-clients.ts';
import { EventBridgePublisher } from '../adapters/eventbridge-publisher.ts';
import { S3ObjectStore } from '../adapters/s3-object-store.ts';
import { finalizeInputFromState, type FinalizeState } from '../adapters/step-functions-failure.ts';
import { finalizeRun, type FinalizeResult } from '../core/batch/finalizer.ts';
import { readFinalizeConfig } from './batch-env.ts';
import { readDriftSettings } from './monitor/monitor-env.ts';

const logger = new Logger({ serviceName: 'tandem-batch-finalize' });
const deps = {
  objects: new S3ObjectStore(s3Client()),
  events: new EventBridgePublisher(eventBridgeClient(), readFinalizeConfig(process.env).eventBusName),
  drift: readDriftSettings(process.env),
};

export async function handler(state: FinalizeState): Promise<FinalizeResult> {
  logger.appendKeys({ runId: state.runId });
  const result = await finalizeRun(finalizeInputFromState(state), deps);
  // Powertools drops a `message` attribute (a reserved key): the run's message is logged as `summary`.
  const { message: summary, ...fields } = result;
  logger.info('run finalized', { ...fields, summary });
  return result;
}
