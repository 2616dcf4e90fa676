/**
 * Runs the rollout state machine locally with aws-local-stepfunctions: the definition the CDK construct
 * deploys (lib/rollout-definition.ts), each Lambda task bound to the same core step the rollout function
 * runs (lambdas/core/lifecycle/rollout.ts), and the Notify task (SNS deployed) bound to a callback that
 * prints the outcome (it is recorded in the model's history by the step that ended the rollout). The Wait
 * state waits for real: the bake time given (`--bake 5s` locally).
 */
import './polyfills.ts';
import { StateMachine } from 'aws-local-stepfunctions';
import { ROLLOUT_STATES, ROLLOUT_TASKS, rolloutDefinition } from '../lib/rollout-definition.ts';
import type {
  RolloutAction,
  RolloutRequest,
  RolloutState,
  RolloutSteps,
} from '../lambdas/core/lifecycle/rollout.ts';

const LOCAL_FUNCTION = 'arn:aws:lambda:us-east-1:000000000000:function:tandem-rollout';
const LOCAL_TOPIC = 'arn:aws:sns:us-east-1:000000000000:tandem-alarms';

export interface LocalRolloutOptions {
  /** After each task, with the state it returned (for progress). */
  readonly onStep?: (task: string, state: RolloutState) => void;
  /** The Notify task: what the deployed stack publishes to its alarm topic. */
  readonly notify?: (subject: string, message: string) => void;
  /** Retry pauses in ms (the definition's are seconds). */
  readonly retryIntervalMs?: number;
  /**
   * Stops the rollout (the command's Ctrl+C): the execution is aborted, the step in flight finishes, and
   * the rollout is rolled back (the canary ends) as a step that failed for good would be.
   */
  readonly signal?: AbortSignal;
}

/** Runs a rollout to its end; resolves with the last state (its `outcome` says how it ended). */
export async function runLocalRollout(
  steps: RolloutSteps,
  request: RolloutRequest,
  options: LocalRolloutOptions = {},
): Promise<RolloutState> {
  const machine = new StateMachine(
    rolloutDefinition({ rolloutFunctionArn: LOCAL_FUNCTION, topicArn: LOCAL_TOPIC }) as never,
  );
  let latest: RolloutState | undefined;
  let inFlight: Promise<unknown> = Promise.resolve();
  const handlers: Record<
    string,
    (input: { action: RolloutAction; state: RolloutRequest | RolloutState }) => Promise<RolloutState>
  > = {};
  for (const [name, action] of Object.entries(ROLLOUT_TASKS)) {
    handlers[name] = async (input) => {
      if (input.action !== action) throw new Error(`task ${name} was given action ${input.action}`);
      const step = steps.run(action, input.state);
      inFlight = step.catch(() => undefined);
      latest = await step;
      options.onStep?.(name, latest);
      return latest;
    };
  }
  const retries = Object.fromEntries(
    Object.keys(ROLLOUT_TASKS).map((name) => [name, options.retryIntervalMs ?? 200]),
  );
  const execution = machine.run(request as never, {
    overrides: {
      taskResourceLocalHandlers: {
        ...handlers,
        [ROLLOUT_STATES.notify]: async (input: { Subject: string; Message: string }) => {
          options.notify?.(input.Subject, input.Message);
          return {};
        },
      } as never,
      retryIntervalOverrides: {
        ...retries,
        [ROLLOUT_STATES.notify]: options.retryIntervalMs ?? 200,
      } as never,
    },
  });
  const interrupted = new Promise<'interrupted'>((resolve) => {
    if (options.signal?.aborted) resolve('interrupted');
    options.signal?.addEventListener('abort', () => resolve('interrupted'), { once: true });
  });
  try {
    if ((await Promise.race([execution.result, interrupted])) === 'interrupted') {
      execution.abort();
      await inFlight;
      if (latest === undefined || latest.outcome !== undefined)
        return latest ?? Promise.reject(new Error('the rollout was stopped before it started'));
      const stopped = await steps.run('rollback', {
        ...latest,
        failure: { Error: 'Interrupted', Cause: 'the tandem command running it was stopped (Ctrl+C)' },
      });
      options.onStep?.(ROLLOUT_STATES.rollback, stopped);
      return stopped;
    }
  } catch (error) {
    // Rolled back or stopped: the Fail state ends the execution; the last state says why.
    if (latest?.outcome === undefined) {
      // A refusal at the start: the task's own error, not the library's wrapper.
      const cause = (error as { cause?: unknown }).cause;
      throw cause instanceof Error ? cause : error;
    }
  }
  if (!latest) throw new Error('the rollout ran no step');
  return latest;
}
