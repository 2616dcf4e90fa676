/**
 * A stack whose default model cannot load: /ready says why, predictions get 503 with a clear code,
 * /health stays up, and the service recovers once a good package is published.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT, startLocalStack, type LocalStack } from '../../local/stack.ts';
import { expectWithMessage } from '../support/expect-message.ts';

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
}, 60_000);

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
    expect(body.error.message).toMatch(
      new RegExp(
        `^model "${DEMO_MODEL}" is not available \\(MODEL_CORRUPT\\): model\\.onnx is not a valid ONNX protobuf: .*; see GET /ready$`,
      ),
    );
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

describe('named models that cannot be served', () => {
  const demoDir = path.join(REPO_ROOT, 'models', DEMO_MODEL, '1.0.0');
  const put = (key: string, body: string | Uint8Array) =>
    stack.s3.send(new PutObjectCommand({ Bucket: LOCAL_BUCKET, Key: `models/${key}`, Body: body }));
  const manifestFor = async (name: string, change: (m: Record<string, unknown>) => void) => {
    const manifest = JSON.parse(await readFile(path.join(demoDir, 'manifest.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    manifest['name'] = name;
    change(manifest);
    return JSON.stringify(manifest);
  };
  /** Each broken package, and the code its failure must be reported with. */
  const BROKEN: { name: string; code: string; publish: (name: string) => Promise<unknown> }[] = [
    {
      name: 'no-onnx-file',
      code: 'MODEL_FILE_MISSING',
      publish: async (name) => put(`${name}/1.0.0/manifest.json`, await manifestFor(name, () => undefined)),
    },
    {
      name: 'manifest-not-json',
      code: 'INVALID_MANIFEST',
      publish: async (name) => put(`${name}/1.0.0/manifest.json`, '{"name": "manifest-not-json",'),
    },
    {
      name: 'manifest-bad-task',
      code: 'INVALID_MANIFEST',
      publish: async (name) =>
        put(`${name}/1.0.0/manifest.json`, await manifestFor(name, (m) => (m['task'] = 'clustering'))),
    },
    {
      name: 'manifest-wrong-input',
      code: 'INVALID_MANIFEST',
      publish: async (name) =>
        put(
          `${name}/1.0.0/manifest.json`,
          await manifestFor(name, (m) => ((m['inputs'] as { name: string }[])[0]!.name = 'no_such_input')),
        ),
    },
    {
      name: 'onnx-truncated',
      code: 'MODEL_CORRUPT',
      publish: async (name) => {
        const onnx = await readFile(path.join(demoDir, 'model.onnx'));
        await put(`${name}/1.0.0/model.onnx`, onnx.subarray(0, Math.floor(onnx.length / 2)));
        return put(`${name}/1.0.0/manifest.json`, await manifestFor(name, () => undefined));
      },
    },
    {
      name: 'pointer-escapes',
      code: 'INVALID_POINTER',
      publish: async () => undefined,
    },
  ];

  beforeAll(async () => {
    const goodOnnx = await readFile(path.join(demoDir, 'model.onnx'));
    for (const broken of BROKEN) {
      // Every package but the two whose ONNX file is the broken part gets the good one.
      if (broken.code !== 'MODEL_FILE_MISSING' && broken.code !== 'MODEL_CORRUPT')
        await put(`${broken.name}/1.0.0/model.onnx`, goodOnnx);
      await broken.publish(broken.name);
      const version = broken.code === 'INVALID_POINTER' ? '../../fraud-detector/1.0.0' : '1.0.0';
      await put(`${broken.name}/current.json`, JSON.stringify({ version }));
    }
  }, 60_000);

  it.each(BROKEN)(
    '$name: predictions get 503 MODEL_UNAVAILABLE ($code), /models says why',
    async (broken) => {
      const predict = await fetch(`${stack.apiUrl}/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: 'a', model: broken.name, features: {} }),
      });
      const text = await predict.text();
      expectWithMessage(predict.status, text).toBe(503);
      expect(predict.headers.get('retry-after')).toBe('5');
      // The precise reason (the package's files and manifest fields are the documented layout), never the
      // store's bucket, keys or endpoint.
      expect(JSON.parse(text).error).toMatchObject({
        code: 'MODEL_UNAVAILABLE',
        message: expect.stringMatching(
          new RegExp(
            `^model "${broken.name}" is not available \\(${broken.code}\\): .+; see GET /models/${broken.name}$`,
          ),
        ),
      });
      expect(text).not.toMatch(/s3:\/\/|tandem-data|Exception|127\.0\.0\.1/);
      const models = (await (await fetch(`${stack.apiUrl}/models`)).json()) as {
        models: { name: string; error?: { code: string } }[];
      };
      const listed = models.models.find((m) => m.name === broken.name);
      expect(listed).toMatchObject({ error: { code: broken.code, message: expect.any(String) } });
      const described = await fetch(`${stack.apiUrl}/models/${broken.name}`);
      const describedText = await described.text();
      // One shape for every load failure: 200, and the same error as /models lists.
      expect(described.status).toBe(200);
      expect(JSON.parse(describedText).error).toEqual(listed!.error);
      // The load message names the package's files (their names are the documented layout), never the store.
      expect(describedText).not.toMatch(/s3:\/\/|tandem-data|Exception|127\.0\.0\.1/);
      // The server keeps serving: health stays up whatever the broken packages.
      expect((await fetch(`${stack.apiUrl}/health`)).status).toBe(200);
    },
  );
});
