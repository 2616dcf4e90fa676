import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { cachePolicyFromEnv, withCachePolicy } from '../../lambdas/adapters/cache-policy-override.ts';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { loadModelVersion, ModelRegistry } from '../../lambdas/core/model-registry.ts';
import { tinyManifest, tinyModelBytes } from '../support/tiny-model.ts';

let root: string;

async function publish(manifest: unknown): Promise<void> {
  const dir = path.join(root, 'tiny', '1');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  await writeFile(path.join(dir, 'model.onnx'), tinyModelBytes());
  await writeFile(path.join(root, 'tiny', 'current.json'), JSON.stringify({ version: '1' }));
}

function registryOver(source: ReturnType<typeof withCachePolicy>): ModelRegistry {
  return new ModelRegistry(source, { defaultModel: 'tiny', refreshSeconds: 60, retryFailedSeconds: 10 });
}

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tandem-cache-override-'));
}, 60_000);
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
}, 60_000);

describe('withCachePolicy', () => {
  it('returns the source itself when nothing is overridden', () => {
    const source = new FsModelSource(root);
    expect(withCachePolicy(source, {})).toBe(source);
  });

  it("replaces the manifest's max age and TTL, and leaves the model file alone", async () => {
    await publish(tinyManifest('1'));
    const source = withCachePolicy(new FsModelSource(root), { maxAgeSeconds: 600, ttlSeconds: 7200 });
    const registry = registryOver(source);
    expect((await registry.manifest('tiny')).cache).toEqual({ maxAgeSeconds: 600, ttlSeconds: 7200 });
    const model = await loadModelVersion(source, 'tiny', '1');
    expect(model.manifest.cache).toEqual({ maxAgeSeconds: 600, ttlSeconds: 7200 });
    await model.close();
    expect(Buffer.from(await source.read('tiny', '1', 'model.onnx'))).toEqual(
      await readFile(path.join(root, 'tiny', '1', 'model.onnx')),
    );
  });

  it('overrides one field and keeps the other from the manifest', async () => {
    await publish(tinyManifest('1')); // maxAgeSeconds 3600, ttlSeconds 86400
    const source = withCachePolicy(new FsModelSource(root), { ttlSeconds: 4000 });
    expect((await registryOver(source).manifest('tiny')).cache).toEqual({
      maxAgeSeconds: 3600,
      ttlSeconds: 4000,
    });
  });

  it('applies to a manifest without a cache section', async () => {
    const { cache: _omitted, ...manifest } = tinyManifest('1');
    await publish(manifest);
    const source = withCachePolicy(new FsModelSource(root), { maxAgeSeconds: 60 });
    // The TTL keeps the schema default (7 days).
    expect((await registryOver(source).manifest('tiny')).cache).toEqual({
      maxAgeSeconds: 60,
      ttlSeconds: 7 * 86_400,
    });
  });

  it("fails the load with the manifest's own rule when the result is incoherent (TTL under the max age)", async () => {
    await publish(tinyManifest('1')); // maxAgeSeconds 3600
    const source = withCachePolicy(new FsModelSource(root), { ttlSeconds: 60 });
    await expect(loadModelVersion(source, 'tiny', '1')).rejects.toThrow(
      /ttlSeconds: ttlSeconds must be at least maxAgeSeconds/,
    );
  });

  it('leaves a manifest that is not JSON to the loader, which names the file', async () => {
    await publish(tinyManifest('1'));
    await writeFile(path.join(root, 'tiny', '1', 'manifest.json'), '{ not json');
    const source = withCachePolicy(new FsModelSource(root), { maxAgeSeconds: 60 });
    await expect(loadModelVersion(source, 'tiny', '1')).rejects.toThrow(/tiny\/1\/manifest\.json/);
  });
});

describe('cachePolicyFromEnv', () => {
  it('reads whole seconds; unset or empty means the manifest decides', () => {
    expect(cachePolicyFromEnv({})).toEqual({});
    expect(cachePolicyFromEnv({ CACHE_MAX_AGE_SECONDS: '', CACHE_TTL_SECONDS: '' })).toEqual({});
    expect(cachePolicyFromEnv({ CACHE_MAX_AGE_SECONDS: '3600', CACHE_TTL_SECONDS: '86400' })).toEqual({
      maxAgeSeconds: 3600,
      ttlSeconds: 86_400,
    });
  });

  it.each(['0', '-5', '1.5', 'abc', '1e3', '999999999999'])('rejects %j, naming the variable', (raw) => {
    expect(() => cachePolicyFromEnv({ CACHE_TTL_SECONDS: raw })).toThrow(
      new RegExp(`^CACHE_TTL_SECONDS: expected an integer from 1 to \\d+, got "${raw}"$`),
    );
  });
});
