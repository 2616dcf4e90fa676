/**
 * The steps of an automatic rollout over an in-memory model store, injected per-version metrics and a
 * clock: a healthy candidate is stepped through every percentage and promoted, each step and check in the
 * history; a failed check rolls back naming the metric, value and threshold; an operator's pointer change
 * stops the rollout without touching the pointer; a second rollout is refused; a retried step writes once.
 * And the verdicts themselves, and the parsing of --steps and --bake.
 */
import { beforeEach, describe, expect, it } from '@jest/globals';
import { LifecycleRefusedError } from '../../lambdas/core/lifecycle/errors.ts';
import {
  latestRollout,
  parseDuration,
  parseSteps,
  RolloutSteps,
  type RolloutRequest,
  type RolloutState,
} from '../../lambdas/core/lifecycle/rollout.ts';
import { checkStep, type VersionWindow } from '../../lambdas/core/lifecycle/rollout-checks.ts';
import type { HistoryEntry } from '../../lambdas/core/lifecycle/lifecycle.ts';
import { MemoryModelStore } from '../support/memory-model-store.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const MODEL = 'fraud-detector';
const THRESHOLDS = { maxErrorRate: 0.01, maxLatencyMs: 100, maxShift: 0.1, minInstances: 20 };

const healthy: VersionWindow = {
  instances: 100,
  errors: 0,
  latencyP99Ms: 5,
  labels: { '0': 90, '1': 10 },
  probabilitySums: { '0': 88, '1': 12 },
};

let store: MemoryModelStore;
let windows: Record<string, VersionWindow>;
let clock: number;
let steps: RolloutSteps;

const request: RolloutRequest = {
  rolloutId: 'abc123',
  model: MODEL,
  candidate: '2.0.0',
  steps: [10, 50, 100],
  bakeSeconds: 60,
  by: 'tester',
  reason: 'May retrain',
};

beforeEach(() => {
  store = new MemoryModelStore();
  store.setPointer(MODEL, { version: '1.0.0', change: 'c0' });
  windows = { '1.0.0': healthy, '2.0.0': healthy };
  clock = Date.parse('2026-12-06T04:00:00Z');
  steps = new RolloutSteps({
    store,
    thresholds: THRESHOLDS,
    now: () => clock,
    metrics: { window: async (_model, version) => windows[version]! },
  });
});

async function bakeAndCheck(state: RolloutState): Promise<RolloutState> {
  clock += 60_000;
  return steps.run('check', state);
}

describe('a healthy candidate', () => {
  it('is stepped through 10, 50 and 100 % and promoted, every step and check in the history', async () => {
    let state = await steps.run('start', request);
    expect(store.pointer(MODEL)).toMatchObject({
      version: '1.0.0',
      canary: { version: '2.0.0', percent: 10, rollout: 'abc123' },
    });
    const seen: number[] = [];
    for (;;) {
      seen.push(state.steps[state.step - 1]!);
      state = await bakeAndCheck(state);
      if (state.decision === 'promote') break;
      expect(state.decision).toBe('advance');
      state = await steps.run('advance', state);
      expect(store.pointer(MODEL)!['canary']).toEqual({
        version: '2.0.0',
        percent: state.steps[state.step - 1],
        rollout: 'abc123',
      });
    }
    state = await steps.run('promote', state);
    expect(seen).toEqual([10, 50, 100]);
    expect(state.decision).toBe('promoted');
    const pointer = store.pointer(MODEL)!;
    expect(pointer).toMatchObject({ version: '2.0.0', previous: '1.0.0', change: 'abc123-promote' });
    expect(pointer['canary']).toBeUndefined();
    const records = store.records(MODEL);
    expect(records.map((r) => [r['action'], r['percent'] ?? null])).toEqual([
      ['rollout-step', 10],
      ['rollout-check', 10],
      ['rollout-step', 50],
      ['rollout-check', 50],
      ['rollout-step', 100],
      ['rollout-check', 100],
      ['promote', null],
    ]);
    expect(records.every((r) => (r['rollout'] as { id: string }).id === 'abc123')).toBe(true);
    expect(records[0]!['rollout']).toMatchObject({ steps: [10, 50, 100], bakeSeconds: 60 });
    const report = latestRollout(records as unknown as HistoryEntry[], undefined);
    expect(report).toMatchObject({ status: 'promoted', candidate: '2.0.0', live: '1.0.0', step: 3 });
  });
});

describe('a failed check', () => {
  it('rolls back: the canary ends, the record names the metric, its value and the threshold', async () => {
    windows['2.0.0'] = { ...healthy, errors: 5 };
    let state = await steps.run('start', request);
    state = await bakeAndCheck(state);
    expect(state.decision).toBe('rollback');
    const failed = state.checks!.filter((c) => !c.passed);
    expect(failed).toEqual([
      expect.objectContaining({
        check: 'errors',
        metric: 'Errors / (Errors + Instances) of 2.0.0',
        value: 0.047619,
        threshold: 0.01,
      }),
    ]);
    state = await steps.run('rollback', state);
    expect(state.decision).toBe('rolled-back');
    expect(store.pointer(MODEL)).toMatchObject({ version: '1.0.0', change: 'abc123-abort' });
    expect(store.pointer(MODEL)!['canary']).toBeUndefined();
    const abort = store.records(MODEL).at(-1)!;
    expect(abort).toMatchObject({ action: 'rollout-abort', percent: 0, from: '1.0.0', to: '2.0.0' });
    expect(abort['reason']).toContain(
      'errors: 2.0.0: 5 failed request(s) for 100 instance(s) answered, rate 0.047619 > 0.01',
    );
    expect(state.outcome).toMatchObject({ status: 'rolled-back', error: 'RolloutRolledBack' });
  });

  it('rolls back a task that failed for good, saying so', async () => {
    const state = await steps.run('start', request);
    const rolledBack = await steps.run('rollback', {
      ...state,
      failure: { Error: 'Error', Cause: '{"errorMessage":"CloudWatch is down"}' },
    });
    expect(rolledBack.outcome?.message).toMatch(/CloudWatch is down/);
    expect(store.records(MODEL).at(-1)!['reason']).toBe(
      'rolled back: the rollout could not go on (Error: CloudWatch is down)',
    );
  });
});

describe("an operator's change during the rollout", () => {
  it('stops the rollout at its next check and leaves the pointer as the operator set it', async () => {
    const state = await steps.run('start', request);
    store.setPointer(MODEL, { version: '1.0.0', change: 'op1', changedBy: 'alice' });
    const writes = store.pointerWrites;
    const stopped = await bakeAndCheck(state);
    expect(stopped.decision).toBe('stopped');
    expect(store.pointerWrites).toBe(writes);
    expect(store.pointer(MODEL)).toEqual({ version: '1.0.0', change: 'op1', changedBy: 'alice' });
    const record = store.records(MODEL).at(-1)!;
    expect(record['action']).toBe('rollout-stop');
    expect(record['reason']).toBe(
      'stopped: current.json was changed outside the rollout (change op1 by alice: live 1.0.0, no canary)',
    );
  });

  it('stops an advance or a promote instead of overwriting the change', async () => {
    let state = await steps.run('start', request);
    state = await bakeAndCheck(state);
    store.setPointer(MODEL, { version: '1.0.0', change: 'op2', canary: { version: '2.0.0', percent: 5 } });
    const advanced = await steps.run('advance', state);
    expect(advanced.decision).toBe('stopped');
    expect(store.pointer(MODEL)!['canary']).toEqual({ version: '2.0.0', percent: 5 });
    const promoted = await steps.run('promote', { ...state, decision: 'promote' });
    expect(promoted.decision).toBe('stopped');
    expect(store.pointer(MODEL)!['version']).toBe('1.0.0');
  });
});

describe('one rollout per model', () => {
  it('refuses a second rollout while one runs, and a rollout over a manual canary', async () => {
    await steps.run('start', request);
    await expect(steps.run('start', { ...request, rolloutId: 'other' })).rejects.toMatchObject({
      code: 'ROLLOUT_RUNNING',
    });
    store.setPointer(MODEL, { version: '1.0.0', canary: { version: '2.0.0', percent: 10 } });
    await expect(steps.prepare(request)).rejects.toMatchObject({ code: 'CANARY_RUNNING' });
  });

  it('refuses the live version, a model without a pointer, and bad steps or bake times', async () => {
    await expect(steps.prepare({ ...request, candidate: '1.0.0' })).rejects.toMatchObject({
      code: 'ALREADY_LIVE',
    });
    await expect(steps.prepare({ ...request, model: 'nothing' })).rejects.toMatchObject({
      code: 'NO_LIVE_VERSION',
    });
    await expect(steps.prepare({ ...request, steps: [50, 10] })).rejects.toMatchObject({
      code: 'INVALID_STEPS',
    });
    await expect(steps.prepare({ ...request, bakeSeconds: 0 })).rejects.toMatchObject({
      code: 'INVALID_BAKE',
    });
  });

  it('refuses a candidate that does not load, writing nothing', async () => {
    const loading = new RolloutSteps({
      store,
      thresholds: THRESHOLDS,
      metrics: { window: async () => healthy },
      loadProblems: async () => [{ code: 'MODEL_CORRUPT', message: 'model.onnx is not an ONNX model' }],
    });
    await expect(loading.run('start', request)).rejects.toMatchObject({ code: 'MODEL_CORRUPT' });
    expect(store.pointerWrites).toBe(0);
  });
});

describe('a retried step', () => {
  it('finds its own change and writes neither the pointer nor the record again', async () => {
    let state = await steps.run('start', request);
    state = await bakeAndCheck(state);
    const first = await steps.run('advance', state);
    const writes = store.pointerWrites;
    const records = store.records(MODEL).length;
    const again = await steps.run('advance', state);
    expect(again.decision).toBe('bake');
    expect(again.step).toBe(first.step);
    expect(store.pointerWrites).toBe(writes);
    expect(store.records(MODEL)).toHaveLength(records);
  });
});

describe('the verdicts', () => {
  const versions = { candidate: '2.0.0', live: '1.0.0' };
  const failing = (candidate: VersionWindow, live: VersionWindow = healthy) =>
    checkStep(candidate, live, versions, THRESHOLDS).filter((v) => !v.passed);

  it.each([
    [
      'too few instances',
      { ...healthy, instances: 3, labels: { '0': 3 }, probabilitySums: { '0': 2.7, '1': 0.3 } },
      'traffic',
      'Instances of 2.0.0',
      3,
      20,
    ],
    ['slow', { ...healthy, latencyP99Ms: 250 }, 'latency', 'ModelLatency p99 of 2.0.0 (ms)', 250, 100],
    [
      'labels shifted',
      { ...healthy, labels: { '0': 50, '1': 50 } },
      'shift',
      /^\|share of label [01]: 2\.0\.0 - 1\.0\.0\|$/,
      0.4,
      0.229615,
    ],
    [
      'probabilities shifted',
      { ...healthy, probabilitySums: { '0': 60, '1': 40 } },
      'shift',
      '|mean probability of 0: 2.0.0 - 1.0.0|',
      0.28,
      0.224064,
    ],
  ] as const)(
    'a candidate %s fails its check, naming the metric',
    (_what, candidate, check, metric, value, threshold) => {
      const failed = failing(candidate as VersionWindow);
      expectWithMessage(failed.length, JSON.stringify(failed)).toBeGreaterThanOrEqual(1);
      expect(failed.find((v) => v.check === check)).toMatchObject({
        metric: typeof metric === 'string' ? metric : expect.stringMatching(metric),
        value,
        threshold,
        passed: false,
      });
    },
  );

  it('allows for sampling: a difference a small sample gives by chance passes, the same over many instances fails', () => {
    const shares = (n: number, fraud: number): VersionWindow => ({
      instances: n,
      errors: 0,
      labels: { '0': n - fraud, '1': fraud },
      probabilitySums: {},
    });
    // 0.4 vs 0.5 fraud: 0.1 apart, at the threshold's edge; by chance with 20 instances, not with 20,000.
    const small = checkStep(shares(20, 8), shares(200, 100), versions, { ...THRESHOLDS, maxShift: 0.05 });
    expect(small.find((v) => v.check === 'shift')).toMatchObject({ value: 0.1, passed: true });
    expect(small.find((v) => v.check === 'shift')!.message).toMatch(
      /\(ROLLOUT_MAX_SHIFT 0\.05 \+ 0\.2\d+ for sampling\)$/,
    );
    const large = checkStep(shares(20_000, 8000), shares(200_000, 100_000), versions, {
      ...THRESHOLDS,
      maxShift: 0.05,
    });
    expect(large.find((v) => v.check === 'shift')).toMatchObject({ value: 0.1, passed: false });
    expect(large.find((v) => v.check === 'shift')!.threshold).toBeLessThan(0.06);
  });

  it('holds a regressor to the relative shift of its mean value', () => {
    const live: VersionWindow = {
      instances: 100,
      errors: 0,
      labels: {},
      probabilitySums: {},
      valueSum: 1000,
    };
    expect(failing({ ...live, valueSum: 1050 }, live)).toEqual([]);
    expect(failing({ ...live, valueSum: 1500 }, live)).toEqual([
      expect.objectContaining({
        check: 'shift',
        metric: '|mean value: 2.0.0 - 1.0.0| / |mean value of 1.0.0|',
        value: 0.5,
      }),
    ]);
  });

  it('passes latency and shift when there is nothing to measure, saying so', () => {
    const verdicts = checkStep(
      { instances: 30, errors: 0, labels: {}, probabilitySums: {} },
      { instances: 0, errors: 0, labels: {}, probabilitySums: {} },
      versions,
      THRESHOLDS,
    );
    expect(verdicts.map((v) => [v.check, v.passed, v.value])).toEqual([
      ['traffic', true, 30],
      ['errors', true, 0],
      ['latency', true, undefined],
      ['shift', true, undefined],
    ]);
    expect(verdicts[2]!.message).toContain('every answer came from the cache');
    expect(verdicts[3]!.message).toContain('1.0.0 answered nothing');
  });
});

describe('--steps and --bake', () => {
  it.each([
    '',
    '10,,50',
    '0,50',
    '50,10',
    '10,10',
    '101',
    'ten',
    Array(21)
      .fill(1)
      .map((_, i) => i + 1)
      .join(','),
  ])('refuses --steps %s', (text) => {
    expect(() => parseSteps(text)).toThrow(LifecycleRefusedError);
  });

  it('reads ascending percentages with decimals', () => {
    expect(parseSteps('0.5, 10,50.25,100')).toEqual([0.5, 10, 50.25, 100]);
  });

  it.each(['', '0s', '5d', '-5s', '1.5m', '25h', 'soon'])('refuses --bake %s', (text) => {
    expect(() => parseDuration(text)).toThrow(/--bake .*: expected a duration from 1s to 24h/);
  });

  it.each([
    ['5s', 5],
    ['90', 90],
    ['5m', 300],
    ['1h', 3600],
  ] as const)('reads --bake %s as %i seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });
});
