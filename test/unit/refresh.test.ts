/**
 * Refresh on a version change and on staleness (lambdas/core/refresh/): which events ask for a refresh,
 * the policy per cause, the manifest's refresh block and its bad inputs, idempotency through markers, and
 * the staleness rule.
 */
import { describe, expect, it } from '@jest/globals';
import { refreshEventsFromEvent } from '../../lambdas/adapters/refresh-events.ts';
import type { RunInput } from '../../lambdas/core/batch/contracts.ts';
import { ManifestError } from '../../lambdas/core/errors.ts';
import { parseManifest } from '../../lambdas/core/manifest.ts';
import {
  pointerVersions,
  refresh,
  refreshes,
  refreshEventOfKey,
  refreshSources,
  type RefreshDeps,
  type RefreshPolicy,
} from '../../lambdas/core/refresh/refresh.ts';
import {
  CacheReadCounter,
  outdatedShare,
  StalenessEvaluator,
  stalenessPeriods,
} from '../../lambdas/core/refresh/staleness.ts';
import { ApiMetrics, type MetricsSink } from '../../lambdas/handlers/api/api-metrics.ts';
import { tinyManifest } from '../support/tiny-model.ts';

const utf8 = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

function manifestWith(version: string, refreshBlock?: unknown) {
  return { ...tinyManifest(version), ...(refreshBlock === undefined ? {} : { refresh: refreshBlock }) };
}

function refreshIssues(block: unknown): string[] {
  try {
    parseManifest(manifestWith('1', block));
  } catch (error) {
    expect(error).toBeInstanceOf(ManifestError);
    return ((error as ManifestError).details ?? []).map((d) => `${d.field}: ${d.message}`);
  }
  throw new Error('expected the manifest to be rejected');
}

/** A data bucket in memory: pointers, manifests and markers; a starter that records its runs. */
function world(options: { policy?: RefreshPolicy; scheduled?: string[]; failStarts?: number } = {}) {
  const objects = new Map<string, Uint8Array>();
  const runs: { name: string; input: RunInput }[] = [];
  let failStarts = options.failStarts ?? 0;
  const deps: RefreshDeps = {
    bucket: 'data',
    models: {
      readPointer: async (model) => objects.get(`models/${model}/current.json`),
      readManifest: async (model, version) => objects.get(`models/${model}/${version}/manifest.json`),
    },
    markers: {
      create: async (key, body) => {
        if (objects.has(key)) return false;
        objects.set(key, new TextEncoder().encode(body));
        return true;
      },
      remove: async (key) => void objects.delete(key),
    },
    starter: {
      start: async (name, input) => {
        if (failStarts > 0) {
          failStarts--;
          throw new Error('Step Functions is unreachable');
        }
        if (runs.some((r) => r.name === name)) return 'duplicate';
        runs.push({ name, input: input as RunInput });
        return 'started';
      },
    },
    defaultPolicy: options.policy ?? 'promote',
    scheduledPrefixes: () => options.scheduled ?? [],
    batchOptions: { chunkBytes: 4096 },
    now: () => Date.parse('2026-12-06T04:00:00Z'),
  };
  const put = (key: string, value: unknown) => objects.set(key, utf8(value));
  return { deps, runs, objects, put };
}

describe('the events that ask for a refresh', () => {
  it.each([
    ['models/fraud/current.json', { kind: 'pointer', model: 'fraud' }],
    ['models/fraud/2.0.0/manifest.json', { kind: 'package', model: 'fraud', version: '2.0.0' }],
    ['models/fraud/2.0.0/model.onnx', undefined],
    ['models/fraud/history/0001.json', undefined],
    ['models/fraud/history/manifest.json', undefined],
    ['models/current.json', undefined],
    ['models/fr aud/current.json', undefined],
    ['models/fraud/../x/manifest.json', undefined],
    ['incoming/fraud/current.json', undefined],
    ['models/fraud/1/extra/manifest.json', undefined],
  ])('%s', (key, expected) => {
    expect(refreshEventOfKey(key)).toEqual(expected);
  });

  it('reads the EventBridge S3 event and the staleness alarm input; nothing else', () => {
    const s3 = (key: string) => ({
      'detail-type': 'Object Created',
      source: 'aws.s3',
      detail: { bucket: { name: 'data' }, object: { key } },
    });
    expect(refreshEventsFromEvent(s3('models/fraud/current.json'))).toEqual([
      { kind: 'pointer', model: 'fraud' },
    ]);
    expect(refreshEventsFromEvent(s3('incoming/fraud/a.csv'))).toEqual([]);
    expect(
      refreshEventsFromEvent({ refresh: 'staleness', model: 'fraud', at: '2026-12-06T04:00:00Z' }),
    ).toEqual([{ kind: 'staleness', model: 'fraud', at: '2026-12-06T04:00:00Z' }]);
    expect(refreshEventsFromEvent({ refresh: 'staleness', model: '../x', at: 't' })).toEqual([]);
    expect(refreshEventsFromEvent({ refresh: 'staleness', model: 'fraud' })).toEqual([]);
    expect(refreshEventsFromEvent({ refresh: 'staleness', model: 'fraud', at: 'x'.repeat(65) })).toEqual([]);
    expect(refreshEventsFromEvent('nonsense')).toEqual([]);
  });
});

describe('the policy per cause', () => {
  it.each([
    ['push', 'push', true],
    ['push', 'promote', false],
    ['promote', 'push', false],
    ['promote', 'promote', true],
    ['off', 'push', false],
    ['off', 'promote', false],
    ['push', 'staleness', true],
    ['promote', 'staleness', true],
    ['off', 'staleness', false],
  ] as const)('policy %s, cause %s: %s', (policy, cause, expected) => {
    expect(refreshes(policy, cause)).toBe(expected);
  });
});

describe("the manifest's refresh block", () => {
  it('keeps sources as folders (a trailing /) and leaves `on` to the stack when absent', () => {
    const manifest = parseManifest(manifestWith('1', { sources: ['datasets/fraud/daily', 'exports/x/'] }));
    expect(manifest.refresh).toEqual({ sources: ['datasets/fraud/daily/', 'exports/x/'] });
    expect(parseManifest(manifestWith('1')).refresh).toBeUndefined();
  });

  it('adds the schedules prefixes, each source once', () => {
    const manifest = parseManifest(manifestWith('1', { sources: ['a/', 'b/'] }));
    expect(refreshSources(manifest, ['b', 'c/'])).toEqual(['a/', 'b/', 'c/']);
  });

  it.each([
    [{ sources: ['/datasets/x/'] }, 'refresh.sources.0: a folder of the data bucket has no leading "/"'],
    [{ sources: ['a/../models/'] }, 'refresh.sources.0: a folder path has no empty, "." or ".." segments'],
    [{ sources: ['a//b/'] }, 'refresh.sources.0: a folder path has no empty, "." or ".." segments'],
    [{ sources: ['models/fraud/'] }, "refresh.sources.0: models/ holds the stack's own files, not datasets"],
    [{ sources: ['results'] }, "refresh.sources.0: results/ holds the stack's own files, not datasets"],
    [{ sources: ['refresh/x/'] }, "refresh.sources.0: refresh/ holds the stack's own files, not datasets"],
    [{ sources: ['a\u0000b/'] }, 'refresh.sources.0: a folder name has no control characters'],
    [{ sources: ['x/', 'x'] }, 'refresh.sources.1: duplicate source "x/"'],
    [{ sources: ['x/'], on: 'daily' }, 'refresh.on: '],
    [{ sources: ['x/'], every: 'day' }, 'refresh: '],
    [{ sources: 'x/' }, 'refresh.sources: '],
    [{ sources: [''] }, 'refresh.sources.0: '],
    [{ sources: Array.from({ length: 21 }, (_, i) => `d${i}/`) }, 'refresh.sources: '],
  ])('%j is rejected: %s', (block, message) => {
    const issues = refreshIssues(block);
    expectIssue(issues, message);
  });
});

function expectIssue(issues: string[], prefix: string): void {
  expect(issues.filter((i) => i.startsWith(prefix))).not.toEqual([]);
}

describe('the versions a pointer names', () => {
  it('live, canary and shadow, each once; unreadable parts are left out', () => {
    expect(
      pointerVersions(
        utf8({ version: '1', canary: { version: '2', percent: 10 }, shadow: { version: '3' } }),
      ),
    ).toEqual({ live: '1', versions: ['1', '2', '3'] });
    expect(pointerVersions(utf8({ version: '1', shadow: { version: '1', sample: 0.1 } }))).toEqual({
      live: '1',
      versions: ['1'],
    });
    expect(pointerVersions(utf8({ version: '1', canary: { version: '../x' } }))).toEqual({
      live: '1',
      versions: ['1'],
    });
    expect(pointerVersions(new TextEncoder().encode('{not json'))).toEqual({ versions: [] });
    expect(pointerVersions(utf8(['1']))).toEqual({ versions: [] });
  });
});

describe('refresh', () => {
  it('push: one folder run per source with the pushed version and the trigger recorded', async () => {
    const { deps, runs, put, objects } = world({ scheduled: ['scheduled/daily/'] });
    put('models/fraud/2/manifest.json', manifestWith('2', { sources: ['datasets/a/'], on: 'push' }));
    const outcomes = await refresh({ kind: 'package', model: 'fraud', version: '2' }, deps);
    expect(outcomes.map((o) => [o.source, o.result])).toEqual([
      ['datasets/a/', 'started'],
      ['scheduled/daily/', 'started'],
    ]);
    expect(runs).toHaveLength(2);
    expect(runs[0]!.input).toEqual({
      runId: runs[0]!.name,
      bucket: 'data',
      key: 'datasets/a/',
      model: 'fraud',
      folder: true,
      options: { chunkBytes: 4096, modelVersion: '2' },
      trigger: { kind: 'refresh', cause: 'push', model: 'fraud', version: '2', source: 'datasets/a/' },
    });
    const markers = [...objects.keys()].filter((k) => k.startsWith('refresh/'));
    expect(markers).toHaveLength(2);
    expect(markers.every((k) => k.startsWith('refresh/fraud/2/push-'))).toBe(true);
  });

  it('a repeated event starts nothing more', async () => {
    const { deps, runs, put } = world();
    put('models/fraud/2/manifest.json', manifestWith('2', { sources: ['datasets/a/'], on: 'push' }));
    await refresh({ kind: 'package', model: 'fraud', version: '2' }, deps);
    const again = await refresh({ kind: 'package', model: 'fraud', version: '2' }, deps);
    expect(again.map((o) => o.result)).toEqual(['duplicate']);
    expect(runs).toHaveLength(1);
  });

  it('two deliveries at once start one run', async () => {
    const { deps, runs, put } = world();
    put('models/fraud/2/manifest.json', manifestWith('2', { sources: ['datasets/a/'], on: 'push' }));
    const both = await Promise.all([
      refresh({ kind: 'package', model: 'fraud', version: '2' }, deps),
      refresh({ kind: 'package', model: 'fraud', version: '2' }, deps),
    ]);
    expect(
      both
        .flat()
        .map((o) => o.result)
        .sort(),
    ).toEqual(['duplicate', 'started']);
    expect(runs).toHaveLength(1);
  });

  it('a run that could not be started leaves no marker: the retry starts it', async () => {
    const { deps, runs, put, objects } = world({ failStarts: 1 });
    put('models/fraud/2/manifest.json', manifestWith('2', { sources: ['datasets/a/'], on: 'push' }));
    await expect(refresh({ kind: 'package', model: 'fraud', version: '2' }, deps)).rejects.toThrow(
      'unreachable',
    );
    expect([...objects.keys()].some((k) => k.startsWith('refresh/'))).toBe(false);
    const retried = await refresh({ kind: 'package', model: 'fraud', version: '2' }, deps);
    expect(retried.map((o) => o.result)).toEqual(['started']);
    expect(runs).toHaveLength(1);
  });

  it('the policy decides: push does not refresh on promote, promote not on push, off never', async () => {
    const { deps, runs, put } = world({ policy: 'push' });
    put('models/fraud/1/manifest.json', manifestWith('1', { sources: ['d/'] }));
    put('models/fraud/2/manifest.json', manifestWith('2', { sources: ['d/'], on: 'promote' }));
    put('models/fraud/3/manifest.json', manifestWith('3', { sources: ['d/'], on: 'off' }));
    put('models/fraud/current.json', { version: '1', canary: { version: '3', percent: 5 } });
    expect(await refresh({ kind: 'package', model: 'fraud', version: '2' }, deps)).toEqual([
      expect.objectContaining({ version: '2', result: 'skipped', reason: 'refresh.on is "promote"' }),
    ]);
    expect(await refresh({ kind: 'package', model: 'fraud', version: '3' }, deps)).toEqual([
      expect.objectContaining({ version: '3', result: 'skipped', reason: 'refresh.on is "off"' }),
    ]);
    // The stack default (push) applies to version 1: a pointer change does not refresh it.
    const promoted = await refresh({ kind: 'pointer', model: 'fraud' }, deps);
    expect(promoted.map((o) => [o.version, o.result])).toEqual([
      ['1', 'skipped'],
      ['3', 'skipped'],
    ]);
    expect(runs).toEqual([]);
  });

  it('promote: every version the pointer names (live, canary, shadow) is refreshed once', async () => {
    const { deps, runs, put } = world();
    for (const v of ['1', '2', '3'])
      put(`models/fraud/${v}/manifest.json`, manifestWith(v, { sources: ['d/'] }));
    put('models/fraud/current.json', { version: '1', canary: { version: '2', percent: 10 } });
    await refresh({ kind: 'pointer', model: 'fraud' }, deps);
    put('models/fraud/current.json', {
      version: '1',
      canary: { version: '2', percent: 50 },
      shadow: { version: '3', sample: 0.1 },
    });
    await refresh({ kind: 'pointer', model: 'fraud' }, deps);
    put('models/fraud/current.json', { version: '2', previous: '1' });
    const last = await refresh({ kind: 'pointer', model: 'fraud' }, deps);
    expect(runs.map((r) => r.input.options?.modelVersion)).toEqual(['1', '2', '3']);
    expect(last.map((o) => o.result)).toEqual(['duplicate']);
  });

  it('says why nothing is refreshed: no sources, no manifest, a broken manifest, no pointer', async () => {
    const { deps, runs, put, objects } = world({ policy: 'push' });
    put('models/fraud/1/manifest.json', manifestWith('1'));
    objects.set('models/fraud/2/manifest.json', new TextEncoder().encode('{"name": '));
    expect((await refresh({ kind: 'package', model: 'fraud', version: '1' }, deps))[0]).toMatchObject({
      result: 'skipped',
      reason: 'the model has no refresh sources',
    });
    expect((await refresh({ kind: 'package', model: 'fraud', version: '2' }, deps))[0]?.reason).toMatch(
      /^the manifest cannot be read: /,
    );
    expect((await refresh({ kind: 'package', model: 'fraud', version: '9' }, deps))[0]?.reason).toBe(
      'models/fraud/9/manifest.json does not exist',
    );
    expect((await refresh({ kind: 'pointer', model: 'fraud' }, deps))[0]?.reason).toBe('no readable pointer');
    expect(
      (await refresh({ kind: 'staleness', model: 'fraud', at: '2026-12-06T04:00:00Z' }, deps))[0]?.reason,
    ).toBe('no readable pointer');
    expect(runs).toEqual([]);
  });

  it('staleness refreshes the live version, once per alarm', async () => {
    const { deps, runs, put } = world();
    put('models/fraud/1/manifest.json', manifestWith('1', { sources: ['d/'] }));
    put('models/fraud/2/manifest.json', manifestWith('2', { sources: ['d/'] }));
    put('models/fraud/current.json', { version: '2', canary: { version: '1', percent: 10 } });
    const alarm = { kind: 'staleness', model: 'fraud', at: '2026-12-06T04:00:00Z' } as const;
    await refresh(alarm, deps);
    expect((await refresh(alarm, deps))[0]?.result).toBe('duplicate');
    await refresh({ ...alarm, at: '2026-12-06T06:00:00Z' }, deps);
    expect(
      runs.map((r) => [r.input.options?.modelVersion, r.input.trigger?.cause, r.input.trigger?.at]),
    ).toEqual([
      ['2', 'staleness', '2026-12-06T04:00:00Z'],
      ['2', 'staleness', '2026-12-06T06:00:00Z'],
    ]);
  });

  it('names runs as Step Functions requires (1-80 of A-Z a-z 0-9 - _)', async () => {
    const { deps, runs, put } = world();
    const model = `m.${'x'.repeat(126)}`;
    put(`models/${model}/1/manifest.json`, {
      ...manifestWith('1', { sources: ['d/'], on: 'push' }),
      name: model,
    });
    await refresh({ kind: 'package', model, version: '1' }, deps);
    expect(runs[0]!.name).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
  });
});

describe('staleness', () => {
  const reads = (total: number, outdated: number) => ({ reads: total, outdated });

  it('counts stale, expired and other-version reads as outdated, out of every id looked up', () => {
    const counter = new CacheReadCounter();
    counter.record('m', { hit: 5, miss: 3, stale: 1, expired: 2, 'version-mismatch': 4 });
    counter.record('m', { hit: 0, miss: 0, stale: 0, expired: 0, 'version-mismatch': 0 });
    counter.record('n', { hit: 1, miss: 0, stale: 0, expired: 0, 'version-mismatch': 0 });
    expect(Object.fromEntries(counter.take())).toEqual({ m: reads(15, 7), n: reads(1, 0) });
    expect(counter.take().size).toBe(0);
  });

  it('a period with too few reads counts as below the threshold', () => {
    expect(outdatedShare(reads(19, 19))).toBe(0);
    expect(outdatedShare(reads(20, 5))).toBe(0.25);
  });

  it('rounds the period up to whole 5-minute periods', () => {
    expect([5, 6, 30, 1440].map(stalenessPeriods)).toEqual([1, 2, 6, 288]);
  });

  it('raises once the share stays above the threshold for every period, then not again until it falls', () => {
    const evaluator = new StalenessEvaluator({ threshold: 0.2, periods: 3 });
    const period = (share: number) => new Map([['m', reads(100, share * 100)]]);
    expect(evaluator.closePeriod(period(0.5))).toEqual([]);
    expect(evaluator.closePeriod(period(0.2))).toEqual([]); // at the threshold: not above it
    expect(evaluator.closePeriod(period(0.5))).toEqual([]);
    expect(evaluator.closePeriod(period(0.5))).toEqual([]);
    expect(evaluator.closePeriod(period(0.5))).toEqual(['m']);
    expect(evaluator.closePeriod(period(0.9))).toEqual([]);
    expect(evaluator.closePeriod(new Map())).toEqual([]); // no reads: below
    for (let i = 0; i < 2; i++) expect(evaluator.closePeriod(period(0.5))).toEqual([]);
    expect(evaluator.closePeriod(period(0.5))).toEqual(['m']);
  });
});

describe("the API's per-model cache metrics", () => {
  it('publish CacheReads and CacheOutdated with the model as the only dimension besides the service', () => {
    const records: { dimensions?: Record<string, string>; metrics: Record<string, number> }[] = [];
    let current: (typeof records)[number] = { metrics: {} };
    const sink: MetricsSink = {
      publishes: () => true,
      setTimestamp: () => sink as never,
      addDimensions(d) {
        current.dimensions = { ...d };
        return sink as never;
      },
      addMetric(name, _unit, value) {
        current.metrics[name] = value;
        return sink as never;
      },
      publishStoredMetrics() {
        if (Object.keys(current.metrics).length > 0) records.push(current);
        current = { metrics: {} };
        return sink as never;
      },
    };
    const metrics = new ApiMetrics(sink, 0, () => 1);
    metrics.begin();
    metrics.countForModel('CacheReads', 10, 'fraud');
    metrics.countForModel('CacheOutdated', 4, 'fraud');
    metrics.countForModel('CacheOutdated', 0, 'other');
    metrics.end();
    expect(records).toEqual([
      { dimensions: { model: 'fraud' }, metrics: { CacheReads: 10, CacheOutdated: 4 } },
    ]);
  });
});
