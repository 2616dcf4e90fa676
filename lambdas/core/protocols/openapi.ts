/**
 * The OpenAPI 3.1 document of the whole API, generated from the zod schemas the code validates with
 * (api-schemas.ts, oip.ts) and from each served model's manifest: it cannot drift from the code.
 */
import * as z from 'zod';
import type { Manifest } from '../manifest.ts';
import {
  ERROR_CODES,
  LOCAL_ONLY_CODES,
  errorSchema,
  eventsAcceptedSchema,
  eventsRequestSchema,
  feedbackAcceptedSchema,
  feedbackRequestSchema,
  featuresSchemaOf,
  gatewayErrorSchema,
  healthSchema,
  modelDocumentSchema,
  modelFailureDocumentSchema,
  modelListSchema,
  predictRequestSchema,
  predictRequestSchemaWith,
  predictResponseSchema,
  readySchema,
} from './api-schemas.ts';
import {
  SERVER_NAME,
  SERVER_VERSION,
  oipErrorSchema,
  oipInferenceRequestSchema,
  oipInferenceResponseSchema,
  oipModelMetadataSchema,
  oipModelReadySchema,
  oipServerLiveSchema,
  oipServerMetadataSchema,
  oipServerReadySchema,
} from './oip.ts';

export interface OpenApiModel {
  readonly manifest: Manifest;
  readonly isDefault: boolean;
}

type JsonSchema = Record<string, unknown>;

/** JSON Schema 2020-12 (OpenAPI 3.1's dialect) of a zod schema, without its `$schema` line. */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
  }) as JsonSchema;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

function jsonContent(schema: unknown) {
  return { content: { 'application/json': { schema } } };
}

/** A status's response: the error body with the codes this route answers with at that status. */
function errorResponse(status: number, codes: readonly string[], oip: boolean) {
  const listed = codes.map((c) => (LOCAL_ONLY_CODES.includes(c) ? `${c} (local server only)` : c));
  const description = oip
    ? `Error ({"error": message}; the code is in the x-tandem-error-code header): ${listed.join(', ')}`
    : `Error: ${listed.join(', ')}`;
  return [String(status), { description, ...jsonContent(ref(oip ? 'OipError' : 'Error')) }] as const;
}

const BAD_BODY = ['EMPTY_BODY', 'INVALID_JSON', 'INVALID_ENCODING', 'INVALID_REQUEST', 'BAD_REQUEST'];
/** What any route may answer besides its own statuses. */
const ANY_ROUTE: Record<number, readonly string[]> = {
  404: ['ROUTE_NOT_FOUND'],
  405: ['METHOD_NOT_ALLOWED'],
  408: ['REQUEST_TIMEOUT'],
  431: ['HEADERS_TOO_LARGE'],
  500: ['INTERNAL'],
  503: ['SERVER_BUSY'],
};

function responses(
  ok: { description: string; schema: unknown },
  errors: Record<number, readonly string[]>,
  oip = false,
  extra: Record<string, unknown> = {},
) {
  const merged: Record<number, string[]> = {};
  for (const table of [ANY_ROUTE, errors]) {
    for (const [status, codes] of Object.entries(table)) {
      (merged[Number(status)] ??= []).push(...codes.filter((c) => !merged[Number(status)]?.includes(c)));
    }
  }
  return {
    '200': { description: ok.description, ...jsonContent(ok.schema) },
    ...extra,
    ...Object.fromEntries(
      Object.entries(merged)
        .sort(([a], [b]) => Number(a) - Number(b))
        .map(([status, codes]) => errorResponse(Number(status), codes, oip)),
    ),
    '401': { description: 'API Gateway: no or invalid JWT (JWT auth)', ...jsonContent(ref('GatewayError')) },
    '403': {
      description: 'API Gateway: not signed or not allowed (IAM auth)',
      ...jsonContent(ref('GatewayError')),
    },
    '429': {
      description: 'API Gateway: the stage throttle was exceeded',
      ...jsonContent(ref('GatewayError')),
    },
  };
}

const PREDICT_ERRORS = {
  400: [...BAD_BODY, 'INVALID_FEATURES', 'TOO_MANY_INSTANCES'],
  404: ['MODEL_NOT_FOUND', 'NOT_PRECOMPUTED', 'PRECOMPUTED_TOO_OLD'],
  413: ['PAYLOAD_TOO_LARGE'],
  415: ['UNSUPPORTED_MEDIA_TYPE'],
  500: ['INFERENCE_FAILED'],
  503: ['MODEL_UNAVAILABLE', 'CACHE_UNAVAILABLE'],
};
const FEEDBACK_ERRORS = {
  400: [...BAD_BODY, 'INVALID_FEEDBACK', 'UNKNOWN_ID', 'TOO_MANY_INSTANCES'],
  404: ['MODEL_NOT_FOUND', 'FEEDBACK_OFF'],
  413: ['PAYLOAD_TOO_LARGE'],
  415: ['UNSUPPORTED_MEDIA_TYPE'],
  503: ['MODEL_UNAVAILABLE', 'FEEDBACK_CHECK_UNAVAILABLE', 'FEEDBACK_NOT_STORED'],
};
const MODEL_ERRORS = { 404: ['MODEL_NOT_FOUND'], 503: ['MODEL_UNAVAILABLE'] };
const EVENTS_ERRORS = {
  400: [...BAD_BODY, 'INVALID_FEATURES'],
  404: ['MODEL_NOT_FOUND', 'STREAM_LANE_OFF'],
  413: ['PAYLOAD_TOO_LARGE'],
  415: ['UNSUPPORTED_MEDIA_TYPE'],
  503: ['MODEL_UNAVAILABLE', 'STREAM_UNAVAILABLE'],
};

/** `responses` of a route that answers 202 Accepted instead of 200. */
function accepted(all: Record<string, unknown>): Record<string, unknown> {
  const { '200': ok, ...rest } = all;
  return { '202': ok, ...rest };
}

const nameParam = {
  name: 'name',
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description: 'Model name',
};
const versionParam = {
  name: 'version',
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description: 'Model version: only the live (served) version is accepted; any other is 404',
};

/** Each OIP model route exists with and without `/versions/{version}`. */
function versioned(path: string, operation: Record<string, unknown>, method: 'get' | 'post') {
  const params = (withVersion: boolean) => (withVersion ? [nameParam, versionParam] : [nameParam]);
  const base = `/v2/models/{name}`;
  return {
    [`${base}${path}`]: { [method]: { ...operation, parameters: params(false) } },
    [`${base}/versions/{version}${path}`]: {
      [method]: {
        ...operation,
        operationId: `${String(operation['operationId'])}Version`,
        parameters: params(true),
      },
    },
  };
}

function componentName(model: string): string {
  return `PredictRequest.${model}`;
}

/** The document, for the models served (each model's features become its own request schema). */
export function openApiDocument(models: readonly OpenApiModel[]): Record<string, unknown> {
  const schemas: Record<string, unknown> = {
    PredictRequest: jsonSchema(predictRequestSchema, 'input'),
    PredictResponse: jsonSchema(predictResponseSchema, 'output'),
    EventsRequest: jsonSchema(eventsRequestSchema, 'input'),
    EventsAccepted: jsonSchema(eventsAcceptedSchema, 'output'),
    FeedbackRequest: jsonSchema(feedbackRequestSchema, 'input'),
    FeedbackAccepted: jsonSchema(feedbackAcceptedSchema, 'output'),
    ModelList: jsonSchema(modelListSchema, 'output'),
    ModelDocument: jsonSchema(modelDocumentSchema, 'output'),
    ModelFailureDocument: jsonSchema(modelFailureDocumentSchema, 'output'),
    Health: jsonSchema(healthSchema, 'output'),
    Ready: jsonSchema(readySchema, 'output'),
    Error: jsonSchema(errorSchema, 'output'),
    GatewayError: jsonSchema(gatewayErrorSchema, 'output'),
    OipServerMetadata: jsonSchema(oipServerMetadataSchema, 'output'),
    OipServerLive: jsonSchema(oipServerLiveSchema, 'output'),
    OipServerReady: jsonSchema(oipServerReadySchema, 'output'),
    OipModelMetadata: jsonSchema(oipModelMetadataSchema, 'output'),
    OipModelReady: jsonSchema(oipModelReadySchema, 'output'),
    OipInferenceRequest: jsonSchema(oipInferenceRequestSchema, 'input'),
    OipInferenceResponse: jsonSchema(oipInferenceResponseSchema, 'output'),
    OipError: jsonSchema(oipErrorSchema, 'output'),
  };
  const sorted = [...models].sort((a, b) => a.manifest.name.localeCompare(b.manifest.name));
  for (const { manifest, isDefault } of sorted) {
    const requestSchema = jsonSchema(predictRequestSchemaWith(featuresSchemaOf(manifest)), 'input');
    schemas[componentName(manifest.name)] = {
      ...requestSchema,
      description: `POST /predict for model "${manifest.name}" (${manifest.task})${
        isDefault ? ', the default model: "model" may be omitted' : ': send "model": "' + manifest.name + '"'
      }.${manifest.description ? ` ${manifest.description}` : ''}`,
    };
  }
  const perModel = sorted.map((m) => ref(componentName(m.manifest.name)));

  const paths: Record<string, unknown> = {
    '/predict': {
      post: {
        operationId: 'predict',
        summary: 'Predictions: precomputed first (by id), the model for the rest',
        requestBody: {
          required: true,
          ...jsonContent(perModel.length > 0 ? { anyOf: perModel } : ref('PredictRequest')),
        },
        responses: responses(
          { description: 'One result, or all of them in request order', schema: ref('PredictResponse') },
          PREDICT_ERRORS,
        ),
      },
    },
    '/events': {
      post: {
        operationId: 'postEvents',
        summary:
          'Events for the stream lane: put on the input stream, scored within seconds (docs/stream.md)',
        requestBody: { required: true, ...jsonContent(ref('EventsRequest')) },
        responses: accepted(
          responses(
            {
              description:
                'Accepted: each event with its sequence number, or STREAM_THROTTLED (send that one again)',
              schema: ref('EventsAccepted'),
            },
            EVENTS_ERRORS,
          ),
        ),
      },
    },
    '/feedback': {
      post: {
        operationId: 'postFeedback',
        summary:
          'Outcomes (ground truth) of predicted entities, for live quality per version (docs/api.md#post-feedback)',
        requestBody: { required: true, ...jsonContent(ref('FeedbackRequest')) },
        responses: responses(
          { description: 'Stored (durable) before this answer', schema: ref('FeedbackAccepted') },
          FEEDBACK_ERRORS,
        ),
      },
    },
    '/models': {
      get: {
        operationId: 'listModels',
        summary: 'The models served',
        responses: responses(
          { description: 'The models', schema: ref('ModelList') },
          { 503: ['MODEL_UNAVAILABLE'] },
        ),
      },
    },
    '/models/{name}': {
      get: {
        operationId: 'getModel',
        summary: "A model's version, features, outputs and cache policy",
        parameters: [nameParam],
        responses: responses(
          {
            description:
              'The model; when it does not load, `error` says why (code, message, fields), and a manifest that cannot be read leaves only name, default, pointer and error',
            schema: { anyOf: [ref('ModelDocument'), ref('ModelFailureDocument')] },
          },
          MODEL_ERRORS,
        ),
      },
    },
    '/health': {
      get: {
        operationId: 'health',
        summary: 'The function answers',
        responses: responses({ description: 'Alive', schema: ref('Health') }, {}),
      },
    },
    '/ready': {
      get: {
        operationId: 'ready',
        summary: 'The default model is loaded',
        responses: responses({ description: 'Ready', schema: ref('Ready') }, {}, false, {
          '503': { description: 'Not ready (the body says why)', ...jsonContent(ref('Ready')) },
        }),
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openApi',
        summary: 'This document, for the models served now',
        responses: responses({ description: 'OpenAPI 3.1', schema: { type: 'object' } }, {}),
      },
    },
    '/v2': {
      get: {
        operationId: 'oipServerMetadata',
        summary: 'Open Inference Protocol: server metadata',
        responses: responses({ description: 'Server metadata', schema: ref('OipServerMetadata') }, {}, true),
      },
    },
    '/v2/health/live': {
      get: {
        operationId: 'oipServerLive',
        summary: 'Open Inference Protocol: server live',
        responses: responses({ description: 'Live', schema: ref('OipServerLive') }, {}, true),
      },
    },
    '/v2/health/ready': {
      get: {
        operationId: 'oipServerReady',
        summary: 'Open Inference Protocol: server ready (the default model is loaded)',
        responses: responses({ description: 'Ready', schema: ref('OipServerReady') }, {}, true, {
          '503': { description: 'Not ready', ...jsonContent(ref('OipServerReady')) },
        }),
      },
    },
    ...versioned(
      '',
      {
        operationId: 'oipModelMetadata',
        summary: 'Open Inference Protocol: model metadata (one input per feature)',
        responses: responses(
          { description: 'Model metadata', schema: ref('OipModelMetadata') },
          MODEL_ERRORS,
          true,
        ),
      },
      'get',
    ),
    ...versioned(
      '/ready',
      {
        operationId: 'oipModelReady',
        summary: 'Open Inference Protocol: model ready',
        responses: responses(
          { description: 'Ready', schema: ref('OipModelReady') },
          { 404: ['MODEL_NOT_FOUND'] },
          true,
          {
            '503': {
              description: 'Not ready ({"name", "ready": false, "error"})',
              ...jsonContent(ref('OipModelReady')),
            },
          },
        ),
      },
      'get',
    ),
    ...versioned(
      '/infer',
      {
        operationId: 'oipInfer',
        summary: 'Open Inference Protocol: inference (scored as POST /predict is)',
        requestBody: { required: true, ...jsonContent(ref('OipInferenceRequest')) },
        responses: responses(
          { description: 'The output tensors', schema: ref('OipInferenceResponse') },
          PREDICT_ERRORS,
          true,
        ),
      },
      'post',
    ),
  };

  return {
    openapi: '3.1.0',
    info: {
      title: 'Tandem real-time API',
      version: SERVER_VERSION,
      description:
        `Predictions from the ${SERVER_NAME} real-time lane: its own routes and the Open Inference Protocol (v2) ` +
        'REST routes. A deployment uses one of the two security schemes (IAM by default). Error codes by ' +
        `status: ${Object.entries(ERROR_CODES)
          .map(([code, statuses]) => `${code} ${statuses.join('/')}`)
          .join(', ')}.`,
    },
    security: [{ sigv4: [] }, { jwt: [] }],
    paths,
    components: {
      schemas,
      securitySchemes: {
        sigv4: {
          type: 'apiKey',
          name: 'Authorization',
          in: 'header',
          description: 'AWS Signature Version 4 (service execute-api): the default, `auth: "iam"`',
          'x-amazon-apigateway-authtype': 'awsSigv4',
        },
        jwt: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'A JWT from the configured OIDC issuer and audience: `auth: { jwt: { issuer, audience } }`',
        },
      },
    },
  };
}

/** Method and path template of every route in the document (`GET /models/{name}`). */
export function documentedRoutes(document: Record<string, unknown>): string[] {
  const paths = document['paths'] as Record<string, Record<string, unknown>>;
  return Object.entries(paths).flatMap(([path, operations]) =>
    Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
  );
}
