import { afterEach, describe, expect, it } from '@jest/globals';
import { readChunkFailures, recordChunkFailure } from '../../lambdas/core/batch/chunk-failures.ts';
import {
  DEFAULT_BATCH_OPTIONS,
  chunkReportKey,
  planKey,
  type BatchPlan,
  type ChunkReport,
  type RunCompletedEvent,
  type RunManifest,
} from '../../lambdas/core/batch/contracts.ts';
import { BatchInputError, ModelUnavailableError } from '../../lambdas/core/batch/errors.ts';
import { finalizeRun } from '../../lambdas/core/batch/finalizer.ts';
import { finalizeInputFromState, type FinalizeState } from '../../lambdas/adapters/step-functions-failure.ts';
import { MemoryObjectStore } from '../support/memory-object-store.ts';

const BUCKET = 'data';
const RUN = 'sales-0123456789abcdef01234567';
const input: FinalizeState = {
  runId: RUN,
  bucket: BUCKET,
  key: 'incoming/fraud/sales.csv',
  model: 'fraud',
};

let store = new MemoryObjectStore();
afterEach(() => {
  store = new MemoryObjectStore();
}, 60_000);

function plan(rows: readonly number[]): BatchPlan {
  let firstRow = 1;
  const chunks = rows.map((count, index) => {
    const chunk = {
      kind: 'bytes' as const,
      index,
      start: index * 100,
      end: index * 100 + 100,
      firstRow,
      firstLine: firstRow + 1,
      rows: count,
    };
    firstRow += count;
    return chunk;
  });
  const value: BatchPlan = {
    runId: RUN,
    model: 'fraud',
    modelVersion: '1.0.0',
    dataset: 'sales',
    input: { bucket: BUCKET, key: input.key, etag: 'e', size: rows.length * 100 },
    source: { bucket: BUCKET, key: input.key, size: rows.length * 100 },
    format: 'csv',
    gzip: false,
    header: ['id'],
    options: DEFAULT_BATCH_OPTIONS,
    chunks,
    totalRows: rows.reduce((a, b) => a + b, 0),
    resultsPrefix: `results/fraud/sales/${RUN}/`,
    createdAt: '2026-01-01T00:00:00.000Z',
    planMs: 5,
  };
  store.put(BUCKET, planKey(RUN), JSON.stringify(value));
  return value;
}

function report(index: number, read: number, rejected = 0): void {
  const value: ChunkReport = {
    index,
    read,
    scored: read - rejected,
    rejected,
    tableWritten: read - rejected,
    tableSkipped: 0,
    partKey: `results/fraud/sales/${RUN}/part-${String(index).padStart(5, '0')}.jsonl`,
    rejectedKey: undefined,
    readMs: 1,
    scoreMs: 1,
    writeMs: 1,
    totalMs: 3,
    attempt: 1,
  };
  store.put(BUCKET, chunkReportKey(RUN, index), JSON.stringify(value));
}

/** Finalize as the deployed handler runs it: from the state machine's state, Catch output included. */
async function finalize(extra: Partial<FinalizeState> = {}) {
  const events: RunCompletedEvent[] = [];
  const result = await finalizeRun(finalizeInputFromState({ ...input, ...extra }), {
    objects: store,
    events: { publish: async (_t, d) => void events.push(d as RunCompletedEvent) },
  });
  const manifest = JSON.parse(store.text(BUCKET, result.manifestKey)!) as RunManifest;
  return { result, manifest, events };
}

const item = (index: number) => ({ runId: RUN, bucket: BUCKET, planKey: planKey(RUN), index });

describe('finalizeRun', () => {
  it('explains a Map that only says its failure threshold was exceeded with the failing chunk', async () => {
    plan([10, 10, 10]);
    report(0, 10);
    await recordChunkFailure(store, item(1), new Error('socket hang up'), { attempt: 3 });
    await recordChunkFailure(
      store,
      item(2),
      new ModelUnavailableError('MODEL_UNAVAILABLE', 'fraud@1.0.0 cannot be loaded: model.onnx is missing'),
      { attempt: 1 },
    );
    const { manifest, events, result } = await finalize({
      error: {
        Error: 'States.ExceedToleratedFailureThreshold',
        Cause: 'The specified tolerated failure threshold was exceeded',
      },
    });
    expect(manifest.status).toBe('FAILED');
    // The chunk no retry could fix explains the run best.
    expect(manifest.error).toEqual({
      code: 'MODEL_UNAVAILABLE',
      message: 'chunk 2: fraud@1.0.0 cannot be loaded: model.onnx is missing',
      state: 'States.ExceedToleratedFailureThreshold',
    });
    expect(manifest.counts).toMatchObject({ planned: 30, read: 10, scored: 10 });
    expect(manifest.chunks).toEqual({
      planned: 3,
      completed: 1,
      failed: 2,
      failures: [
        { index: 1, firstRow: 11, rows: 10, error: { code: 'CHUNK_FAILED', message: 'socket hang up' } },
        {
          index: 2,
          firstRow: 21,
          rows: 10,
          error: {
            code: 'MODEL_UNAVAILABLE',
            message: 'fraud@1.0.0 cannot be loaded: model.onnx is missing',
          },
        },
      ],
    });
    expect(events).toEqual([expect.objectContaining({ status: 'FAILED', error: manifest.error })]);
    expect(result.message).toMatch(/\[MODEL_UNAVAILABLE\] chunk 2/);
  });

  it('ignores the failed attempts of chunks that were retried and reported', async () => {
    plan([5, 5]);
    report(0, 5);
    report(1, 5);
    await recordChunkFailure(store, item(1), new Error('aborted'), { attempt: 1 });
    const { manifest } = await finalize();
    expect(manifest.status).toBe('SUCCEEDED');
    expect(manifest.chunks).toEqual({ planned: 2, completed: 2, failed: 0 });
  });

  it('lists the rows of chunks that failed within a tolerated threshold, in a run that succeeded', async () => {
    plan([4, 6, 8]);
    report(0, 4);
    report(2, 8, 1);
    await recordChunkFailure(
      store,
      item(1),
      Object.assign(new Error('Rate exceeded'), { name: 'ProvisionedThroughputExceededException' }),
      { attempt: 3 },
    );
    const { manifest, result } = await finalize();
    expect(manifest.status).toBe('SUCCEEDED');
    expect(manifest.counts).toMatchObject({ planned: 18, read: 12, scored: 11, rejected: 1 });
    expect(manifest.chunks.failures).toEqual([
      {
        index: 1,
        firstRow: 5,
        rows: 6,
        error: { code: 'ProvisionedThroughputExceededException', message: 'Rate exceeded' },
      },
    ]);
    expect(result.message).toMatch(/1 chunks failed within the tolerated threshold/);
  });

  it('fails a run whose chunk read another number of rows than the plan counted', async () => {
    plan([10, 10]);
    report(0, 10);
    report(1, 9);
    const { manifest } = await finalize();
    expect(manifest.status).toBe('FAILED');
    expect(manifest.error).toEqual({
      code: 'ROW_COUNT_MISMATCH',
      message: 'chunk 1 read 9 rows, the plan counted 10',
    });
  });

  it("keeps a failed plan's own reason (no chunks ran)", async () => {
    const cause = JSON.stringify({
      errorType: 'BatchInputError',
      errorMessage: '[MISSING_COLUMNS] the dataset has no column "amount"',
    });
    const { manifest } = await finalize({ error: { Error: 'BatchInputError', Cause: cause } });
    expect(manifest).toMatchObject({
      status: 'FAILED',
      error: { code: 'MISSING_COLUMNS', message: 'the dataset has no column "amount"' },
      counts: { planned: 0, read: 0 },
      chunks: { planned: 0, completed: 0, failed: 0 },
    });
    expect(manifest.error).not.toHaveProperty('state');
  });

  it('writes the manifest before publishing, and lets a publishing failure through (Finalize is retried)', async () => {
    plan([3]);
    report(0, 3);
    await expect(
      finalizeRun(finalizeInputFromState(input), {
        objects: store,
        events: {
          publish: async () => {
            throw new Error('PutEvents failed: InternalFailure');
          },
        },
      }),
    ).rejects.toThrow(/InternalFailure/);
    expect(store.text(BUCKET, `results/fraud/sales/${RUN}/_manifest.json`)).toContain('"SUCCEEDED"');
  });
});

describe('recordChunkFailure', () => {
  it('counts attempts when the worker is not told which one it runs, and classifies the error', async () => {
    const first = await recordChunkFailure(
      store,
      item(4),
      Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
      { now: () => Date.parse('2026-06-01T00:00:01Z') },
    );
    const second = await recordChunkFailure(
      store,
      item(4),
      new BatchInputError('CORRUPT_PARQUET', 'chunk 4: corrupt Parquet file'),
      { now: () => Date.parse('2026-06-01T00:00:02Z') },
    );
    // Recorded without an attempt number (a deployed worker is not told), numbered when read.
    expect([first?.attempt, second?.attempt]).toEqual([0, 0]);
    const read = (await readChunkFailures(store, BUCKET, RUN)).filter((f) => f.index === 4);
    expect(read.map((f) => f.attempt)).toEqual([1, 2]);
    expect(read[0]).toMatchObject({ index: 4, code: 'ECONNRESET', retryable: true });
    expect(read[1]).toMatchObject({
      attempt: 2,
      name: 'BatchInputError',
      code: 'CORRUPT_PARQUET',
      message: 'chunk 4: corrupt Parquet file',
      retryable: false,
    });
  });

  it("never throws: a store that fails cannot hide the chunk's own error", async () => {
    const broken = new MemoryObjectStore();
    broken.writeBytes = async () => {
      throw new Error('S3 is down');
    };
    await expect(
      recordChunkFailure(broken, item(0), new Error('x'), { attempt: 1 }),
    ).resolves.toBeUndefined();
  });
});
