/** Errors of model lifecycle operations (the `tandem models ...` commands); each says what to do. */
import { TandemError, type ErrorDetail } from '../errors.ts';

/** Another writer changed the pointer since it was read: nothing was written. */
export class PointerConflictError extends TandemError {
  readonly code = 'POINTER_CONFLICT';
}

/** The operation would make serving worse or cannot apply (a version that does not load, nothing to roll back to). */
export class LifecycleRefusedError extends TandemError {
  readonly code: string;

  constructor(
    message: string,
    code: string,
    details?: readonly ErrorDetail[],
    options?: { cause?: unknown },
  ) {
    super(message, details, options);
    this.code = code;
  }
}

/** `models push` of a version that is already in the store (versions are immutable). */
export class VersionExistsError extends TandemError {
  readonly code = 'VERSION_EXISTS';
}
