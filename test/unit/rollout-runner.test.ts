/**
 * The rollout state machine's definition run locally (aws-local-stepfunctions) over an in-memory model
 * store and injected metrics: the task order of a healthy rollout, the Notify task of a rolled-back one,
 * and the command's Ctrl+C, which rolls the rollout back instead of leaving the canary at its percentage.
 */
import { beforeEach, describe, expect, it } from '@jest/globals';
import { RolloutSteps, type RolloutRequest } from '../../lambdas/core/lifecycle/rollout.ts';
import type { VersionWindow } from '../../lambdas/core/lifecycle/rollout-checks.ts';
import { runLocalRollout } from '../../local/rollout-runner.ts';
import { MemoryModelStore } from '../support/memory-model-store.ts';

const MODEL = 'fraud-detector';
const healthy: VersionWindow = {
  instances: 100,
  errors: 0,
  latencyP99Ms: 3,
  labels: { '0': 90, '1': 10 },
  probabilitySums: {},
};

let store: MemoryModelStore;
let candidate: VersionWindow;

const request = (bakeSeconds: number): RolloutRequest => ({
  rolloutId: 'run1',
  model: MODEL,
  candidate: '2.0.0',
  steps: [50, 100],
  bakeSeconds,
  by: 'tester',
});

function steps(): RolloutSteps {
  return new RolloutSteps({
    store,
    thresholds: { maxErrorRate: 0.01, maxLatencyMs: 100, maxShift: 0.1, minInstances: 20 },
    metrics: { window: async (_m, version) => (version === '2.0.0' ? candidate : healthy) },
  });
}

beforeEach(() => {
  store = new MemoryModelStore();
  store.setPointer(MODEL, { version: '1.0.0', change: 'c0' });
  candidate = healthy;
});

describe('the rollout definition on aws-local-stepfunctions', () => {
  it('runs Start, Check, Advance, Check, Promote for a healthy candidate', async () => {
    const tasks: string[] = [];
    const end = await runLocalRollout(steps(), request(1), { onStep: (task) => tasks.push(task) });
    expect(tasks).toEqual(['Start', 'Check', 'Advance', 'Check', 'Promote']);
    expect(end.outcome?.status).toBe('promoted');
    expect(store.pointer(MODEL)).toMatchObject({ version: '2.0.0', previous: '1.0.0' });
  }, 20_000);

  it('rolls back a failing candidate and runs Notify with the outcome', async () => {
    candidate = { ...healthy, errors: 40 };
    const notified: string[] = [];
    const tasks: string[] = [];
    const end = await runLocalRollout(steps(), request(1), {
      onStep: (task) => tasks.push(task),
      notify: (subject, message) => notified.push(`${subject} | ${message}`),
    });
    expect(tasks).toEqual(['Start', 'Check', 'Roll back']);
    expect(end.outcome?.status).toBe('rolled-back');
    expect(notified).toEqual([
      expect.stringMatching(
        /^Tandem rollout rolled back: fraud-detector@2\.0\.0 \| .*errors: 2\.0\.0: 40 failed request/,
      ),
    ]);
    expect(store.pointer(MODEL)!['canary']).toBeUndefined();
  }, 20_000);

  it('rolls back when the command is stopped during a bake, saying so', async () => {
    const stop = new AbortController();
    const tasks: string[] = [];
    const end = await runLocalRollout(steps(), request(3600), {
      signal: stop.signal,
      onStep: (task) => {
        tasks.push(task);
        if (task === 'Start') setTimeout(() => stop.abort(), 50);
      },
    });
    expect(tasks).toEqual(['Start', 'Roll back']);
    expect(end.outcome?.status).toBe('rolled-back');
    expect(store.pointer(MODEL)).toMatchObject({ version: '1.0.0', change: 'run1-abort' });
    expect(store.records(MODEL).at(-1)!['reason']).toBe(
      'rolled back: the rollout could not go on (Interrupted: the tandem command running it was stopped (Ctrl+C))',
    );
  }, 20_000);
});
