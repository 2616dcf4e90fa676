import { gzipSync } from 'node:zlib';
import { describe, it, expect } from '@jest/globals';
import {
  binOf,
  categoricalStatsOf,
  computeBaseline,
  monitoredValue,
  numericStatsOf,
  parseBaseline,
  quantileEdges,
  type Baseline,
} from '../../lambdas/core/monitoring/baseline.ts';
import {
  DriftAccumulator,
  PSI_EPSILON,
  driftFigures,
  mergeDriftCounts,
  psi,
} from '../../lambdas/core/monitoring/drift.ts';
import { MonitoringError } from '../../lambdas/core/monitoring/errors.ts';
import { latestReport, monitorStateKey, runMonitor } from '../../lambdas/core/monitoring/monitor-run.ts';
import { MemoryObjectStore } from '../support/memory-object-store.ts';

/** A two-feature baseline: amount binned at 0, 10, 20, 30; channel with chip 60 / online 40. */
function smallBaseline(): Baseline {
  return {
    schemaVersion: 1,
    model: 'm',
    version: '1.0.0',
    createdAt: '2026-12-06T00:00:00.000Z',
    dataset: { description: 'test', rows: 100, scored: 100, rejected: 0 },
    features: {
      amount: {
        kind: 'numeric',
        type: 'number',
        n: 100,
        missing: 0,
        edges: [0, 10, 20, 30],
        counts: [0, 50, 25, 25, 0],
      },
      channel: {
        kind: 'categorical',
        type: 'category',
        n: 100,
        missing: 10,
        counts: { chip: 54, online: 36 },
        other: 0,
      },
    },
    prediction: {
      kind: 'classifier',
      n: 100,
      labels: { '0': 90, '1': 10 },
      classes: [0, 1],
      score: 'probability of 1',
      probability: { kind: 'numeric', n: 100, missing: 0, edges: [0, 0.5, 1], counts: [0, 90, 10, 0] },
    },
  };
}

describe('binning', () => {
  it('puts a number below, inside (lower edge inclusive) or above the edges, the top edge in the last bin', () => {
    const edges = [0, 10, 20, 30];
    expect([-1, 0, 5, 10, 29.9, 30, 30.1].map((x) => binOf(edges, x))).toEqual([0, 1, 1, 2, 3, 3, 4]);
  });

  it('makes decile edges from the data, and one bin per value for a number with few values', () => {
    const values = Array.from({ length: 101 }, (_, i) => i);
    expect(quantileEdges(values)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    expect(quantileEdges([0, 0, 0, 1, 2, 2])).toEqual([0, 1, 2]);
    expect(quantileEdges([7, 7, 7])).toEqual([7, 7]);
    const stats = numericStatsOf([7, 7, 7], 1);
    expect(stats.counts).toEqual([0, 3, 0]);
    expect(stats.n).toBe(4);
  });

  it('keeps the most frequent categories and counts the rest together', () => {
    const values = [...Array.from({ length: 60 }, (_, i) => `v${i}`), 'v0', 'v0'];
    const stats = categoricalStatsOf(values, 0);
    expect(Object.keys(stats.counts)).toHaveLength(50);
    expect(stats.counts['v0']).toBe(3);
    expect(stats.other).toBe(10);
  });

  it('reads CSV text and JSON values alike, and calls absent, null, empty and non-numbers missing', () => {
    expect(monitoredValue({ type: 'number' }, '12.5')).toBe(12.5);
    expect(monitoredValue({ type: 'integer' }, 3)).toBe(3);
    expect(monitoredValue({ type: 'boolean' }, 'true')).toBe('true');
    expect(monitoredValue({ type: 'boolean' }, false)).toBe('false');
    expect([undefined, null, '', 'abc'].map((v) => monitoredValue({ type: 'number' }, v))).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });
});

describe('PSI', () => {
  it('matches a hand-computed value', () => {
    // (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5) = 0.4 * 0.587787 + 0.4 * 1.609438 = 0.878890
    expect(psi([50, 50], [90, 10])).toBeCloseTo(0.87889, 5);
    expect(psi([1, 2, 3], [2, 4, 6])).toBe(0);
  });

  it('counts an empty bin as epsilon, so a bin the baseline never filled gives a large finite term', () => {
    // baseline [1, 0] vs current [0.5, 0.5]: (0.5 - 1) ln 0.5 + (0.5 - e) ln(0.5 / e)
    const expected = -0.5 * Math.log(0.5) + (0.5 - PSI_EPSILON) * Math.log(0.5 / PSI_EPSILON);
    expect(psi([10, 0], [5, 5])).toBeCloseTo(expected, 10);
    expect(Number.isFinite(psi([10, 0], [5, 5]))).toBe(true);
  });
});

describe('drift figures', () => {
  it('flags a shifted number, not a steady category; reports missing-rate change and unseen categories', () => {
    const baseline = smallBaseline();
    const acc = new DriftAccumulator(baseline);
    // amount: all above the baseline's range (overflow); channel: chip 55 %, online 44 %, "manual" 1 %.
    for (let i = 0; i < 100; i++) {
      const channel = i < 55 ? 'chip' : i < 99 ? 'online' : 'manual';
      acc.addFeatures((name) => (name === 'amount' ? 500 + i : name === 'channel' ? channel : undefined));
      acc.addPrediction({ label: 0, probabilities: { '0': 0.9, '1': 0.1 } });
    }
    const figures = driftFigures(baseline, acc.counts, 0.2);
    const amount = figures.features.find((f) => f.name === 'amount')!;
    const channel = figures.features.find((f) => f.name === 'channel')!;
    expect(figures.drifted).toEqual(['amount']);
    expect(figures.features[0]!.name).toBe('amount');
    // amount: baseline [0, .5, .25, .25, 0], current [0, 0, 0, 0, 1]
    const e = PSI_EPSILON;
    const expected =
      (e - 0.5) * Math.log(e / 0.5) + 2 * (e - 0.25) * Math.log(e / 0.25) + (1 - e) * Math.log(1 / e);
    expect(amount.psi).toBeCloseTo(expected, 3);
    // channel: baseline chip .6, online .4, other 0; current .55, .44, .01 (manual lands in other)
    const channelPsi =
      (0.55 - 0.6) * Math.log(0.55 / 0.6) +
      (0.44 - 0.4) * Math.log(0.44 / 0.4) +
      (0.01 - e) * Math.log(0.01 / e);
    expect(channel.psi).toBeCloseTo(channelPsi, 3);
    expect(channel.psi).toBeLessThan(0.2);
    expect(channel.unseen).toEqual([{ value: 'manual', count: 1 }]);
    expect(channel.missingRate).toEqual({ baseline: 0.1, current: 0, change: -0.1 });
    // probability of 1 = 0.1 for all: baseline bins [0, .9, .1, 0], current [0, 1, 0, 0]
    expect(figures.prediction.psi).toBeCloseTo(0.1 * Math.log(1 / 0.9) + (e - 0.1) * Math.log(e / 0.1), 3);
    expect(figures.prediction.labels?.current).toEqual({ '0': 1, '1': 0 });
  });

  it('sums partial counts to the same figures as one pass (how a batch run adds its chunks)', () => {
    const baseline = smallBaseline();
    const whole = new DriftAccumulator(baseline);
    const parts = [new DriftAccumulator(baseline), new DriftAccumulator(baseline)];
    for (let i = 0; i < 40; i++) {
      const get = (name: string) =>
        name === 'amount' ? i : i % 3 === 0 ? 'online' : i % 5 === 0 ? 'cash' : 'chip';
      whole.addFeatures(get);
      parts[i % 2]!.addFeatures(get);
    }
    const sum = JSON.parse(JSON.stringify(parts[0]!.counts)) as typeof whole.counts;
    mergeDriftCounts(sum, JSON.parse(JSON.stringify(parts[1]!.counts)) as typeof whole.counts);
    expect(driftFigures(baseline, sum, 0.2)).toEqual(driftFigures(baseline, whole.counts, 0.2));
  });
});

describe('baseline.json', () => {
  it('names the file and the field of a malformed baseline', () => {
    const bad = {
      ...smallBaseline(),
      features: { amount: { kind: 'numeric', n: 1, missing: 0, edges: [3, 1], counts: [0, 1, 0] } },
    };
    expect(() => parseBaseline(JSON.stringify(bad), 'models/m/1.0.0/baseline.json')).toThrow(
      /models\/m\/1\.0\.0\/baseline\.json is not a baseline .*features\.amount\.edges: edges must be strictly increasing/,
    );
    expect(() => parseBaseline('{"schemaVersion": 2}', 'b.json')).toThrow(MonitoringError);
    expect(() => parseBaseline('not json', 'b.json')).toThrow(/b\.json is not valid JSON/);
  });

  it('accepts the baseline the demo model ships', async () => {
    const { readFile } = await import('node:fs/promises');
    const bytes = await readFile('models/fraud-detector/1.0.0/baseline.json');
    const baseline = parseBaseline(bytes, 'demo');
    expect(baseline.dataset.scored).toBe(40_000);
    expect(Object.keys(baseline.features)).toHaveLength(17);
  });
});

describe('monitor run', () => {
  const bucket = 'data';
  const now = Date.parse('2026-12-06T03:00:00.000Z');
  const settings = { threshold: 0.2, minRecords: 10, firstLookbackMinutes: 60 };

  function store(): MemoryObjectStore {
    const objects = new MemoryObjectStore();
    objects.put(bucket, 'models/m/1.0.0/baseline.json', JSON.stringify(smallBaseline()));
    return objects;
  }
  const deps = (objects: MemoryObjectStore, at = now) => ({
    objects,
    bucket,
    modelsPrefix: 'models/',
    models: { currentVersion: async () => '1.0.0' },
    now: () => at,
  });
  function capture(objects: MemoryObjectStore, source: string, key: string, records: unknown[]): void {
    const lines = records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n');
    objects.put(bucket, `capture/m/${source}/dt=2026-12-06/hr=02/${key}`, gzipSync(lines));
  }
  const record = (amount: number, version = '1.0.0') => ({
    model: 'm',
    version,
    source: 'realtime',
    features: { amount, channel: amount % 5 < 3 ? 'chip' : 'online' },
    prediction: { label: 0, probabilities: { '0': 0.9, '1': 0.1 } },
  });

  it('says "no data", not drift, when there are no captures, and remembers the window', async () => {
    const objects = store();
    const { report, key } = await runMonitor('m', deps(objects), settings);
    expect(report.status).toBe('no-data');
    expect(report.drift).toBeUndefined();
    expect(report.window).toEqual({
      from: '2026-12-06T02:00:00.000Z',
      to: '2026-12-06T03:00:00.000Z',
      firstRun: true,
    });
    expect(key).toBe('monitoring/m/drift/20261206T030000000Z.json');
    const state = JSON.parse(Buffer.from(await objects.readBytes(bucket, monitorStateKey('m'))).toString());
    expect(state.lastWindowEnd).toBe('2026-12-06T03:00:00.000Z');
    expect((await latestReport(deps(objects), 'm'))?.report.status).toBe('no-data');
  });

  it('carries live quality beside drift, and a failed measurement as qualityError without failing the run', async () => {
    const asked: [string, string, number][] = [];
    const measured = {
      model: 'm',
      task: 'binary-classification',
      window: { from: '2026-11-29T03:00:00.000Z', to: '2026-12-06T03:00:00.000Z' },
      status: 'no data',
      outcomes: 0,
      unmatched: 0,
      versions: [],
      unreadableObjects: 0,
    } as const;
    const withQuality = await runMonitor(
      'm',
      {
        ...deps(store()),
        quality: async (model, live, toMs) => {
          asked.push([model, live, toMs]);
          return measured;
        },
      },
      settings,
    );
    expect(asked).toEqual([['m', '1.0.0', now]]);
    expect(withQuality.report.quality).toEqual(measured);
    expect(withQuality.report.qualityError).toBeUndefined();

    const failing = await runMonitor(
      'm',
      {
        ...deps(store()),
        quality: async () => {
          throw new Error('feedback/ unreadable');
        },
      },
      settings,
    );
    expect(failing.report.status).toBe('no-data');
    expect(failing.report.quality).toBeUndefined();
    expect(failing.report.qualityError).toBe('feedback/ unreadable');
  });

  it('counts id-only records (no features) apart from unreadable lines, and bins neither', async () => {
    const objects = store();
    const idOnly = {
      model: 'm',
      version: '1.0.0',
      source: 'realtime',
      id: 'txn-1',
      prediction: record(1).prediction,
    };
    capture(objects, 'realtime', '20261206T023000000Z-w1-000001.jsonl.gz', [
      record(500),
      idOnly,
      { ...record(2), features: 'not an object' },
      '{not json',
    ]);
    const { report } = await runMonitor('m', deps(objects), settings);
    expect(report.records).toMatchObject({ total: 1, withoutFeatures: 1, unreadable: 2 });
  });

  it('reports too few records as such, not as drift', async () => {
    const objects = store();
    capture(objects, 'realtime', '20261206T023000000Z-w1-000001.jsonl.gz', [record(500), record(600)]);
    const { report } = await runMonitor('m', deps(objects), settings);
    expect(report.status).toBe('too-few-records');
    expect(report.message).toMatch(/too few records: 2 captured, the minimum for drift figures is 10/);
    expect(report.drift).toBeUndefined();
  });

  it('reads realtime, stream and batch captures of its window once, never shadow, and counts per source and version', async () => {
    const objects = store();
    const many = (n: number, version?: string) =>
      Array.from({ length: n }, (_, i) => record(900 + i, version));
    capture(objects, 'realtime', '20261206T023000000Z-w1-000001.jsonl.gz', [...many(8), 'not json']);
    capture(objects, 'stream', '20261206T024000000Z-w2-000001.jsonl.gz', many(4, '2.0.0'));
    capture(objects, 'batch', '20261206T025900000Z-w3-000001.jsonl.gz', many(3));
    capture(objects, 'shadow', '20261206T024500000Z-w4-000001.jsonl.gz', many(50));
    // Before the first window (look-back 60 min): not read.
    objects.put(
      bucket,
      'capture/m/realtime/dt=2026-12-06/hr=01/20261206T015900000Z-w1-000000.jsonl.gz',
      gzipSync(JSON.stringify(record(1))),
    );
    const first = await runMonitor('m', deps(objects), settings);
    expect(first.report.records).toEqual({
      total: 15,
      bySource: { realtime: 8, stream: 4, batch: 3 },
      byVersion: { '1.0.0': 11, '2.0.0': 4 },
      objects: 3,
      unreadable: 1,
      withoutFeatures: 0,
    });
    expect(first.report.status).toBe('drift');
    expect(first.report.drift?.drifted).toEqual(['amount']);
    // Predictions of the baseline's version only.
    expect(first.report.drift?.prediction.n).toBe(11);
    const second = await runMonitor('m', deps(objects, now + 15 * 60_000), settings);
    expect(second.report.status).toBe('no-data');
    expect(second.report.window.from).toBe('2026-12-06T03:00:00.000Z');
  });

  it('says when the live version has no baseline, and fails naming a malformed one', async () => {
    const objects = new MemoryObjectStore();
    capture(objects, 'realtime', '20261206T023000000Z-w1-000001.jsonl.gz', [record(1)]);
    const { report } = await runMonitor('m', deps(objects), settings);
    expect(report.status).toBe('no-baseline');
    expect(report.message).toMatch(/m@1\.0\.0 has no baseline\.json/);
    objects.put(bucket, 'models/m/1.0.0/baseline.json', '{"schemaVersion": 1}');
    await expect(runMonitor('m', deps(objects), settings)).rejects.toThrow(
      /models\/m\/1\.0\.0\/baseline\.json is not a baseline/,
    );
  });
});

describe('computeBaseline', () => {
  const manifest = (task: string) =>
    ({
      name: 'm',
      version: '1',
      task,
      features: [
        { name: 'x', type: 'number' },
        { name: 'flag', type: 'boolean' },
      ],
    }) as unknown as Parameters<typeof computeBaseline>[0]['manifest'];
  const rows = Array.from({ length: 20 }, (_, i) => ({ x: i === 0 ? '' : String(i), flag: i % 2 === 0 }));

  it('bins a regressor by its predicted value, and counts missing feature values apart', () => {
    const baseline = computeBaseline({
      manifest: manifest('regression'),
      classes: undefined,
      description: 'rows',
      rows,
      predictions: rows.map((_, i) => ({ value: i * 1.5 })),
      rejected: 2,
      createdAt: 'now',
    });
    expect(baseline.dataset).toEqual({ description: 'rows', rows: 22, scored: 20, rejected: 2 });
    expect(baseline.features['x']).toMatchObject({ kind: 'numeric', type: 'number', n: 20, missing: 1 });
    expect(baseline.features['flag']).toMatchObject({ kind: 'categorical', counts: { true: 10, false: 10 } });
    expect(baseline.prediction.kind).toBe('regressor');
    if (baseline.prediction.kind !== 'regressor') return;
    expect(baseline.prediction.value.edges[0]).toBe(0);
    expect(baseline.prediction.value.edges.at(-1)).toBe(28.5);
    expect(parseBaseline(JSON.stringify(baseline), 'b')).toEqual(baseline);
  });

  it('bins the top probability of a multiclass classifier, and keeps label counts', () => {
    const baseline = computeBaseline({
      manifest: manifest('multiclass-classification'),
      classes: ['a', 'b', 'c'],
      description: 'rows',
      rows,
      predictions: rows.map((_, i) => ({
        label: i < 5 ? 'a' : 'c',
        probabilities: { a: 0.2, b: 0.1, c: 0.7 },
      })),
      rejected: 0,
      createdAt: 'now',
    });
    expect(baseline.prediction).toMatchObject({
      kind: 'classifier',
      labels: { a: 5, c: 15 },
      score: 'top probability',
    });
  });

  it('refuses a dataset with no scored row', () => {
    expect(() =>
      computeBaseline({
        manifest: manifest('regression'),
        classes: undefined,
        description: 'empty.csv',
        rows: [],
        predictions: [],
        rejected: 3,
        createdAt: 'now',
      }),
    ).toThrow(/no row of empty\.csv could be scored \(3 rejected\)/);
  });
});
