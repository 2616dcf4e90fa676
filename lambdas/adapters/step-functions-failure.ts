/**
 * What a Step Functions Catch hands on (`ResultPath: $.error`): `{Error, Cause}`. For a Lambda task,
 * `Error` is the thrown error's name and `Cause` the Lambda error as JSON (`errorType`, `errorMessage`,
 * `trace`); for Step Functions' own errors (`States.Timeout`, a Map over its failure threshold) `Cause`
 * is plain text. The core sees only the error's name and message (RunFailure).
 */
import type { FinalizeInput, RunFailure } from '../core/batch/finalizer.ts';

export interface StatesError {
  readonly Error?: string;
  readonly Cause?: string;
}

/** The state Finalize gets from the state machine: the run's state with a Catch's `{Error, Cause}`. */
export type FinalizeState = Omit<FinalizeInput, 'error'> & { readonly error?: StatesError };

export function runFailureFromCatch(error: StatesError | undefined): RunFailure | undefined {
  if (error === undefined) return undefined;
  let message = error.Cause ?? error.Error ?? 'unknown error';
  try {
    const cause = JSON.parse(message) as { errorMessage?: unknown } | null;
    if (typeof cause?.errorMessage === 'string') message = cause.errorMessage;
  } catch {
    // A plain-text cause.
  }
  return { name: error.Error ?? '', message };
}

export function finalizeInputFromState(state: FinalizeState): FinalizeInput {
  const { error, ...rest } = state;
  const failure = runFailureFromCatch(error);
  return failure ? { ...rest, error: failure } : rest;
}
