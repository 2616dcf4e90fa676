/**
 * Routes of the standard interfaces: `GET /openapi.json` and the Open Inference Protocol (v2) REST
 * routes. Inference goes through the same PredictionService as `POST /predict` (cache first by
 * `parameters.ids`, one model run for the rest); errors under /v2 take the protocol's `{"error"}` shape.
 */
import { ModelNotFoundError, TandemError, ValidationError } from '../../core/errors.ts';
import type { ServedModel } from '../../core/model-loader.ts';
import { parseJsonBody } from '../../core/predict-request.ts';
import { openApiDocument, type OpenApiModel } from '../../core/protocols/openapi.ts';
import {
  SERVER_NAME,
  SERVER_VERSION,
  inferenceResponse,
  modelMetadata,
  renameFields,
  translateInferenceRequest,
} from '../../core/protocols/oip.ts';
import type { ApiCall, RouteEntry } from './api-handler.ts';
import { errorResult, json, type ApiResult } from './responses.ts';
import { jsonBodyText, recordMetrics } from './route-support.ts';

export function isOipPath(path: string): boolean {
  return path === '/v2' || path.startsWith('/v2/');
}

/**
 * An error result in the protocol's shape, `{"error": "<message>"}`, with the code in the
 * `x-tandem-error-code` header; any other result (successes, readiness answers) as it is.
 */
export function toOipError(result: ApiResult): ApiResult {
  if (result.statusCode < 400) return result;
  let body: unknown;
  try {
    body = JSON.parse(result.body);
  } catch {
    return result;
  }
  const error = (body as { error?: unknown }).error;
  if (error === null || typeof error !== 'object') return result;
  const { code, message } = error as { code?: string; message?: string };
  return json(
    result.statusCode,
    { error: message ?? 'error' },
    {
      ...(result.headers as Record<string, string> | undefined),
      ...(code ? { 'x-tandem-error-code': code } : {}),
    },
  );
}

/** The model a /v2/models route names, at the version it names (404 for any but the served one). */
async function servedModel(call: ApiCall): Promise<ServedModel | ApiResult> {
  const [name, version] = call.params;
  call.model = name;
  const model = await call.deps.registry.get(name);
  if (version !== undefined && version !== model.version) {
    return errorResult(
      404,
      'MODEL_NOT_FOUND',
      `model "${model.name}" has no version "${version.slice(0, 128)}" served: the live version is "${model.version}" (omit /versions/{version} to use it)`,
      call.requestId,
    );
  }
  return model;
}

const isResult = (value: ServedModel | ApiResult): value is ApiResult => 'statusCode' in value;

async function serverMetadata(): Promise<ApiResult> {
  return json(200, { name: SERVER_NAME, version: SERVER_VERSION, extensions: [] });
}

async function serverLive(): Promise<ApiResult> {
  return json(200, { live: true });
}

/** Ready when the default model is loaded (the other models load on their first request). */
async function serverReady({ deps: { registry } }: ApiCall): Promise<ApiResult> {
  try {
    await registry.get();
    return json(200, { live: true, ready: true });
  } catch {
    return json(503, { live: true, ready: false }, { 'retry-after': '5' });
  }
}

async function metadata(call: ApiCall): Promise<ApiResult> {
  const model = await servedModel(call);
  if (isResult(model)) return model;
  return json(200, modelMetadata(model, model.version));
}

async function modelReady(call: ApiCall): Promise<ApiResult> {
  const name = call.params[0]!;
  let model: ServedModel | ApiResult;
  try {
    model = await servedModel(call);
  } catch (error) {
    if (error instanceof ModelNotFoundError) throw error;
    const code = error instanceof TandemError ? error.code : 'MODEL_UNAVAILABLE';
    return json(
      503,
      { name, ready: false, error: `model "${name}" is not ready (${code}); GET /models/${name} says why` },
      { 'retry-after': '5' },
    );
  }
  if (isResult(model)) return model;
  return json(200, { name: model.name, ready: true });
}

async function infer(call: ApiCall): Promise<ApiResult> {
  const { deps, event } = call;
  const text = jsonBodyText(event);
  const body = parseJsonBody(text, deps.limits);
  const model = await servedModel(call);
  if (isResult(model)) return model;
  const translation = translateInferenceRequest(body, model, deps.limits);
  let outcome;
  try {
    outcome = await deps.service.predict(translation.request, model);
  } catch (error) {
    throw error instanceof ValidationError ? renameFields(error, translation.sources) : error;
  }
  if (deps.metrics.enabled) recordMetrics(deps.metrics, outcome, translation.request.instances.length);
  // As /predict logs it: the only place the reason a table read failed is written.
  if (outcome.cache.status === 'skipped') {
    call.log.write('warn', 'predicted', {
      model: model.name,
      version: model.version,
      instances: translation.request.instances.length,
      cache: { status: 'skipped', reason: outcome.cache.reason, cause: outcome.cache.cause },
    });
  }
  const id = (body as { id?: string }).id;
  const response = inferenceResponse(model, model.version, outcome.results, {
    ...(id === undefined ? {} : { id }),
    ...(translation.requestedOutputs ? { outputs: translation.requestedOutputs } : {}),
    cache: outcome.cache.status,
  });
  return json(200, response, { 'x-tandem-cache': outcome.cache.status });
}

/** The document for the models served now: those whose manifest reads (a broken one is left out). */
async function openApi({ deps: { registry } }: ApiCall): Promise<ApiResult> {
  const names = await registry.list();
  const models: OpenApiModel[] = [];
  for (const name of names) {
    try {
      models.push({ manifest: await registry.manifest(name), isDefault: name === registry.defaultModel });
    } catch {
      // Listed under GET /models with its error; it has no feature schema to document.
    }
  }
  return json(200, openApiDocument(models));
}

const MODEL = '\\/v2\\/models\\/([^/]+)';
const VERSION = '\\/versions\\/([^/]+)';

/** The routes, in the API's route table (api-handler.ts). */
export const PROTOCOL_ROUTES: readonly RouteEntry[] = [
  { method: 'GET', path: /^\/openapi\.json$/, run: openApi },
  { method: 'GET', path: /^\/v2$/, run: serverMetadata },
  { method: 'GET', path: /^\/v2\/health\/live$/, run: serverLive },
  { method: 'GET', path: /^\/v2\/health\/ready$/, run: serverReady },
  { method: 'GET', path: new RegExp(`^${MODEL}$`), run: metadata },
  { method: 'GET', path: new RegExp(`^${MODEL}${VERSION}$`), run: metadata },
  { method: 'GET', path: new RegExp(`^${MODEL}\\/ready$`), run: modelReady },
  { method: 'GET', path: new RegExp(`^${MODEL}${VERSION}\\/ready$`), run: modelReady },
  { method: 'POST', path: new RegExp(`^${MODEL}\\/infer$`), run: infer },
  { method: 'POST', path: new RegExp(`^${MODEL}${VERSION}\\/infer$`), run: infer },
];
