import { TandemError } from '../errors.ts';

/**
 * The upload cannot be scored as it is (unsupported format, missing columns, corrupt file): retrying
 * cannot help, so the state machine does not retry it. The error name is what Step Functions matches.
 */
export class BatchInputError extends TandemError {
  readonly code: string;

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, undefined, options);
    this.code = code;
  }
}

/** The run's model (or its pinned version) cannot be loaded: not retried either. */
export class ModelUnavailableError extends TandemError {
  readonly code: string;

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, undefined, options);
    this.code = code;
  }
}
