/**
 * The HTTP API (API Gateway HTTP API payload 2.0): a route table of small functions, with body parsing,
 * metrics and logs around the core. Built from injected dependencies so tests and the local stack run
 * exactly what Lambda runs.
 */
import { LogLevelThreshold, type Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import type { CaptureBuffer } from '../../core/capture/capture-buffer.ts';
import { captureRealtime } from '../../core/capture/realtime-capture.ts';
import { predictWithCanary, type VersionOutcome } from '../../core/canary-serving.ts';
import { ModelNotFoundError, TandemError } from '../../core/errors.ts';
import type { Manifest } from '../../core/manifest.ts';
import type { ServedModel } from '../../core/model-loader.ts';
import type { ModelRegistry } from '../../core/model-registry.ts';
import {
  parseJsonBody,
  parsePredictRequest,
  type PredictRequest,
  type RequestLimits,
} from '../../core/predict-request.ts';
import type { PredictOutcome, PredictionService } from '../../core/prediction-service.ts';
import type { ShadowRunner } from '../../core/shadow/shadow-runner.ts';
import type { ApiMetrics } from './api-metrics.ts';
import { postEvents, type EventsRouteDeps } from './events-route.ts';
import { failureView, pointerView, readyView, servingView, type ModelFailure } from './model-status-view.ts';
import { postFeedback, type FeedbackDeps } from './feedback-route.ts';
import { isOipPath, PROTOCOL_ROUTES, toOipError } from './protocol-routes.ts';
import { jsonBodyText, recordMetrics, recordVersionMetrics } from './route-support.ts';
import {
  errorResult,
  json,
  predictionJson,
  predictionResult,
  resultForError,
  type ApiResult,
} from './responses.ts';

export interface ApiDependencies {
  readonly registry: ModelRegistry;
  readonly service: PredictionService;
  readonly limits: RequestLimits;
  readonly logger: Logger;
  readonly metrics: ApiMetrics;
  /** Log feature values and predictions (off by default: they may be personal data). */
  readonly logPayloads: boolean;
  /**
   * Re-draw Powertools' debug-log sampling (POWERTOOLS_LOGGER_SAMPLE_RATE) for each request, as its
   * middleware does; off when no sample rate is set, since re-drawing costs a little on every request.
   */
  readonly sampleDebugLogs?: boolean;
  /** Data capture of sampled predictions (lambdas/core/capture); absent: off. */
  readonly capture?: CaptureBuffer;
  /** Scores a sample of the instances with the pointer's shadow version after the response; absent: off. */
  readonly shadow?: ShadowRunner;
  /** POST /events: the input stream and the largest record; undefined when the stream lane is off. */
  readonly events?: EventsRouteDeps['events'];
  /** POST /feedback: where outcomes are stored and how ids are known; undefined: the route answers 404. */
  readonly feedback?: FeedbackDeps;
}

export type ApiHandler = (event: APIGatewayProxyEventV2, context: Context) => Promise<ApiResult>;

/**
 * One request's log: the Lambda context is attached to the logger only when the request writes a line
 * (most write none). The request's own keys go into each entry, not into the logger: the local server
 * runs invocations concurrently through one logger, and appended keys would be read by (and removed
 * under) the others.
 */
class RequestLog {
  private keyed = false;

  constructor(
    private readonly logger: Logger,
    /** The logger's level for this request (read once: reading it reads the environment). */
    private readonly level: number,
    private readonly context: Context,
    private readonly requestId: string,
    private readonly path: string,
  ) {}

  enabled(threshold: number): boolean {
    return this.level <= threshold;
  }

  /** Attaches the context now (the first request of an environment: Powertools' cold-start flag). */
  attach(): void {
    if (this.keyed) return;
    this.keyed = true;
    this.logger.addContext(this.context);
  }

  write(level: 'debug' | 'info' | 'warn' | 'error', message: string, extra: Record<string, unknown>): void {
    this.attach();
    this.logger[level](message, { requestId: this.requestId, path: this.path, ...extra });
  }
}

/** One request as the routes see it. */
export interface ApiCall {
  readonly deps: ApiDependencies;
  readonly event: APIGatewayProxyEventV2;
  readonly requestId: string;
  readonly log: RequestLog;
  /** The model the request has named so far, for its error message. */
  model: string | undefined;
  /** What a route's path pattern captured (decoded). */
  params: readonly string[];
}

type Route = (call: ApiCall) => Promise<ApiResult>;

export interface RouteEntry {
  readonly method: 'GET' | 'POST';
  /** Matched against the path without trailing slashes; groups become `call.params`. */
  readonly path: RegExp;
  readonly run: Route;
}

/** A malformed percent-encoding is kept as sent: no model has such a name, so it is a 404. */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

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

/**
 * The line a prediction logs: WARN when the cache could not be used or written (the reason is only
 * here), INFO when payload logging is on, else DEBUG (metrics count every request; a line per request
 * costs more than the model run, so it is opt-in: POWERTOOLS_LOG_LEVEL=DEBUG, or a sample rate).
 */
function predictionLogLevel(outcome: PredictOutcome, logPayloads: boolean): 'debug' | 'info' | 'warn' {
  const writeThrough = outcome.stats.writeThrough;
  if (outcome.cache.status === 'skipped' || (writeThrough && 'error' in writeThrough)) return 'warn';
  return logPayloads ? 'info' : 'debug';
}

/** The response's `cache` block for the statuses that carry nothing else (one object each). */
const CACHE_BLOCKS: Readonly<Record<string, { readonly status: string }>> = {
  used: Object.freeze({ status: 'used' }),
  bypassed: Object.freeze({ status: 'bypassed' }),
  'not-needed': Object.freeze({ status: 'not-needed' }),
};

const THRESHOLD = {
  debug: LogLevelThreshold.DEBUG,
  info: LogLevelThreshold.INFO,
  warn: LogLevelThreshold.WARN,
};

async function predict(call: ApiCall): Promise<ApiResult> {
  const { deps, event } = call;
  const text = jsonBodyText(event);
  const request = parsePredictRequest(parseJsonBody(text, deps.limits), deps.limits, text);
  call.model = request.model;
  const model = deps.registry.ready(request.model) ?? (await deps.registry.get(request.model));
  const { outcome, byVersion } = await predictWithCanary(
    deps.service,
    request,
    model,
    deps.registry.canary(model.name),
    { failed: (failing) => deps.metrics.count('Errors', 1, failing.ref) },
  );
  if (deps.metrics.enabled) recordVersionMetrics(deps.metrics, byVersion);
  const shadow = deps.shadow && deps.registry.shadow(model.name);
  // Not awaited: the shadow's run starts after this response is on its way and never changes it.
  if (shadow) deps.shadow!.start(request, outcome, model, shadow, call.requestId, Date.now());
  return respond(call, request, model, outcome, byVersion);
}

function respond(
  call: ApiCall,
  request: PredictRequest,
  model: ServedModel,
  outcome: PredictOutcome,
  byVersion: readonly VersionOutcome[],
): ApiResult {
  const { deps, log } = call;
  if (deps.metrics.enabled) recordMetrics(deps.metrics, outcome, request.instances.length);
  if (deps.capture) captureRealtime(deps.capture, request, outcome, call.requestId, Date.now());
  if (deps.feedback) {
    const recent = deps.feedback.recent;
    for (const result of outcome.results) if (result.id !== null) recent.note(result.model.name, result.id);
  }
  const cache =
    outcome.cache.status === 'skipped'
      ? { status: 'skipped', reason: outcome.cache.reason }
      : CACHE_BLOCKS[outcome.cache.status]!;
  const level = predictionLogLevel(outcome, deps.logPayloads);
  if (log.enabled(THRESHOLD[level])) {
    log.write(level, 'predicted', {
      model: model.name,
      version: model.version,
      ...(byVersion.length > 1 || byVersion[0]?.model !== model
        ? { versions: byVersion.map((v) => ({ version: v.model.version, instances: v.instances })) }
        : {}),
      instances: request.instances.length,
      fromCache: outcome.stats.verdicts.hit,
      scored: outcome.stats.modelInstances,
      cache: outcome.cache.status === 'skipped' ? { ...cache, cause: outcome.cache.cause } : cache,
      modelLatencyMs: outcome.stats.modelLatencyMs,
      ...(outcome.stats.writeThrough ? { writeThrough: outcome.stats.writeThrough } : {}),
      ...(deps.logPayloads ? { request: request.instances, predictions: outcome.results } : {}),
    });
  }
  return predictionResult(
    predictionJson(outcome.results, request.single, cache),
    cache.status,
    call.requestId,
  );
}

async function health(): Promise<ApiResult> {
  return json(200, { status: 'ok' });
}

async function ready({ deps: { registry } }: ApiCall): Promise<ApiResult> {
  await registry.warm();
  const view = readyView(registry.status());
  return json(view.statusCode, view.body);
}

/** A load failure from the error itself, when the registry has no status for it (its manifest read failed). */
function thrownFailure(error: unknown): ModelFailure {
  if (error instanceof TandemError)
    return failureView({
      code: error.code,
      message: error.message,
      ...(error.details
        ? {
            details: error.details.map((d) => ({
              ...(d.field ? { field: d.field } : {}),
              message: d.message,
            })),
          }
        : {}),
    });
  // Anything else (a store's own error) may name internals: the code only.
  return { code: 'MODEL_LOAD_FAILED', message: 'the model could not be loaded' };
}

async function listModels({ deps: { registry } }: ApiCall): Promise<ApiResult> {
  const names = await registry.list();
  const models = await Promise.all(
    names.map(async (name) => {
      try {
        const description = describeModel(await registry.manifest(name), name === registry.defaultModel);
        // A package whose manifest reads well can still fail to load (missing or corrupt ONNX file).
        const status = registry.status(name);
        const failure = status.error;
        if (!failure || failure.code === 'MODEL_LOADING') return description;
        if (status.ready) return { ...description, pointer: pointerView(status) };
        return { ...description, error: failureView(failure) };
      } catch (error) {
        return {
          name,
          default: name === registry.defaultModel,
          error: registry.status(name).error
            ? failureView(registry.status(name).error!)
            : thrownFailure(error),
        };
      }
    }),
  );
  return json(200, { models });
}

async function getModel(call: ApiCall): Promise<ApiResult> {
  const { registry } = call.deps;
  const name = call.params[0]!;
  call.model = name;
  const isDefault = name === registry.defaultModel;
  try {
    const model = await registry.get(name);
    return json(200, {
      ...modelSchema(model.manifest, isDefault, model.classes),
      ...servingView(registry.status(name)),
    });
  } catch (error) {
    if (error instanceof ModelNotFoundError) throw error;
    // Not loadable: still describe what its manifest says when it can be read, and why it is not served,
    // in the same `error` shape whatever failed (schema, graph, file, pointer).
    const status = registry.status(name);
    const failure = status.error && status.error.code !== 'MODEL_LOADING' ? undefined : thrownFailure(error);
    const serving = { ...servingView(status), ...(failure && !status.ready ? { error: failure } : {}) };
    const manifest = await registry.manifest(name).catch(() => undefined);
    if (!manifest) return json(200, { name, default: isDefault, ...serving });
    return json(200, { ...modelSchema(manifest, isDefault, undefined), ...serving });
  }
}

/** The API's routes (like kserve's register_v1_endpoints): method, path, and the function that answers. */
export const ROUTES: readonly RouteEntry[] = [
  { method: 'POST', path: /^\/predict$/, run: predict },
  { method: 'GET', path: /^\/models$/, run: listModels },
  { method: 'GET', path: /^\/models\/([^/]+)$/, run: getModel },
  { method: 'POST', path: /^\/events$/, run: postEvents },
  { method: 'POST', path: /^\/feedback$/, run: postFeedback },
  { method: 'GET', path: /^\/health$/, run: health },
  { method: 'GET', path: /^\/ready$/, run: ready },
  ...PROTOCOL_ROUTES,
];

const ROUTE_LIST =
  'routes: POST /predict, POST /events, POST /feedback, GET /models, GET /models/{name}, GET /health, GET /ready, GET /openapi.json, ' +
  'and the Open Inference Protocol under /v2 (GET /v2, /v2/health/live, /v2/health/ready, ' +
  '/v2/models/{name}[/versions/{version}][/ready], POST /v2/models/{name}[/versions/{version}]/infer)';

/** Finds the request's route: 405 naming the allowed method when only the method differs, else 404. */
async function route(call: ApiCall): Promise<ApiResult> {
  const method = call.event.requestContext.http.method.toUpperCase();
  const path = call.event.rawPath.replace(/\/+$/, '') || '/';
  let allowed: string | undefined;
  for (const entry of ROUTES) {
    const match = entry.path.exec(path);
    if (!match) continue;
    if (method === entry.method || (entry.method === 'GET' && method === 'HEAD')) {
      call.params = match.slice(1).map(decodePathSegment);
      return entry.run(call);
    }
    allowed = entry.method;
  }
  if (allowed !== undefined) {
    return errorResult(
      405,
      'METHOD_NOT_ALLOWED',
      `${method} is not allowed on ${path}; use ${allowed}`,
      call.requestId,
      undefined,
      { allow: allowed },
    );
  }
  return errorResult(
    404,
    'ROUTE_NOT_FOUND',
    `no route ${method} ${path.slice(0, 200)}; ${ROUTE_LIST}`,
    call.requestId,
  );
}

/**
 * The answer to a request that threw: its error response, logged and counted. A caller's mistake is
 * logged by code and field names only: its message quotes the values sent (features, ids), which stay
 * out of the logs unless LOG_PAYLOADS is on. Our own failures (5xx) are logged with the error; the
 * expected ones (model or table unavailable) without a stack trace.
 */
function failed(call: ApiCall, error: unknown): ApiResult {
  const { deps, log } = call;
  const result = resultForError(error, call.requestId, call.model, deps.registry.defaultModel);
  const status = result.statusCode;
  const code = error instanceof TandemError ? error.code : 'INTERNAL';
  const details = error instanceof TandemError ? error.details : undefined;
  const fields = details?.flatMap((d) => (d.field === undefined ? [] : [d.field])).slice(0, 100);
  const entry = {
    status,
    code,
    ...(fields && fields.length > 0 ? { fields } : {}),
    // `message` is a key Powertools reserves for the line's own message (it would drop it).
    ...(deps.logPayloads ? { reason: (error as Error).message, details } : {}),
  };
  if (status < 500) log.write('warn', 'request failed', entry);
  else if (error instanceof TandemError && error.code !== 'INFERENCE_FAILED')
    log.write('error', 'request failed', {
      ...entry,
      error: { name: error.name, message: error.message },
    });
  else log.write('error', 'request failed', { ...entry, error });
  deps.metrics.count(status < 500 ? 'ClientErrors' : 'ServerErrors', 1);
  return result;
}

export function createApiHandler(deps: ApiDependencies): ApiHandler {
  const { logger, metrics } = deps;
  let invocations = 0;
  // The level only changes when debug sampling re-draws it for a request.
  const baseLevel = logger.level;
  return async (event, context) => {
    const requestId = event.requestContext?.requestId ?? context.awsRequestId;
    // Captures left from earlier invocations are written in the background: this request does not wait.
    deps.capture?.flushIfDue();
    // Shadow runs past their budget are counted now.
    deps.shadow?.invocationStarted();
    metrics.begin();
    let level = baseLevel;
    if (deps.sampleDebugLogs) {
      logger.refreshSampleRateCalculation();
      level = logger.level;
    }
    const log = new RequestLog(logger, level, context, requestId, event.rawPath);
    if (invocations++ === 0) log.attach();
    const call: ApiCall = { deps, event, requestId, log, model: undefined, params: [] };
    let result: ApiResult;
    try {
      result = await route(call);
    } catch (error) {
      result = failed(call, error);
    }
    deps.shadow?.invocationEnded();
    metrics.end();
    if (isOipPath(event.rawPath)) result = toOipError(result);
    // Every result's headers are its own object (json() builds one per response).
    (result.headers ??= {})['x-request-id'] = requestId;
    return result;
  };
}
