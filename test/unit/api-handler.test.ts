import { Logger } from '@aws-lambda-powertools/logger';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { predictionKey, storedPrediction, type StoredPrediction } from '../../lambdas/core/cache-policy.ts';
import { PredictionStoreError } from '../../lambdas/core/errors.ts';
import { ModelRegistry } from '../../lambdas/core/model-registry.ts';
import type { PredictionStore } from '../../lambdas/core/ports.ts';
import { DEFAULT_LIMITS } from '../../lambdas/core/predict-request.ts';
import { PredictionService } from '../../lambdas/core/prediction-service.ts';
import { createApiHandler, type ApiHandler } from '../../lambdas/handlers/api/api-handler.ts';
import { ApiMetrics, PowertoolsMetrics } from '../../lambdas/handlers/api/api-metrics.ts';
import { apiEvent, lambdaContext } from '../support/api-events.ts';
import { tinyExpected, tinyManifest, tinyModelBytes } from '../support/tiny-model.ts';
import { expectWithMessage } from '../support/expect-message.ts';

let root: string;
let handler: ApiHandler;
let registry: ModelRegistry;
const items = new Map<string, StoredPrediction>();
const store: PredictionStore = {
  getMany: async (keys) => new Map(keys.filter((k) => items.has(k)).map((k) => [k, items.get(k)!])),
  putMany: async () => ({ written: 0, skipped: 0 }),
};

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tandem-api-'));
  await mkdir(path.join(root, 'tiny', '1'), { recursive: true });
  await writeFile(path.join(root, 'tiny', '1', 'manifest.json'), JSON.stringify(tinyManifest('1')));
  await writeFile(path.join(root, 'tiny', '1', 'model.onnx'), tinyModelBytes());
  await writeFile(path.join(root, 'tiny', 'current.json'), '{"version":"1"}');
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
    defaultModel: 'tiny',
    refreshSeconds: 60,
    retryFailedSeconds: 10,
  });
  handler = createApiHandler({
    registry,
    service: new PredictionService(store, { cacheBudgetMs: 100, writeThrough: false }),
    limits: { ...DEFAULT_LIMITS, maxInstances: 3, maxBodyBytes: 4096 },
    logger: new Logger({ serviceName: 'test' }),
    metrics: new ApiMetrics(new PowertoolsMetrics({ namespace: 'Test', serviceName: 'test' }), 0),
    logPayloads: false,
  });
}, 60_000);
afterAll(async () => {
  await registry.close();
  await rm(root, { recursive: true, force: true });
}, 60_000);

async function call(method: string, route: string, body?: unknown, headers?: Record<string, string>) {
  const event = apiEvent(method, route, body, headers);
  const result = await handler(event, lambdaContext());
  return {
    status: result.statusCode,
    headers: result.headers ?? {}, // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read field by field in assertions
    body: JSON.parse(result.body) as Record<string, any>,
    event,
  };
}

describe('API handler', () => {
  it('answers a precomputed id from the cache', async () => {
    const { status, body, headers } = await call('POST', '/predict', { id: 'known' });
    expect(status).toBe(200);
    expect(body).toMatchObject({
      id: 'known',
      source: 'cache',
      model: { name: 'tiny', version: '1' },
      prediction: { label: 'b' },
      cache: { status: 'used' },
    });
    expect(body['ageSeconds']).toBeGreaterThanOrEqual(4);
    expect(headers['x-tandem-cache']).toBe('used');
  });

  it('scores an unknown id with features by the model', async () => {
    const { status, body } = await call('POST', '/predict', { id: 'new', features: { x1: 3, x2: -1 } });
    expect(status).toBe(200);
    expect(body).toMatchObject({
      id: 'new',
      source: 'model',
      ageSeconds: 0,
      prediction: { label: tinyExpected(3, -1).label },
    });
  });

  it('returns many instances in request order', async () => {
    const { body } = await call('POST', '/predict', {
      instances: [{ id: 'a', features: { x1: -5 } }, { id: 'known' }, { features: { x1: 5 } }],
    });
    expect(body['predictions'].map((p: { id: string; source: string }) => [p.id, p.source])).toEqual([
      ['a', 'model'],
      ['known', 'cache'],
      [null, 'model'],
    ]);
  });

  it('says 404 NOT_PRECOMPUTED for an id alone with nothing cached', async () => {
    const { status, body } = await call('POST', '/predict', { id: 'nobody' });
    expect(status).toBe(404);
    expect(body['error']).toMatchObject({ code: 'NOT_PRECOMPUTED', details: [{ field: 'id' }] });
    expect(body['error'].message).toMatch(/send "features"/);
  });

  it('maps bad input to 4xx with a code, details naming the fields and the request id', async () => {
    const cases: [unknown, number, string, Record<string, string>?][] = [
      ['{"id": ', 400, 'INVALID_JSON'],
      ['', 400, 'EMPTY_BODY'],
      [{ id: 'x', features: { x1: 'a' } }, 400, 'INVALID_FEATURES'],
      [{ id: 'x', features: { x1: 101 } }, 400, 'INVALID_FEATURES'],
      [{ instances: [{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }] }, 400, 'TOO_MANY_INSTANCES'],
      [{ id: 'x', features: { x1: 1 }, model: 'nope' }, 404, 'MODEL_NOT_FOUND'],
      [{ id: 'x', features: { x1: 1 }, model: 'broken' }, 503, 'MODEL_UNAVAILABLE'],
      [{ id: 'x'.repeat(5000) }, 413, 'PAYLOAD_TOO_LARGE'],
      [{ id: 'x' }, 415, 'UNSUPPORTED_MEDIA_TYPE', { 'content-type': 'text/csv' }],
    ];
    for (const [body, status, code, headers] of cases) {
      const response = await call('POST', '/predict', body, headers);
      expectWithMessage(
        [response.status, response.body['error']?.code],
        JSON.stringify(body).slice(0, 80),
      ).toEqual([status, code]);
      expect(response.body['error'].requestId).toBe(response.event.requestContext.requestId);
      expect(response.headers['x-request-id']).toBe(response.event.requestContext.requestId);
      expect(JSON.stringify(response.body)).not.toMatch(/at .*\.ts:\d+|node_modules|\/tmp\//);
    }
    const invalid = await call('POST', '/predict', { id: 'x', features: { x1: 'a', bogus: 1 } });
    expect(invalid.body['error'].details).toEqual([
      { field: 'features.bogus', message: 'is not a feature of this model' },
      { field: 'features.x1', message: 'must be a number, got a string "a"' },
    ]);
  });

  it('answers unknown routes and methods', async () => {
    expect((await call('GET', '/nope')).status).toBe(404);
    const wrong = await call('GET', '/predict');
    expect(wrong.status).toBe(405);
    expect(wrong.headers['allow']).toBe('POST');
  });

  it('serves health, readiness and model descriptions', async () => {
    expect((await call('GET', '/health')).body).toEqual({ status: 'ok' });
    expect((await call('GET', '/ready')).body).toEqual({
      status: 'ready',
      model: { name: 'tiny', version: '1', since: expect.any(String) },
      pointer: { version: '1', serving: true, checkedAt: expect.any(String) },
    });
    // A package that has failed to load is listed with the reason (its ONNX file is missing).
    expect((await call('POST', '/predict', { model: 'broken', features: { x1: 1 } })).status).toBe(503);
    const list = await call('GET', '/models');
    expect(list.body['models']).toEqual([
      {
        name: 'broken',
        version: '1',
        task: 'multiclass-classification',
        default: false,
        error: { code: 'MODEL_FILE_MISSING', message: 'model.onnx of broken@1 is missing' },
      },
      { name: 'tiny', version: '1', task: 'multiclass-classification', default: true },
    ]);
    const tiny = await call('GET', '/models/tiny');
    expect(tiny.body).toMatchObject({
      name: 'tiny',
      version: '1',
      idField: 'id',
      outputs: { classes: ['a', 'b', 'c'] },
    });
    expect(tiny.body['features'].map((f: { name: string }) => f.name)).toEqual(['x1', 'x2']);
    expect((await call('GET', '/models/nope')).status).toBe(404);
  });
});

describe('API handler logs', () => {
  afterEach(() => {
    jest.restoreAllMocks();
  }, 60_000);

  /** A handler over the same models whose logger writes at `logLevel`; returns the lines it printed. */
  async function logged(
    logLevel: 'DEBUG' | 'INFO',
    requests: [body: unknown, headers?: Record<string, string>][],
    storeOverride: PredictionStore = store,
  ) {
    const lines: Record<string, unknown>[] = [];
    const logger = new Logger({ serviceName: 'test', logLevel });
    // Powertools writes DEBUG and INFO lines to stdout, WARN and ERROR lines to stderr.
    for (const stream of [process.stdout, process.stderr]) {
      jest.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
        lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
        return true;
      });
    }
    const handlerUnderTest = createApiHandler({
      registry,
      service: new PredictionService(storeOverride, { cacheBudgetMs: 100, writeThrough: false }),
      limits: DEFAULT_LIMITS,
      logger,
      metrics: new ApiMetrics(new PowertoolsMetrics({ namespace: 'Test', serviceName: 'test' }), 0),
      logPayloads: false,
    });
    const events = [];
    for (const [body, headers] of requests) {
      const event = apiEvent('POST', '/predict', body, headers);
      events.push(event);
      await handlerUnderTest(event, lambdaContext());
    }
    jest.restoreAllMocks();
    return { lines, requestIds: events.map((e) => e.requestContext.requestId) };
  }

  it('writes no line for a successful prediction at INFO, the default level', async () => {
    const { lines } = await logged('INFO', [[{ id: 'known' }], [{ features: { x1: 1 } }]]);
    expect(lines).toEqual([]);
  });

  it('writes one DEBUG line per prediction, with the request id, at DEBUG', async () => {
    const { lines, requestIds } = await logged('DEBUG', [[{ id: 'new', features: { x1: 1 } }]]);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'DEBUG',
        message: 'predicted',
        requestId: requestIds[0],
        path: '/predict',
        model: 'tiny',
        scored: 1,
        cache: { status: 'used' },
      }),
    ]);
    expect(lines[0]).not.toHaveProperty('request');
  });

  it('writes a WARN line with the reason when the cache could not be read', async () => {
    const failing: PredictionStore = {
      getMany: async () => {
        throw new PredictionStoreError(
          'STORE_THROTTLED',
          'ProvisionedThroughputExceededException: throttled',
        );
      },
      putMany: async () => ({ written: 0, skipped: 0 }),
    };
    const { lines, requestIds } = await logged('INFO', [[{ id: 'new', features: { x1: 1 } }]], failing);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'WARN',
        message: 'predicted',
        requestId: requestIds[0],
        // The caller's reason in plain words, and the error's name for whoever reads the log.
        cache: {
          status: 'skipped',
          reason: 'the table is throttling requests',
          cause: 'ProvisionedThroughputExceededException: throttled',
        },
      }),
    ]);
  });

  it('writes a WARN line with the request id, the code and the bad fields (not their values) for a rejected request', async () => {
    const { lines, requestIds } = await logged('INFO', [
      [{ id: 'new', features: { x1: 1 } }],
      [{ id: 'x', features: { x1: 'a' } }],
    ]);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'WARN',
        message: 'request failed',
        requestId: requestIds[1],
        status: 400,
        code: 'INVALID_FEATURES',
        fields: ['features.x1'],
      }),
    ]);
    expect(lines[0]).not.toHaveProperty('reason');
  });
});
