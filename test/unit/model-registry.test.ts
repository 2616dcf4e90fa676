import { GetObjectCommand, NoSuchKey, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { ModelLoadError, ModelNotFoundError } from '../../lambdas/core/errors.ts';
import { ModelRegistry } from '../../lambdas/core/model-registry.ts';
import { tinyManifest, tinyModelBytes } from '../support/tiny-model.ts';

let root: string;
let now: number;

async function publish(
  version: string,
  options: { corrupt?: boolean; skipModel?: boolean; manifest?: unknown } = {},
) {
  const dir = path.join(root, 'tiny', version);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(options.manifest ?? tinyManifest(version)));
  if (!options.skipModel) {
    await writeFile(
      path.join(dir, 'model.onnx'),
      options.corrupt ? Buffer.from('not onnx at all') : tinyModelBytes(),
    );
  }
  await writeFile(path.join(root, 'tiny', 'current.json'), JSON.stringify({ version }));
}

function registry(refreshSeconds = 60) {
  return new ModelRegistry(new FsModelSource(root), {
    defaultModel: 'tiny',
    refreshSeconds,
    retryFailedSeconds: 10,
    now: () => now,
  });
}

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tandem-registry-'));
  now = 1_000_000;
}, 60_000);
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
}, 60_000);

describe('ModelRegistry', () => {
  it('says a model is ready only while it is loaded and its pointer was checked within the interval', async () => {
    await publish('1');
    const models = registry(60);
    expect(models.ready()).toBeUndefined();
    const loaded = await models.get();
    expect(models.ready()).toBe(loaded);
    expect(models.ready('other')).toBeUndefined();
    now += 61_000;
    expect(models.ready()).toBeUndefined(); // due for a pointer check: get() re-reads it
    expect(await models.get()).toBe(loaded);
    expect(models.ready()).toBe(loaded);
    await models.close();
  });

  it('loads the live version once and serves it until the refresh interval passes', async () => {
    await publish('1');
    const models = registry(60);
    const first = await models.get();
    expect(first.version).toBe('1');
    await publish('2');
    expect((await models.get()).version).toBe('1');
    now += 61_000;
    expect((await models.get()).version).toBe('2');
    expect(models.status()).toMatchObject({ name: 'tiny', ready: true, version: '2', pointerVersion: '2' });
    expect(models.status().error).toBeUndefined();
    await models.close();
  });

  it('reports why the model is not ready, then recovers after the retry delay', async () => {
    await publish('1', { skipModel: true });
    const models = registry();
    await expect(models.get()).rejects.toThrow(ModelLoadError);
    expect(models.status()).toMatchObject({
      name: 'tiny',
      ready: false,
      pointerVersion: '1',
      error: { code: 'MODEL_FILE_MISSING', message: 'model.onnx of tiny@1 is missing' },
    });
    await publish('1');
    await expect(models.get()).rejects.toThrow(ModelLoadError);
    now += 11_000;
    expect((await models.get()).version).toBe('1');
    await models.close();
  });

  it('fails on a corrupt model and on a manifest that does not match its package path', async () => {
    await publish('1', { corrupt: true });
    await expect(registry().get()).rejects.toMatchObject({ code: 'MODEL_CORRUPT' });
    await publish('2', { manifest: tinyManifest('3') });
    await expect(registry().get()).rejects.toThrow(/says tiny@3; the package path says tiny@2/);
  });

  it('keeps serving the loaded version when a promoted one is broken', async () => {
    await publish('1');
    const models = registry(0);
    expect((await models.get()).version).toBe('1');
    await publish('2', { corrupt: true });
    expect((await models.get()).version).toBe('1');
    await models.close();
  });

  it('says an unknown model is not found', async () => {
    await publish('1');
    await expect(registry().get('nope')).rejects.toThrow(ModelNotFoundError);
    expect(await registry().list()).toEqual(['tiny']);
  });
});

describe('S3ModelSource', () => {
  const s3 = mockClient(S3Client);
  afterEach(() => {
    s3.reset();
  }, 60_000);

  it('maps a missing pointer to ModelNotFoundError and a missing file to MODEL_FILE_MISSING', async () => {
    s3.on(GetObjectCommand).rejects(new NoSuchKey({ message: 'gone', $metadata: {} }));
    const source = new S3ModelSource(new S3Client({}), 'bucket', 'models/');
    await expect(source.currentVersion('m')).rejects.toThrow(ModelNotFoundError);
    await expect(source.read('m', '1', 'model.onnx')).rejects.toMatchObject({ code: 'MODEL_FILE_MISSING' });
  });

  it('maps other S3 failures to MODEL_STORE_UNAVAILABLE without leaking the bucket', async () => {
    s3.on(GetObjectCommand).rejects(
      new S3ServiceException({
        name: 'AccessDenied',
        $fault: 'client',
        message: 'denied on arn:aws:s3:::bucket',
        $metadata: {},
      }),
    );
    const error = await new S3ModelSource(new S3Client({}), 'bucket')
      .read('m', '1', 'model.onnx')
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'MODEL_STORE_UNAVAILABLE',
      message: 'the model store is unavailable (AccessDenied)',
    });
  });
});

describe('ModelRegistry canary', () => {
  async function pointTo(body: unknown) {
    await writeFile(path.join(root, 'tiny', 'current.json'), JSON.stringify(body));
  }

  it('loads the pointer canary candidate alongside the live version, and drops it when the canary ends', async () => {
    await publish('2');
    await publish('1');
    await pointTo({ version: '1', canary: { version: '2', percent: 25 } });
    const models = registry(0);
    const live = await models.get();
    expect(live.version).toBe('1');
    expect(models.canary()?.model.version).toBe('2');
    expect(models.canary()?.percent).toBe(25);
    expect(models.status().canary).toEqual({ version: '2', percent: 25, serving: true });

    await pointTo({ version: '1', canary: { version: '2', percent: 60 } });
    await models.get();
    expect(models.canary()?.percent).toBe(60);

    await pointTo({ version: '1' });
    await models.get();
    expect(models.canary()).toBeUndefined();
    expect(models.status().canary).toBeUndefined();
    await models.close();
  });

  it('sends no traffic to a candidate that does not load, says why, keeps serving live, and retries it after the delay', async () => {
    await publish('2', { corrupt: true });
    await publish('1');
    await pointTo({ version: '1', canary: { version: '2', percent: 50 } });
    const models = registry(0);
    expect((await models.get()).version).toBe('1');
    expect(models.canary()).toBeUndefined();
    const status = models.status();
    expect(status.ready).toBe(true);
    expect(status.error).toBeUndefined();
    expect(status.canary).toMatchObject({
      version: '2',
      percent: 50,
      serving: false,
      error: { code: 'MODEL_CORRUPT' },
    });

    // Fixed: tried again only once the retry delay has passed, then it takes its share.
    await publish('2');
    await pointTo({ version: '1', canary: { version: '2', percent: 40 } });
    now += 5_000;
    await models.get();
    expect(models.canary()).toBeUndefined();
    expect(models.status().canary).toMatchObject({ version: '2', percent: 40, serving: false });
    now += 6_000;
    await models.get();
    expect(models.canary()?.model.version).toBe('2');
    expect(models.status().canary).toEqual({ version: '2', percent: 40, serving: true });
    await models.close();
  });

  it.each([
    [{ version: '2', percent: 0 }],
    [{ version: '2', percent: 101 }],
    [{ version: '../x', percent: 10 }],
    [{ version: '1', percent: 10 }],
    ['2'],
  ])('ignores an unreadable canary field %j: all traffic goes to live', async (canary) => {
    await publish('2');
    await publish('1');
    await pointTo({ version: '1', canary });
    const models = registry(0);
    expect((await models.get()).version).toBe('1');
    expect(models.canary()).toBeUndefined();
    expect(models.status().error).toBeUndefined();
    await models.close();
  });

  it('a promotion of the candidate makes the loaded candidate the live model', async () => {
    await publish('2');
    await publish('1');
    await pointTo({ version: '1', canary: { version: '2', percent: 10 } });
    const models = registry(0);
    await models.get();
    const candidate = models.canary()!.model;
    await pointTo({ version: '2', previous: '1' });
    expect(await models.get()).toBe(candidate);
    expect(models.canary()).toBeUndefined();
    await models.close();
  });
});
