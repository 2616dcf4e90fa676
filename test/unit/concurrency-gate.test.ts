import { describe, expect, it } from '@jest/globals';
import { ConcurrencyGate, GateAbandonedError, GateFullError } from '../../local/concurrency-gate.ts';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('ConcurrencyGate', () => {
  it('admits `limit` callers at once and the waiting ones in arrival order as slots are freed', async () => {
    const gate = new ConcurrencyGate(2, 10);
    const admitted: number[] = [];
    const entries = [1, 2, 3, 4, 5].map((n) => gate.enter().then(() => admitted.push(n)));
    await tick();
    expect(admitted).toEqual([1, 2]);
    expect(gate.queued).toBe(3);
    gate.leave();
    await tick();
    expect(admitted).toEqual([1, 2, 3]);
    gate.leave();
    gate.leave();
    await Promise.all(entries);
    expect(admitted).toEqual([1, 2, 3, 4, 5]);
    expect(gate.inFlight).toBe(2);
    gate.leave();
    gate.leave();
    expect(gate.inFlight).toBe(0);
  });

  it('turns a caller away at once when the queue is full', async () => {
    const gate = new ConcurrencyGate(1, 1);
    await gate.enter();
    const waiting = gate.enter();
    await expect(gate.enter()).rejects.toThrow(GateFullError);
    gate.leave();
    await waiting;
    expect(gate.inFlight).toBe(1);
  });

  it('drops a waiter whose signal fires, and never admits it', async () => {
    const gate = new ConcurrencyGate(1, 4);
    await gate.enter();
    const controller = new AbortController();
    const abandoned = gate.enter(controller.signal);
    const next = gate.enter();
    controller.abort();
    await expect(abandoned).rejects.toThrow(GateAbandonedError);
    expect(gate.queued).toBe(1);
    gate.leave();
    await next;
    expect(gate.inFlight).toBe(1);
    expect(gate.queued).toBe(0);
  });

  it('rejects a limit that is not a positive integer and a negative queue bound', () => {
    expect(() => new ConcurrencyGate(0, 1)).toThrow(/positive integer/);
    expect(() => new ConcurrencyGate(1.5, 1)).toThrow(/positive integer/);
    expect(() => new ConcurrencyGate(1, -1)).toThrow(/>= 0/);
  });
});
