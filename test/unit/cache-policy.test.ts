import { describe, expect, it } from '@jest/globals';
import { judgeCached, storedPrediction, type StoredPrediction } from '../../lambdas/core/cache-policy.ts';

const now = Date.parse('2026-06-01T12:00:00Z');
const item: StoredPrediction = storedPrediction(
  {
    model: 'm',
    entityId: 'e1',
    prediction: { value: 1 },
    modelVersion: 'v2',
    computedAt: now - 60_000,
    source: 'batch',
  },
  3600,
);
const policy = { nowMs: now, maxAgeSeconds: 120, modelVersion: 'v2' };

describe('judgeCached', () => {
  it('serves a fresh entry of the live version', () => {
    expect(judgeCached(item, policy)).toBe('hit');
  });
  it('sets expiresAt from computedAt and the TTL', () => {
    expect(item.expiresAt).toBe(Math.floor((now - 60_000) / 1000) + 3600);
  });
  it('is a miss when absent', () => {
    expect(judgeCached(undefined, policy)).toBe('miss');
  });
  it('is stale past the max age, and the max age can be tightened per request', () => {
    expect(judgeCached(item, { ...policy, maxAgeSeconds: 59 })).toBe('stale');
    expect(judgeCached(item, { ...policy, maxAgeSeconds: 60 })).toBe('hit');
  });
  it('never serves another model version', () => {
    expect(judgeCached(item, { ...policy, modelVersion: 'v3' })).toBe('version-mismatch');
  });
  it('treats an item past its TTL as expired even if DynamoDB has not deleted it yet', () => {
    expect(judgeCached(item, { ...policy, nowMs: item.expiresAt * 1000, maxAgeSeconds: 1e9 })).toBe(
      'expired',
    );
  });
});
