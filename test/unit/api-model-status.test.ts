/**
 * What the API says about the default model's serving state through the real handler: at a cold start
 * with no pointer (503 with POINTER_MISSING everywhere, never "not loaded yet"), and once a version serves
 * while the pointer names a broken one (200, the serving version, and the pointer's error).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { ModelRegistry } from '../../lambdas/core/model-registry.ts';
import { DEFAULT_LIMITS } from '../../lambdas/core/predict-request.ts';
import { PredictionService } from '../../lambdas/core/prediction-service.ts';
import { createApiHandler, type ApiHandler } from '../../lambdas/handlers/api/api-handler.ts';
import { ApiMetrics, PowertoolsMetrics } from '../../lambdas/handlers/api/api-metrics.ts';
import { apiEvent, lambdaContext } from '../support/api-events.ts';
import { tinyManifest, tinyModelBytes } from '../support/tiny-model.ts';

let root: string;
let now: number;
let registry: ModelRegistry;
let handler: ApiHandler;

async function publish(version: string, onnx: Uint8Array | string = tinyModelBytes()): Promise<void> {
  await mkdir(path.join(root, 'tiny', version), { recursive: true });
  await writeFile(path.join(root, 'tiny', version, 'manifest.json'), JSON.stringify(tinyManifest(version)));
  await writeFile(path.join(root, 'tiny', version, 'model.onnx'), onnx);
}

const point = (body: string) => writeFile(path.join(root, 'tiny', 'current.json'), body);

async function call(method: string, route: string, body?: unknown) {
  const result = await handler(apiEvent(method, route, body), lambdaContext());
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- read field by field in assertions
  return { status: result.statusCode, body: JSON.parse(result.body) as Record<string, any> };
}

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tandem-api-status-'));
  now = Date.parse('2026-01-01T00:00:00Z');
  registry = new ModelRegistry(new FsModelSource(root), {
    defaultModel: 'tiny',
    refreshSeconds: 1,
    retryFailedSeconds: 10,
    now: () => now,
  });
  handler = createApiHandler({
    registry,
    service: new PredictionService(undefined, { cacheBudgetMs: 100, writeThrough: false }),
    limits: DEFAULT_LIMITS,
    logger: new Logger({ serviceName: 'test' }),
    metrics: new ApiMetrics(new PowertoolsMetrics({ namespace: 'Test', serviceName: 'test' }), 0),
    logPayloads: false,
  });
}, 60_000);
afterEach(async () => {
  await registry.close();
  await rm(root, { recursive: true, force: true });
}, 60_000);

describe('the default model at a cold start with no pointer', () => {
  it('/ready, /predict and /models/{name} answer 503 with POINTER_MISSING', async () => {
    await publish('1'); // a package, but no current.json naming it
    const ready = await call('GET', '/ready');
    expect(ready).toEqual({
      status: 503,
      body: {
        status: 'not-ready',
        model: { name: 'tiny' },
        pointer: {
          serving: false,
          checkedAt: '2026-01-01T00:00:00.000Z',
          error: {
            code: 'POINTER_MISSING',
            message: 'tiny has no current.json: no version is promoted',
            since: '2026-01-01T00:00:00.000Z',
          },
        },
        error: { code: 'POINTER_MISSING', message: 'tiny has no current.json: no version is promoted' },
      },
    });
    const predict = await call('POST', '/predict', { id: 'a', features: { x1: 1 } });
    expect(predict.status).toBe(503);
    expect(predict.body.error).toMatchObject({
      code: 'MODEL_UNAVAILABLE',
      message:
        'model "tiny" is not available (POINTER_MISSING): tiny has no current.json: no version is promoted; see GET /ready',
    });
    const named = await call('POST', '/predict', { model: 'tiny', id: 'a', features: { x1: 1 } });
    expect([named.status, named.body.error.code]).toEqual([503, 'MODEL_UNAVAILABLE']);
    const described = await call('GET', '/models/tiny');
    // The same shape as every other load failure: what is known of the model, and why it is not served.
    expect(described.status).toBe(200);
    expect(described.body).toMatchObject({
      name: 'tiny',
      default: true,
      error: { code: 'POINTER_MISSING', message: 'tiny has no current.json: no version is promoted' },
    });
    // Another name without a pointer is still the caller's mistake.
    expect((await call('GET', '/models/other')).status).toBe(404);
  });
});

describe('a pointer at a broken version while another serves', () => {
  it('/ready and /models/{name} say which version serves and why the pointer’s does not', async () => {
    await publish('1');
    await point('{"version":"1"}');
    expect((await call('GET', '/ready')).status).toBe(200);
    await publish('2', 'not onnx');
    await point('{"version":"2"}');
    now += 2_000;
    const ready = await call('GET', '/ready');
    expect(ready).toEqual({
      status: 200,
      body: {
        status: 'ready',
        model: { name: 'tiny', version: '1', since: '2026-01-01T00:00:00.000Z' },
        pointer: {
          version: '2',
          serving: false,
          checkedAt: '2026-01-01T00:00:02.000Z',
          error: {
            code: 'MODEL_CORRUPT',
            message: expect.stringMatching(/^model\.onnx is not a valid ONNX protobuf/),
            since: '2026-01-01T00:00:02.000Z',
          },
        },
      },
    });
    const described = await call('GET', '/models/tiny');
    expect(described.status).toBe(200);
    expect(described.body).toMatchObject({
      name: 'tiny',
      version: '1',
      servingSince: '2026-01-01T00:00:00.000Z',
      pointer: { version: '2', serving: false, error: { code: 'MODEL_CORRUPT' } },
    });
    expect(described.body['error']).toBeUndefined();
    expect((await call('POST', '/predict', { id: 'a', features: { x1: 1 } })).body).toMatchObject({
      source: 'model',
      model: { name: 'tiny', version: '1' },
    });
  });
});
