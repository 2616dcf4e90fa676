/**
 * Load errors where the operator looks (issue 17 item 5): for every kind of load failure (schema error,
 * graph mismatch, corrupt file, missing file), `GET /models/{name}` answers 200 with one `error` shape
 * (code, full message, the fields), `GET /models` lists the code and message, and `/predict` answers 503
 * MODEL_UNAVAILABLE with the precise reason and nothing of the server's paths.
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
import { modelDocumentSchema, modelFailureDocumentSchema } from '../../lambdas/core/protocols/api-schemas.ts';
import { createApiHandler, type ApiHandler } from '../../lambdas/handlers/api/api-handler.ts';
import { ApiMetrics, PowertoolsMetrics } from '../../lambdas/handlers/api/api-metrics.ts';
import { apiEvent, lambdaContext } from '../support/api-events.ts';
import { tinyManifest, tinyModelBytes } from '../support/tiny-model.ts';

let root: string;
let registry: ModelRegistry;
let handler: ApiHandler;

async function writePackage(
  name: string,
  manifest: unknown,
  onnx: Uint8Array | string | undefined,
): Promise<void> {
  const dir = path.join(root, name, '1');
  await mkdir(dir, { recursive: true });
  if (manifest !== undefined)
    await writeFile(
      path.join(dir, 'manifest.json'),
      typeof manifest === 'string' ? manifest : JSON.stringify(manifest),
    );
  if (onnx !== undefined) await writeFile(path.join(dir, 'model.onnx'), onnx);
  await writeFile(path.join(root, name, 'current.json'), '{"version":"1"}');
}

async function call(method: string, route: string, body?: unknown) {
  const result = await handler(apiEvent(method, route, body), lambdaContext());
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- read field by field in assertions
  return { status: result.statusCode, body: JSON.parse(result.body) as Record<string, any> };
}

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tandem-load-errors-'));
  await writePackage('tiny', tinyManifest('1'), tinyModelBytes());
  registry = new ModelRegistry(new FsModelSource(root), {
    defaultModel: 'tiny',
    refreshSeconds: 60,
    retryFailedSeconds: 60,
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

const broken = (edit: (m: ReturnType<typeof tinyManifest>) => unknown) =>
  edit({ ...tinyManifest('1'), name: 'broken' });

describe.each([
  {
    kind: 'a schema error',
    manifest: broken((m) => ({ ...m, idField: undefined })),
    onnx: tinyModelBytes() as Uint8Array | string | undefined,
    code: 'INVALID_MANIFEST',
    says: 'idField: ',
    field: 'idField' as string | undefined,
  },
  {
    kind: 'a graph mismatch',
    manifest: broken((m) => ({ ...m, features: m.features.slice(0, 1) })),
    onnx: tinyModelBytes(),
    code: 'INVALID_MANIFEST',
    says: 'takes 2 columns but the manifest lists 1 features',
    field: 'inputs.features',
  },
  {
    kind: 'a corrupt model file',
    manifest: broken((m) => m),
    onnx: 'this is not an onnx model',
    code: 'MODEL_CORRUPT',
    says: 'model.onnx is not a valid ONNX protobuf',
    field: undefined,
  },
  {
    kind: 'a missing model file',
    manifest: broken((m) => m),
    onnx: undefined,
    code: 'MODEL_FILE_MISSING',
    says: 'model.onnx of broken@1 is missing',
    field: undefined,
  },
])('$kind', ({ manifest, onnx, code, says, field }) => {
  it('is told in full by /models/{name}, /models and /predict', async () => {
    await writePackage('broken', manifest, onnx);

    const predict = await call('POST', '/predict', { model: 'broken', id: 'a', features: { x1: 1 } });
    expect(predict.status).toBe(503);
    expect(predict.body.error.code).toBe('MODEL_UNAVAILABLE');
    expect(predict.body.error.message).toContain(`(${code}): `);
    expect(predict.body.error.message).toContain(says);
    expect(predict.body.error.message).toContain('see GET /models/broken');
    expect(predict.body.error.message).not.toContain(root);
    if (field) expect(predict.body.error.details).toContainEqual({ field, message: expect.any(String) });

    const described = await call('GET', '/models/broken');
    expect(described.status).toBe(200);
    const error = described.body.error as { code: string; message: string; details?: unknown[] };
    expect(Object.keys(error).filter((k) => k !== 'details')).toEqual(['code', 'message']);
    expect(error.code).toBe(code);
    expect(error.message).toContain(says);
    expect(error.message).not.toContain(root);
    if (field) expect(error.details).toContainEqual({ field, message: expect.any(String) });
    else expect(error.details).toBeUndefined();
    // A manifest that cannot be read leaves only what is known; one that can is described in full.
    const schema =
      code === 'INVALID_MANIFEST' && field === 'idField' ? modelFailureDocumentSchema : modelDocumentSchema;
    expect(schema.strict().safeParse(described.body).success).toBe(true);

    const list = await call('GET', '/models');
    const entry = (list.body.models as { name: string; error?: unknown }[]).find((m) => m.name === 'broken');
    expect(entry?.error).toEqual(error);
  });
});
