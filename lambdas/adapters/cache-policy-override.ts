/**
 * A deployment's cache policy over the models' own: wraps a ModelSource so that every manifest it serves
 * carries the deployment's `cache.maxAgeSeconds` and `cache.ttlSeconds` where they are set
 * (`CACHE_MAX_AGE_SECONDS`, `CACHE_TTL_SECONDS`: the stack's `cacheMaxAgeSeconds` / `cacheTtlSeconds`).
 * The manifest is then validated as usual, so a combination it forbids (a TTL shorter than the max age)
 * fails the model load with the manifest's own message; GET /models/{name} shows the policy in force.
 */
import type { ModelFile, ModelSource } from '../core/ports.ts';

export interface CachePolicyOverride {
  readonly maxAgeSeconds?: number;
  readonly ttlSeconds?: number;
}

export const CACHE_POLICY_ENV = {
  maxAgeSeconds: 'CACHE_MAX_AGE_SECONDS',
  ttlSeconds: 'CACHE_TTL_SECONDS',
} as const;

/** Ten years: far above any useful cache lifetime, far below DynamoDB's TTL horizon. */
export const MAX_CACHE_SECONDS = 10 * 365 * 86_400;

/** Reads the override from the environment (unset or empty: the manifest's value); a bad value throws. */
export function cachePolicyFromEnv(env: NodeJS.ProcessEnv): CachePolicyOverride {
  const override: { maxAgeSeconds?: number; ttlSeconds?: number } = {};
  for (const [field, name] of Object.entries(CACHE_POLICY_ENV) as Array<
    [keyof CachePolicyOverride, string]
  >) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const value = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < 1 || value > MAX_CACHE_SECONDS) {
      throw new Error(
        `${name} must be a whole number of seconds from 1 to ${MAX_CACHE_SECONDS}, got "${raw}"`,
      );
    }
    override[field] = value;
  }
  return override;
}

const utf8 = new TextDecoder();

/** The source itself when there is nothing to override. */
export function withCachePolicy(source: ModelSource, override: CachePolicyOverride): ModelSource {
  if (override.maxAgeSeconds === undefined && override.ttlSeconds === undefined) return source;
  return {
    description: source.description,
    currentVersion: (name) => source.currentVersion(name),
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
