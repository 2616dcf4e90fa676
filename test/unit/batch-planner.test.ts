import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { describe, expect, it } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { MAX_CHUNKS, type RunInput } from '../../lambdas/core/batch/contracts.ts';
import { BatchInputError, ModelUnavailableError } from '../../lambdas/core/batch/errors.ts';
import { chunkRowLimit, planRun, resolveOptions } from '../../lambdas/core/batch/planner.ts';
import { scanCsv, scanJsonl } from '../../lambdas/core/batch/dataset-scan.ts';
import { ModelLoadError } from '../../lambdas/core/errors.ts';
import type { ModelSource } from '../../lambdas/core/ports.ts';
import { MemoryObjectStore } from '../support/memory-object-store.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');
const BUCKET = 'data';
const models = new FsModelSource(path.join(REPO_ROOT, 'models'));
const HEADER =
  'transaction_id,amount,hour_of_day,day_of_week,merchant_category,channel,card_present,is_international,distance_from_home_km,txn_count_1h,txn_count_24h,amount_to_avg_ratio,account_age_days,customer_age,failed_pin_24h,new_device,merchant_risk_score,prior_chargebacks';
const ROW = (i: number) =>
  `txn-${i},23.34,18,1,gambling,swipe,true,false,18.36,1,3,0.7732,234,44,0,false,0.651,0`;

function upload(
  store: MemoryObjectStore,
  file: string,
  body: string | Uint8Array,
  options?: RunInput['options'],
): RunInput {
  const key = `incoming/fraud-detector/${file}`;
  store.put(BUCKET, key, body);
  return {
    runId: `run-${file.replace(/\W/g, '-')}`,
    bucket: BUCKET,
    key,
    model: 'fraud-detector',
    ...(options ? { options } : {}),
  };
}

async function planError(store: MemoryObjectStore, input: RunInput, source: ModelSource = models) {
  try {
    await planRun(input, { objects: store, models: source });
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('the plan did not fail');
}

async function* pieces(text: string): AsyncIterable<Uint8Array> {
  yield Buffer.from(text);
}

describe('resolveOptions', () => {
  it('names every bad option in one INVALID_OPTIONS error, misspelt names included', () => {
    let error: unknown;
    try {
      resolveOptions({
        chunkbytes: 1024,
        maxTableWritesPerSecond: '100',
        maxRecordBytes: 512,
        maxInputBytes: 1.5,
        passThroughColumns: Array.from({ length: 101 }, (_, i) => `c${i}`),
      } as never);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(BatchInputError);
    const message = (error as Error).message;
    expect(message).toMatch(/^\[INVALID_OPTIONS\] unknown option "chunkbytes"/);
    for (const name of ['maxTableWritesPerSecond', 'maxRecordBytes', 'maxInputBytes', 'passThroughColumns'])
      expect(message).toContain(name);
    expect(() => resolveOptions([] as never)).toThrow(/must be an object/);
  });

  it('fills the documented defaults', () => {
    expect(resolveOptions(undefined)).toMatchObject({
      chunkBytes: 64 * 1024 * 1024,
      maxInputBytes: 50 * 1024 ** 3,
      maxRecordBytes: 1024 * 1024,
      microBatchRows: 1024,
    });
  });
});

describe('record length limit (scans)', () => {
  it('accepts a record of exactly maxRecordBytes and rejects one byte more, naming the line', async () => {
    const exact = `${'a'.repeat(1023)}\n`;
    await expect(
      scanCsv(pieces(`h\n${exact}`), { chunkBytes: 4096, delimiter: ',', maxRecordBytes: 1024 }),
    ).resolves.toMatchObject({ totalRows: 1 });
    await expect(
      scanCsv(pieces(`h\nshort\n${'a'.repeat(1024)}\n`), {
        chunkBytes: 4096,
        delimiter: ',',
        maxRecordBytes: 1024,
      }),
    ).rejects.toMatchObject({ code: 'RECORD_TOO_LARGE', line: 3 });
    await expect(
      scanJsonl(pieces(`{}\n\n{"a": "${'x'.repeat(2000)}"}`), { chunkBytes: 4096, maxRecordBytes: 1024 }),
    ).rejects.toMatchObject({
      code: 'RECORD_TOO_LARGE',
      line: 3,
      message: expect.stringMatching(/line 3 is \d+ bytes; .*the most it may hold is 1024 bytes/),
    });
  });
});

describe('planRun limits', () => {
  it('refuses an upload over maxInputBytes without reading it', async () => {
    const store = new MemoryObjectStore();
    const input = upload(
      store,
      'big.csv',
      `${HEADER}\n${Array.from({ length: 100 }, (_, i) => ROW(i)).join('\n')}\n`,
      { maxInputBytes: 2048 },
    );
    let reads = 0;
    const read = store.read.bind(store);
    store.read = (...args) => {
      reads++;
      return read(...args);
    };
    const error = await planError(store, input);
    expect(error).toMatchObject({
      code: 'INPUT_TOO_LARGE',
      message: expect.stringMatching(/the limit is 2048 \(maxInputBytes\)/),
    });
    expect(reads).toBe(0);
  });

  it('stops a gzip bomb before its staging copy is written', async () => {
    const store = new MemoryObjectStore();
    const rows = Array.from({ length: 20_000 }, () => ROW(1)).join('\n');
    const bomb = gzipSync(`${HEADER}\n${rows}\n`);
    const input = upload(store, 'bomb.csv.gz', bomb, { maxInputBytes: 256 * 1024 });
    const error = await planError(store, input);
    expect(error).toBeInstanceOf(BatchInputError);
    expect(error).toMatchObject({ code: 'INPUT_TOO_LARGE' });
    expect(bomb.length).toBeLessThan(64 * 1024);
    expect(await store.list(BUCKET, `runs/${input.runId}/`)).toEqual([]);
  });

  it(`refuses a plan of more than ${MAX_CHUNKS} chunks, saying to raise chunkBytes`, async () => {
    const store = new MemoryObjectStore();
    const rows = Array.from({ length: 12 * MAX_CHUNKS }, (_, i) => ROW(i)).join('\n');
    const input = upload(store, 'many.csv', `${HEADER}\n${rows}\n`, { chunkBytes: 1024 });
    const error = await planError(store, input);
    expect(error).toMatchObject({
      code: 'TOO_MANY_CHUNKS',
      message: expect.stringMatching(/at most 10000 .*raise chunkBytes/),
    });
    expect(await store.list(BUCKET, `runs/${input.runId}/`)).toEqual([]);
  });

  it('refuses a needed column named twice, but not a duplicated column it does not use', async () => {
    const store = new MemoryObjectStore();
    const twice = upload(store, 'twice.csv', `${HEADER},channel\n${ROW(1)},chip\n`);
    expect(await planError(store, twice)).toMatchObject({
      code: 'DUPLICATE_COLUMNS',
      message: expect.stringMatching(/"channel"/),
    });
    const unused = upload(store, 'unused.csv', `note,${HEADER},note\na,${ROW(1)},b\n`);
    await expect(planRun(unused, { objects: store, models })).resolves.toMatchObject({ totalRows: 1 });
  });
});

describe('planRun: rows per chunk', () => {
  const planOf = async (store: MemoryObjectStore, input: RunInput) => {
    const result = await planRun(input, { objects: store, models });
    const plan = JSON.parse(Buffer.from(await store.readBytes(BUCKET, result.planKey)).toString('utf8')) as {
      chunks: { rows: number }[];
    };
    return plan.chunks.map((c) => c.rows);
  };
  const csv = (rows: number) => `${HEADER}\n${Array.from({ length: rows }, (_, i) => ROW(i)).join('\n')}\n`;

  it('cuts chunks at maxChunkRows', async () => {
    const store = new MemoryObjectStore();
    expect(await planOf(store, upload(store, 'rows.csv', csv(25), { maxChunkRows: 10 }))).toEqual([
      10, 10, 5,
    ]);
  });

  it('with paced table writes, cuts chunks to what the pace writes in the time a chunk has', async () => {
    const store = new MemoryObjectStore();
    // 0.05 writes/s x 240 s = 12 rows: a chunk holding more would still be writing when its child stops.
    const paced = upload(store, 'paced.csv', csv(30), { maxTableWritesPerSecond: 0.05 });
    expect(chunkRowLimit(resolveOptions({ maxTableWritesPerSecond: 0.05 }))).toBe(12);
    expect(await planOf(store, paced)).toEqual([12, 12, 6]);
    // The tighter of the two limits holds; without table writes the pace does not matter.
    const both = upload(store, 'both.csv', csv(30), { maxTableWritesPerSecond: 0.05, maxChunkRows: 7 });
    expect(await planOf(store, both)).toEqual([7, 7, 7, 7, 2]);
    const s3Only = upload(store, 's3.csv', csv(30), { maxTableWritesPerSecond: 0.05, tableWrites: 'none' });
    expect(await planOf(store, s3Only)).toEqual([30]);
  });

  it('groups whole Parquet row groups up to maxChunkRows', async () => {
    const store = new MemoryObjectStore();
    const names = HEADER.split(',');
    const values = ROW(1).split(',');
    const columnData = names.map((name, i) => ({
      name,
      type: 'STRING',
      data: Array.from({ length: 20 }, () => values[i]),
    }));
    const file = new Uint8Array(parquetWriteBuffer({ columnData, rowGroupSize: [4, 4, 4, 8] } as never));
    // 4 + 4 fit in 9; the third group would make 12; the 8-row group is a chunk of its own.
    expect(await planOf(store, upload(store, 'rows.parquet', file, { maxChunkRows: 9 }))).toEqual([8, 4, 8]);
  });

  it('rejects a maxChunkRows that is not a whole number >= 0', () => {
    expect(() => resolveOptions({ maxChunkRows: -1 })).toThrow(/maxChunkRows must be an integer >= 0/);
    expect(() => resolveOptions({ maxChunkRows: 2.5 })).toThrow(/maxChunkRows/);
  });
});

describe('planRun: Parquet row groups', () => {
  it('refuses a row group over maxRowGroupRows, naming it', async () => {
    const store = new MemoryObjectStore();
    const names = HEADER.split(',');
    const values = ROW(1).split(',');
    const columnData = names.map((name, i) => ({
      name,
      type: 'STRING',
      data: Array.from({ length: 12 }, () => values[i]),
    }));
    const file = new Uint8Array(parquetWriteBuffer({ columnData, rowGroupSize: [4, 8] } as never));
    const input = upload(store, 'groups.parquet', file, { maxRowGroupRows: 6 });
    expect(await planError(store, input)).toMatchObject({
      code: 'ROW_GROUP_TOO_LARGE',
      message: expect.stringMatching(/row group 1 of groups\.parquet has 8 rows; .*the limit is 6/),
    });
    const fits = upload(store, 'groups-ok.parquet', file, { maxRowGroupRows: 8 });
    await expect(planRun(fits, { objects: store, models })).resolves.toMatchObject({ totalRows: 12 });
  });
});

describe('planRun model checks', () => {
  const flaky = (failing: 'currentVersion' | 'manifest.json' | 'model.onnx', error: Error): ModelSource => ({
    description: 'flaky',
    list: () => models.list(),
    currentVersion: async (name) => {
      if (failing === 'currentVersion') throw error;
      return models.currentVersion(name);
    },
    read: async (name, version, file) => {
      if (failing === file) throw error;
      return models.read(name, version, file);
    },
  });

  it('lets an unreachable model store through as retryable, not as an unusable model', async () => {
    const store = new MemoryObjectStore();
    const input = upload(store, 'ok.csv', `${HEADER}\n${ROW(1)}\n`);
    const unreachable = new ModelLoadError(
      'MODEL_STORE_UNAVAILABLE',
      'the model store is unavailable (InternalError)',
    );
    for (const where of ['currentVersion', 'manifest.json', 'model.onnx'] as const) {
      const error = await planError(store, input, flaky(where, unreachable));
      expectWithMessage(error, where).toBe(unreachable);
    }
  });

  it('fails an unusable model as ModelUnavailableError (not retried), with the code', async () => {
    const store = new MemoryObjectStore();
    const input = upload(store, 'ok.csv', `${HEADER}\n${ROW(1)}\n`);
    const missing = new ModelLoadError('MODEL_FILE_MISSING', 'model.onnx of fraud-detector@1.0.0 is missing');
    const error = await planError(store, input, flaky('model.onnx', missing));
    expect(error).toBeInstanceOf(ModelUnavailableError);
    expect(error).toMatchObject({ code: 'MODEL_FILE_MISSING' });
  });
});

describe('planRun: the version a run scores with', () => {
  // A store in which fraud-detector 1.0.0 is also published as 2.0.0 (same package, path-checked name).
  const twoVersions: ModelSource = {
    description: 'two versions',
    list: () => models.list(),
    currentVersion: (name) => models.currentVersion(name),
    read: async (name, version, file) => {
      if (version !== '2.0.0') return models.read(name, version, file);
      const bytes = await models.read(name, '1.0.0', file);
      if (file !== 'manifest.json') return bytes;
      const manifest = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
      return Buffer.from(JSON.stringify({ ...manifest, version: '2.0.0' }));
    },
  };
  class MetadataStore extends MemoryObjectStore {
    metadata: Record<string, string> = {};
    override async head(bucket: string, key: string) {
      const info = await super.head(bucket, key);
      return info && { ...info, metadata: this.metadata };
    }
  }

  it("is the live one by default, the modelVersion option, or the upload's model-version metadata", async () => {
    const store = new MetadataStore();
    const live = await planRun(upload(store, 'a.csv', `${HEADER}\n${ROW(1)}\n`), {
      objects: store,
      models: twoVersions,
    });
    expect(live.modelVersion).toBe('1.0.0');
    const option = await planRun(
      upload(store, 'b.csv', `${HEADER}\n${ROW(1)}\n`, { modelVersion: '2.0.0' }),
      {
        objects: store,
        models: twoVersions,
      },
    );
    expect(option.modelVersion).toBe('2.0.0');
    store.metadata = { 'model-version': '2.0.0' };
    const tagged = await planRun(upload(store, 'c.csv', `${HEADER}\n${ROW(1)}\n`), {
      objects: store,
      models: twoVersions,
    });
    expect(tagged.modelVersion).toBe('2.0.0');
  });

  it('refuses a version that does not exist, and a malformed one in the option or the metadata', async () => {
    const store = new MetadataStore();
    const missing = await planError(
      store,
      upload(store, 'd.csv', `${HEADER}\n${ROW(1)}\n`, { modelVersion: '9.9.9' }),
    );
    expect(missing).toBeInstanceOf(ModelUnavailableError);
    expect(missing).toMatchObject({ code: 'VERSION_NOT_FOUND' });
    expect(() => resolveOptions({ modelVersion: '../1.0.0' })).toThrow(/modelVersion must be a version/);
    store.metadata = { 'model-version': '../../etc' };
    const tagged = await planError(store, upload(store, 'e.csv', `${HEADER}\n${ROW(1)}\n`));
    expect(tagged).toMatchObject({ code: 'INVALID_OPTIONS' });
    expect(tagged.message).toMatch(
      /model-version metadata must be a version, got|model-version metadata must be a version/,
    );
  });
});
