/**
 * The rollout state machine's Amazon States Language definition: one source of truth, built by the CDK
 * construct (lib/rollout.ts, with the function and topic ARNs as tokens) and run locally by
 * aws-local-stepfunctions (local/rollout-runner.ts). Pure data: no CDK import.
 *
 * Start -> Bake (Wait) -> Check -> Next? -> Advance -> Bake ... -> Check -> Promote -> Promoted.
 * Every task runs one step of lambdas/core/lifecycle/rollout.ts on the state and returns it with a
 * `decision`; the one Choice state routes on it. A failed check goes to Roll back; a task that fails
 * after its retries is caught and rolled back too. Rolled back or stopped (an operator changed the
 * pointer): Notify publishes the outcome to the alarm topic, then the execution fails with the outcome's
 * error (RolloutRolledBack, RolloutStopped) and message.
 */
import type { AslDefinition } from './batch-definition.ts';

export interface RolloutDefinitionProps {
  /** The rollout function (runs every step). */
  readonly rolloutFunctionArn: string;
  /** The alarm topic the outcome of a rollout that did not promote is published to. */
  readonly topicArn: string;
}

export const ROLLOUT_STATES = {
  start: 'Start',
  bake: 'Bake',
  check: 'Check',
  next: 'Next?',
  advance: 'Advance',
  promote: 'Promote',
  rollback: 'Roll back',
  notify: 'Notify',
  promoted: 'Promoted',
  failed: 'Rollout failed',
} as const;

/** The task states and the action each asks of the rollout function. */
export const ROLLOUT_TASKS = {
  [ROLLOUT_STATES.start]: 'start',
  [ROLLOUT_STATES.check]: 'check',
  [ROLLOUT_STATES.advance]: 'advance',
  [ROLLOUT_STATES.promote]: 'promote',
  [ROLLOUT_STATES.rollback]: 'rollback',
} as const;

const LAMBDA_TRANSIENT_ERRORS = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'Lambda.ClientExecutionTimeoutException',
];

/** A refusal at the start (another rollout, a canary, no live version) is final: no retry. */
export const ROLLOUT_NON_RETRYABLE_ERRORS = ['LifecycleRefusedError'];

const retry = [
  { ErrorEquals: ROLLOUT_NON_RETRYABLE_ERRORS, MaxAttempts: 0 },
  {
    ErrorEquals: LAMBDA_TRANSIENT_ERRORS,
    IntervalSeconds: 2,
    MaxAttempts: 6,
    BackoffRate: 2,
    MaxDelaySeconds: 60,
    JitterStrategy: 'FULL',
  },
  // Each step is idempotent (its change id is derived from the rollout and the step).
  { ErrorEquals: ['States.ALL'], IntervalSeconds: 2, MaxAttempts: 3, BackoffRate: 2, JitterStrategy: 'FULL' },
];

function task(
  props: RolloutDefinitionProps,
  name: keyof typeof ROLLOUT_TASKS,
  extra: Record<string, unknown> = {},
) {
  return {
    Type: 'Task',
    Resource: props.rolloutFunctionArn,
    Parameters: { action: ROLLOUT_TASKS[name], 'state.$': '$' },
    Retry: retry,
    Next: ROLLOUT_STATES.next,
    ...extra,
  };
}

/** A step that fails after its retries: the canary is ended rather than left at its percentage. */
const toRollback = [{ ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: ROLLOUT_STATES.rollback }];

export function rolloutDefinition(props: RolloutDefinitionProps): AslDefinition {
  const next = (decision: string, state: string) => ({
    Variable: '$.decision',
    StringEquals: decision,
    Next: state,
  });
  return {
    Comment: 'Tandem automatic rollout: step a canary through percentages, check it, promote or roll back',
    StartAt: ROLLOUT_STATES.start,
    States: {
      [ROLLOUT_STATES.start]: task(props, ROLLOUT_STATES.start),
      [ROLLOUT_STATES.bake]: { Type: 'Wait', SecondsPath: '$.bakeSeconds', Next: ROLLOUT_STATES.check },
      [ROLLOUT_STATES.check]: task(props, ROLLOUT_STATES.check, { Catch: toRollback }),
      [ROLLOUT_STATES.next]: {
        Type: 'Choice',
        Choices: [
          next('bake', ROLLOUT_STATES.bake),
          next('advance', ROLLOUT_STATES.advance),
          next('promote', ROLLOUT_STATES.promote),
          next('rollback', ROLLOUT_STATES.rollback),
          next('promoted', ROLLOUT_STATES.promoted),
        ],
        // rolled-back, stopped
        Default: ROLLOUT_STATES.notify,
      },
      [ROLLOUT_STATES.advance]: task(props, ROLLOUT_STATES.advance, { Catch: toRollback }),
      [ROLLOUT_STATES.promote]: task(props, ROLLOUT_STATES.promote, { Catch: toRollback }),
      [ROLLOUT_STATES.rollback]: task(props, ROLLOUT_STATES.rollback),
      [ROLLOUT_STATES.notify]: {
        Type: 'Task',
        Resource: 'arn:aws:states:::sns:publish',
        Parameters: {
          TopicArn: props.topicArn,
          'Subject.$': '$.outcome.subject',
          'Message.$': '$.outcome.message',
        },
        ResultPath: null,
        Retry: [
          {
            ErrorEquals: ['States.ALL'],
            IntervalSeconds: 2,
            MaxAttempts: 3,
            BackoffRate: 2,
            JitterStrategy: 'FULL',
          },
        ],
        // The outcome is in the history either way: a notification that cannot be sent does not hide it.
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.notifyError', Next: ROLLOUT_STATES.failed }],
        Next: ROLLOUT_STATES.failed,
      },
      [ROLLOUT_STATES.promoted]: { Type: 'Succeed' },
      [ROLLOUT_STATES.failed]: { Type: 'Fail', ErrorPath: '$.outcome.error', CausePath: '$.outcome.message' },
    },
  };
}
