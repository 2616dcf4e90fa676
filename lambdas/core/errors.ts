/**
 * Errors of the scoring core. Every class takes the same arguments: a `code` from its area's union
 * (what callers, logs and the API's status mapping match on), a message, and options with `details`
 * (per-field problems) and `cause`. Class names are part of the contract where errors cross Step
 * Functions (batch/errors.ts): bundles keep them (esbuild keepNames).
 */

export interface ErrorDetail {
  /** The field the detail is about (dotted path), when it is about one. */
  readonly field?: string;
  readonly message: string;
  /** Index of the instance in a multi-instance request. */
  readonly instance?: number;
}

export interface TandemErrorOptions {
  readonly details?: readonly ErrorDetail[];
  readonly cause?: unknown;
}

export abstract class TandemError<Code extends string = string> extends Error {
  readonly code: Code;
  readonly details: readonly ErrorDetail[] | undefined;

  constructor(code: Code, message: string, options: TandemErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details;
  }
}

export type ManifestErrorCode = 'INVALID_MANIFEST';

/** The manifest is malformed or does not match its model. */
export class ManifestError extends TandemError<ManifestErrorCode> {}

export type ModelLoadErrorCode =
  /** Any other failure to load (wrapped by the registry). */
  | 'MODEL_LOAD_FAILED'
  /** model.onnx is not an ONNX model onnxruntime can load. */
  | 'MODEL_CORRUPT'
  /** A file of the package is not there. */
  | 'MODEL_FILE_MISSING'
  /** manifest.json is not JSON, or names another package. */
  | 'INVALID_MANIFEST'
  /** current.json is not `{"version": "<version>"}`. */
  | 'INVALID_POINTER'
  /** The model has no current.json: no version is promoted (or the pointer was deleted). */
  | 'POINTER_MISSING'
  /** The pointer names a version with neither manifest.json nor model.onnx. */
  | 'VERSION_NOT_FOUND'
  /** The store of model packages could not be read (worth a retry). */
  | 'MODEL_STORE_UNAVAILABLE';

/** The model file is missing, corrupt or cannot be served as its manifest says. */
export class ModelLoadError extends TandemError<ModelLoadErrorCode> {}

export type ValidationErrorCode =
  | 'INVALID_REQUEST'
  | 'INVALID_JSON'
  | 'INVALID_ENCODING'
  | 'EMPTY_BODY'
  | 'TOO_MANY_INSTANCES'
  | 'INVALID_FEATURES'
  /** POST /feedback: an outcome that is not of the model's type (class, number), id or time. */
  | 'INVALID_FEEDBACK'
  /** POST /feedback: an id with no prediction to compare the outcome with (docs/api.md). */
  | 'UNKNOWN_ID';

/** The caller sent something the model cannot take. */
export class ValidationError extends TandemError<ValidationErrorCode> {}

/** No such model (or model version). */
export class ModelNotFoundError extends TandemError<'MODEL_NOT_FOUND'> {}

/** onnxruntime failed while running a model that loaded. */
export class InferenceError extends TandemError<'INFERENCE_FAILED'> {}

/** An id-only instance has no usable precomputed prediction and no features to score. */
export class NotPrecomputedError extends TandemError<'NOT_PRECOMPUTED'> {}

/**
 * An id-only instance has a precomputed prediction, but one too old to serve (older than the request's
 * maxStalenessSeconds or the model's cache max age, or past its TTL), and no features to score.
 */
export class PrecomputedTooOldError extends TandemError<'PRECOMPUTED_TOO_OLD'> {}

/** The prediction store could not be read in time and an instance has no features to fall back on. */
export class CacheUnavailableError extends TandemError<'CACHE_UNAVAILABLE'> {}

/** The request (or body) is larger than the limit. */
export class PayloadTooLargeError extends TandemError<'PAYLOAD_TOO_LARGE'> {}

/** The body is not JSON by its content type. */
export class UnsupportedMediaTypeError extends TandemError<'UNSUPPORTED_MEDIA_TYPE'> {}

/**
 * Why a PredictionStore call failed, in the port's terms: the adapter translates its service's errors
 * (SDK names, HTTP statuses, socket codes) into one of these, so the core never sees them.
 */
export type PredictionStoreErrorCode =
  | 'STORE_THROTTLED'
  | 'STORE_UNREACHABLE'
  | 'STORE_TABLE_MISSING'
  | 'STORE_FORBIDDEN'
  | 'STORE_SERVER_ERROR'
  | 'STORE_TIMEOUT'
  | 'STORE_FAILED';

/** A PredictionStore read or write failed; `cause` is the service's own error (for logs only). */
export class PredictionStoreError extends TandemError<PredictionStoreErrorCode> {}
