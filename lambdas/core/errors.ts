/** Errors of the scoring core. Each carries a stable `code` that callers and the API map to a status. */

export interface ErrorDetail {
  /** The field the detail is about (dotted path), when it is about one. */
  readonly field?: string;
  readonly message: string;
  /** Index of the instance in a multi-instance request. */
  readonly instance?: number;
}

export abstract class TandemError extends Error {
  abstract readonly code: string;
  readonly details: readonly ErrorDetail[] | undefined;

  constructor(message: string, details?: readonly ErrorDetail[], options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.details = details;
  }
}

/** The manifest is malformed or does not match its model. */
export class ManifestError extends TandemError {
  readonly code = 'INVALID_MANIFEST';
}

/** The model file is missing, corrupt or cannot be served as its manifest says. */
export class ModelLoadError extends TandemError {
  readonly code: string;

  constructor(
    message: string,
    code = 'MODEL_LOAD_FAILED',
    options?: { cause?: unknown; details?: ErrorDetail[] },
  ) {
    super(message, options?.details, options);
    this.code = code;
  }
}

/** The caller sent something the model cannot take. */
export class ValidationError extends TandemError {
  readonly code: string;

  constructor(message: string, details?: readonly ErrorDetail[], code = 'INVALID_REQUEST') {
    super(message, details);
    this.code = code;
  }
}

/** No such model (or model version). */
export class ModelNotFoundError extends TandemError {
  readonly code = 'MODEL_NOT_FOUND';
}

/** onnxruntime failed while running a model that loaded. */
export class InferenceError extends TandemError {
  readonly code = 'INFERENCE_FAILED';
}

/** An id-only instance has no usable precomputed prediction and no features to score. */
export class NotPrecomputedError extends TandemError {
  readonly code = 'NOT_PRECOMPUTED';
}

/**
 * An id-only instance has a precomputed prediction, but one too old to serve (older than the request's
 * maxStalenessSeconds or the model's cache max age, or past its TTL), and no features to score.
 */
export class PrecomputedTooOldError extends TandemError {
  readonly code = 'PRECOMPUTED_TOO_OLD';
}

/** The prediction store could not be read in time and an instance has no features to fall back on. */
export class CacheUnavailableError extends TandemError {
  readonly code = 'CACHE_UNAVAILABLE';
}

/** The request (or body) is larger than the limit. */
export class PayloadTooLargeError extends TandemError {
  readonly code = 'PAYLOAD_TOO_LARGE';
}

/** The body is not JSON by its content type. */
export class UnsupportedMediaTypeError extends TandemError {
  readonly code = 'UNSUPPORTED_MEDIA_TYPE';
}
