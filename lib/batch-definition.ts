/**
 * The batch state machine's Amazon States Language definition: one source of truth, built by the CDK
 * construct (with function ARNs and the bucket as tokens) and run locally by aws-local-stepfunctions.
 * Pure data: no CDK import, so the local stack can build it without synthesizing anything.
 *
 * Plan -> Distributed Map over the plan's items (ItemReader, Standard children) -> Finalize -> Done?
 * A child invokes the score function until its chunk is done: an invocation whose table writes ran out
 * of time returns the item with `resume`, and "Chunk done?" sends it back (a throttled table slows a
 * chunk, never fails it). Standard children, because an Express execution is stopped at 5 minutes.
 * Any failure in Plan or the Map goes to Finalize with the error, so a failed run still writes a
 * manifest that says why, then the execution fails.
 */
import { parseSetting, SETTINGS } from '../lambdas/core/settings.ts';

export interface BatchDefinitionProps {
  readonly planFunctionArn: string;
  readonly scoreFunctionArn: string;
  readonly finalizeFunctionArn: string;
  /** The data bucket (for the map's result writer). */
  readonly bucketName: string;
  /** Most chunks scored at once. */
  readonly maxConcurrency: number;
  /** Percentage of chunks that may fail (after retries) without failing the run. */
  readonly toleratedFailurePercentage: number;
}

export const STATE_NAMES = {
  plan: 'Plan',
  map: 'Score chunks',
  score: 'Score chunk',
  chunkDone: 'Chunk done?',
  chunkScored: 'Chunk scored',
  finalize: 'Finalize',
  done: 'Run succeeded?',
  failed: 'Run failed',
  succeeded: 'Run succeeded',
} as const;

/** Where the map's ResultWriter puts the child results of a run: `runs/<runId>/map-results/`. */
export const MAP_RESULTS_FOLDER = 'map-results';

/** Lambda's transient errors: retried with backoff and full jitter. */
const LAMBDA_TRANSIENT_ERRORS = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'Lambda.ClientExecutionTimeoutException',
];

/** Errors that no retry can fix (bad input, unknown model, corrupt file): fail at once. */
export const NON_RETRYABLE_ERRORS = ['BatchInputError', 'ModelUnavailableError'];

/**
 * Any other failure of Plan, a chunk or Finalize (an S3 read cut mid-stream, DynamoDB throttling past
 * the SDK's retries, a worker that died) is retried: each task is idempotent (same keys, same items).
 */
const otherErrorsRetry = {
  ErrorEquals: ['States.ALL'],
  IntervalSeconds: 1,
  MaxAttempts: 2,
  BackoffRate: 2,
  JitterStrategy: 'FULL',
};

const transientRetry = {
  ErrorEquals: LAMBDA_TRANSIENT_ERRORS,
  IntervalSeconds: 2,
  MaxAttempts: 6,
  BackoffRate: 2,
  MaxDelaySeconds: 60,
  JitterStrategy: 'FULL',
};

export type AslDefinition = Record<string, unknown> & {
  StartAt: string;
  States: Record<string, Record<string, unknown>>;
};

export function batchDefinition(props: BatchDefinitionProps): AslDefinition {
  // Also built outside the Tandem construct (the local stack, `npm run batch`): the settings' own rules.
  for (const [name, value] of [
    ['batchMaxConcurrency', props.maxConcurrency],
    ['toleratedFailurePercentage', props.toleratedFailurePercentage],
  ] as const) {
    const parsed = parseSetting(SETTINGS[name], value);
    if (!parsed.ok) throw new Error(`${name}: ${parsed.problem}`);
  }
  const toFinalize = { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE_NAMES.finalize };
  return {
    Comment: 'Tandem batch scoring: plan chunks, score them in parallel, write the run manifest',
    StartAt: STATE_NAMES.plan,
    States: {
      [STATE_NAMES.plan]: {
        Type: 'Task',
        Resource: props.planFunctionArn,
        ResultPath: '$.planned',
        Retry: [{ ErrorEquals: NON_RETRYABLE_ERRORS, MaxAttempts: 0 }, transientRetry, otherErrorsRetry],
        Catch: [toFinalize],
        Next: STATE_NAMES.map,
      },
      [STATE_NAMES.map]: {
        Type: 'Map',
        ItemReader: {
          Resource: 'arn:aws:states:::s3:getObject',
          ReaderConfig: { InputType: 'JSON' },
          Parameters: { 'Bucket.$': '$.planned.bucket', 'Key.$': '$.planned.itemsKey' },
        },
        ItemProcessor: {
          ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' },
          StartAt: STATE_NAMES.score,
          States: {
            [STATE_NAMES.score]: {
              Type: 'Task',
              Resource: props.scoreFunctionArn,
              // A chunk that failed mid-way (S3 read cut, worker died) is re-run: its output is idempotent.
              Retry: [
                { ErrorEquals: NON_RETRYABLE_ERRORS, MaxAttempts: 0 },
                transientRetry,
                otherErrorsRetry,
              ],
              Next: STATE_NAMES.chunkDone,
            },
            [STATE_NAMES.chunkDone]: {
              Type: 'Choice',
              Choices: [{ Variable: '$.resume', IsPresent: true, Next: STATE_NAMES.score }],
              Default: STATE_NAMES.chunkScored,
            },
            [STATE_NAMES.chunkScored]: { Type: 'Succeed' },
          },
        },
        MaxConcurrency: props.maxConcurrency,
        ToleratedFailurePercentage: props.toleratedFailurePercentage,
        // Child outputs go to S3, not into the state: 10,000 chunk results would exceed 256 KB.
        ResultWriter: {
          Resource: 'arn:aws:states:::s3:putObject',
          Parameters: {
            Bucket: props.bucketName,
            'Prefix.$': `States.Format('runs/{}/${MAP_RESULTS_FOLDER}', $.runId)`,
          },
        },
        ResultPath: '$.mapResult',
        Catch: [toFinalize],
        Next: STATE_NAMES.finalize,
      },
      [STATE_NAMES.finalize]: {
        Type: 'Task',
        Resource: props.finalizeFunctionArn,
        ResultPath: '$.finalized',
        // Finalize is idempotent (same manifest key, same event): any failure, e.g. EventBridge throttling
        // the completion event past the SDK's own retries, is retried before the run fails (and alarms).
        Retry: [
          transientRetry,
          {
            ErrorEquals: ['States.ALL'],
            IntervalSeconds: 2,
            MaxAttempts: 3,
            BackoffRate: 2,
            JitterStrategy: 'FULL',
          },
        ],
        Next: STATE_NAMES.done,
      },
      [STATE_NAMES.done]: {
        Type: 'Choice',
        Choices: [{ Variable: '$.finalized.status', StringEquals: 'SUCCEEDED', Next: STATE_NAMES.succeeded }],
        Default: STATE_NAMES.failed,
      },
      [STATE_NAMES.succeeded]: { Type: 'Succeed' },
      [STATE_NAMES.failed]: {
        Type: 'Fail',
        Error: 'BatchRunFailed',
        CausePath: '$.finalized.message',
      },
    },
  };
}
