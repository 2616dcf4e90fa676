/**
 * The zod schemas of the API's own bodies (POST /predict, /models, /health, /ready, errors): the OpenAPI
 * document is generated from them. `POST /predict` is parsed by hand (predict-request.ts: faster, and its
 * messages name each field); a catalogue test proves the schema and the parser accept and reject the
 * same bodies. Checks JSON Schema cannot state (bypassCache with an id-only instance) are refinements
 * here and prose in the document.
 */
import * as z from 'zod';
import { manifestSchema, type FeatureSpec, type Manifest } from '../manifest.ts';
import { PACKAGE_NAME } from '../names.ts';
import { MAX_ENTITY_ID_LENGTH } from '../entity-id.ts';
import { DEFAULT_LIMITS } from '../predict-request.ts';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** An entity id: a string of 1 to 256 characters (code points, as JSON Schema counts them) or an integer. */
export const entityIdSchema = z.union([
  z
    .string()
    .min(1)
    .refine((s) => s.length <= MAX_ENTITY_ID_LENGTH || [...s].length <= MAX_ENTITY_ID_LENGTH)
    .refine((s) => !LONE_SURROGATE.test(s), 'must be valid Unicode text')
    .meta({ maxLength: MAX_ENTITY_ID_LENGTH }),
  z.int().refine(Number.isSafeInteger),
]);

const modelName = z.string().regex(PACKAGE_NAME).describe('A model name; the default model when omitted.');

const controls = {
  model: modelName.optional(),
  maxStalenessSeconds: z
    .number()
    .nonnegative()
    .optional()
    .describe('The oldest precomputed prediction to serve, seconds (overrides the model cache max age).'),
  bypassCache: z
    .boolean()
    .optional()
    .describe('Score every instance with the model; then every instance needs "features".'),
};

const anyFeatures = z
  .record(z.string(), z.unknown())
  .describe('Feature values by name (see the model schemas: PredictRequest.<model>).');

function instanceFields<F extends z.ZodType>(features: F) {
  return {
    id: entityIdSchema.nullable().optional().describe('The entity id: the precomputed prediction key.'),
    features: features.optional(),
  };
}

const needsIdOrFeatures = (i: { id?: unknown; features?: unknown }) =>
  (i.id !== undefined && i.id !== null) || i.features !== undefined;

/** The `POST /predict` body with the given schema of `features`. */
export function predictRequestSchemaWith<F extends z.ZodType>(features: F) {
  const instance = z
    .strictObject(instanceFields(features))
    .refine(needsIdOrFeatures, 'needs an "id", "features", or both');
  const single = z
    .strictObject({ ...instanceFields(features), ...controls })
    .refine(needsIdOrFeatures, 'needs an "id", "features", or both');
  const many = z.strictObject({
    instances: z.array(instance).min(1).max(DEFAULT_LIMITS.maxInstances),
    ...controls,
  });
  return z.union([single, many]).superRefine((body, ctx) => {
    if (body.bypassCache !== true) return;
    const instances = 'instances' in body ? body.instances : [body];
    if (instances.some((i) => i.features === undefined)) {
      ctx.addIssue({ code: 'custom', message: '"bypassCache": true needs "features" in every instance' });
    }
  });
}

export const predictRequestSchema = predictRequestSchemaWith(anyFeatures);

/** `POST /events` (the stream lane): events put on the input stream, scored within seconds. */
export const eventsRequestSchema = z.strictObject({
  model: z.string().optional().describe('The model (default: the default model).'),
  events: z
    .array(
      z.strictObject({
        id: entityIdSchema.describe('The entity id: the partition key, and the key of its prediction.'),
        features: anyFeatures,
        eventTime: z
          .string()
          .optional()
          .describe('ISO-8601; a prediction of an older event never replaces a newer one.'),
      }),
    )
    .min(1)
    .max(500),
});

/** Per event: its sequence number on the input stream, or why the stream did not take it (send it again). */
export const eventsAcceptedSchema = z.object({
  accepted: z.int(),
  failed: z.int(),
  model: z.object({ name: z.string(), version: z.string() }),
  events: z.array(
    z.union([
      z.object({ id: z.string(), sequenceNumber: z.string() }),
      z.object({
        id: z.string(),
        error: z.object({ code: z.literal('STREAM_THROTTLED'), message: z.string() }),
      }),
    ]),
  ),
});

const feedbackItem = {
  id: entityIdSchema.describe(
    'The entity whose outcome this is: a prediction of it must exist (docs/api.md).',
  ),
  label: z
    .union([z.string(), z.number()])
    .optional()
    .describe("A classifier's outcome: one of the model's classes (exclusive with value)."),
  value: z.number().optional().describe("A regressor's outcome: a finite number (exclusive with label)."),
  observedAt: z
    .string()
    .optional()
    .describe('ISO-8601 with a zone, not in the future; default: when the request is received.'),
};
const exactlyOne = (item: { label?: unknown; value?: unknown }) =>
  (item.label === undefined) !== (item.value === undefined);
const ONE_OF = { message: 'give "label" or "value", not both' };

/** `POST /feedback`: one outcome, or up to 500 in `items`. */
export const feedbackRequestSchema = z.union([
  z.strictObject({ model: modelName.optional(), ...feedbackItem }).refine(exactlyOne, ONE_OF),
  z.strictObject({
    model: modelName.optional(),
    items: z.array(z.strictObject(feedbackItem).refine(exactlyOne, ONE_OF)).min(1).max(500),
  }),
]);

export const feedbackAcceptedSchema = z.object({
  accepted: z.int().describe('Outcomes stored (all of the request: one bad item rejects it whole).'),
  model: z.object({ name: z.string() }),
});

/** The features of one model as a JSON object schema, from its manifest. */
export function featuresSchemaOf(manifest: Manifest) {
  const shape: Record<string, z.ZodType> = {};
  for (const f of manifest.features) {
    let schema: z.ZodType;
    if (f.type === 'number' || f.type === 'integer') {
      let n = f.type === 'integer' ? z.int() : z.number();
      if (f.min !== undefined) n = n.min(f.min);
      if (f.max !== undefined) n = n.max(f.max);
      schema = n;
    } else if (f.type === 'boolean') {
      schema = z.boolean();
    } else {
      const c = f as Extract<FeatureSpec, { type: 'category' | 'string' }>;
      schema =
        c.values && c.unknown === 'reject'
          ? z.enum(c.values as [string, ...string[]])
          : z.string().max(c.maxLength);
    }
    const optional = !f.required || f.default !== undefined;
    const described = schema.describe(
      [f.description, f.default !== undefined ? `Default: ${JSON.stringify(f.default)}.` : '']
        .filter(Boolean)
        .join(' '),
    );
    shape[f.name] = optional ? described.nullable().optional() : described;
  }
  return z.strictObject(shape);
}

export const classLabelSchema = z.union([z.string(), z.number()]);

export const predictionSchema = z.union([
  z.object({
    label: classLabelSchema,
    probabilities: z.record(z.string(), z.number()).optional().describe('Probability by class label.'),
  }),
  z.object({ value: z.number() }),
  z.object({ values: z.array(z.number()) }),
]);

const modelRef = z.object({ name: z.string(), version: z.string() });

export const instanceResultSchema = z.object({
  id: z.string().nullable(),
  prediction: predictionSchema,
  source: z.enum(['cache', 'model']),
  model: modelRef,
  computedAt: z.string().describe('ISO-8601 time the prediction was computed.'),
  ageSeconds: z.number(),
  cacheStatus: z.enum([
    'hit',
    'miss',
    'stale',
    'expired',
    'version-mismatch',
    'bypassed',
    'skipped',
    'no-id',
  ]),
});

export const cacheBlockSchema = z.object({
  status: z.enum(['used', 'bypassed', 'not-needed', 'skipped']),
  reason: z.string().optional().describe('Why the table was not used (status "skipped").'),
});

export const predictResponseSchema = z.union([
  instanceResultSchema.extend({ cache: cacheBlockSchema }),
  z.object({ predictions: z.array(instanceResultSchema), cache: cacheBlockSchema }),
]);

const modelSummary = {
  name: z.string(),
  version: z.string(),
  task: z.enum(['binary-classification', 'multiclass-classification', 'regression']),
  default: z.boolean(),
  description: z.string().optional(),
};
/**
 * Why a model (or its pointer's version) is not served: the `error.code` of `/ready`, `/models` and
 * `/models/{name}`, never a request's error code (a request gets 503 MODEL_UNAVAILABLE naming one of these).
 */
export const MODEL_STATUS_CODES = [
  'MODEL_LOADING',
  'MODEL_LOAD_FAILED',
  'MODEL_CORRUPT',
  'MODEL_FILE_MISSING',
  'INVALID_MANIFEST',
  'INVALID_POINTER',
  'POINTER_MISSING',
  'VERSION_NOT_FOUND',
  'MODEL_STORE_UNAVAILABLE',
  'MODEL_NOT_FOUND',
] as const;
const modelStatusCode = z.enum(MODEL_STATUS_CODES);
const failureDetail = z.object({
  field: z.string().optional().describe('The manifest field (dotted path) the problem is about.'),
  message: z.string(),
});
/** Why a model does not load: the same shape for every kind of failure (schema, graph, file, pointer). */
const modelFailure = z.object({
  code: modelStatusCode.describe('Why the model is not served.'),
  message: z.string().describe('The precise reason, naming the file or field.'),
  details: z
    .array(failureDetail)
    .optional()
    .describe('One entry per manifest field that is wrong (schema errors and graph mismatches).'),
});
const pointerState = z
  .object({
    version: z.string().optional().describe('The version current.json names; absent when it cannot be read.'),
    serving: z.boolean().describe("The pointer's version is the one serving."),
    checkedAt: z.string().optional().describe('When this instance last read the pointer (ISO-8601).'),
    error: modelFailure
      .extend({ since: z.string().optional() })
      .optional()
      .describe("Why the pointer's version is not serving (the last good version keeps serving)."),
    canary: z
      .object({
        version: z.string().describe('The candidate version.'),
        percent: z.number().describe('The share of instances assigned to it (by a stable hash of the id).'),
        serving: z.boolean().describe('False when the candidate does not load: it takes no traffic.'),
        error: z.object({ code: modelStatusCode, message: z.string() }).optional(),
      })
      .optional()
      .describe("The pointer's canary: a candidate taking part of the traffic."),
    shadow: z
      .object({
        version: z.string().describe('The shadow version.'),
        sample: z.number().describe('The share of instances with features it scores after the live answer.'),
        serving: z.boolean().describe('False when the shadow version does not load: nothing is compared.'),
        error: z.object({ code: modelStatusCode, message: z.string() }).optional(),
      })
      .optional()
      .describe(
        "The pointer's shadow: a version scoring a sample of the instances unseen by callers, compared with the live one.",
      ),
  })
  .describe('What current.json says, and whether its version serves.');

export const modelListSchema = z.object({
  models: z.array(
    z.union([
      z.object({ ...modelSummary, error: modelFailure.optional(), pointer: pointerState.optional() }),
      z.object({ name: z.string(), default: z.boolean(), error: modelFailure }),
    ]),
  ),
});

/** `/models/{name}` of a model whose manifest cannot be read: only what is known, and why. */
export const modelFailureDocumentSchema = z.object({
  name: z.string(),
  default: z.boolean(),
  pointer: pointerState.optional(),
  error: modelFailure,
});

export const modelDocumentSchema = z.object({
  ...modelSummary,
  idField: z
    .string()
    .describe(
      'The dataset column the batch lane reads entity ids from; requests always send the id as "id".',
    ),
  features: manifestSchema.shape.features,
  outputs: manifestSchema.shape.outputs,
  cache: z.object({ maxAgeSeconds: z.number(), ttlSeconds: z.number() }),
  servingSince: z.string().optional().describe('When the serving version started serving in this instance.'),
  pointer: pointerState.optional(),
  error: modelFailure.optional(),
});

export const healthSchema = z.object({ status: z.literal('ok') });
export const readySchema = z.union([
  z.object({
    status: z.literal('ready'),
    model: modelRef.extend({ since: z.string().optional() }),
    pointer: pointerState,
  }),
  z.object({
    status: z.literal('not-ready'),
    model: z.object({ name: z.string() }),
    pointer: pointerState,
    error: z.object({ code: modelStatusCode, message: z.string() }),
  }),
]);

/**
 * Every error code the API answers with, by status. The local server's own answers (it stands in for
 * API Gateway) are marked; API Gateway's own (401, 403, 429) have the body `{"message"}`.
 */
export const ERROR_CODES: Readonly<Record<string, readonly number[]>> = {
  EMPTY_BODY: [400],
  INVALID_JSON: [400],
  INVALID_ENCODING: [400],
  INVALID_REQUEST: [400],
  INVALID_FEATURES: [400],
  TOO_MANY_INSTANCES: [400],
  BAD_REQUEST: [400],
  MODEL_NOT_FOUND: [404],
  NOT_PRECOMPUTED: [404],
  PRECOMPUTED_TOO_OLD: [404],
  ROUTE_NOT_FOUND: [404],
  METHOD_NOT_ALLOWED: [405],
  REQUEST_TIMEOUT: [408],
  PAYLOAD_TOO_LARGE: [413],
  UNSUPPORTED_MEDIA_TYPE: [415],
  HEADERS_TOO_LARGE: [431],
  INFERENCE_FAILED: [500],
  INTERNAL: [500],
  MODEL_UNAVAILABLE: [503],
  CACHE_UNAVAILABLE: [503],
  STREAM_LANE_OFF: [404],
  STREAM_UNAVAILABLE: [503],
  SERVER_BUSY: [503],
  INVALID_FEEDBACK: [400],
  UNKNOWN_ID: [400],
  FEEDBACK_OFF: [404],
  FEEDBACK_CHECK_UNAVAILABLE: [503],
  FEEDBACK_NOT_STORED: [503],
};

/** Codes only the local server (`npm start`) answers with. */
export const LOCAL_ONLY_CODES: readonly string[] = [
  'BAD_REQUEST',
  'REQUEST_TIMEOUT',
  'HEADERS_TOO_LARGE',
  'SERVER_BUSY',
];

export const errorSchema = z.object({
  error: z.object({
    code: z.enum(Object.keys(ERROR_CODES) as [string, ...string[]]),
    message: z.string(),
    details: z
      .array(
        z.object({
          field: z.string().optional(),
          message: z.string(),
          instance: z.int().optional().describe('Index of the instance in a multi-instance request.'),
        }),
      )
      .optional(),
    requestId: z.string(),
  }),
});

export const gatewayErrorSchema = z.object({ message: z.string() });
