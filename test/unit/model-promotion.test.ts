/**
 * Promotions that fail: whatever happens to `current.json` (corrupt model, missing version, not JSON,
 * deleted, a store that cannot be read), the registry keeps serving the last version that loaded, says
 * why the pointer's version is not serving, tells its listener once per change, and recovers when the
 * pointer is fixed. Over an in-memory model source and an injected clock.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { parsePointer } from '../../lambdas/adapters/model-pointer.ts';
import { ModelLoadError, ModelNotFoundError } from '../../lambdas/core/errors.ts';
import { readModelPackage } from '../../lambdas/core/model-package.ts';
import {
  ModelRegistry,
  type ModelRegistryEvents,
  type ServingChange,
} from '../../lambdas/core/model-registry.ts';
import type { ModelFile, ModelSource } from '../../lambdas/core/ports.ts';
import { tinyManifest, tinyModelBytes } from '../support/tiny-model.ts';

const utf8 = new TextEncoder();

/** A model store in memory: `<name>/current.json` and `<name>/<version>/<file>`, or a fault for every read. */
class MemoryModelSource implements ModelSource {
  readonly description = 'memory';
  readonly files = new Map<string, Uint8Array>();
  fault: Error | undefined;
  reads = 0;

  publish(version: string, options: { corrupt?: boolean } = {}): void {
    this.files.set(`tiny/${version}/manifest.json`, utf8.encode(JSON.stringify(tinyManifest(version))));
    this.files.set(
      `tiny/${version}/model.onnx`,
      options.corrupt ? utf8.encode('this is not an onnx model') : tinyModelBytes(),
    );
  }

  point(body: string | undefined): void {
    if (body === undefined) this.files.delete('tiny/current.json');
    else this.files.set('tiny/current.json', utf8.encode(body));
  }

  async currentVersion(name: string): Promise<string> {
    this.reads++;
    if (this.fault) throw this.fault;
    const bytes = this.files.get(`${name}/current.json`);
    if (!bytes) throw new ModelNotFoundError('MODEL_NOT_FOUND', `no model named "${name}"`);
    return parsePointer(bytes, `${name}/current.json`);
  }

  async read(name: string, version: string, file: ModelFile): Promise<Uint8Array> {
    if (this.fault) throw this.fault;
    const bytes = this.files.get(`${name}/${version}/${file}`);
    if (!bytes) throw new ModelLoadError('MODEL_FILE_MISSING', `${file} of ${name}@${version} is missing`);
    return bytes;
  }

  async list(): Promise<string[]> {
    return [...this.files.keys()].filter((k) => k.endsWith('/current.json')).map((k) => k.split('/')[0]!);
  }
}

let now: number;
let source: MemoryModelSource;
let changes: ServingChange[];
let checks: { name: string; failing: boolean; at: number }[];
let registry: ModelRegistry;

const events: ModelRegistryEvents = {
  changed: (change) => changes.push(change),
  checked: (name, failing) => checks.push({ name, failing, at: now }),
};

/** Lets the refresh interval pass and makes a request, as traffic would. */
async function nextCheck(name?: string) {
  now += 1_000;
  return (await registry.get(name)).version;
}

beforeEach(async () => {
  now = 1_000_000;
  changes = [];
  checks = [];
  source = new MemoryModelSource();
  source.publish('1');
  source.point('{"version":"1"}');
  registry = new ModelRegistry(source, {
    defaultModel: 'tiny',
    refreshSeconds: 1,
    retryFailedSeconds: 10,
    reportSeconds: 60,
    events,
    now: () => now,
  });
  expect((await registry.get()).version).toBe('1');
}, 60_000);
afterEach(async () => {
  await registry.close();
}, 60_000);

/** Each way a promotion can fail, and what the registry must say about it. */
const FAILURES: {
  name: string;
  break: () => void;
  code: string;
  pointerVersion: string | undefined;
  message: RegExp;
}[] = [
  {
    name: 'pointer at a corrupt model',
    break: () => {
      source.publish('2', { corrupt: true });
      source.point('{"version":"2"}');
    },
    code: 'MODEL_CORRUPT',
    pointerVersion: '2',
    message: /^model\.onnx is not a valid ONNX protobuf: .+/,
  },
  {
    name: 'pointer at a version never uploaded',
    break: () => source.point('{"version":"3"}'),
    code: 'VERSION_NOT_FOUND',
    pointerVersion: '3',
    message: /^version 3 of tiny does not exist \(no manifest\.json or model\.onnx under tiny\/3\/\)$/,
  },
  {
    name: 'pointer at a version whose model file is missing',
    break: () => {
      source.publish('4');
      source.files.delete('tiny/4/model.onnx');
      source.point('{"version":"4"}');
    },
    code: 'MODEL_FILE_MISSING',
    pointerVersion: '4',
    message: /^model\.onnx of tiny@4 is missing$/,
  },
  {
    name: 'pointer not JSON',
    break: () => source.point('{"version": "2"'),
    code: 'INVALID_POINTER',
    pointerVersion: undefined,
    message: /^tiny\/current\.json is not valid JSON \(.+\)$/,
  },
  {
    name: 'pointer without a version',
    break: () => source.point('{"Version": "2"}'),
    code: 'INVALID_POINTER',
    pointerVersion: undefined,
    message: /it has no "version" field$/,
  },
  {
    name: 'pointer deleted',
    break: () => source.point(undefined),
    code: 'POINTER_MISSING',
    pointerVersion: undefined,
    message: /^tiny has no current\.json: no version is promoted$/,
  },
  {
    name: 'store unreadable',
    break: () => {
      source.fault = new ModelLoadError(
        'MODEL_STORE_UNAVAILABLE',
        'the model store is unavailable (AccessDenied)',
      );
    },
    code: 'MODEL_STORE_UNAVAILABLE',
    pointerVersion: undefined,
    message: /^the model store is unavailable \(AccessDenied\)$/,
  },
  {
    name: 'store failing with an unexpected error',
    break: () => {
      source.fault = new Error('socket hang up');
    },
    code: 'MODEL_LOAD_FAILED',
    pointerVersion: undefined,
    message: /^cannot load model tiny: socket hang up$/,
  },
];

describe('a promotion that fails', () => {
  it.each(FAILURES)(
    '$name: serves the last good version and says why ($code)',
    async (failure) => {
      failure.break();
      expect(await nextCheck()).toBe('1');
      const status = registry.status();
      expect(status).toMatchObject({
        ready: true,
        version: '1',
        error: { code: failure.code, since: now },
      });
      expect(status.pointerVersion).toBe(failure.pointerVersion);
      expect(status.error?.message).toMatch(failure.message);
      // The hot path keeps its fast answer while the failure is remembered.
      expect(registry.ready()?.version).toBe('1');
      expect(changes.at(-1)).toEqual({
        kind: 'failed',
        name: 'tiny',
        servingVersion: '1',
        pointerVersion: failure.pointerVersion,
        problem: { code: failure.code, message: status.error?.message, since: now },
      });
    },
    30_000,
  );

  it.each(FAILURES)(
    '$name: recovers when the pointer is fixed, and says so once',
    async (failure) => {
      failure.break();
      await nextCheck();
      source.fault = undefined;
      source.point('{"version":"1"}');
      expect(await nextCheck()).toBe('1');
      expect(registry.status().error).toBeUndefined();
      expect(registry.status().pointerVersion).toBe('1');
      const recovered = changes.filter((c) => c.kind === 'serving' && c.recovered);
      expect(recovered).toEqual([
        {
          kind: 'serving',
          name: 'tiny',
          version: '1',
          previousVersion: '1',
          recovered: expect.objectContaining({ code: failure.code }),
        },
      ]);
      await nextCheck();
      expect(changes.filter((c) => c.kind === 'serving' && c.recovered)).toHaveLength(1);
    },
    30_000,
  );

  it('tells the listener once per change, not once per check', async () => {
    source.publish('2', { corrupt: true });
    source.point('{"version":"2"}');
    for (let i = 0; i < 5; i++) expect(await nextCheck()).toBe('1');
    source.point(undefined);
    for (let i = 0; i < 5; i++) expect(await nextCheck()).toBe('1');
    expect(changes.map((c) => (c.kind === 'failed' ? c.problem.code : `serving ${c.version}`))).toEqual([
      'serving 1',
      'MODEL_CORRUPT',
      'POINTER_MISSING',
    ]);
    // The first failing check of the same problem keeps its time.
    expect(registry.status().error?.since).toBe(1_000_000 + 6_000);
  });

  it('reports each check outcome at each change and at most once per report interval otherwise', async () => {
    expect(checks).toEqual([{ name: 'tiny', failing: false, at: 1_000_000 }]);
    await nextCheck();
    expect(checks).toHaveLength(1);
    source.point(undefined);
    await nextCheck();
    expect(checks.at(-1)).toEqual({ name: 'tiny', failing: true, at: 1_002_000 });
    for (let i = 0; i < 59; i++) await nextCheck();
    expect(checks).toHaveLength(2);
    await nextCheck(); // 60 s after the last report
    expect(checks).toHaveLength(3);
    expect(checks.at(-1)).toEqual({ name: 'tiny', failing: true, at: 1_062_000 });
    source.point('{"version":"1"}');
    await nextCheck();
    expect(checks.at(-1)).toEqual({ name: 'tiny', failing: false, at: 1_063_000 });
  });

  it('serves a good version promoted after a failed one, and says it changed', async () => {
    source.point('{"version":"3"}');
    await nextCheck();
    source.publish('5');
    source.point('{"version":"5"}');
    expect(await nextCheck()).toBe('5');
    expect(registry.status()).toMatchObject({
      ready: true,
      version: '5',
      pointerVersion: '5',
      servingSince: now,
    });
    expect(changes.at(-1)).toEqual({
      kind: 'serving',
      name: 'tiny',
      version: '5',
      previousVersion: '1',
      recovered: expect.objectContaining({ code: 'VERSION_NOT_FOUND' }),
    });
  });

  it('keeps listing and describing a model whose pointer was deleted', async () => {
    source.point(undefined);
    await nextCheck();
    expect(await registry.list()).toEqual(['tiny']);
    expect((await registry.manifest('tiny')).version).toBe('1');
  });
});

describe('a model that never loaded', () => {
  function coldRegistry(): ModelRegistry {
    return new ModelRegistry(source, {
      defaultModel: 'tiny',
      refreshSeconds: 1,
      retryFailedSeconds: 10,
      events,
      now: () => now,
    });
  }

  it('the default model without a pointer: not ready with POINTER_MISSING, never "not loaded yet"', async () => {
    source.point(undefined);
    changes = [];
    const cold = coldRegistry();
    expect(cold.status().error?.code).toBe('MODEL_LOADING'); // before the first attempt only
    await expect(cold.get()).rejects.toMatchObject({ code: 'POINTER_MISSING' });
    await expect(cold.get()).rejects.toMatchObject({ code: 'POINTER_MISSING' });
    expect(cold.status()).toMatchObject({ ready: false, error: { code: 'POINTER_MISSING' } });
    expect(cold.status().version).toBeUndefined();
    expect(changes).toEqual([
      expect.objectContaining({ kind: 'failed', servingVersion: undefined, pointerVersion: undefined }),
    ]);
    // The pointer comes back: served after the retry delay.
    source.point('{"version":"1"}');
    now += 11_000;
    expect((await cold.get()).version).toBe('1');
    expect(changes.at(-1)).toMatchObject({
      kind: 'serving',
      version: '1',
      recovered: { code: 'POINTER_MISSING' },
    });
    await cold.close();
  });

  it('the default model at a broken version: not ready with the load code', async () => {
    source.point('{"version":"9"}');
    const cold = coldRegistry();
    await expect(cold.get()).rejects.toMatchObject({ code: 'VERSION_NOT_FOUND' });
    expect(cold.status()).toMatchObject({
      ready: false,
      pointerVersion: '9',
      error: { code: 'VERSION_NOT_FOUND' },
    });
    // Remembered for the retry delay: no read of the store for each request meanwhile.
    const reads = source.reads;
    await expect(cold.get()).rejects.toMatchObject({ code: 'VERSION_NOT_FOUND' });
    expect(source.reads).toBe(reads);
  });

  it('a name without a pointer is not found, and leaves nothing behind (no event, no entry)', async () => {
    changes = [];
    checks = [];
    await expect(registry.get('nobody')).rejects.toThrow(ModelNotFoundError);
    expect(changes).toEqual([]);
    expect(checks).toEqual([]);
    expect(registry.status('nobody').error?.code).toBe('MODEL_LOADING');
    expect(await registry.list()).toEqual(['tiny']);
  });
});

describe('model sources and packages', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'tandem-pointer-'));
  }, 60_000);
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  }, 60_000);

  it('a folder source: a missing pointer is not found, an unreadable one is the store unavailable', async () => {
    const folder = new FsModelSource(root);
    await expect(folder.currentVersion('tiny')).rejects.toThrow(ModelNotFoundError);
    // A folder where the file should be: it exists but cannot be read as a file.
    await mkdir(path.join(root, 'tiny', 'current.json'), { recursive: true });
    await expect(folder.currentVersion('tiny')).rejects.toMatchObject({
      code: 'MODEL_STORE_UNAVAILABLE',
      message: 'the model store is unavailable (EISDIR)',
    });
    await mkdir(path.join(root, 'tiny', '1', 'model.onnx'), { recursive: true });
    await expect(folder.read('tiny', '1', 'model.onnx')).rejects.toMatchObject({
      code: 'MODEL_STORE_UNAVAILABLE',
    });
    await expect(folder.read('tiny', '1', 'manifest.json')).rejects.toMatchObject({
      code: 'MODEL_FILE_MISSING',
    });
  });

  it('a missing version is VERSION_NOT_FOUND; one missing file is MODEL_FILE_MISSING', async () => {
    const folder = new FsModelSource(root);
    await expect(readModelPackage(folder, 'tiny', '7')).rejects.toMatchObject({ code: 'VERSION_NOT_FOUND' });
    await mkdir(path.join(root, 'tiny', '7'), { recursive: true });
    await writeFile(path.join(root, 'tiny', '7', 'manifest.json'), JSON.stringify(tinyManifest('7')));
    await expect(readModelPackage(folder, 'tiny', '7')).rejects.toMatchObject({
      code: 'MODEL_FILE_MISSING',
      message: 'model.onnx of tiny@7 is missing',
    });
  });

  /** Pointer bodies that are not `{"version": "<version>"}`, and what the message must say. */
  const BAD_POINTERS: { body: Uint8Array | string; message: RegExp }[] = [
    { body: '', message: /^p is not valid JSON \(.*JSON.*\)$/ },
    { body: 'latest', message: /^p is not valid JSON \(.+\)$/ },
    { body: new Uint8Array([0x7b, 0xff, 0x7d]), message: /^p is not valid JSON \(it is not UTF-8\)$/ },
    { body: 'null', message: /it has no "version" field$/ },
    { body: '["1.0.0"]', message: /it has no "version" field$/ },
    { body: '{"version": 2}', message: /it has "version": 2$/ },
    { body: '{"version": "../other/1"}', message: /it has "version": "\.\.\/other\/1"$/ },
    { body: '{"version": ""}', message: /it has "version": ""$/ },
  ];
  it.each(BAD_POINTERS)('pointer $body is INVALID_POINTER saying why', ({ body, message }) => {
    const bytes = typeof body === 'string' ? utf8.encode(body) : body;
    let error: unknown;
    try {
      parsePointer(bytes, 'p');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ModelLoadError);
    expect(error).toMatchObject({ code: 'INVALID_POINTER', message: expect.stringMatching(message) });
  });

  it('a good pointer gives its version', () => {
    expect(parsePointer(utf8.encode('{"version": "1.2.3", "note": "x"}'), 'p')).toBe('1.2.3');
  });
});
