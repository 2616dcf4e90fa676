import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  FileVersionMetrics,
  VERSION_METRICS_FOLDER,
  VersionMetricsRecorder,
} from '../../local/version-metrics.ts';

const dims = { name: 'fraud-detector', version: '2.0.0' };
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tandem-version-metrics-'));
}, 10_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
}, 10_000);

describe('local per-version metrics (the rollout checks read them)', () => {
  it('sums the seconds of a window, and keeps each file bounded by rotating it once it is full', async () => {
    let now = Date.parse('2026-12-06T05:00:00.000Z');
    // About 100 bytes a line: a file is full after a few seconds.
    const recorder = new VersionMetricsRecorder(dir, () => now, 300);
    const seconds = 40;
    for (let s = 0; s < seconds; s++) {
      recorder.record('Instances', 2, dims);
      recorder.record('Errors', s % 10 === 0 ? 1 : 0, dims);
      recorder.record('ModelLatency', 1.5, dims);
      recorder.record('Label.1', 2, dims);
      now += 1000;
      await recorder.flush();
    }
    await recorder.flush(true);

    const folder = path.join(dir, VERSION_METRICS_FOLDER, dims.name);
    expect((await readdir(folder)).sort()).toEqual(['2.0.0.jsonl', '2.0.0.jsonl.1']);
    for (const name of ['2.0.0.jsonl', '2.0.0.jsonl.1']) {
      // Rotated before a line is appended to a full file: at most the limit plus one line.
      expect((await stat(path.join(folder, name))).size).toBeLessThan(300 + 200);
    }

    const reader = new FileVersionMetrics(dir);
    // The last 3 seconds are in the files (the current one at least): 2 instances each.
    const recent = await reader.window(dims.name, dims.version, now - 3000, now);
    expect(recent.instances).toBe(6);
    expect(recent.labels).toEqual({ '1': 6 });
    expect(recent.latencyP99Ms).toBe(1.5);
    // The whole run: only what the two files still hold, never more than was recorded, and the oldest
    // seconds are gone (rotated away).
    const all = await reader.window(dims.name, dims.version, 0, now);
    expect(all.instances).toBeGreaterThan(6);
    expect(all.instances).toBeLessThan(2 * seconds);
    expect(all.instances % 2).toBe(0);
  });

  it('reads no traffic for a version it never saw', async () => {
    const window = await new FileVersionMetrics(dir).window('fraud-detector', '9.9.9', 0, Date.now());
    expect(window.instances).toBe(0);
    expect(window.errors).toBe(0);
  });
});
