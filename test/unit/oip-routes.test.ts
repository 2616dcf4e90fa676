/**
 * The Open Inference Protocol (v2) REST routes, driven by requests written by hand from the protocol's
 * specification (kserve/open-inference-protocol, specification/protocol/inference_rest.md): the bodies
 * below are literal JSON, not produced by our serializer. Every answer is checked against the protocol's
 * response objects (the zod schemas the OpenAPI document is generated from, made strict where the spec
 * fixes the fields), and inference is checked against POST /predict for the same rows.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { predictionKey, storedPrediction, type StoredPrediction } from '../../lambdas/core/cache-policy.ts';
import { PredictionStoreError } from '../../lambdas/core/errors.ts';
import { ModelRegistry } from '../../lambdas/core/model-registry.ts';
import type { PredictionStore } from '../../lambdas/core/ports.ts';
import { DEFAULT_LIMITS } from '../../lambdas/core/predict-request.ts';
import { PredictionService } from '../../lambdas/core/prediction-service.ts';
import {
  SERVER_VERSION,
  oipErrorSchema,
  oipInferenceResponseSchema,
  oipModelMetadataSchema,
  oipModelReadySchema,
  oipServerMetadataSchema,
} from '../../lambdas/core/protocols/oip.ts';
import { createApiHandler, type ApiHandler } from '../../lambdas/handlers/api/api-handler.ts';
import { ApiMetrics, PowertoolsMetrics } from '../../lambdas/handlers/api/api-metrics.ts';
import { apiEvent, lambdaContext } from '../support/api-events.ts';
import { tinyExpected, tinyManifest, tinyModelBytes } from '../support/tiny-model.ts';

const FRAUD = path.resolve('models/fraud-detector/1.0.0');
let root: string;
let handler: ApiHandler;
let registry: ModelRegistry;
const items = new Map<string, StoredPrediction>();
const store: PredictionStore = {
  getMany: async (keys) => new Map(keys.filter((k) => items.has(k)).map((k) => [k, items.get(k)!])),
  putMany: async () => ({ written: 0, skipped: 0 }),
};

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tandem-oip-'));
  await cp(FRAUD, path.join(root, 'fraud-detector', '1.0.0'), { recursive: true });
  await writeFile(path.join(root, 'fraud-detector', 'current.json'), '{"version":"1.0.0"}');
  await mkdir(path.join(root, 'tiny', '1'), { recursive: true });
  await writeFile(path.join(root, 'tiny', '1', 'manifest.json'), JSON.stringify(tinyManifest('1')));
  await writeFile(path.join(root, 'tiny', '1', 'model.onnx'), tinyModelBytes());
  await writeFile(path.join(root, 'tiny', 'current.json'), '{"version":"1"}');
  // A manifest whose model file is missing: listed, never ready.
  await mkdir(path.join(root, 'broken', '1'), { recursive: true });
  await writeFile(
    path.join(root, 'broken', '1', 'manifest.json'),
    JSON.stringify({ ...tinyManifest('1'), name: 'broken' }),
  );
  await writeFile(path.join(root, 'broken', 'current.json'), '{"version":"1"}');
  items.set(
    predictionKey('tiny', '1', 'known'),
    storedPrediction(
      {
        model: 'tiny',
        entityId: 'known',
        prediction: { label: 'b', probabilities: { a: 0.2, b: 0.7, c: 0.1 } },
        modelVersion: '1',
        computedAt: Date.now() - 5_000,
        source: 'batch',
      },
      86_400,
    ),
  );
  registry = new ModelRegistry(new FsModelSource(root), {
    defaultModel: 'fraud-detector',
    refreshSeconds: 60,
    retryFailedSeconds: 10,
  });
  handler = createApiHandler({
    registry,
    service: new PredictionService(store, { cacheBudgetMs: 100, writeThrough: false }),
    limits: { ...DEFAULT_LIMITS, maxInstances: 5, maxBodyBytes: 16_384 },
    logger: new Logger({ serviceName: 'test', logLevel: 'ERROR' }),
    metrics: new ApiMetrics(new PowertoolsMetrics({ namespace: 'Test', serviceName: 'test' }), 0),
    logPayloads: false,
  });
}, 60_000);
afterAll(async () => {
  await registry.close();
  await rm(root, { recursive: true, force: true });
}, 60_000);

async function call(method: string, route: string, body?: unknown) {
  const result = await handler(apiEvent(method, route, body), lambdaContext());
  return {
    status: result.statusCode,
    headers: result.headers ?? {},
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- bodies are read field by field
    body: JSON.parse(result.body) as Record<string, any>,
  };
}

/** An error answer: the protocol's `{"error": $string}` and nothing else. */
async function expectError(
  method: string,
  route: string,
  body: unknown,
  status: number,
  message: RegExp,
): Promise<void> {
  const response = await call(method, route, body);
  expect(response.status).toBe(status);
  expect(oipErrorSchema.strict().parse(response.body).error).toMatch(message);
}

/** Two demo transactions, as POST /predict takes them. */
const ROWS = [
  {
    amount: 23.34,
    hour_of_day: 18,
    day_of_week: 1,
    merchant_category: 'gambling',
    channel: 'swipe',
    card_present: true,
    is_international: false,
    distance_from_home_km: 18.36,
    txn_count_1h: 1,
    txn_count_24h: 3,
    amount_to_avg_ratio: 0.7732,
    account_age_days: 234,
    customer_age: 44,
    failed_pin_24h: 0,
    new_device: false,
    merchant_risk_score: 0.651,
    prior_chargebacks: 0,
  },
  {
    amount: 4999.0,
    hour_of_day: 3,
    day_of_week: 6,
    merchant_category: 'electronics',
    channel: 'online',
    card_present: false,
    is_international: true,
    distance_from_home_km: 8000,
    txn_count_1h: 9,
    txn_count_24h: 30,
    amount_to_avg_ratio: 40,
    account_age_days: 12,
    customer_age: 22,
    failed_pin_24h: 3,
    new_device: true,
    merchant_risk_score: 0.95,
    prior_chargebacks: 2,
  },
];

/** The same two rows as the protocol's tabular form: one input per feature, written out by hand. */
const TABULAR_INPUTS = [
  { name: 'amount', shape: [2], datatype: 'FP32', data: [23.34, 4999.0] },
  { name: 'hour_of_day', shape: [2], datatype: 'INT64', data: [18, 3] },
  { name: 'day_of_week', shape: [2], datatype: 'INT64', data: [1, 6] },
  { name: 'merchant_category', shape: [2], datatype: 'BYTES', data: ['gambling', 'electronics'] },
  { name: 'channel', shape: [2], datatype: 'BYTES', data: ['swipe', 'online'] },
  { name: 'card_present', shape: [2], datatype: 'BOOL', data: [true, false] },
  { name: 'is_international', shape: [2], datatype: 'BOOL', data: [false, true] },
  { name: 'distance_from_home_km', shape: [2], datatype: 'FP32', data: [18.36, 8000] },
  { name: 'txn_count_1h', shape: [2], datatype: 'INT64', data: [1, 9] },
  { name: 'txn_count_24h', shape: [2], datatype: 'INT64', data: [3, 30] },
  { name: 'amount_to_avg_ratio', shape: [2], datatype: 'FP32', data: [0.7732, 40] },
  { name: 'account_age_days', shape: [2], datatype: 'INT64', data: [234, 12] },
  { name: 'customer_age', shape: [2], datatype: 'INT64', data: [44, 22] },
  { name: 'failed_pin_24h', shape: [2], datatype: 'INT64', data: [0, 3] },
  { name: 'new_device', shape: [2], datatype: 'BOOL', data: [false, true] },
  { name: 'merchant_risk_score', shape: [2], datatype: 'FP32', data: [0.651, 0.95] },
  { name: 'prior_chargebacks', shape: [2], datatype: 'INT64', data: [0, 2] },
];

async function predicted() {
  const response = await call('POST', '/predict', { instances: ROWS.map((features) => ({ features })) });
  expect(response.status).toBe(200);
  return response.body['predictions'] as {
    prediction: { label: number; probabilities: Record<string, number> };
  }[];
}

describe('health and metadata', () => {
  it('GET /v2 is the server metadata object', async () => {
    const response = await call('GET', '/v2');
    expect(response.status).toBe(200);
    expect(oipServerMetadataSchema.strict().parse(response.body)).toEqual({
      name: 'tandem',
      version: SERVER_VERSION,
      extensions: [],
    });
  });

  it('GET /v2/health/live and /v2/health/ready answer 200 with their booleans', async () => {
    expect(await call('GET', '/v2/health/live')).toMatchObject({ status: 200, body: { live: true } });
    expect(await call('GET', '/v2/health/ready')).toMatchObject({
      status: 200,
      body: { live: true, ready: true },
    });
  });

  it('model metadata lists one input per feature with the protocol datatypes, and the output tensors', async () => {
    for (const route of ['/v2/models/fraud-detector', '/v2/models/fraud-detector/versions/1.0.0']) {
      const response = await call('GET', route);
      expect(response.status).toBe(200);
      const metadata = oipModelMetadataSchema.strict().parse(response.body);
      expect(metadata).toMatchObject({
        name: 'fraud-detector',
        versions: ['1.0.0'],
        platform: 'onnx_onnxv1',
      });
      expect(metadata.inputs).toHaveLength(17);
      const byName = new Map(metadata.inputs.map((i) => [i.name, i]));
      expect(byName.get('amount')).toEqual({ name: 'amount', datatype: 'FP32', shape: [-1] });
      expect(byName.get('hour_of_day')).toEqual({ name: 'hour_of_day', datatype: 'INT64', shape: [-1] });
      expect(byName.get('merchant_category')).toEqual({
        name: 'merchant_category',
        datatype: 'BYTES',
        shape: [-1],
      });
      expect(byName.get('card_present')).toEqual({ name: 'card_present', datatype: 'BOOL', shape: [-1] });
      expect(metadata.outputs.map((o) => o.name)).toEqual(['label', 'probabilities', 'source']);
      expect(metadata.outputs[1]).toEqual({ name: 'probabilities', datatype: 'FP64', shape: [-1, 2] });
    }
  });

  it('model ready is {"name", "ready": true} for a served model, with or without its version', async () => {
    for (const route of ['/v2/models/tiny/ready', '/v2/models/tiny/versions/1/ready']) {
      const response = await call('GET', route);
      expect(response.status).toBe(200);
      expect(oipModelReadySchema.strict().parse(response.body)).toEqual({ name: 'tiny', ready: true });
    }
  });

  it('a model that cannot load is not ready: 503 {"name", "ready": false, "error"}', async () => {
    const response = await call('GET', '/v2/models/broken/ready');
    expect(response.status).toBe(503);
    expect(response.body).toMatchObject({ name: 'broken', ready: false });
    expect(response.body['error']).toMatch(/model "broken" is not ready \(MODEL_FILE_MISSING\)/);
  });

  it.each([
    ['GET', '/v2/models/mymodel', /no model named "mymodel"/],
    ['GET', '/v2/models/mymodel/ready', /no model named "mymodel"/],
    [
      'GET',
      '/v2/models/fraud-detector/versions/v10',
      /no version "v10" served: the live version is "1\.0\.0"/,
    ],
    ['GET', '/v2/models/tiny/versions/2/ready', /no version "2" served: the live version is "1"/],
  ])('%s %s is 404 with the protocol error object', async (method, route, message) => {
    await expectError(method, route, undefined, 404, message);
  });

  it('routes under /v2 answer a wrong method and an unknown path in the protocol error shape', async () => {
    await expectError('GET', '/v2/models/tiny/infer', undefined, 405, /GET is not allowed.*use POST/);
    await expectError('GET', '/v2/repository/index', undefined, 404, /no route GET \/v2\/repository\/index/);
  });
});

describe('inference', () => {
  it('the tabular form (one input per feature) scores as POST /predict does', async () => {
    const response = await call('POST', '/v2/models/fraud-detector/infer', {
      id: '42',
      inputs: TABULAR_INPUTS,
    });
    expect(response.status).toBe(200);
    const body = oipInferenceResponseSchema.strict().parse(response.body);
    expect(body).toMatchObject({ model_name: 'fraud-detector', model_version: '1.0.0', id: '42' });
    const expected = await predicted();
    const [label, probabilities, source] = body.outputs;
    expect(label).toEqual({
      name: 'label',
      datatype: 'INT64',
      shape: [2],
      data: expected.map((p) => p.prediction.label),
    });
    expect(probabilities!.shape).toEqual([2, 2]);
    const classes = JSON.parse(String(probabilities!.parameters!['classes'])) as number[];
    expect(classes).toEqual([0, 1]);
    expect(probabilities!.data).toEqual(
      expected.flatMap((p) => classes.map((c) => p.prediction.probabilities[String(c)])),
    );
    expect(source).toEqual({ name: 'source', datatype: 'BYTES', shape: [2], data: ['model', 'model'] });
  });

  it('takes [n, 1] shapes and nested data, and the ONNX input names ([n, width], categories and booleans as the tensor holds them)', async () => {
    const expected = await predicted();
    const numericColumns = [
      'amount',
      'hour_of_day',
      'day_of_week',
      'card_present',
      'is_international',
      'distance_from_home_km',
      'txn_count_1h',
      'txn_count_24h',
      'amount_to_avg_ratio',
      'account_age_days',
      'customer_age',
      'failed_pin_24h',
      'new_device',
      'merchant_risk_score',
      'prior_chargebacks',
    ] as const;
    const numeric = ROWS.map((row) =>
      numericColumns.map((c) => (typeof row[c] === 'boolean' ? (row[c] ? 1 : 0) : row[c])),
    );
    const response = await call('POST', '/v2/models/fraud-detector/versions/1.0.0/infer', {
      inputs: [
        { name: 'numeric', shape: [2, 15], datatype: 'FP32', data: numeric },
        {
          name: 'merchant_category',
          shape: [2, 1],
          datatype: 'BYTES',
          data: [['gambling'], ['electronics']],
        },
        { name: 'channel', shape: [2, 1], datatype: 'BYTES', data: ['swipe', 'online'] },
      ],
    });
    expect(response.status).toBe(200);
    const body = oipInferenceResponseSchema.strict().parse(response.body);
    expect(body.id).toBeUndefined();
    expect(body.outputs[0]!.data).toEqual(expected.map((p) => p.prediction.label));
  });

  it('takes a single-input model by its ONNX input name', async () => {
    const response = await call('POST', '/v2/models/tiny/infer', {
      inputs: [{ name: 'X', shape: [1, 2], datatype: 'FP32', data: [1.5, -0.5] }],
      outputs: [{ name: 'probabilities' }],
    });
    expect(response.status).toBe(200);
    const body = oipInferenceResponseSchema.strict().parse(response.body);
    const expected = tinyExpected(1.5, -0.5);
    expect(body.outputs.map((o) => o.name)).toEqual(['probabilities']);
    expect(body.outputs[0]!.parameters).toEqual({ classes: '["a","b","c"]' });
    const data = body.outputs[0]!.data as number[];
    ['a', 'b', 'c'].forEach((c, i) => expect(data[i]).toBeCloseTo(expected.probabilities[c]!, 6));
  });

  it('parameters.ids makes it cache-first: a precomputed row comes from the table, the other from the model', async () => {
    const response = await call('POST', '/v2/models/tiny/infer', {
      parameters: { ids: ['known', 'unknown'] },
      inputs: [
        { name: 'x1', shape: [2], datatype: 'FP64', data: [2, 2] },
        { name: 'x2', shape: [2], datatype: 'FP64', data: [0, 0] },
      ],
    });
    expect(response.status).toBe(200);
    expect(response.headers['x-tandem-cache']).toBe('used');
    const body = oipInferenceResponseSchema.strict().parse(response.body);
    expect(body.parameters).toEqual({ cache: 'used' });
    const byName = new Map(body.outputs.map((o) => [o.name, o.data]));
    expect(byName.get('source')).toEqual(['cache', 'model']);
    expect(byName.get('label')).toEqual(['b', tinyExpected(2).label]);
    expect((byName.get('probabilities') as number[]).slice(0, 3)).toEqual([0.2, 0.7, 0.1]);
  });

  it('with parameters.ids and no inputs, every row is read from the table; a row with nothing precomputed is 404', async () => {
    const hit = await call('POST', '/v2/models/tiny/infer', { parameters: { ids: ['known'] }, inputs: [] });
    expect(hit.status).toBe(200);
    expect(oipInferenceResponseSchema.parse(hit.body).outputs[0]!.data).toEqual(['b']);
    await expectError(
      'POST',
      '/v2/models/tiny/infer',
      { parameters: { ids: ['never-scored'] }, inputs: [] },
      404,
      /nothing is precomputed/,
    );
  });

  it('a table that cannot be read: the model answers, the response says "skipped" and the reason is logged', async () => {
    const logger = new Logger({ serviceName: 'test', logLevel: 'WARN' });
    const warn = jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
    const failing: PredictionStore = {
      getMany: async () => {
        // What the DynamoDB adapter throws for a throttled read (the store's kind, not the SDK's name).
        throw new PredictionStoreError('STORE_THROTTLED', 'ThrottlingException: Rate exceeded');
      },
      putMany: async () => ({ written: 0, skipped: 0 }),
    };
    const degraded = createApiHandler({
      registry,
      service: new PredictionService(failing, { cacheBudgetMs: 100, writeThrough: false }),
      limits: DEFAULT_LIMITS,
      logger,
      metrics: new ApiMetrics(new PowertoolsMetrics({ namespace: 'Test', serviceName: 'test' }), 0),
      logPayloads: false,
    });
    const result = await degraded(
      apiEvent('POST', '/v2/models/tiny/infer', {
        parameters: { ids: ['known'] },
        inputs: [{ name: 'x1', shape: [1], datatype: 'FP64', data: [2] }],
      }),
      lambdaContext(),
    );
    expect(result.statusCode).toBe(200);
    const body = oipInferenceResponseSchema.parse(JSON.parse(result.body));
    expect(body.parameters).toEqual({ cache: 'skipped' });
    expect(body.outputs.find((o) => o.name === 'source')!.data).toEqual(['model']);
    expect(warn).toHaveBeenCalledWith(
      'predicted',
      expect.objectContaining({
        cache: expect.objectContaining({ status: 'skipped', reason: 'the table is throttling requests' }),
      }),
    );
    jest.restoreAllMocks();
  });

  it('a missing optional feature takes its default, as in POST /predict', async () => {
    const response = await call('POST', '/v2/models/tiny/infer', {
      inputs: [{ name: 'x1', shape: [1], datatype: 'FP32', data: [3] }],
      outputs: [{ name: 'label' }],
    });
    expect(response.status).toBe(200);
    expect(response.body['outputs'][0].data).toEqual([tinyExpected(3, 0).label]);
  });
});

describe('inference errors: 400 {"error"} naming the input and row', () => {
  const tiny = '/v2/models/tiny/infer';
  const x2 = { name: 'x2', shape: [1], datatype: 'FP32', data: [0] };
  it.each([
    [
      "the spec's own example request (inputs the model does not have)",
      {
        id: '42',
        inputs: [
          { name: 'input0', shape: [2, 2], datatype: 'UINT32', data: [1, 2, 3, 4] },
          { name: 'input1', shape: [3], datatype: 'BOOL', data: [true] },
        ],
        outputs: [{ name: 'output0' }],
      },
      /input "input1" has shape \[3\] \(3 elements\) but 1 data elements|input "input0" is not an input of model "tiny"/,
    ],
    [
      'an input name that is neither a feature nor an ONNX input',
      { inputs: [{ name: 'input0', shape: [1], datatype: 'FP32', data: [1] }] },
      /input "input0" is not an input of model "tiny": send one input per feature \(x1, x2\) or the ONNX inputs \(X\)/,
    ],
    [
      'a datatype the protocol does not define',
      { inputs: [{ name: 'x1', shape: [1], datatype: 'FLOAT', data: [1] }] },
      /inputs\.0\.datatype/,
    ],
    [
      'data that does not fill the shape',
      { inputs: [{ name: 'x1', shape: [2], datatype: 'FP32', data: [1, 2, 3] }] },
      /input "x1" has shape \[2\] \(2 elements\) but 3 data elements/,
    ],
    [
      'an element of the wrong type for its datatype',
      {
        inputs: [
          { name: 'x1', shape: [2], datatype: 'FP32', data: [1, 'two'] },
          { ...x2, shape: [2], data: [0, 0] },
        ],
      },
      /input "x1" \(FP32\) row 1 is "two": not a number/,
    ],
    [
      'an integer outside its datatype',
      { inputs: [{ name: 'x1', shape: [1], datatype: 'UINT8', data: [300] }, x2] },
      /input "x1" \(UINT8\) row 0 is 300: outside the UINT8 range/,
    ],
    [
      'a value the feature validator rejects (the same check as POST /predict)',
      {
        inputs: [
          { name: 'x1', shape: [2], datatype: 'FP32', data: [1, 500] },
          { ...x2, shape: [2], data: [0, 0] },
        ],
      },
      /input "x1" row 1: must be <= 100, got 500/,
    ],
    ['a required feature not sent', { inputs: [x2] }, /input "x1" \(not sent\) row 0: is required/],
    [
      'a BYTES value for a number feature',
      { inputs: [{ name: 'x1', shape: [1], datatype: 'BYTES', data: ['1.5'] }, x2] },
      /input "x1" row 0: must be a number, got a string "1\.5"/,
    ],
    [
      'inputs whose rows differ',
      {
        inputs: [
          { name: 'x1', shape: [1], datatype: 'FP32', data: [1] },
          { ...x2, shape: [2], data: [0, 0] },
        ],
      },
      /input "x2" has 2 rows but the request has 1/,
    ],
    [
      'a feature sent twice (by name and in its ONNX input)',
      {
        inputs: [
          { name: 'X', shape: [1, 2], datatype: 'FP32', data: [1, 2] },
          { name: 'x1', shape: [1], datatype: 'FP32', data: [1] },
        ],
      },
      /feature "x1" is sent twice \(also in input "X" column 0 \("x1"\)\)/,
    ],
    [
      'an ONNX input of the wrong width',
      { inputs: [{ name: 'X', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] },
      /input "X" is the ONNX input of 2 columns: its shape must be \[1, 2\], not \[1, 3\]/,
    ],
    [
      'a feature input of width 2',
      { inputs: [{ name: 'x1', shape: [1, 2], datatype: 'FP32', data: [1, 2] }, x2] },
      /input "x1" is one feature: its shape must be \[1\] or \[1, 1\], not \[1, 2\]/,
    ],
    [
      'ids that do not match the rows',
      {
        parameters: { ids: ['a', 'b'] },
        inputs: [{ name: 'x1', shape: [1], datatype: 'FP32', data: [1] }, x2],
      },
      /input "x1" has 1 rows but the request has 2 \(parameters\.ids\)/,
    ],
    [
      'an empty id',
      { parameters: { ids: [''] }, inputs: [{ name: 'x1', shape: [1], datatype: 'FP32', data: [1] }, x2] },
      /parameters\.ids\.0 must be a non-empty string/,
    ],
    [
      'an output the model does not have',
      { inputs: [{ name: 'x1', shape: [1], datatype: 'FP32', data: [1] }], outputs: [{ name: 'output0' }] },
      /output "output0" is not an output of model "tiny" \(it has: label, probabilities, source\)/,
    ],
    ['no inputs and no ids', { inputs: [] }, /the request has no inputs/],
    [
      'a scalar shape',
      { inputs: [{ name: 'x1', shape: [], datatype: 'FP32', data: [1] }] },
      /input "x1" has shape \[\]: its first dimension is the rows/,
    ],
    ['no "inputs" at all', { id: '1' }, /inputs/],
    [
      'more rows than the limit',
      { inputs: [{ name: 'x1', shape: [6], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6] }] },
      /too many rows: 6; the limit is 5/,
    ],
  ])('%s', async (_name, body, message) => {
    await expectError('POST', tiny, body, 400, message);
  });

  it('a body that is not JSON is 400, and an unknown model 404, in the same shape', async () => {
    await expectError('POST', tiny, '{"inputs": [', 400, /the body is not valid JSON/);
    await expectError(
      'POST',
      '/v2/models/mymodel/infer',
      { inputs: [{ name: 'input0', shape: [1], datatype: 'FP32', data: [1] }] },
      404,
      /no model named "mymodel"/,
    );
  });

  it('a model that cannot load is 503 with Retry-After', async () => {
    const response = await call('POST', '/v2/models/broken/infer', {
      inputs: [{ name: 'x1', shape: [1], datatype: 'FP32', data: [1] }],
    });
    expect(response.status).toBe(503);
    expect(response.headers['retry-after']).toBe('5');
    expect(response.headers['x-tandem-error-code']).toBe('MODEL_UNAVAILABLE');
    expect(oipErrorSchema.strict().parse(response.body).error).toMatch(/model "broken" is not available/);
  });
});
