/**
 * The API with a shadow version (over a model folder whose pointer names one): responses are what the live
 * version answers; after them the shadow's comparisons go to metrics (model, version and shadowVersion
 * dimensions) and to capture; a shadow that fails is counted and never seen by the caller; the model's
 * status shows the shadow.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { CaptureBuffer } from '../../lambdas/core/capture/capture-buffer.ts';
import type { CaptureRecord } from '../../lambdas/core/capture/capture-record.ts';
import { ModelRegistry } from '../../lambdas/core/model-registry.ts';
import { DEFAULT_LIMITS } from '../../lambdas/core/predict-request.ts';
import { PredictionService } from '../../lambdas/core/prediction-service.ts';
import { ShadowRunner } from '../../lambdas/core/shadow/shadow-runner.ts';
import { createApiHandler, type ApiHandler } from '../../lambdas/handlers/api/api-handler.ts';
import { ApiMetrics, type MetricsSink } from '../../lambdas/handlers/api/api-metrics.ts';
import { shadowSink } from '../../lambdas/handlers/api/shadow-sink.ts';
import { apiEvent, lambdaContext } from '../support/api-events.ts';
import { tinyExpected, tinyManifest, tinyModelBytes } from '../support/tiny-model.ts';

interface PublishedRecord {
  dimensions?: Record<string, string>;
  metrics: Record<string, number[]>;
}

/** A metrics sink that keeps every published record. */
function recordingSink(): { sink: MetricsSink; records: PublishedRecord[] } {
  const records: PublishedRecord[] = [];
  let current: PublishedRecord = { metrics: {} };
  const sink: MetricsSink = {
    publishes: () => true,
    setTimestamp: () => sink as never,
    addDimensions(dimensions) {
      current.dimensions = { ...current.dimensions, ...dimensions };
      return sink as never;
    },
    addMetric(name, _unit, value) {
      (current.metrics[name] ??= []).push(value);
      return sink as never;
    },
    publishStoredMetrics() {
      if (Object.keys(current.metrics).length > 0) records.push(current);
      current = { metrics: {} };
      return sink as never;
    },
  };
  return { sink, records };
}

let root: string;
let registry: ModelRegistry;
let handler: ApiHandler;
let runner: ShadowRunner;
let metrics: ApiMetrics;
let published: PublishedRecord[];
let capture: CaptureBuffer;
const written = new Map<string, Uint8Array>();

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tandem-api-shadow-'));
  for (const version of ['1', '2']) await mkdir(path.join(root, 'tiny', version), { recursive: true });
  await writeFile(path.join(root, 'tiny', '1', 'manifest.json'), JSON.stringify(tinyManifest('1')));
  // Version 2: the same model, but x2 is required (no default): an instance without it fails there only.
  const strict = tinyManifest('2');
  strict.features = [strict.features[0]!, { name: 'x2', type: 'number' }] as typeof strict.features;
  await writeFile(path.join(root, 'tiny', '2', 'manifest.json'), JSON.stringify(strict));
  for (const version of ['1', '2'])
    await writeFile(path.join(root, 'tiny', version, 'model.onnx'), tinyModelBytes());
  await writeFile(
    path.join(root, 'tiny', 'current.json'),
    JSON.stringify({ version: '1', shadow: { version: '2', sample: 1 } }),
  );
  registry = new ModelRegistry(new FsModelSource(root), {
    defaultModel: 'tiny',
    refreshSeconds: 60,
    retryFailedSeconds: 10,
  });
  const recording = recordingSink();
  published = recording.records;
  metrics = new ApiMetrics(recording.sink, 0);
  capture = new CaptureBuffer(
    { write: async (key, body) => void written.set(key, body) },
    { rates: { realtime: 0, shadow: 1 }, writer: 'test' },
  );
  runner = new ShadowRunner(shadowSink(metrics, capture), {
    budgetMs: 10_000,
    freezesBetweenInvocations: false,
  });
  handler = createApiHandler({
    registry,
    service: new PredictionService(undefined, { cacheBudgetMs: 100, writeThrough: false }),
    limits: DEFAULT_LIMITS,
    logger: new Logger({ serviceName: 'test' }),
    metrics,
    logPayloads: false,
    capture,
    shadow: runner,
  });
}, 60_000);

afterAll(async () => {
  await registry.close();
  await rm(root, { recursive: true, force: true });
}, 60_000);

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read field by field
async function call(method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> {
  const result = await handler(apiEvent(method, route, body), lambdaContext());
  return { status: result.statusCode, body: JSON.parse(result.body) };
}

/** Shadow values published since `from`, per metric. */
function shadowMetrics(from: number): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const record of published.slice(from)) {
    if (record.dimensions?.['shadowVersion'] === undefined) continue;
    expect(record.dimensions).toEqual({ model: 'tiny', version: '1', shadowVersion: '2' });
    for (const [name, values] of Object.entries(record.metrics)) (out[name] ??= []).push(...values);
  }
  return out;
}

describe('the API with a shadow version', () => {
  it('answers with the live version; the comparisons go to metrics and capture after the response', async () => {
    const before = published.length;
    const answer = await call('POST', '/predict', {
      instances: [
        { id: 'e1', features: { x1: 2, x2: 1 } },
        { id: 'e2', features: { x1: -1, x2: 3 } },
      ],
    });
    expect(answer.status).toBe(200);
    expect(answer.body.predictions.map((p: { model: { version: string } }) => p.model.version)).toEqual([
      '1',
      '1',
    ]);
    expect(answer.body.predictions[0].prediction.label).toBe(tinyExpected(2, 1).label);
    await runner.settled();
    metrics.flush();
    expect(shadowMetrics(before)).toEqual({
      ShadowComparisons: [2],
      ShadowAgreement: [2],
      ShadowAbsDifference: [0, 0],
    });
    await capture.flush();
    const records: CaptureRecord[] = [...written.values()].flatMap((body) =>
      gunzipSync(body)
        .toString('utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as CaptureRecord),
    );
    expect([...written.keys()].every((k) => k.startsWith('capture/tiny/shadow/dt='))).toBe(true);
    expect(records.map((r) => r.id)).toEqual(['e1', 'e2']);
    expect(records[0]).toMatchObject({
      model: 'tiny',
      version: '1',
      source: 'shadow',
      shadowVersion: '2',
      features: { x1: 2, x2: 1 },
      prediction: answer.body.predictions[0].prediction,
      shadowPrediction: answer.body.predictions[0].prediction,
      agreement: true,
      absDifference: 0,
      servedBy: 'model',
    });
  });

  it('counts a shadow that fails, and the caller never sees it', async () => {
    const before = published.length;
    const answer = await call('POST', '/predict', {
      instances: [{ features: { x1: 1 } }, { features: { x1: 4 } }],
    });
    expect(answer.status).toBe(200);
    expect(answer.body.predictions.map((p: { prediction: { label: string } }) => p.prediction.label)).toEqual(
      [tinyExpected(1).label, tinyExpected(4).label],
    );
    await runner.settled();
    metrics.flush();
    expect(shadowMetrics(before)).toEqual({ ShadowErrors: [2] });
  });

  it('shows the shadow under pointer.shadow in /models/{name} and /ready', async () => {
    expect((await call('GET', '/models/tiny')).body.pointer.shadow).toEqual({
      version: '2',
      sample: 1,
      serving: true,
    });
    expect((await call('GET', '/ready')).body.pointer.shadow).toEqual({
      version: '2',
      sample: 1,
      serving: true,
    });
  });
});
