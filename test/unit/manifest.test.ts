import { describe, expect, it } from '@jest/globals';
import { ManifestError } from '../../lambdas/core/errors.ts';
import { parseManifest } from '../../lambdas/core/manifest.ts';

const valid = {
  name: 'churn',
  version: '2.1.0',
  task: 'binary-classification',
  idField: 'customer_id',
  features: [
    { name: 'tenure', type: 'integer', min: 0 },
    { name: 'plan', type: 'category', values: ['basic', 'pro'] },
  ],
  outputs: { label: 'label', probabilities: 'probabilities' },
};

function issuesOf(raw: unknown): string[] {
  try {
    parseManifest(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ManifestError);
    return ((error as ManifestError).details ?? []).map((d) => `${d.field}: ${d.message}`);
  }
  throw new Error('expected the manifest to be rejected');
}

describe('parseManifest', () => {
  it('fills defaults', () => {
    const manifest = parseManifest(valid);
    expect(manifest.cache).toEqual({ maxAgeSeconds: 86_400, ttlSeconds: 604_800 });
    expect(manifest.features[0]).toMatchObject({ required: true });
    expect(manifest.features[1]).toMatchObject({ unknown: 'reject', maxLength: 256 });
  });

  it('names the bad field', () => {
    expect(issuesOf({ ...valid, task: 'clustering' })[0]).toMatch(/^task: /);
    expect(issuesOf({ ...valid, name: 'bad name!' })[0]).toMatch(/^name: /);
    expect(issuesOf({ ...valid, features: [{ name: 'x', type: 'number', min: 5, max: 1 }] })).toContain(
      'features.0.min: min must not exceed max',
    );
    expect(issuesOf({ ...valid, unexpected: true })[0]).toMatch(/unexpected/);
  });

  it('checks cross-field rules', () => {
    expect(
      issuesOf({ ...valid, features: [...valid.features, { name: 'tenure', type: 'number' }] }),
    ).toContain('features.2.name: duplicate feature "tenure"');
    expect(issuesOf({ ...valid, task: 'regression' })).toContain(
      'outputs.value: a regression model needs outputs.value',
    );
    expect(
      issuesOf({ ...valid, features: [{ name: 'plan', type: 'category' }], outputs: valid.outputs }),
    ).toContain(
      'features.0.values: category feature "plan" in the float32 input needs "values" (encoded as their index)',
    );
    expect(
      issuesOf({ ...valid, inputs: [{ name: 'x', type: 'float32', features: ['tenure', 'nope'] }] }),
    ).toEqual(['inputs.0.features.1: unknown feature "nope"', 'features.1: feature "plan" feeds no input']);
    expect(issuesOf({ ...valid, cache: { maxAgeSeconds: 100, ttlSeconds: 10 } })).toContain(
      'cache.ttlSeconds: ttlSeconds must be at least maxAgeSeconds',
    );
  });
});
