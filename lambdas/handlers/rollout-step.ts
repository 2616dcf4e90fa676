/** Step Functions task of the rollout state machine: one step of lambdas/core/lifecycle/rollout.ts. */
import { Logger } from '@aws-lambda-powertools/logger';
import { cloudWatchClient, s3Client } from '../adapters/aws-clients.ts';
import { CloudWatchVersionMetrics } from '../adapters/cloudwatch-version-metrics.ts';
import { parseModelsUri } from '../adapters/model-source.ts';
import { S3ModelStore } from '../adapters/s3-model-store.ts';
import {
  RolloutSteps,
  type RolloutAction,
  type RolloutRequest,
  type RolloutState,
} from '../core/lifecycle/rollout.ts';
import { rolloutThresholdsFromEnv } from '../core/lifecycle/rollout-checks.ts';
import { requireEnv, SETTINGS } from '../core/settings.ts';

const logger = new Logger({ serviceName: 'tandem-rollout' });
const models = parseModelsUri(requireEnv(SETTINGS.modelsUri, process.env));
if (models.kind !== 's3')
  throw new Error(`${SETTINGS.modelsUri.env} must be an s3:// URL for the rollout function`);
const steps = new RolloutSteps({
  store: new S3ModelStore(s3Client(), models.bucket, models.prefix),
  metrics: new CloudWatchVersionMetrics(cloudWatchClient()),
  thresholds: rolloutThresholdsFromEnv(process.env),
});

export async function handler(event: {
  action: RolloutAction;
  state: RolloutRequest | RolloutState;
}): Promise<RolloutState> {
  logger.appendKeys({ rollout: event.state.rolloutId, model: event.state.model });
  const state = await steps.run(event.action, event.state);
  logger.info(`rollout ${event.action}: ${state.decision}`, {
    candidate: state.candidate,
    step: state.step,
    decision: state.decision,
    ...(state.checks ? { checks: state.checks } : {}),
    ...(state.outcome ? { outcome: state.outcome.message } : {}),
  });
  return state;
}
