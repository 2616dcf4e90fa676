/**
 * The HTTP API (API Gateway HTTP API payload 2.0): routes, body parsing, metrics and logs around the
 * core. Built from injected dependencies so tests and the local stack run exactly what Lambda runs.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { ModelNotFoundError, TandemError } from '../../core/errors.ts';
import type { Manifest } from '../../core/manifest.ts';
import type { ModelRegistry } from '../../core/model-registry.ts';
import {
  checkContentEncoding,
  checkContentType,
  parseJsonBody,
  parsePredictRequest,
  type RequestLimits,
} from '../../core/predict-request.ts';
import type { PredictOutcome, PredictionService } from '../../core/prediction-service.ts';
import { errorResult, json, resultForError, type ApiResult } from './responses.ts';

export interface ApiDependencies {
  readonly registry: ModelRegistry;
  readonly service: PredictionService;
  readonly limits: RequestLimits;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Log feature values and predictions (off by default: they may be personal data). */
  readonly logPayloads: boolean;
}

export type ApiHandler = (event: APIGatewayProxyEventV2, context: Context) => Promise<ApiResult>;

/** What a request has named so far, for its error message, and its keys for log entries. */
interface RequestState {
  model: string | undefined;
  readonly where: { readonly requestId: string; readonly path: string };
}

/**
 * A failed request's log entry. Callers' mistakes are logged by code and field names only: their
 * messages quote the values sent (features, ids), which stay out of the logs unless LOG_PAYLOADS is
 * on. Our own failures (5xx) are logged with the error, whose messages quote no request values.
 */
function logFailure(
  logger: Logger,
  where: RequestState['where'],
  status: number,
  error: unknown,
  logPayloads: boolean,
): void {
  const code = error instanceof TandemError ? error.code : 'INTERNAL';
  const details = error instanceof TandemError ? error.details : undefined;
  const fields = details?.flatMap((d) => (d.field === undefined ? [] : [d.field])).slice(0, 100);
  const entry = {
    ...where,
    status,
    code,
    ...(fields && fields.length > 0 ? { fields } : {}),
    ...(logPayloads ? { reason: (error as Error).message, details } : {}),
  };
  if (status < 500) logger.warn('request failed', entry);
  else if (error instanceof TandemError && error.code !== 'INFERENCE_FAILED')
    // Expected operational failures (model or table unavailable): the reason, no stack trace.
    logger.error('request failed', { ...entry, error: { name: error.name, message: error.message } });
  else logger.error('request failed', { ...entry, error });
}

const MODEL_ROUTE = /^\/models\/([^/]+)\/?$/;

function describeModel(manifest: Manifest, isDefault: boolean) {
  return {
    name: manifest.name,
    version: manifest.version,
    task: manifest.task,
    default: isDefault,
    ...(manifest.description ? { description: manifest.description } : {}),
  };
}

function modelSchema(
  manifest: Manifest,
  isDefault: boolean,
  classes: readonly (string | number)[] | undefined,
) {
  return {
    ...describeModel(manifest, isDefault),
    idField: manifest.idField,
    features: manifest.features,
    outputs: { ...manifest.outputs, ...(classes ? { classes } : {}) },
    cache: manifest.cache,
  };
}

function decodeBody(event: APIGatewayProxyEventV2): string | undefined {
  if (event.body === undefined || !event.isBase64Encoded) return event.body;
  return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(event.body, 'base64'));
}

/** A malformed percent-encoding is kept as sent: no model has such a name, so it is a 404. */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Adds a count only when it is not zero: most requests leave most counters at zero. */
function count(metrics: Metrics, name: string, value: number): void {
  if (value !== 0) metrics.addMetric(name, MetricUnit.Count, value);
}

function recordMetrics(metrics: Metrics, outcome: PredictOutcome, instances: number): void {
  const { verdicts, servedAges, modelLatencyMs } = outcome.stats;
  metrics.addMetric('InstancesPerRequest', MetricUnit.Count, instances);
  count(metrics, 'CacheHit', verdicts.hit);
  count(metrics, 'CacheMiss', verdicts.miss);
  count(metrics, 'CacheStale', verdicts.stale + verdicts.expired);
  count(metrics, 'CacheVersionMismatch', verdicts['version-mismatch']);
  count(metrics, 'CacheSkipped', outcome.cache.status === 'skipped' ? 1 : 0);
  // EMF takes at most 100 values per metric in one record.
  for (const age of servedAges.slice(0, 100))
    metrics.addMetric('CacheEntryAgeSeconds', MetricUnit.Seconds, age);
  if (modelLatencyMs !== undefined) {
    metrics.addMetric('ModelLatency', MetricUnit.Milliseconds, modelLatencyMs);
    metrics.addMetric('ModelInstances', MetricUnit.Count, outcome.stats.modelInstances);
  }
}

export function createApiHandler(deps: ApiDependencies): ApiHandler {
  const { registry, service, limits, logger, metrics } = deps;

  async function predict(
    event: APIGatewayProxyEventV2,
    requestId: string,
    state: RequestState,
  ): Promise<ApiResult> {
    const headers = event.headers ?? {};
    checkContentType(headers['content-type']);
    checkContentEncoding(headers['content-encoding']);
    let text: string | undefined;
    try {
      text = decodeBody(event);
    } catch {
      return errorResult(400, 'INVALID_ENCODING', 'the body is not valid UTF-8', requestId);
    }
    const request = parsePredictRequest(parseJsonBody(text, limits), limits);
    state.model = request.model;
    const model = await registry.get(request.model);
    const outcome = await service.predict(request, model);
    recordMetrics(metrics, outcome, request.instances.length);
    const cache =
      outcome.cache.status === 'skipped'
        ? { status: 'skipped', reason: outcome.cache.reason }
        : { status: outcome.cache.status };
    logger.info('predicted', {
      ...state.where,
      model: model.name,
      version: model.version,
      instances: request.instances.length,
      fromCache: outcome.stats.verdicts.hit,
      scored: outcome.stats.modelInstances,
      cache: outcome.cache.status === 'skipped' ? { ...cache, cause: outcome.cache.cause } : cache,
      modelLatencyMs: outcome.stats.modelLatencyMs,
      ...(outcome.stats.writeThrough ? { writeThrough: outcome.stats.writeThrough } : {}),
      ...(deps.logPayloads ? { request: request.instances, predictions: outcome.results } : {}),
    });
    const responseHeaders = { 'x-tandem-cache': cache.status };
    if (request.single) return json(200, { ...outcome.results[0], cache }, responseHeaders);
    return json(200, { predictions: outcome.results, cache }, responseHeaders);
  }

  async function ready(): Promise<ApiResult> {
    try {
      const model = await registry.get();
      return json(200, { status: 'ready', model: { name: model.name, version: model.version } });
    } catch {
      const status = registry.status();
      return json(503, { status: 'not-ready', model: { name: status.name }, error: status.error });
    }
  }

  async function listModels(): Promise<ApiResult> {
    const names = await registry.list();
    const models = await Promise.all(
      names.map(async (name) => {
        try {
          const description = describeModel(await registry.manifest(name), name === registry.defaultModel);
          // A package whose manifest reads well can still fail to load (missing or corrupt ONNX file).
          const failure = registry.status(name).error;
          return failure && failure.code !== 'MODEL_LOADING'
            ? { ...description, error: { code: failure.code } }
            : description;
        } catch (error) {
          return {
            name,
            default: name === registry.defaultModel,
            error: { code: error instanceof TandemError ? error.code : 'MODEL_UNAVAILABLE' },
          };
        }
      }),
    );
    return json(200, { models });
  }

  async function getModel(name: string): Promise<ApiResult> {
    const isDefault = name === registry.defaultModel;
    try {
      const model = await registry.get(name);
      return json(200, modelSchema(model.manifest, isDefault, model.classes));
    } catch (error) {
      if (error instanceof ModelNotFoundError) throw error;
      // Not loadable: still describe what its manifest says when it can be read, and why it is not served.
      const code = error instanceof TandemError ? error.code : 'MODEL_UNAVAILABLE';
      return json(200, {
        ...modelSchema(await registry.manifest(name), isDefault, undefined),
        error: { code },
      });
    }
  }

  async function route(
    event: APIGatewayProxyEventV2,
    requestId: string,
    state: RequestState,
  ): Promise<ApiResult> {
    const method = event.requestContext.http.method.toUpperCase();
    const path = event.rawPath.replace(/\/+$/, '') || '/';
    const only = (allowed: string, run: () => Promise<ApiResult>) =>
      method === allowed || (allowed === 'GET' && method === 'HEAD')
        ? run()
        : Promise.resolve(
            errorResult(
              405,
              'METHOD_NOT_ALLOWED',
              `${method} is not allowed on ${path}; use ${allowed}`,
              requestId,
              undefined,
              {
                allow: allowed,
              },
            ),
          );
    if (path === '/predict') return only('POST', () => predict(event, requestId, state));
    if (path === '/health') return only('GET', async () => json(200, { status: 'ok' }));
    if (path === '/ready') return only('GET', ready);
    if (path === '/models') return only('GET', listModels);
    const match = MODEL_ROUTE.exec(path);
    if (match) {
      state.model = decodePathSegment(match[1]!);
      return only('GET', () => getModel(state.model!));
    }
    return errorResult(
      404,
      'ROUTE_NOT_FOUND',
      `no route ${method} ${path.slice(0, 200)}; routes: POST /predict, GET /models, GET /models/{name}, GET /health, GET /ready`,
      requestId,
    );
  }

  return async (event, context) => {
    const requestId = event.requestContext?.requestId ?? context.awsRequestId;
    logger.addContext(context);
    // Keys of this request go into each entry, not into the logger: the local server runs invocations
    // concurrently through one logger, and appended keys would be read by (and removed under) others.
    const where = { requestId, path: event.rawPath };
    const state: RequestState = { model: undefined, where };
    let result: ApiResult;
    try {
      result = await route(event, requestId, state);
    } catch (error) {
      result = resultForError(error, requestId, state.model, registry.defaultModel);
      logFailure(logger, where, result.statusCode, error, deps.logPayloads);
      metrics.addMetric(result.statusCode < 500 ? 'ClientErrors' : 'ServerErrors', MetricUnit.Count, 1);
    } finally {
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    }
    result.headers = { ...result.headers, 'x-request-id': requestId };
    return result;
  };
}
