/**
 * The Open Inference Protocol (KServe v2) REST bodies: their zod schemas (the OpenAPI document is generated
 * from the same ones), the translation of an inference request into a PredictRequest (so it is validated
 * and scored exactly as `POST /predict` is), and the protocol's tensors out of the predictions.
 */
import * as z from 'zod';
import { ValidationError, type ErrorDetail } from '../errors.ts';
import type { InputSpec, Manifest } from '../manifest.ts';
import { parsePredictRequest, type PredictRequest, type RequestLimits } from '../predict-request.ts';
import type { InstanceResult } from '../prediction-service.ts';

/** What `GET /v2` reports (kept equal to package.json's version by a test). */
export const SERVER_NAME = 'tandem';
export const SERVER_VERSION = '0.1.0';

export const OIP_DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
] as const;
export type OipDatatype = (typeof OIP_DATATYPES)[number];

const INTEGER_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  INT8: [-128, 127],
  INT16: [-32_768, 32_767],
  INT32: [-2_147_483_648, 2_147_483_647],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  UINT8: [0, 255],
  UINT16: [0, 65_535],
  UINT32: [0, 4_294_967_295],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
};

const parameterValue = z.union([z.string(), z.number(), z.boolean()]);
const parameters = z
  .record(z.string(), z.unknown())
  .describe('Key/value parameters ($parameters): values are strings, numbers or booleans.');

export const oipRequestParametersSchema = z
  .object({
    ids: z
      .array(z.union([z.string(), z.number().int()]))
      .optional()
      .describe(
        'Tandem extension: one entity id per row. Rows with an id are answered from the precomputed ' +
          'predictions table when a fresh one is there (as POST /predict does); with no inputs, every row is.',
      ),
    bypass_cache: z.boolean().optional().describe('Tandem extension: score every row, read no table item.'),
    max_staleness_seconds: z
      .number()
      .nonnegative()
      .optional()
      .describe('Tandem extension: the oldest precomputed prediction to serve, seconds.'),
  })
  .catchall(z.unknown());

export const oipTensorDataSchema = z
  .array(z.unknown())
  .describe('The tensor elements in row-major order, flat or nested (nested arrays are flattened).');

export const oipRequestInputSchema = z.object({
  name: z.string().min(1),
  shape: z.array(z.number().int().nonnegative()),
  datatype: z.enum(OIP_DATATYPES),
  parameters: parameters.optional(),
  data: oipTensorDataSchema,
});

export const oipInferenceRequestSchema = z.object({
  id: z.string().optional(),
  parameters: oipRequestParametersSchema.optional(),
  inputs: z.array(oipRequestInputSchema),
  outputs: z.array(z.object({ name: z.string().min(1), parameters: parameters.optional() })).optional(),
});
export type OipInferenceRequest = z.output<typeof oipInferenceRequestSchema>;

export const oipResponseOutputSchema = z.object({
  name: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  datatype: z.enum(OIP_DATATYPES),
  parameters: z.record(z.string(), parameterValue).optional(),
  data: z.array(z.union([z.string(), z.number(), z.boolean()])),
});
export type OipResponseOutput = z.output<typeof oipResponseOutputSchema>;

export const oipInferenceResponseSchema = z.object({
  model_name: z.string(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  parameters: z.record(z.string(), parameterValue).optional(),
  outputs: z.array(oipResponseOutputSchema),
});
export type OipInferenceResponse = z.output<typeof oipInferenceResponseSchema>;

export const oipMetadataTensorSchema = z.object({
  name: z.string(),
  datatype: z.enum(OIP_DATATYPES),
  shape: z.array(z.number().int().min(-1)).describe('-1 is a variable-size dimension (the rows).'),
});
export type OipMetadataTensor = z.output<typeof oipMetadataTensorSchema>;

export const oipModelMetadataSchema = z.object({
  name: z.string(),
  versions: z.array(z.string()).optional(),
  platform: z.string(),
  inputs: z.array(oipMetadataTensorSchema),
  outputs: z.array(oipMetadataTensorSchema),
});
export type OipModelMetadata = z.output<typeof oipModelMetadataSchema>;

export const oipServerMetadataSchema = z.object({
  name: z.string(),
  version: z.string(),
  extensions: z.array(z.string()),
});
export const oipServerLiveSchema = z.object({ live: z.boolean() });
export const oipServerReadySchema = z.object({ live: z.boolean(), ready: z.boolean() });
export const oipModelReadySchema = z.object({ name: z.string(), ready: z.boolean() });
export const oipErrorSchema = z.object({ error: z.string() });

/** What the translation needs of a served model. */
export interface OipModel {
  readonly manifest: Manifest;
  readonly inputs: readonly InputSpec[];
  readonly classes: readonly (string | number)[] | undefined;
}

/** The datatype advertised for one feature sent as its own input. */
function featureDatatype(model: OipModel, name: string): OipDatatype {
  const feature = model.manifest.features.find((f) => f.name === name)!;
  if (feature.type === 'boolean') return 'BOOL';
  if (feature.type === 'integer') return 'INT64';
  if (feature.type === 'category' || feature.type === 'string') return 'BYTES';
  const input = model.inputs.find((i) => i.features.includes(name));
  return input?.type === 'float32' ? 'FP32' : 'FP64';
}

/** The output tensors a model's responses carry, in order. */
export function outputTensors(model: OipModel): OipMetadataTensor[] {
  const outputs: OipMetadataTensor[] = [];
  if (model.manifest.task === 'regression') {
    outputs.push({ name: 'value', datatype: 'FP64', shape: [-1] });
  } else {
    const stringLabels = model.classes === undefined || model.classes.some((c) => typeof c === 'string');
    outputs.push({ name: 'label', datatype: stringLabels ? 'BYTES' : 'INT64', shape: [-1] });
    if (model.manifest.outputs.probabilities) {
      outputs.push({ name: 'probabilities', datatype: 'FP64', shape: [-1, model.classes?.length ?? -1] });
    }
  }
  outputs.push({ name: 'source', datatype: 'BYTES', shape: [-1] });
  return outputs;
}

/** The model metadata: one input per feature (the tabular form); the outputs of outputTensors. */
export function modelMetadata(model: OipModel, version: string): OipModelMetadata {
  return {
    name: model.manifest.name,
    versions: [version],
    platform: 'onnx_onnxv1',
    inputs: model.manifest.features.map((f) => ({
      name: f.name,
      datatype: featureDatatype(model, f.name),
      shape: [-1],
    })),
    outputs: outputTensors(model),
  };
}

function describeElement(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/** Row-major elements of flat or nested data. */
function flatten(data: readonly unknown[]): unknown[] {
  return data.some(Array.isArray) ? (data as unknown[]).flat(Infinity) : (data as unknown[]);
}

/** Why an element is not of the input's datatype, or undefined when it is. */
function elementProblem(datatype: OipDatatype, value: unknown): string | undefined {
  if (datatype === 'BOOL') return typeof value === 'boolean' ? undefined : 'not a boolean';
  if (datatype === 'BYTES') return typeof value === 'string' ? undefined : 'not a string';
  if (typeof value !== 'number') return 'not a number';
  const range = INTEGER_RANGES[datatype];
  if (!range) return undefined;
  if (!Number.isInteger(value)) return 'not an integer';
  if (value < range[0] || value > range[1]) return `outside the ${datatype} range`;
  return undefined;
}

function fail(message: string, field: string, instance?: number): never {
  throw new ValidationError('INVALID_REQUEST', message, {
    details: [{ field, message, ...(instance === undefined ? {} : { instance }) }],
  });
}

/** A translated request: the PredictRequest, and where each feature came from (for error messages). */
export interface OipTranslation {
  readonly request: PredictRequest;
  /** Feature name -> how the caller sent it (`input "amount"`, `input "numeric" column 0`). */
  readonly sources: ReadonlyMap<string, string>;
  readonly requestedOutputs: readonly string[] | undefined;
}

function parseBody(body: unknown): OipInferenceRequest {
  const parsed = oipInferenceRequestSchema.safeParse(body);
  if (parsed.success) return parsed.data;
  const details: ErrorDetail[] = parsed.error.issues.map((issue) => ({
    field: issue.path.map(String).join('.') || '(root)',
    message: issue.message,
  }));
  const shown = details.slice(0, 3).map((d) => `${d.field}: ${d.message}`);
  throw new ValidationError('INVALID_REQUEST', `invalid inference request: ${shown.join('; ')}`, { details });
}

/** Reads a column-per-feature or ONNX-input request into `features` objects, one per row. */
export function translateInferenceRequest(
  body: unknown,
  model: OipModel,
  limits: RequestLimits,
): OipTranslation {
  const request = parseBody(body);
  const params = request.parameters ?? {};
  const ids = params.ids;
  const featureNames = new Set(model.manifest.features.map((f) => f.name));
  const featureByName = new Map(model.manifest.features.map((f) => [f.name, f]));
  const onnxInputs = new Map(model.inputs.map((input) => [input.name, input]));
  const sources = new Map<string, string>();
  const seen = new Set<string>();

  let rows: number | undefined = ids?.length;
  const firstInput = request.inputs[0];
  if (rows === undefined && firstInput) {
    if (firstInput.shape.length === 0) {
      fail(`input "${firstInput.name}" has shape []: its first dimension is the rows`, 'inputs.0.shape');
    }
    rows = firstInput.shape[0];
  }
  if (rows === undefined) {
    fail(
      'the request has no inputs: send one input per feature, or "parameters.ids" to read precomputed predictions',
      'inputs',
    );
  }
  if (rows === 0) fail('the inputs have no rows', 'inputs');
  if (rows > limits.maxInstances) {
    throw new ValidationError(
      'TOO_MANY_INSTANCES',
      `too many rows: ${rows}; the limit is ${limits.maxInstances} per request`,
      { details: [{ field: 'inputs', message: `at most ${limits.maxInstances} rows` }] },
    );
  }
  const features: Record<string, unknown>[] | undefined =
    request.inputs.length > 0 ? Array.from({ length: rows }, () => ({})) : undefined;

  for (const [k, input] of request.inputs.entries()) {
    const field = `inputs.${k}`;
    const where = `input "${input.name}"`;
    if (seen.has(input.name)) fail(`${where} is sent twice`, field);
    seen.add(input.name);
    const values = flatten(input.data);
    const elements = input.shape.reduce((a, b) => a * b, 1);
    if (values.length !== elements) {
      fail(
        `${where} has shape [${input.shape.join(', ')}] (${elements} elements) but ${values.length} data elements`,
        field,
      );
    }
    if (input.shape[0] !== rows) {
      fail(
        `${where} has ${input.shape[0] ?? 0} rows but the request has ${rows}${ids ? ' (parameters.ids)' : ''}`,
        field,
      );
    }
    for (let i = 0; i < values.length; i++) {
      const problem = elementProblem(input.datatype, values[i]);
      if (problem) {
        const width = values.length / rows;
        const at = width === 1 ? `row ${i}` : `row ${Math.floor(i / width)} column ${i % width}`;
        fail(
          `${where} (${input.datatype}) ${at} is ${describeElement(values[i])}: ${problem}`,
          field,
          Math.floor(i / width),
        );
      }
    }
    if (featureNames.has(input.name)) {
      if (input.shape.length > 2 || (input.shape.length === 2 && input.shape[1] !== 1)) {
        fail(
          `${where} is one feature: its shape must be [${rows}] or [${rows}, 1], not [${input.shape.join(', ')}]`,
          field,
        );
      }
      if (sources.has(input.name))
        fail(`feature "${input.name}" is sent twice (also in ${sources.get(input.name)})`, field);
      sources.set(input.name, where);
      for (let r = 0; r < rows; r++) features![r]![input.name] = values[r];
      continue;
    }
    const onnx = onnxInputs.get(input.name);
    if (!onnx) {
      const takes = [...featureNames].slice(0, 20).join(', ');
      fail(
        `${where} is not an input of model "${model.manifest.name}": send one input per feature (${takes}${featureNames.size > 20 ? ', …' : ''}) or the ONNX inputs (${[...onnxInputs.keys()].join(', ')})`,
        field,
      );
    }
    const width = onnx.features.length;
    const shapeOk =
      (input.shape.length === 2 && input.shape[1] === width) || (input.shape.length === 1 && width === 1);
    if (!shapeOk) {
      fail(
        `${where} is the ONNX input of ${width} columns: its shape must be [${rows}, ${width}], not [${input.shape.join(', ')}]`,
        field,
      );
    }
    onnx.features.forEach((name, column) => {
      if (sources.has(name)) fail(`feature "${name}" is sent twice (also in ${sources.get(name)})`, field);
      const source = `${where} column ${column} ("${name}")`;
      sources.set(name, source);
      const spec = featureByName.get(name)!;
      for (let r = 0; r < rows; r++) {
        let value = values[r * width + column];
        // A numeric tensor holds a category's index in `values` and a boolean as 0 or 1: read them back.
        if (onnx.type !== 'string' && 'values' in spec && spec.values && typeof value === 'number') {
          const category = Number.isInteger(value) ? spec.values[value] : undefined;
          if (category === undefined) {
            fail(
              `${source} row ${r} is ${value}: not the index of one of ${spec.values.length} categories`,
              field,
              r,
            );
          }
          value = category;
        } else if (spec.type === 'boolean' && typeof value === 'number') {
          if (value !== 0 && value !== 1)
            fail(`${source} row ${r} is ${value}: a boolean column takes 0 or 1`, field, r);
          value = value === 1;
        }
        features![r]![name] = value;
      }
    });
  }

  const requestedOutputs = request.outputs?.map((o) => o.name);
  if (requestedOutputs) {
    const known = new Set(outputTensors(model).map((o) => o.name));
    const unknown = requestedOutputs.find((name) => !known.has(name));
    if (unknown !== undefined) {
      fail(
        `output "${unknown}" is not an output of model "${model.manifest.name}" (it has: ${[...known].join(', ')})`,
        'outputs',
      );
    }
  }

  const instances = Array.from({ length: rows }, (_, r) => ({
    ...(ids ? { id: ids[r] } : {}),
    ...(features ? { features: features[r] } : {}),
  }));
  let predict: PredictRequest;
  try {
    predict = parsePredictRequest(
      {
        instances,
        ...(params.bypass_cache === undefined ? {} : { bypassCache: params.bypass_cache }),
        ...(params.max_staleness_seconds === undefined
          ? {}
          : { maxStalenessSeconds: params.max_staleness_seconds }),
      },
      limits,
    );
  } catch (error) {
    throw error instanceof ValidationError ? renameFields(error, sources) : error;
  }
  return { request: predict, sources, requestedOutputs };
}

const INSTANCE_FIELD = /^instances\.(\d+)\.(id|features)(?:\.(.+))?$/;

function renameField(detail: ErrorDetail, sources: ReadonlyMap<string, string>): ErrorDetail {
  const match = detail.field === undefined ? null : INSTANCE_FIELD.exec(detail.field);
  if (!match) {
    const field = detail.field === 'bypassCache' ? 'parameters.bypass_cache' : detail.field;
    return field === detail.field ? detail : { ...detail, field };
  }
  const row = Number(match[1]);
  if (match[2] === 'id') return { instance: row, field: `parameters.ids.${row}`, message: detail.message };
  const feature = match[3];
  if (feature === undefined) {
    return { instance: row, field: 'inputs', message: `row ${row}: ${detail.message}` };
  }
  const source = sources.get(feature) ?? `input "${feature}" (not sent)`;
  return { instance: row, field: feature, message: `${source} row ${row}: ${detail.message}` };
}

/**
 * The same error with each `instances.<row>.features.<name>` detail named as the caller sent it: the
 * input (and column) and the row.
 */
export function renameFields(error: ValidationError, sources: ReadonlyMap<string, string>): ValidationError {
  const details = (error.details ?? []).map((d) => renameField(d, sources));
  if (details.length === 0) return error;
  const shown = details
    .slice(0, 3)
    .map((d) => (d.message.startsWith('input') ? d.message : `${d.field} ${d.message}`));
  return new ValidationError(
    error.code,
    `${details.length} invalid value${details.length === 1 ? '' : 's'}: ${shown.join('; ')}${details.length > 3 ? '; …' : ''}`,
    { details },
  );
}

function isClassPrediction(
  p: InstanceResult['prediction'],
): p is { label: string | number; probabilities?: Record<string, number> } {
  return 'label' in p;
}

/** The protocol's response: label / probabilities / value tensors and each row's source. */
export function inferenceResponse(
  model: OipModel,
  version: string,
  results: readonly InstanceResult[],
  options: { readonly id?: string; readonly outputs?: readonly string[]; readonly cache: string },
): OipInferenceResponse {
  const rows = results.length;
  const outputs: OipResponseOutput[] = [];
  const want = (name: string) => options.outputs === undefined || options.outputs.includes(name);
  const metadata = new Map(outputTensors(model).map((o) => [o.name, o]));
  if (model.manifest.task === 'regression') {
    if (want('value')) {
      const targets = results.map((r) =>
        'values' in r.prediction ? r.prediction.values : [(r.prediction as { value: number }).value],
      );
      const width = targets[0]?.length ?? 1;
      outputs.push({
        name: 'value',
        datatype: 'FP64',
        shape: width === 1 ? [rows] : [rows, width],
        data: targets.flat(),
      });
    }
  } else {
    const predictions = results.map((r) => r.prediction).filter(isClassPrediction);
    if (want('label')) {
      outputs.push({
        name: 'label',
        datatype: metadata.get('label')!.datatype,
        shape: [rows],
        data: predictions.map((p) => p.label),
      });
    }
    const classes = model.classes;
    if (want('probabilities') && metadata.has('probabilities') && classes) {
      const keys = classes.map(String);
      outputs.push({
        name: 'probabilities',
        datatype: 'FP64',
        shape: [rows, keys.length],
        // Parameter values are strings, numbers or booleans: the class list goes as JSON text.
        parameters: { classes: JSON.stringify(classes) },
        data: predictions.flatMap((p) => keys.map((key) => p.probabilities?.[key] ?? 0)),
      });
    }
  }
  if (want('source')) {
    outputs.push({ name: 'source', datatype: 'BYTES', shape: [rows], data: results.map((r) => r.source) });
  }
  return {
    model_name: model.manifest.name,
    model_version: version,
    ...(options.id === undefined ? {} : { id: options.id }),
    parameters: { cache: options.cache },
    outputs,
  };
}
