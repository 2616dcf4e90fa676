import { describe, expect, it } from '@jest/globals';
import { limitConcurrency } from '../../local/concurrency-gate.ts';

/** A handler whose calls finish only when the test says so. */
function controllable() {
  const pending: { value: number; finish: () => void }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const handler = (value: number) =>
    new Promise<number>((resolve) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      pending.push({
        value,
        finish: () => {
          inFlight--;
          resolve(value * 10);
        },
      });
    });
  return { handler, pending, stats: () => ({ inFlight, maxInFlight }) };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('limitConcurrency', () => {
  it('runs at most `limit` calls at once and starts the waiting ones in arrival order', async () => {
    const { handler, pending, stats } = controllable();
    const gated = limitConcurrency(handler, 2);
    const results = [1, 2, 3, 4, 5].map((v) => gated(v));
    await tick();
    expect(pending.map((p) => p.value)).toEqual([1, 2]);
    pending[1]!.finish();
    await tick();
    expect(pending.map((p) => p.value)).toEqual([1, 2, 3]);
    pending[0]!.finish();
    await tick();
    expect(pending.map((p) => p.value)).toEqual([1, 2, 3, 4]);
    pending[2]!.finish();
    pending[3]!.finish();
    await tick();
    pending[4]!.finish();
    expect(await Promise.all(results)).toEqual([10, 20, 30, 40, 50]);
    expect(stats()).toEqual({ inFlight: 0, maxInFlight: 2 });
  });

  it('frees the slot of a call that fails', async () => {
    let calls = 0;
    const gated = limitConcurrency(async (fail: boolean) => {
      calls++;
      if (fail) throw new Error('boom');
      return 'ok';
    }, 1);
    await expect(gated(true)).rejects.toThrow('boom');
    await expect(gated(false)).resolves.toBe('ok');
    expect(calls).toBe(2);
  });

  it('rejects a limit that is not a positive integer', () => {
    expect(() => limitConcurrency(async () => 1, 0)).toThrow(/positive integer/);
    expect(() => limitConcurrency(async () => 1, 1.5)).toThrow(/positive integer/);
  });
});
