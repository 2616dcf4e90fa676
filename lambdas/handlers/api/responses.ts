/** JSON responses and the mapping of typed errors to HTTP statuses. */
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import {
  CacheUnavailableError,
  InferenceError,
  ManifestError,
  ModelLoadError,
  ModelNotFoundError,
  NotPrecomputedError,
  PrecomputedTooOldError,
  PayloadTooLargeError,
  TandemError,
  UnsupportedMediaTypeError,
  ValidationError,
  type ErrorDetail,
} from '../../core/errors.ts';
import type { InstanceResult } from '../../core/prediction-service.ts';

export type ApiResult = APIGatewayProxyStructuredResultV2 & { statusCode: number; body: string };

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

export function json(statusCode: number, payload: unknown, headers: Record<string, string> = {}): ApiResult {
  return jsonBody(statusCode, JSON.stringify(payload), headers);
}

/** A number as JSON.stringify writes it. */
function jsonNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null';
}

/**
 * `JSON.stringify(result)` for the one object every prediction returns, written field by field (a
 * generic stringify of it costs about as much as validating the request); the prediction itself, whose
 * shape depends on the model, goes through JSON.stringify.
 */
export function instanceJson(result: InstanceResult, more = ''): string {
  return (
    `{"id":${result.id === null ? 'null' : JSON.stringify(result.id)},` +
    `"prediction":${JSON.stringify(result.prediction)},"source":"${result.source}",` +
    `"model":${modelJson(result.model)},"computedAt":${JSON.stringify(result.computedAt)},` +
    `"ageSeconds":${jsonNumber(result.ageSeconds)},"cacheStatus":"${result.cacheStatus}"${more}}`
  );
}

function modelJson(model: InstanceResult['model']): string {
  return `{"name":${JSON.stringify(model.name)},"version":${JSON.stringify(model.version)}}`;
}

/** The body of a prediction: one result with the request's cache block, or all of them in order. */
export function predictionJson(
  results: readonly InstanceResult[],
  single: boolean,
  cache: { readonly status: string; readonly reason?: string },
): string {
  const cacheJson = JSON.stringify(cache);
  if (single) return instanceJson(results[0]!, `,"cache":${cacheJson}`);
  return `{"predictions":[${results.map((r) => instanceJson(r)).join(',')}],"cache":${cacheJson}}`;
}

export function jsonBody(statusCode: number, body: string, headers: Record<string, string> = {}): ApiResult {
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body };
}

/** A 200 prediction response: the JSON headers, the request's cache status and its id. */
export function predictionResult(body: string, cacheStatus: string, requestId: string): ApiResult {
  return {
    statusCode: 200,
    headers: {
      'content-type': JSON_HEADERS['content-type'],
      'cache-control': JSON_HEADERS['cache-control'],
      'x-tandem-cache': cacheStatus,
      'x-request-id': requestId,
    },
    body,
  };
}

export function errorResult(
  statusCode: number,
  code: string,
  message: string,
  requestId: string,
  details?: readonly ErrorDetail[],
  headers?: Record<string, string>,
): ApiResult {
  return json(
    statusCode,
    { error: { code, message, ...(details && details.length > 0 ? { details } : {}), requestId } },
    headers,
  );
}

/** At most this many details go back to the caller (the message says how many there were). */
const MAX_DETAILS = 100;

/**
 * Callers' mistakes keep their message and details; failures of ours or of AWS keep only a code and a
 * message that names no path, bucket or SDK internals (those go to the log).
 */
export function resultForError(
  error: unknown,
  requestId: string,
  requestedModel: string | undefined,
  defaultModel: string,
): ApiResult {
  const modelName = requestedModel ?? defaultModel;
  const details = error instanceof TandemError ? error.details?.slice(0, MAX_DETAILS) : undefined;
  if (error instanceof PayloadTooLargeError) return errorResult(413, error.code, error.message, requestId);
  if (error instanceof UnsupportedMediaTypeError)
    return errorResult(415, error.code, error.message, requestId);
  if (error instanceof ValidationError)
    return errorResult(400, error.code, error.message, requestId, details);
  // A missing model the caller named is their mistake; a missing default model is ours.
  // The store's own message names its keys; the caller gets the name they sent and where to look.
  if (error instanceof ModelNotFoundError && requestedModel !== undefined) {
    return errorResult(
      404,
      error.code,
      `no model named "${requestedModel.slice(0, 128)}"; GET /models lists the models served`,
      requestId,
    );
  }
  if (error instanceof NotPrecomputedError || error instanceof PrecomputedTooOldError)
    return errorResult(404, error.code, error.message, requestId, details);
  if (error instanceof CacheUnavailableError) {
    return errorResult(503, error.code, error.message, requestId, details, { 'retry-after': '1' });
  }
  if (
    error instanceof ModelLoadError ||
    error instanceof ManifestError ||
    error instanceof ModelNotFoundError
  ) {
    // The loader's own messages name the file or manifest field and nothing internal; a wrapped error of
    // anything else (MODEL_LOAD_FAILED, the store's) and a missing model's (it names the store's key) do not.
    const precise =
      error instanceof ModelNotFoundError ||
      error.code === 'MODEL_LOAD_FAILED' ||
      error.code === 'MODEL_STORE_UNAVAILABLE'
        ? ''
        : `: ${error.message}`;
    const fields = precise
      ? error.details?.map((d) => ({ ...(d.field ? { field: d.field } : {}), message: d.message }))
      : undefined;
    return errorResult(
      503,
      'MODEL_UNAVAILABLE',
      `model "${modelName}" is not available (${error.code})${precise}; see ${modelName === defaultModel ? 'GET /ready' : `GET /models/${modelName}`}`,
      requestId,
      fields && fields.length > 0 ? fields : undefined,
      { 'retry-after': '5' },
    );
  }
  if (error instanceof InferenceError) {
    return errorResult(500, error.code, 'the model failed to score the request', requestId);
  }
  return errorResult(500, 'INTERNAL', 'internal error', requestId);
}
