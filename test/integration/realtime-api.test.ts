/**
 * The real-time lane end to end: the real handler behind the API Gateway adapter, over HTTP, against
 * dynalite and s3rver, with the demo model uploaded and the demo dataset seeded.
 */
import { DeleteTableCommand, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readDemoDataset } from '../../local/demo-dataset.ts';
import {
  DEMO_MODEL,
  LOCAL_BUCKET,
  LOCAL_TABLE,
  REPO_ROOT,
  startLocalStack,
  type LocalStack,
} from '../../local/stack.ts';

let stack: LocalStack;
const demo = await readDemoDataset();
const featuresOf = demo.featuresOf;
const manifest = JSON.parse(
  await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, '1.0.0', 'manifest.json'), 'utf8'),
) as { features: { name: string; type: string }[] };

beforeAll(async () => {
  stack = await startLocalStack({
    apiPort: 0,
    handlerEnv: { MODEL_REFRESH_SECONDS: '0', CACHE_BUDGET_MS: '2000' },
  });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
}, 60_000);

async function post(body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  const response = await fetch(`${stack.apiUrl}/predict`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- read field by field in assertions
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

describe('real-time lane over HTTP', () => {
  it('seeded the whole demo dataset', () => {
    expect(stack.seed).toMatchObject({
      status: 'SUCCEEDED',
      counts: { read: 2000, scored: 2000, rejected: 0, writtenToTable: 2000 },
    });
    expect([...stack.uploadedKeys].sort()).toEqual([
      'models/fraud-detector/1.0.0/baseline.json',
      'models/fraud-detector/1.0.0/manifest.json',
      'models/fraud-detector/1.0.0/model.onnx',
      'models/fraud-detector/current.json',
    ]);
  });

  it('answers a precomputed id from the table, equal to what the model says for its features', async () => {
    const row = demo.rows[0]!;
    const cached = await post({ id: row[0] });
    expect(cached.status).toBe(200);
    expect(cached.body).toMatchObject({
      id: row[0],
      source: 'cache',
      model: { name: DEMO_MODEL, version: '1.0.0' },
    });
    expect(cached.body.ageSeconds).toBeGreaterThanOrEqual(0);
    expect(Date.parse(cached.body.computedAt)).toBeLessThanOrEqual(Date.now());
    const scored = await post({ id: row[0], features: featuresOf(row), bypassCache: true });
    expect(scored.body.source).toBe('model');
    expect(scored.body.prediction).toEqual(cached.body.prediction);
    const item = await stack.dynamo.send(
      new GetItemCommand({ TableName: LOCAL_TABLE, Key: { pk: { S: `${DEMO_MODEL}#1.0.0#${row[0]}` } } }),
    );
    expect(item.Item?.['modelVersion']).toEqual({ S: '1.0.0' });
    expect(Number(item.Item?.['expiresAt']?.N)).toBe(
      Math.floor(Number(item.Item?.['computedAt']?.N) / 1000) + 604_800,
    );
  });

  it('scores a new id with features, and says 404 for a new id without them', async () => {
    const scored = await post({ id: 'txn-unknown-1', features: featuresOf(demo.rows[5]!) });
    expect(scored.body).toMatchObject({ id: 'txn-unknown-1', source: 'model', ageSeconds: 0 });
    const missing = await post({ id: 'txn-unknown-2' });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('NOT_PRECOMPUTED');
  });

  it('answers 250 mixed instances in request order (cache hits over several BatchGetItem calls)', async () => {
    const instances = Array.from({ length: 250 }, (_, i) => {
      const row = demo.rows[i]!;
      return i % 5 === 0 ? { id: `new-${i}`, features: featuresOf(row) } : { id: row[0] };
    });
    const response = await post({ instances });
    expect(response.status).toBe(200);
    const predictions = response.body.predictions as { id: string; source: string; prediction: unknown }[];
    expect(predictions.map((p) => p.id)).toEqual(instances.map((i) => i.id));
    expect(predictions.map((p) => p.source)).toEqual(
      instances.map((i) => ('features' in i ? 'model' : 'cache')),
    );
    // Model answers for new ids equal the precomputed answers for the same rows.
    const cachedByRow = await post({
      instances: instances.filter((_, i) => i % 5 === 0).map((_, k) => ({ id: demo.rows[k * 5]![0] })),
    });
    const modelAnswers = predictions.filter((p) => p.source === 'model').map((p) => p.prediction);
    expect(modelAnswers).toEqual(
      cachedByRow.body.predictions.map((p: { prediction: unknown }) => p.prediction),
    );
  });

  it('honours maxStalenessSeconds', async () => {
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const row = demo.rows[1]!;
    const strict = await post({ id: row[0], features: featuresOf(row), maxStalenessSeconds: 0 });
    expect(strict.body).toMatchObject({ source: 'model', cacheStatus: 'stale' });
    const idOnly = await post({ id: row[0], maxStalenessSeconds: 0 });
    expect(idOnly.status).toBe(404);
  });

  it('rejects bad input with 4xx and keeps serving', async () => {
    expect((await post('{"id":')).body.error.code).toBe('INVALID_JSON');
    const invalid = await post({
      id: 'x',
      features: { ...featuresOf(demo.rows[0]!), merchant_category: 'casino', amount: 'NaN' },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.details.map((d: { field: string }) => d.field)).toEqual([
      'features.amount',
      'features.merchant_category',
    ]);
    const tooLarge = await post({ id: 'x', pad: 'x'.repeat(2_000_000) });
    expect([tooLarge.status, tooLarge.body.error.code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    const route = await fetch(`${stack.apiUrl}/nope`);
    expect(route.status).toBe(404);
    expect((await post({ id: demo.rows[0]![0] })).status).toBe(200);
  });

  it('describes what is served', async () => {
    const health = await fetch(`${stack.apiUrl}/health`);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${stack.apiUrl}/ready`);
    expect(await ready.json()).toEqual({
      status: 'ready',
      model: { name: DEMO_MODEL, version: '1.0.0', since: expect.any(String) },
      pointer: { version: '1.0.0', serving: true, checkedAt: expect.any(String) },
    });
    const models = (await (await fetch(`${stack.apiUrl}/models`)).json()) as { models: unknown[] };
    expect(models.models).toEqual([
      expect.objectContaining({
        name: DEMO_MODEL,
        version: '1.0.0',
        task: 'binary-classification',
        default: true,
      }),
    ]);
    const schema = (await (await fetch(`${stack.apiUrl}/models/${DEMO_MODEL}`)).json()) as Record<
      string,
      unknown
    >;
    expect(schema).toMatchObject({ idField: 'transaction_id', outputs: { classes: [0, 1] } });
    expect((schema['features'] as { name: string }[]).map((f) => f.name)).toEqual(
      manifest.features.map((f) => f.name),
    );
  });

  it('serves a promoted model version and never serves cache entries of the old one', async () => {
    const dir = path.join(REPO_ROOT, 'models', DEMO_MODEL, '1.0.0');
    const promoted = {
      ...JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')),
      version: '1.0.1',
    };
    await stack.s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `models/${DEMO_MODEL}/1.0.1/model.onnx`,
        Body: await readFile(path.join(dir, 'model.onnx')),
      }),
    );
    await stack.s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `models/${DEMO_MODEL}/1.0.1/manifest.json`,
        Body: JSON.stringify(promoted),
      }),
    );
    await stack.s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `models/${DEMO_MODEL}/current.json`,
        Body: '{"version":"1.0.1"}',
      }),
    );
    const row = demo.rows[2]!;
    const scored = await post({ id: row[0], features: featuresOf(row) });
    // 1.0.0's entry is under its own key (<model>#1.0.0#<id>): 1.0.1 never reads it.
    expect(scored.body).toMatchObject({
      source: 'model',
      cacheStatus: 'miss',
      model: { version: '1.0.1' },
    });
    expect((await post({ id: row[0] })).status).toBe(404);
  });

  it('answers from the model and says the cache was skipped when the table is gone', async () => {
    await stack.dynamo.send(new DeleteTableCommand({ TableName: LOCAL_TABLE }));
    const row = demo.rows[3]!;
    const response = await post({ id: row[0], features: featuresOf(row) });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      source: 'model',
      cacheStatus: 'skipped',
      cache: { status: 'skipped' },
    });
    expect(response.body.cache.reason).toBe('the table does not exist');
    const idOnly = await post({ id: row[0] });
    expect([idOnly.status, idOnly.body.error.code]).toEqual([503, 'CACHE_UNAVAILABLE']);
  });
});
