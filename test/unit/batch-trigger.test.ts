import { describe, expect, it } from '@jest/globals';
import { parseIncomingKey } from '../../lambdas/core/batch/contracts.ts';
import { describeFailure } from '../../lambdas/core/batch/finalizer.ts';
import { runIdFor, triggerRuns, uploadsFromEvent } from '../../lambdas/core/batch/trigger.ts';
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

describe('describeFailure', () => {
  it('reads the code out of a Lambda error cause or a local error', () => {
    expect(
      describeFailure({
        Error: 'BatchInputError',
        Cause: JSON.stringify({ errorType: 'BatchInputError', errorMessage: '[EMPTY_FILE] x is empty' }),
      }),
    ).toEqual({ code: 'EMPTY_FILE', message: 'x is empty' });
    expect(describeFailure({ Error: 'States.Timeout', Cause: 'task timed out' })).toEqual({
      code: 'States.Timeout',
      message: 'task timed out',
    });
    expect(describeFailure(undefined)).toEqual({ code: 'RUN_FAILED', message: 'unknown error' });
  });
});
