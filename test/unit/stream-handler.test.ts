import type { KinesisStreamEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { StoredPrediction } from '../../lambdas/core/cache-policy.ts';
import { ModelLoadError, PredictionStoreError } from '../../lambdas/core/errors.ts';
import type { ServedModel } from '../../lambdas/core/model-loader.ts';
import { createStreamHandler, toStreamRecord } from '../../lambdas/handlers/stream/stream-handler.ts';
import { MemoryObjectStore } from '../support/memory-object-store.ts';
import { loadTinyModel } from '../support/tiny-model.ts';

let tiny: ServedModel;
beforeAll(async () => {
  tiny = await loadTinyModel();
}, 60_000);
afterAll(async () => {
  await tiny.close();
}, 60_000);

function kinesisEvent(bodies: unknown[]): KinesisStreamEvent {
  return {
    Records: bodies.map((body, i) => ({
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: `pk-${i}`,
        sequenceNumber: `${100 + i}`,
        data: Buffer.from(JSON.stringify(body)).toString('base64'),
        approximateArrivalTimestamp: 1_780_000_000.25,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: `shardId-000000000003:${100 + i}`,
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: 'arn:aws:iam::1:role/r',
      awsRegion: 'eu-west-1',
      eventSourceARN: 'arn:aws:kinesis:eu-west-1:1:stream/tandem-events',
    })),
  };
}

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

function handlerWith(
  putMany: (items: readonly StoredPrediction[]) => Promise<{ written: number; skipped: number }>,
  model: ServedModel | Error = tiny,
) {
  return createStreamHandler({
    models: {
      defaultModel: 'tiny',
      get: async () => {
        if (model instanceof Error) throw model;
        return model;
      },
    },
    store: { getMany: async () => new Map(), putMany },
    publisher: { publish: async () => ({ failed: [] }) },
    objects: new MemoryObjectStore(),
    bucket: 'b',
    maxEventBytes: 1024,
    log: silent,
  });
}

describe('stream consumer handler', () => {
  it('reads a Kinesis record: base64 data, arrival in ms, shard id from the event id', () => {
    const record = toStreamRecord(kinesisEvent([{ id: 'a' }]).Records[0]!);
    expect(record).toEqual({
      data: Buffer.from('{"id":"a"}'),
      partitionKey: 'pk-0',
      sequenceNumber: '100',
      arrivalMs: 1_780_000_000_250,
      shardId: 'shardId-000000000003',
    });
  });

  it('answers an empty batchItemFailures when every record is done', async () => {
    const handler = handlerWith(async (items) => ({ written: items.length, skipped: 0 }));
    const response = await handler(kinesisEvent([{ id: 'a', features: { x1: 1 } }, 'poison']));
    expect(response).toEqual({ batchItemFailures: [] });
  });

  it('names the first record not done when the table throttles', async () => {
    const handler = handlerWith(async () => {
      throw new PredictionStoreError('STORE_THROTTLED', 'throttled');
    });
    const response = await handler(
      kinesisEvent(['poison', { id: 'a', features: { x1: 1 } }, { id: 'b', features: { x1: 2 } }]),
    );
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: '101' }] });
  });

  it('fails the invocation when the model cannot be loaded (no checkpoint)', async () => {
    const handler = handlerWith(
      async () => ({ written: 0, skipped: 0 }),
      new ModelLoadError('MODEL_LOAD_FAILED', 'corrupt'),
    );
    await expect(handler(kinesisEvent([{ id: 'a', features: { x1: 1 } }]))).rejects.toThrow('corrupt');
  });
});
