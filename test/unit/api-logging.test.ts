/**
 * What the API handler writes to its log: each entry carries its own request id (also when
 * invocations overlap, as in the local server), and feature values, ids and predictions stay out of
 * the log unless LOG_PAYLOADS turns them on.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { ModelRegistry } from '../../lambdas/core/model-registry.ts';
import type { PredictionStore } from '../../lambdas/core/ports.ts';
import { DEFAULT_LIMITS } from '../../lambdas/core/predict-request.ts';
import { PredictionService } from '../../lambdas/core/prediction-service.ts';
import { createApiHandler, type ApiHandler } from '../../lambdas/handlers/api/api-handler.ts';
import { ApiMetrics, PowertoolsMetrics } from '../../lambdas/handlers/api/api-metrics.ts';
import { apiEvent, lambdaContext } from '../support/api-events.ts';
import { tinyManifest, tinyModelBytes } from '../support/tiny-model.ts';

let root: string;
let registry: ModelRegistry;
/** A store that answers after the next tick, so that two invocations overlap. */
const store: PredictionStore = {
  getMany: () => new Promise((resolve) => setImmediate(() => resolve(new Map()))),
  putMany: async () => ({ written: 0, skipped: 0 }),
};
let lines: string[];

function handlerWith(logPayloads: boolean): ApiHandler {
  return createApiHandler({
    registry,
    service: new PredictionService(store, { cacheBudgetMs: 1000, writeThrough: false }),
    limits: DEFAULT_LIMITS,
    logger: new Logger({ serviceName: 'test', logLevel: 'DEBUG' }),
    metrics: new ApiMetrics(new PowertoolsMetrics({ namespace: 'Test', serviceName: 'test' }), 0),
    logPayloads,
  });
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tandem-api-logs-'));
  await mkdir(path.join(root, 'tiny', '1'), { recursive: true });
  await writeFile(path.join(root, 'tiny', '1', 'manifest.json'), JSON.stringify(tinyManifest('1')));
  await writeFile(path.join(root, 'tiny', '1', 'model.onnx'), tinyModelBytes());
  await writeFile(path.join(root, 'tiny', 'current.json'), '{"version":"1"}');
  registry = new ModelRegistry(new FsModelSource(root), {
    defaultModel: 'tiny',
    refreshSeconds: 60,
    retryFailedSeconds: 10,
  });
}, 60_000);
afterAll(async () => {
  await registry.close();
  await rm(root, { recursive: true, force: true });
}, 60_000);
beforeEach(() => {
  lines = [];
  const capture = (chunk: unknown) => {
    lines.push(String(chunk));
    return true;
  };
  jest.spyOn(process.stdout, 'write').mockImplementation(capture);
  jest.spyOn(process.stderr, 'write').mockImplementation(capture);
}, 60_000);
afterEach(() => {
  jest.restoreAllMocks();
}, 60_000);

const SECRET_NUMBER = 87.654321;
const SECRET_ID = 'customer-4417-secret';

function entries(): Record<string, unknown>[] {
  return lines
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('API logs', () => {
  it('keep feature values, ids and predictions out of successful and failed requests', async () => {
    const handler = handlerWith(false);
    await handler(
      apiEvent('POST', '/predict', { id: SECRET_ID, features: { x1: SECRET_NUMBER } }),
      lambdaContext(),
    );
    await handler(
      apiEvent('POST', '/predict', { id: SECRET_ID, features: { x1: 'SECRET-TEXT', x2: 1e300 } }),
      lambdaContext(),
    );
    await handler(apiEvent('POST', '/predict', { id: SECRET_ID }), lambdaContext());
    const logged = entries();
    expect(logged.map((e) => e['message'])).toEqual(['predicted', 'request failed', 'request failed']);
    const text = lines.join('');
    for (const secret of [String(SECRET_NUMBER), 'SECRET-TEXT', '1e+300', SECRET_ID, 'probabilities'])
      expect(text).not.toContain(secret);
    // What is logged of a caller's mistake: the code and the fields, enough to see what went wrong.
    expect(logged[1]).toMatchObject({ status: 400, code: 'INVALID_FEATURES', fields: ['features.x1'] });
    expect(logged[2]).toMatchObject({ status: 404, code: 'NOT_PRECOMPUTED', fields: ['id'] });
  });

  it('include them when LOG_PAYLOADS is on', async () => {
    const handler = handlerWith(true);
    await handler(
      apiEvent('POST', '/predict', { id: SECRET_ID, features: { x1: SECRET_NUMBER } }),
      lambdaContext(),
    );
    await handler(
      apiEvent('POST', '/predict', { id: SECRET_ID, features: { x1: 'SECRET-TEXT' } }),
      lambdaContext(),
    );
    const text = lines.join('');
    expect(text).toContain(String(SECRET_NUMBER));
    expect(text).toContain(SECRET_ID);
    expect(text).toContain('SECRET-TEXT');
  });

  it('give each entry the request id of its own invocation when invocations overlap', async () => {
    const handler = handlerWith(false);
    const events = ['req-a', 'req-b', 'req-c'].map((requestId) => {
      const event = apiEvent('POST', '/predict', { id: requestId, features: { x1: 1 } });
      return { ...event, requestContext: { ...event.requestContext, requestId } };
    });
    await Promise.all(events.map((event) => handler(event, lambdaContext())));
    const ids = entries().map((e) => e['requestId']);
    expect(ids.sort()).toEqual(['req-a', 'req-b', 'req-c']);
  });
});
