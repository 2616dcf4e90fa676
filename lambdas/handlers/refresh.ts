/**
 * A model version changed (package uploaded, pointer written) or its cache went stale (alarm) -> one
 * folder run per refresh source with that version (lambdas/core/refresh/refresh.ts).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { s3Client, sfnClient } from '../adapters/aws-clients.ts';
import { refreshEventsFromEvent } from '../adapters/refresh-events.ts';
import { S3RefreshStore } from '../adapters/s3-refresh-store.ts';
import { StepFunctionsRunStarter } from '../adapters/step-functions-starter.ts';
import { refresh, type RefreshDeps, type RefreshOutcome } from '../core/refresh/refresh.ts';
import { readRefreshConfig } from './batch-env.ts';
import { scheduledPrefixesOf } from './refresh-schedules.ts';

const logger = new Logger({ serviceName: 'tandem-refresh' });
const config = readRefreshConfig(process.env);
const store = new S3RefreshStore(s3Client(), config.dataBucket);
const deps: RefreshDeps = {
  bucket: config.dataBucket,
  models: store,
  markers: store,
  starter: new StepFunctionsRunStarter(sfnClient(), config.stateMachineArn),
  defaultPolicy: config.defaultPolicy,
  scheduledPrefixes: scheduledPrefixesOf(process.env),
  batchOptions: config.batchOptions,
};

export async function handler(event: unknown): Promise<RefreshOutcome[]> {
  const outcomes: RefreshOutcome[] = [];
  for (const request of refreshEventsFromEvent(event)) {
    for (const outcome of await refresh(request, deps)) {
      logger.info(outcome.result === 'started' ? 'refresh started' : `refresh ${outcome.result}`, {
        ...outcome,
      });
      outcomes.push(outcome);
    }
  }
  return outcomes;
}
