/**
 * A throttled table slows a chunk, it never fails it (issue 12, defect 3). Simulated time: a clock whose
 * sleep moves time on at once, and a table that refuses every write for ten minutes, then admits a few
 * writes per second. The table writer adapts its rate (AIMD) instead of hammering the table, and a chunk
 * that runs out of its invocation's time hands on where it stopped: the next invocation writes the rest,
 * every prediction reaches the table exactly once, and the report counts each once.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { ChunkScorer } from '../../lambdas/core/batch/chunk-scorer.ts';
import type { ChunkItem, ChunkReport } from '../../lambdas/core/batch/contracts.ts';
import { planRun } from '../../lambdas/core/batch/planner.ts';
import { TableWriter, type Clock } from '../../lambdas/core/batch/table-writer.ts';
import { storedPrediction, type StoredPrediction } from '../../lambdas/core/cache-policy.ts';
import type { PredictionStore } from '../../lambdas/core/ports.ts';
import { MemoryObjectStore } from '../support/memory-object-store.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const MINUTE = 60_000;

class SimulatedClock implements Clock {
  at = 0;
  now(): number {
    return this.at;
  }
  async sleep(ms: number): Promise<void> {
    this.at += Math.max(0, ms);
  }
}

/** Refuses everything until `throttledUntil`, then admits `perSecond` writes per simulated second. */
class ThrottlingTable implements PredictionStore {
  /** Accepted writes per entity. */
  readonly writes = new Map<string, number>();
  calls = 0;
  callsWhileThrottled = 0;
  private second = -1;
  private used = 0;

  constructor(
    private readonly clock: SimulatedClock,
    private readonly throttledUntil: number,
    private readonly perSecond: number,
  ) {}

  async getMany(): Promise<Map<string, StoredPrediction>> {
    return new Map();
  }

  async putMany(items: readonly StoredPrediction[]) {
    this.calls++;
    this.clock.at += 5; // a round trip
    const now = this.clock.now();
    if (now < this.throttledUntil) {
      this.callsWhileThrottled++;
      return { written: 0, skipped: 0, unprocessed: items };
    }
    const second = Math.floor(now / 1000);
    if (second !== this.second) {
      this.second = second;
      this.used = 0;
    }
    const room = Math.max(0, this.perSecond - this.used);
    const accepted = items.slice(0, room);
    this.used += accepted.length;
    for (const item of accepted) this.writes.set(item.entityId, (this.writes.get(item.entityId) ?? 0) + 1);
    return { written: accepted.length, skipped: 0, unprocessed: items.slice(room) };
  }
}

function predictions(count: number, from = 0): StoredPrediction[] {
  return Array.from({ length: count }, (_, i) =>
    storedPrediction(
      {
        model: 'm',
        entityId: `e${from + i}`,
        prediction: { value: i },
        modelVersion: '1',
        computedAt: 1,
        source: 'batch',
        runId: 'r',
        sourceRow: from + i + 1,
      },
      3600,
    ),
  );
}

describe('TableWriter against a table that throttles hard for ten minutes', () => {
  it('writes every item exactly once, backing off instead of retrying at full speed', async () => {
    const clock = new SimulatedClock();
    const table = new ThrottlingTable(clock, 10 * MINUTE, 200);
    const writer = new TableWriter({ store: table, ceilingPerSecond: 0, clock });
    for (let from = 0; from < 20_000; from += 1000) await writer.write(predictions(1000, from));

    expect(table.writes.size).toBe(20_000);
    expect([...table.writes.values()].every((n) => n === 1)).toBe(true);
    expect(writer.written).toBe(20_000);
    expect(writer.stopped).toBe(false);
    expect(writer.throttled).toBeGreaterThan(0);
    expect(clock.now()).toBeGreaterThan(10 * MINUTE);
    // Retrying at once would call a 5 ms table 120,000 times in ten minutes; backing off to one
    // attempt a second or so makes it a few hundred.
    expect(table.callsWhileThrottled).toBeLessThan(1500);
  });

  it('stops at its deadline and resumes where it stopped, skipping what it already wrote', async () => {
    const clock = new SimulatedClock();
    const table = new ThrottlingTable(clock, 0, 50);
    const items = predictions(3000);
    const first = new TableWriter({ store: table, ceilingPerSecond: 0, clock, deadline: 20_000 });
    for (let from = 0; from < 3000; from += 500) await first.write(items.slice(from, from + 500));
    expect(first.stopped).toBe(true);
    expect(first.written).toBeLessThan(3000);

    const resume = { ...first.position, tableWritten: first.written, tableSkipped: 0, invocations: 1 };
    const second = new TableWriter({ store: table, ceilingPerSecond: 0, clock, resume });
    for (let from = 0; from < 3000; from += 500) await second.write(items.slice(from, from + 500));
    expect(second.stopped).toBe(false);
    expect(second.written).toBe(3000);
    expect(table.writes.size).toBe(3000);
    expect([...table.writes.values()].every((n) => n === 1)).toBe(true);
  });

  it('never exceeds the ceiling, even with a table that admits everything', async () => {
    const clock = new SimulatedClock();
    const table = new ThrottlingTable(clock, 0, 1_000_000);
    const writer = new TableWriter({ store: table, ceilingPerSecond: 100, clock });
    await writer.write(predictions(3000));
    expect(writer.written).toBe(3000);
    // 3,000 writes at 100 a second: at least 29 simulated seconds (the first slice goes at once).
    expect(clock.now()).toBeGreaterThanOrEqual(29_000);
  });
});

describe('ChunkScorer with a table that throttles hard for ten minutes', () => {
  const objects = new MemoryObjectStore();
  const models = new FsModelSource(path.join(REPO, 'models'));
  let item: ChunkItem;
  let rows: number;

  beforeAll(async () => {
    const csv = await readFile(path.join(REPO, 'models/fraud-detector/demo-transactions.csv'));
    rows = csv.toString('utf8').trim().split('\n').length - 1;
    objects.put('data', 'incoming/fraud-detector/big.csv', csv);
    const plan = await planRun(
      { runId: 'throttled', bucket: 'data', key: 'incoming/fraud-detector/big.csv', model: 'fraud-detector' },
      { objects, models },
    );
    expect(plan.chunks).toBe(1);
    item = { runId: 'throttled', bucket: 'data', planKey: plan.planKey, index: 0 };
  }, 60_000);

  const scorers: ChunkScorer[] = [];
  afterAll(async () => {
    await Promise.all(scorers.map((s) => s.close()));
  }, 60_000);

  it('with the default options: continues over several invocations and completes, each row in the table once', async () => {
    const clock = new SimulatedClock();
    const table = new ThrottlingTable(clock, 10 * MINUTE, 5);
    const scorer = new ChunkScorer({ objects, models, predictions: table, clock, scoringThreads: 0 });
    scorers.push(scorer);
    // Each invocation writes for four simulated minutes (a 5-minute function less its reserve).
    let next: ChunkItem = item;
    let report: ChunkReport | undefined;
    let invocations = 0;
    const partWrites = () => objects.writes.filter((k) => k.includes('/part-')).length;
    let partWritesAfterFirst = 0;
    while (!report) {
      invocations++;
      expect(invocations).toBeLessThan(100);
      const outcome = await scorer.run(next, { deadline: clock.now() + 4 * MINUTE });
      if (invocations === 1) partWritesAfterFirst = partWrites();
      if (outcome.done) report = outcome.report;
      else next = outcome.next;
    }

    expect(invocations).toBeGreaterThan(2);
    expect(report.invocations).toBe(invocations);
    expect(report.read).toBe(rows);
    expect(report.scored).toBe(rows);
    expect(report.tableWritten).toBe(rows);
    expect(report.tableThrottled).toBeGreaterThan(0);
    expect(table.writes.size).toBe(rows);
    expect([...table.writes.values()].every((n) => n === 1)).toBe(true);
    // The part file was written by the first invocation only, and holds every row.
    expect(partWrites()).toBe(partWritesAfterFirst);
    const part = objects.text('data', report.partKey!)!;
    expect(part.trim().split('\n')).toHaveLength(rows);
  }, 120_000);
});
