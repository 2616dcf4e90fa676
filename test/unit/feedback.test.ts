/**
 * POST /feedback in-process: outcomes checked against a regressor as well as a classifier, ids known
 * from the table or from this environment's recent predictions, and the faults: a table that cannot be
 * read or a bucket that cannot be written answer 503 with a code (never a 200 that lost the outcomes),
 * and a failing capture never fails a prediction.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { ObjectStoreCaptureSink } from '../../lambdas/adapters/s3-capture-sink.ts';
import { predictionKey, storedPrediction, type StoredPrediction } from '../../lambdas/core/cache-policy.ts';
import { CaptureBuffer } from '../../lambdas/core/capture/capture-buffer.ts';
import { PredictionStoreError, ValidationError } from '../../lambdas/core/errors.ts';
import { checkOutcomes, parseFeedbackRequest } from '../../lambdas/core/feedback/feedback-request.ts';
import { RecentPredictions } from '../../lambdas/core/feedback/known-ids.ts';
import { ModelRegistry } from '../../lambdas/core/model-registry.ts';
import type { ObjectStore, PredictionStore } from '../../lambdas/core/ports.ts';
import { DEFAULT_LIMITS } from '../../lambdas/core/predict-request.ts';
import { PredictionService } from '../../lambdas/core/prediction-service.ts';
import { createApiHandler, type ApiHandler } from '../../lambdas/handlers/api/api-handler.ts';
import type { FeedbackDeps } from '../../lambdas/handlers/api/feedback-route.ts';
import { ApiMetrics, PowertoolsMetrics } from '../../lambdas/handlers/api/api-metrics.ts';
import { apiEvent, lambdaContext } from '../support/api-events.ts';
import { MemoryObjectStore } from '../support/memory-object-store.ts';
import { tinyManifest, tinyModelBytes } from '../support/tiny-model.ts';

let root: string;
let registry: ModelRegistry;
const items = new Map<string, StoredPrediction>();
let tableDown = false;
const table: PredictionStore = {
  getMany: async (keys) => {
    if (tableDown) throw new PredictionStoreError('STORE_UNREACHABLE', 'the table cannot be reached');
    return new Map(keys.filter((k) => items.has(k)).map((k) => [k, items.get(k)!]));
  },
  putMany: async () => ({ written: 0, skipped: 0 }),
};
const objects = new MemoryObjectStore();
let bucketDown = false;
/** The bucket, failing every write while `bucketDown`. */
const bucket: ObjectStore = new Proxy(objects, {
  get(target, name, receiver) {
    if (name === 'writeBytes' && bucketDown) return async () => Promise.reject(new Error('AccessDenied'));
    return Reflect.get(target, name, receiver) as unknown;
  },
});
const failures: string[] = [];

function handlerWith(feedback: Partial<FeedbackDeps> = {}, capture?: CaptureBuffer): ApiHandler {
  return createApiHandler({
    registry,
    service: new PredictionService(table, { cacheBudgetMs: 100, writeThrough: false }),
    limits: DEFAULT_LIMITS,
    logger: new Logger({ serviceName: 'test', logLevel: 'CRITICAL' }),
    metrics: new ApiMetrics(new PowertoolsMetrics({ namespace: 'Test', serviceName: 'test' }), 0),
    logPayloads: false,
    ...(capture ? { capture } : {}),
    feedback: {
      objects: bucket,
      bucket: 'data',
      predictions: table,
      recent: new RecentPredictions(),
      failed: (stage) => failures.push(stage),
      ...feedback,
    },
  });
}

async function call(handler: ApiHandler, pathname: string, body: unknown) {
  const result = await handler(apiEvent('POST', pathname, body), lambdaContext());
  return { status: result.statusCode, headers: result.headers ?? {}, body: JSON.parse(result.body) };
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tandem-feedback-'));
  await mkdir(path.join(root, 'tiny', '1'), { recursive: true });
  await writeFile(path.join(root, 'tiny', '1', 'manifest.json'), JSON.stringify(tinyManifest('1')));
  await writeFile(path.join(root, 'tiny', '1', 'model.onnx'), tinyModelBytes());
  await writeFile(path.join(root, 'tiny', 'current.json'), '{"version":"1"}');
  items.set(
    predictionKey('tiny', '1', 'batch-1'),
    storedPrediction(
      {
        model: 'tiny',
        entityId: 'batch-1',
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
}, 60_000);
afterAll(async () => {
  await registry.close();
  await rm(root, { recursive: true, force: true });
});

describe('which ids are known', () => {
  it('an id in the table, and an id this environment predicted in real time, take outcomes', async () => {
    const handler = handlerWith();
    expect((await call(handler, '/predict', { id: 'rt-1', features: { x1: 1 } })).status).toBe(200);
    const response = await call(handler, '/feedback', {
      items: [
        { id: 'batch-1', label: 'b' },
        { id: 'rt-1', label: 'a', observedAt: '2026-01-01T00:00:00Z' },
      ],
    });
    expect(response).toMatchObject({ status: 200, body: { accepted: 2, model: { name: 'tiny' } } });
    const keys = await objects.list('data', 'feedback/tiny/');
    const text = gunzipSync(await objects.readBytes('data', keys.at(-1)!)).toString('utf8');
    const records = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.map((r) => [r['id'], r['label'], r['observedAt']])).toEqual([
      ['batch-1', 'b', expect.any(String)],
      ['rt-1', 'a', '2026-01-01T00:00:00.000Z'],
    ]);
  });

  it('an id predicted by another environment only (not in the table) is unknown there', async () => {
    const response = await call(handlerWith(), '/feedback', { id: 'rt-1', label: 'a' });
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ code: 'UNKNOWN_ID', details: [{ field: 'id' }] });
  });

  it('remembers a bounded number of recent ids: the oldest are forgotten first', () => {
    const recent = new RecentPredictions(2);
    recent.note('m', 'a');
    recent.note('m', 'b');
    recent.note('m', 'a'); // seen again: now the newest
    recent.note('m', 'c');
    expect(['a', 'b', 'c'].map((id) => recent.has('m', id))).toEqual([true, false, true]);
    expect(recent.has('other', 'a')).toBe(false);
  });
});

describe('faults', () => {
  it('a bucket that refuses the write is a 503 FEEDBACK_NOT_STORED, never a 200', async () => {
    const before = (await objects.list('data', 'feedback/')).length;
    bucketDown = true;
    try {
      const response = await call(handlerWith(), '/feedback', { id: 'batch-1', label: 'b' });
      expect(response.status).toBe(503);
      expect(response.body.error.code).toBe('FEEDBACK_NOT_STORED');
      expect(response.headers['retry-after']).toBe('1');
      expect(JSON.stringify(response.body)).not.toMatch(/AccessDenied|feedback\//);
    } finally {
      bucketDown = false;
    }
    expect(failures.at(-1)).toBe('write');
    expect(await objects.list('data', 'feedback/')).toHaveLength(before);
  });

  it('a table that cannot be read is a 503 FEEDBACK_CHECK_UNAVAILABLE (the ids are not called unknown)', async () => {
    tableDown = true;
    try {
      const response = await call(handlerWith(), '/feedback', { id: 'batch-1', label: 'b' });
      expect(response.status).toBe(503);
      expect(response.body.error.code).toBe('FEEDBACK_CHECK_UNAVAILABLE');
    } finally {
      tableDown = false;
    }
    expect(failures.at(-1)).toBe('check');
  });

  it('a capture that cannot be written never fails a prediction: counted and reported', async () => {
    const lost: number[] = [];
    const capture = new CaptureBuffer(new ObjectStoreCaptureSink(bucket, 'data'), {
      rates: { realtime: 1 },
      writer: 'test',
      onError: (_error, count) => lost.push(count),
    });
    bucketDown = true;
    try {
      const handler = handlerWith({}, capture);
      const response = await call(handler, '/predict', { id: 'rt-2', features: { x1: 2 } });
      expect(response.status).toBe(200);
      await capture.flush();
    } finally {
      bucketDown = false;
    }
    expect(capture.counts).toMatchObject({ captured: 1, written: 0, failed: 1 });
    expect(lost).toEqual([1]);
  });
});

describe('outcomes of a regressor', () => {
  const regressor = { name: 'price', task: 'regression' as const, classes: undefined };
  const check = (body: unknown, text?: string) =>
    checkOutcomes(parseFeedbackRequest(body, text ?? JSON.stringify(body)), regressor, Date.now());
  const rejection = (body: unknown, text?: string) => {
    try {
      check(body, text);
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      return (error as ValidationError).details;
    }
    throw new Error('accepted');
  };

  it('takes a finite number as value, and a numeric id exactly as written', () => {
    const text = '{"id": 12345678901234567890, "value": 12.5}';
    expect(check(JSON.parse(text), text)).toEqual([
      { id: '12345678901234567890', value: 12.5, observedAt: expect.any(String) },
    ]);
  });

  it('rejects a label, a value that is not a number, and a number too large to be finite', () => {
    expect(rejection({ id: 'a', label: 'x' })).toEqual([
      {
        field: 'label',
        message: 'is for classifiers: model "price" is a regressor, send "value" (a number)',
      },
    ]);
    expect(rejection({ id: 'a', value: '12' })).toEqual([
      { field: 'value', message: 'must be a finite number, got "12"' },
    ]);
    expect(rejection(JSON.parse('{"id":"a","value":1e400}'), '{"id":"a","value":1e400}')).toEqual([
      { field: 'value', message: 'must be a finite number, got Infinity' },
    ]);
  });
});
