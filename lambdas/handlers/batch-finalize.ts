/** Step Functions task: write the run manifest and publish the completion event. */
import { Logger } from '@aws-lambda-powertools/logger';
import { eventBridgeClient, s3Client } from '../adapters/aws-clients.ts';
import { EventBridgePublisher } from '../adapters/eventbridge-publisher.ts';
import { S3ObjectStore } from '../adapters/s3-object-store.ts';
import { finalizeRun, type FinalizeInput, type FinalizeResult } from '../core/batch/finalizer.ts';

const logger = new Logger({ serviceName: 'tandem-batch-finalize' });
const deps = {
  objects: new S3ObjectStore(s3Client()),
  events: new EventBridgePublisher(eventBridgeClient(), process.env['EVENT_BUS_NAME'] ?? 'default'),
};

export async function handler(input: FinalizeInput): Promise<FinalizeResult> {
  logger.appendKeys({ runId: input.runId });
  const result = await finalizeRun(input, deps);
  logger.info('run finalized', { ...result });
  return result;
}
