/**
 * A stack whose default model cannot load: /ready says why, predictions get 503 with a clear code,
 * /health stays up, and the service recovers once a good package is published.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT, startLocalStack, type LocalStack } from '../../local/stack.ts';

let stack: LocalStack;
let modelsDir: string;

beforeAll(async () => {
  modelsDir = await mkdtemp(path.join(tmpdir(), 'tandem-models-'));
  await cp(path.join(REPO_ROOT, 'models', DEMO_MODEL, '1.0.0'), path.join(modelsDir, DEMO_MODEL, '1.0.0'), {
    recursive: true,
  });
  await writeFile(
    path.join(modelsDir, DEMO_MODEL, '1.0.0', 'model.onnx'),
    Buffer.from('this is not an onnx model'),
  );
  await writeFile(path.join(modelsDir, DEMO_MODEL, 'current.json'), '{"version":"1.0.0"}');
  stack = await startLocalStack({
    apiPort: 0,
    modelsDir,
    seed: false,
    handlerEnv: { MODEL_REFRESH_SECONDS: '0' },
  });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  await rm(modelsDir, { recursive: true, force: true });
});

describe('default model unavailable', () => {
  it('stays alive, says not ready with the reason, and answers 503', async () => {
    expect((await fetch(`${stack.apiUrl}/health`)).status).toBe(200);
    const ready = await fetch(`${stack.apiUrl}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({
      status: 'not-ready',
      model: { name: DEMO_MODEL },
      error: { code: 'MODEL_CORRUPT' },
    });
    const predict = await fetch(`${stack.apiUrl}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'a', features: {} }),
    });
    expect(predict.status).toBe(503);
    expect(predict.headers.get('retry-after')).toBe('5');
    const body = (await predict.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('MODEL_UNAVAILABLE');
    expect(body.error.message).toBe(`model "${DEMO_MODEL}" is not available (MODEL_CORRUPT); see GET /ready`);
  });

  it('recovers when a good model is published', async () => {
    const good = await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, '1.0.0', 'model.onnx'));
    await stack.s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `models/${DEMO_MODEL}/1.0.0/model.onnx`,
        Body: good,
      }),
    );
    // Failed loads are retried after 10 s; wait for it rather than reach into the process.
    const deadline = Date.now() + 15_000;
    let status = 503;
    while (Date.now() < deadline && status !== 200) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      status = (await fetch(`${stack.apiUrl}/ready`)).status;
    }
    expect(status).toBe(200);
  }, 20_000);
});
