/**
 * Errors that end a batch run without a retry. Step Functions sees a Lambda error as its name (the
 * state machine's Retry matches `BatchInputError` and `ModelUnavailableError`, see lib/batch-definition.ts)
 * and its message; the code travels in the message as `[CODE] message`, which this module alone writes
 * (RunStoppingError) and reads (readTaggedMessage).
 */
import type { DatasetErrorCode } from '../codecs/errors.ts';
import {
  TandemError,
  type ManifestErrorCode,
  type ModelLoadErrorCode,
  type TandemErrorOptions,
} from '../errors.ts';

const TAGGED = /^\[([A-Z0-9_]+)\]\s*([\s\S]*)$/;

/** The code and message of a `[CODE] message` text; undefined when it has no tag. */
export function readTaggedMessage(text: string): { code: string; message: string } | undefined {
  const tagged = TAGGED.exec(text);
  return tagged ? { code: tagged[1]!, message: tagged[2]! } : undefined;
}

/** An error whose message carries its code as `[CODE] message`, for whoever reads it after Step Functions. */
abstract class RunStoppingError<Code extends string> extends TandemError<Code> {
  constructor(code: Code, message: string, options?: TandemErrorOptions) {
    super(code, `[${code}] ${message}`, options);
  }
}

export type BatchInputErrorCode =
  | DatasetErrorCode
  | 'NOT_A_DATASET'
  | 'NO_MODEL_FOLDER'
  | 'INPUT_MISSING'
  | 'INPUT_TOO_LARGE'
  | 'INVALID_OPTIONS'
  | 'INVALID_PREFIX'
  | 'MIXED_FORMATS'
  | 'DUPLICATE_COLUMNS'
  | 'MISSING_COLUMNS'
  | 'UNKNOWN_PASS_THROUGH'
  | 'ROW_GROUP_TOO_LARGE'
  | 'TOO_MANY_CHUNKS'
  | 'NO_SUCH_CHUNK';

/**
 * The upload cannot be scored as it is (unsupported format, missing columns, corrupt file): retrying
 * cannot help, so the state machine does not retry it.
 */
export class BatchInputError extends RunStoppingError<BatchInputErrorCode> {}

export type ModelUnavailableErrorCode =
  'MODEL_NOT_FOUND' | 'MODEL_UNAVAILABLE' | ModelLoadErrorCode | ManifestErrorCode;

/** The run's model (or its pinned version) cannot be loaded: not retried either. */
export class ModelUnavailableError extends RunStoppingError<ModelUnavailableErrorCode> {}
