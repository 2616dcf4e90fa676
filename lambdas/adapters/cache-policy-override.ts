/**
 * A deployment's cache policy over the models' own: wraps a ModelSource so that every manifest it serves
 * carries the deployment's `cache.maxAgeSeconds` and `cache.ttlSeconds` where they are set
 * (`CACHE_MAX_AGE_SECONDS`, `CACHE_TTL_SECONDS`: the settings `cacheMaxAgeSeconds` / `cacheTtlSeconds`).
 * The manifest is then validated as usual, so a combination it forbids (a TTL shorter than the max age)
 * fails the model load with the manifest's own message; GET /models/{name} shows the policy in force.
 */
import type { ModelFile, ModelSource } from '../core/ports.ts';
import { readEnv, SETTINGS } from '../core/settings.ts';

export interface CachePolicyOverride {
  readonly maxAgeSeconds?: number;
  readonly ttlSeconds?: number;
}

/** Reads the override from the environment (unset or empty: the manifest's value); a bad value throws. */
export function cachePolicyFromEnv(env: NodeJS.ProcessEnv): CachePolicyOverride {
  const maxAgeSeconds = readEnv(SETTINGS.cacheMaxAgeSeconds, env);
  const ttlSeconds = readEnv(SETTINGS.cacheTtlSeconds, env);
  return {
    ...(maxAgeSeconds !== undefined ? { maxAgeSeconds } : {}),
    ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
  };
}

const utf8 = new TextDecoder();

/** The source itself when there is nothing to override. */
export function withCachePolicy(source: ModelSource, override: CachePolicyOverride): ModelSource {
  if (override.maxAgeSeconds === undefined && override.ttlSeconds === undefined) return source;
  return {
    description: source.description,
    currentVersion: (name) => source.currentVersion(name),
    ...(source.currentPointer ? { currentPointer: (name: string) => source.currentPointer!(name) } : {}),
    list: () => source.list(),
    async read(name: string, version: string, file: ModelFile): Promise<Uint8Array> {
      const bytes = await source.read(name, version, file);
      if (file !== 'manifest.json') return bytes;
      let manifest: unknown;
      try {
        manifest = JSON.parse(utf8.decode(bytes));
      } catch {
        return bytes; // Not JSON: the loader reports that, naming the file.
      }
      if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) return bytes;
      const current = (manifest as { cache?: unknown }).cache;
      // A cache section that is not an object stays as it is, for the manifest's validation to report.
      if (
        current !== undefined &&
        (typeof current !== 'object' || current === null || Array.isArray(current))
      )
        return bytes;
      const cache = { ...current, ...override };
      return new TextEncoder().encode(JSON.stringify({ ...manifest, cache }));
    },
  };
}
