import { describe, expect, it } from '@jest/globals';
import { parseIncomingKey, resultsPrefix } from '../../lambdas/core/batch/contracts.ts';
import { runFailureFromCatch } from '../../lambdas/adapters/step-functions-failure.ts';
import { uploadsFromEvent } from '../../lambdas/adapters/upload-events.ts';
import { decodeUploadKey } from '../../lambdas/adapters/upload-key.ts';
import { describeFailure } from '../../lambdas/core/batch/finalizer.ts';
import {
  classifyUploadKey,
  runIdFor,
  triggerRuns,
  type UploadedObject,
} from '../../lambdas/core/batch/trigger.ts';
import type { RunStarter } from '../../lambdas/core/ports.ts';

describe('parseIncomingKey', () => {
  it('reads model, dataset, format and gzip', () => {
    expect(parseIncomingKey('incoming/fraud/2026/june data.csv.gz')).toEqual({
      model: 'fraud',
      dataset: 'june_data',
      format: 'csv',
      gzip: true,
      file: 'june data.csv.gz',
    });
    expect(parseIncomingKey('incoming/m/x.NDJSON')).toMatchObject({
      format: 'jsonl',
      gzip: false,
      dataset: 'x',
    });
    expect(parseIncomingKey('incoming/m/x.parquet')).toMatchObject({ format: 'parquet' });
  });

  it('keeps unsupported uploads (to fail them with a reason) and ignores keys outside incoming/', () => {
    expect(parseIncomingKey('incoming/m/x.xlsx')).toMatchObject({
      model: 'm',
      format: undefined,
      dataset: 'x',
    });
    expect(parseIncomingKey('incoming/m/x.parquet.gz')).toMatchObject({ format: undefined });
    expect(parseIncomingKey('incoming/x.csv')).toMatchObject({ model: undefined, format: 'csv' });
    expect(parseIncomingKey('results/m/x.csv')).toBeUndefined();
    expect(parseIncomingKey('incoming/m/')).toBeUndefined();
  });
});

describe('dataset names from keys (issue 13.7)', () => {
  // Each would, taken as it is, name `.` or `..` (or nothing) as the dataset folder of results/<model>/.
  it.each([
    ['incoming/m/..csv', '_'],
    ['incoming/m/...csv', '__'],
    ['incoming/m/....jsonl.gz', '___'],
    ['incoming/m/.csv', 'dataset'],
    ['incoming/m/..parquet', '_'],
    ['incoming/m/.hidden.csv', '_hidden'],
    ['incoming/m/a..csv', 'a.'],
    ['incoming/m/../x.csv', 'x'],
    ['incoming/m/%2e%2e.csv', '_2e_2e'],
    ['incoming/m/données é.csv', 'donn_es__'],
  ])('%s is the single safe segment %s', (key, dataset) => {
    const incoming = parseIncomingKey(key)!;
    expect(incoming.dataset).toBe(dataset);
    const segments = resultsPrefix('m', incoming.dataset, 'run-1').split('/');
    expect(segments).toEqual(['results', 'm', dataset, 'run-1', '']);
    expect(segments.some((s) => s === '.' || s === '..')).toBe(false);
  });
});

describe('decodeUploadKey', () => {
  // S3 notifications form-encode keys ('+' is a space); EventBridge "Object Created" carries them raw.
  it.each([
    ['incoming/m/100%25.csv', 'incoming/m/100%.csv'],
    ['incoming/m/p%2Bq.csv', 'incoming/m/p+q.csv'],
    ['incoming/m/p+q.csv', 'incoming/m/p q.csv'],
    ['incoming/m/two++spaces.csv', 'incoming/m/two  spaces.csv'],
    ['incoming/m/donn%C3%A9es+%C3%A9t%C3%A9.csv', 'incoming/m/données été.csv'],
    ['incoming/m/%E6%95%B0%E6%8D%AE.csv', 'incoming/m/数据.csv'],
  ])('S3 notification %s is %s', (raw, key) => {
    expect(decodeUploadKey(raw, 's3-notification')).toBe(key);
  });

  it.each(['incoming/m/100%.csv', 'incoming/m/%E6%95.csv', 'incoming/m/bad%zz.csv'])(
    'S3 notification %s is not validly encoded: undefined, not an exception',
    (raw) => {
      expect(decodeUploadKey(raw, 's3-notification')).toBeUndefined();
    },
  );

  it.each([
    'incoming/m/100%.csv',
    'incoming/m/p+q.csv',
    'incoming/m/p q.csv',
    'incoming/m/100%25.csv',
    'incoming/m/données été.csv',
    'incoming/m/数据.csv',
  ])('EventBridge %s is the key as it is', (raw) => {
    expect(decodeUploadKey(raw, 'eventbridge')).toBe(raw);
  });
});

describe('uploadsFromEvent', () => {
  it('reads EventBridge Object Created events', () => {
    const event = {
      'detail-type': 'Object Created',
      source: 'aws.s3',
      detail: {
        bucket: { name: 'b' },
        object: { key: 'incoming/m/a.csv', etag: 'e1', 'version-id': 'v1', sequencer: 's1' },
      },
    };
    expect(uploadsFromEvent(event)).toEqual([
      { bucket: 'b', key: 'incoming/m/a.csv', versionId: 'v1', etag: 'e1', sequencer: 's1' },
    ]);
  });

  it('reads S3 notifications (URL-encoded keys), also wrapped in SQS, and skips deletions', () => {
    const notification = {
      Records: [
        {
          eventName: 'ObjectCreated:Put',
          s3: { bucket: { name: 'b' }, object: { key: 'incoming/m/my+file%C3%A9.csv', eTag: 'e' } },
        },
        {
          eventName: 'ObjectRemoved:Delete',
          s3: { bucket: { name: 'b' }, object: { key: 'incoming/m/old.csv' } },
        },
      ],
    };
    const expected = [{ bucket: 'b', key: 'incoming/m/my fileé.csv', etag: 'e' }];
    expect(uploadsFromEvent(notification)).toEqual(expected);
    expect(uploadsFromEvent({ Records: [{ body: JSON.stringify(notification) }] })).toEqual(expected);
    expect(uploadsFromEvent({ something: 'else' })).toEqual([]);
  });
});

describe('uploadsFromEvent: keys with %, + and spaces', () => {
  const eventBridge = (key: string) => ({
    'detail-type': 'Object Created',
    source: 'aws.s3',
    detail: { bucket: { name: 'b' }, object: { key, etag: 'e' } },
  });
  const notification = (key: string) => ({
    Records: [{ eventName: 'ObjectCreated:Put', s3: { bucket: { name: 'b' }, object: { key, eTag: 'e' } } }],
  });

  it('reads EventBridge keys raw: 100%.csv and p+q.csv are themselves', () => {
    expect(uploadsFromEvent(eventBridge('incoming/m/100%.csv'))[0]?.key).toBe('incoming/m/100%.csv');
    expect(uploadsFromEvent(eventBridge('incoming/m/p+q.csv'))[0]?.key).toBe('incoming/m/p+q.csv');
    expect(uploadsFromEvent(eventBridge('incoming/m/p q.csv'))[0]?.key).toBe('incoming/m/p q.csv');
  });

  it('decodes S3 notification keys: p%2Bq.csv is p+q.csv, p+q.csv is p q.csv', () => {
    expect(uploadsFromEvent(notification('incoming/m/p%2Bq.csv'))[0]?.key).toBe('incoming/m/p+q.csv');
    expect(uploadsFromEvent(notification('incoming/m/p+q.csv'))[0]?.key).toBe('incoming/m/p q.csv');
    expect(uploadsFromEvent(notification('incoming/m/100%25.csv'))[0]?.key).toBe('incoming/m/100%.csv');
  });

  it('keeps an S3 notification whose key is not validly encoded, flagged, rather than throwing', () => {
    const [upload] = uploadsFromEvent(notification('incoming/m/100%.csv'));
    expect(upload).toMatchObject({
      key: 'incoming/m/100%.csv',
      keyError: expect.stringContaining('100%.csv'),
    });
  });
});

describe('triggerRuns: only datasets under incoming/<model>/ start runs (issue 12.6)', () => {
  const starter = () => {
    const started: string[] = [];
    const runStarter: RunStarter = { start: async (name) => (started.push(name), 'started') };
    return { started, runStarter };
  };

  it.each([
    ['incoming/readme.txt', 'NO_MODEL_FOLDER'],
    ['incoming/x.csv', 'NO_MODEL_FOLDER'],
    ['incoming/../x.csv', 'NO_MODEL_FOLDER'],
    ['incoming/m/readme.txt', 'UNSUPPORTED_FORMAT'],
    ['incoming/m/.DS_Store', 'UNSUPPORTED_FORMAT'],
    ['incoming/m/x.parquet.gz', 'UNSUPPORTED_FORMAT'],
    ['incoming/m/x.xlsx', 'UNSUPPORTED_FORMAT'],
    ['incoming/m/', 'NOT_A_DATASET'],
    ['results/m/x.csv', 'NOT_A_DATASET'],
  ])('%s starts no run (%s)', async (key, code) => {
    const { started, runStarter } = starter();
    const [outcome] = await triggerRuns([{ bucket: 'b', key }], runStarter);
    expect(outcome).toMatchObject({ key, result: 'ignored', reason: { code } });
    expect(outcome?.reason?.message).toBeTruthy();
    expect(started).toEqual([]);
    expect(classifyUploadKey(key)).toEqual({ ignored: outcome?.reason });
  });

  it('ignores an undecodable key and still starts the other uploads of the event', async () => {
    const { started, runStarter } = starter();
    const uploads: UploadedObject[] = uploadsFromEvent({
      Records: [
        {
          eventName: 'ObjectCreated:Put',
          s3: { bucket: { name: 'b' }, object: { key: 'incoming/m/100%.csv' } },
        },
        {
          eventName: 'ObjectCreated:Put',
          s3: { bucket: { name: 'b' }, object: { key: 'incoming/m/ok.csv' } },
        },
      ],
    });
    const outcomes = await triggerRuns(uploads, runStarter);
    expect(outcomes.map((o) => [o.result, o.reason?.code])).toEqual([
      ['ignored', 'UNDECODABLE_KEY'],
      ['started', undefined],
    ]);
    expect(started).toHaveLength(1);
  });

  it('starts datasets with odd names, under their own model folder', async () => {
    const inputs: { key: string; model: string }[] = [];
    const runStarter: RunStarter = {
      start: async (_name, input) => (inputs.push(input as { key: string; model: string }), 'started'),
    };
    const keys = [
      'incoming/m/100%.csv',
      'incoming/m/p+q.csv',
      'incoming/m/数据 été.jsonl.gz',
      'incoming/m/..csv',
    ];
    const outcomes = await triggerRuns(
      keys.map((key) => ({ bucket: 'b', key })),
      runStarter,
    );
    expect(outcomes.every((o) => o.result === 'started' && /^[A-Za-z0-9_-]{1,80}$/.test(o.runId!))).toBe(
      true,
    );
    expect(inputs).toEqual(keys.map((key) => expect.objectContaining({ key, model: 'm' })));
  });
});

describe('triggerRuns', () => {
  it('names runs by object version, so a repeated notification is a duplicate', async () => {
    const names = new Set<string>();
    const starter: RunStarter = {
      start: async (name) => (names.has(name) ? 'duplicate' : (names.add(name), 'started')),
    };
    const upload = { bucket: 'b', key: 'incoming/m/data.v2.csv', versionId: 'v1' };
    const first = await triggerRuns(
      [upload, upload, { ...upload, versionId: 'v2' }, { bucket: 'b', key: 'other/x.csv' }],
      starter,
    );
    expect(first.map((o) => o.result)).toEqual(['started', 'duplicate', 'started', 'ignored']);
    expect(first[0]?.runId).toMatch(/^data-v2-[0-9a-f]{24}$/);
    expect(first[0]?.runId).not.toBe(first[2]?.runId);
  });

  it('tells re-uploads apart without versioning by their sequencer', () => {
    const a = runIdFor({ bucket: 'b', key: 'incoming/m/x.csv', etag: 'e', sequencer: '01' }, 'x');
    const b = runIdFor({ bucket: 'b', key: 'incoming/m/x.csv', etag: 'e', sequencer: '02' }, 'x');
    expect(a).not.toBe(b);
  });
});

describe('runFailureFromCatch', () => {
  it("reads a Lambda error's name and message out of a Catch's {Error, Cause}", () => {
    const cause = JSON.stringify({ errorType: 'BatchInputError', errorMessage: '[EMPTY_FILE] x is empty' });
    expect(runFailureFromCatch({ Error: 'BatchInputError', Cause: cause })).toEqual({
      name: 'BatchInputError',
      message: '[EMPTY_FILE] x is empty',
    });
  });

  it("keeps a plain-text cause (Step Functions' own errors), and the name when there is no cause", () => {
    expect(runFailureFromCatch({ Error: 'States.Timeout', Cause: 'task timed out' })).toEqual({
      name: 'States.Timeout',
      message: 'task timed out',
    });
    expect(runFailureFromCatch({ Error: 'States.Timeout' })).toEqual({
      name: 'States.Timeout',
      message: 'States.Timeout',
    });
    expect(runFailureFromCatch({ Cause: 'null' })).toEqual({ name: '', message: 'null' });
    expect(runFailureFromCatch(undefined)).toBeUndefined();
  });
});

describe('describeFailure', () => {
  it('reads the code out of a Lambda error cause or a local error', () => {
    expect(
      describeFailure(
        runFailureFromCatch({
          Error: 'BatchInputError',
          Cause: JSON.stringify({ errorType: 'BatchInputError', errorMessage: '[EMPTY_FILE] x is empty' }),
        }),
      ),
    ).toEqual({ code: 'EMPTY_FILE', message: 'x is empty' });
    expect(
      describeFailure(runFailureFromCatch({ Error: 'States.Timeout', Cause: 'task timed out' })),
    ).toEqual({
      code: 'States.Timeout',
      message: 'task timed out',
    });
    expect(describeFailure({ name: 'Error: odd', message: 'x' })).toEqual({
      code: 'RUN_FAILED',
      message: 'x',
    });
    expect(describeFailure(undefined)).toEqual({ code: 'RUN_FAILED', message: 'unknown error' });
  });
});
