/**
 * Data capture through the local API: npm start captures every request (rate 1); the captures land
 * under capture/<model>/realtime/dt=/hr=/ as gzipped JSON Lines with features, prediction, version,
 * source, cache status, request id and time.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { CaptureRecord } from '../../lambdas/core/capture/capture-record.ts';
import { parseCsv } from '../../lambdas/core/codecs/csv.ts';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT, startLocalStack, type LocalStack } from '../../local/stack.ts';

let stack: LocalStack;
let instances: { id: string; features: Record<string, unknown> }[];

beforeAll(async () => {
  const [head, ...rows] = parseCsv(
    await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, 'demo-transactions.csv'), 'utf8'),
  );
  const header = head!.fields;
  instances = rows.slice(0, 5).map((r) => ({
    id: r.fields[0]!,
    features: Object.fromEntries(
      header.slice(1).map((name, i) => {
        const text = r.fields[i + 1]!;
        const n = Number(text);
        return [name, text === 'true' ? true : text === 'false' ? false : Number.isNaN(n) ? text : n];
      }),
    ),
  }));
  stack = await startLocalStack({ apiPort: 0, seed: false });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
}, 60_000);

describe('data capture (local API)', () => {
  it('captures every prediction with its features, version, cache status and request id', async () => {
    const response = await fetch(`${stack.apiUrl}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instances }),
    });
    expect(response.status).toBe(200);
    const requestId = response.headers.get('x-request-id');
    const body = (await response.json()) as { predictions: { prediction: unknown }[] };
    await stack.flushCaptures();

    const keys = (await stack.objects.list(LOCAL_BUCKET, `capture/${DEMO_MODEL}/realtime/`)).filter((k) =>
      k.endsWith('.jsonl.gz'),
    );
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(key).toMatch(/\/dt=\d{4}-\d{2}-\d{2}\/hr=\d{2}\/[^/]+\.jsonl\.gz$/);
    const records: CaptureRecord[] = [];
    for (const key of keys) {
      const text = gunzipSync(await stack.objects.readBytes(LOCAL_BUCKET, key)).toString('utf8');
      for (const line of text.split('\n')) if (line) records.push(JSON.parse(line) as CaptureRecord);
    }
    const mine = records.filter((r) => r.requestId === requestId);
    expect(mine.map((r) => r.id)).toEqual(instances.map((i) => i.id));
    expect(mine[0]).toMatchObject({
      model: DEMO_MODEL,
      version: '1.0.0',
      source: 'realtime',
      servedBy: 'model',
      cacheStatus: expect.any(String),
      features: instances[0]!.features,
      prediction: body.predictions[0]!.prediction,
    });
    expect(Date.parse(mine[0]!.time)).not.toBeNaN();
  }, 60_000);
});
