/**
 * The state machine's chunk loop, run by aws-local-stepfunctions on the deployed definition: a score
 * invocation that returns its item with `resume` (its table writes ran out of time) is invoked again with
 * that item, until one returns the chunk's summary; the run then finalizes as usual.
 */
import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from '@jest/globals';
import { STATE_NAMES } from '../../lib/batch-definition.ts';
import type { ChunkItem } from '../../lambdas/core/batch/contracts.ts';
import { localDefinition } from '../../local/batch-runner.ts';

describe('batch definition: a chunk that continues', () => {
  it('invokes the score function again with the returned item until the chunk is done', async () => {
    const calls: ChunkItem[] = [];
    const machine = new StateMachine(localDefinition('data', 2, 0) as never);
    const items: ChunkItem[] = [0, 1].map((index) => ({ runId: 'r', bucket: 'data', planKey: 'p', index }));
    let finalized: unknown;
    const execution = machine.run({ runId: 'r', bucket: 'data', key: 'incoming/m/x.csv' } as never, {
      overrides: {
        taskResourceLocalHandlers: {
          [STATE_NAMES.plan]: async () => ({ bucket: 'data', items }),
          [STATE_NAMES.score]: async (item: ChunkItem) => {
            calls.push(item);
            const invocations = (item.resume?.invocations ?? 0) + 1;
            // Chunk 1 needs three invocations; chunk 0 one.
            if (item.index === 1 && invocations < 3) {
              return {
                ...item,
                resume: {
                  tableRows: invocations * 10,
                  tableRowsAhead: [],
                  tableWritten: invocations * 10,
                  tableSkipped: 0,
                  invocations,
                },
              };
            }
            return { index: item.index, read: 30, scored: 30, rejected: 0 };
          },
          [STATE_NAMES.finalize]: async (state: unknown) => {
            finalized = state;
            return { status: 'SUCCEEDED', message: 'ok' };
          },
        } as never,
      },
    });
    await execution.result;
    const chunk1 = calls.filter((c) => c.index === 1);
    expect(calls.filter((c) => c.index === 0)).toHaveLength(1);
    expect(chunk1.map((c) => c.resume?.invocations)).toEqual([undefined, 1, 2]);
    expect(chunk1[2]!.resume).toMatchObject({ tableRows: 20, tableWritten: 20 });
    expect(finalized).toBeDefined();
    expect((finalized as { error?: unknown }).error).toBeUndefined();
  });
});
