/** Errors of model lifecycle operations (the `tandem models ...` commands); each says what to do. */
import { TandemError } from '../errors.ts';

/** Another writer changed the pointer since it was read: nothing was written. */
export class PointerConflictError extends TandemError<'POINTER_CONFLICT'> {}

/** Why an operation that would make serving worse, or cannot apply, was refused. */
export type LifecycleRefusalCode =
  | 'MODEL_NOT_FOUND'
  | 'NOTHING_TO_ROLL_BACK'
  | 'PACKAGE_INVALID'
  | 'ALREADY_LIVE'
  /** The version the promote names cannot be served: its load failure's code. */
  | (string & {});

/** The operation would make serving worse or cannot apply (a version that does not load, nothing to roll back to). */
export class LifecycleRefusedError extends TandemError<LifecycleRefusalCode> {}

/** `models push` of a version that is already in the store (versions are immutable). */
export class VersionExistsError extends TandemError<'VERSION_EXISTS'> {}
