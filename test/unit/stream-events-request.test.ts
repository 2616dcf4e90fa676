import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ValidationError } from '../../lambdas/core/errors.ts';
import type { ServedModel } from '../../lambdas/core/model-loader.ts';
import { eventRecords, parseEventsRequest } from '../../lambdas/core/stream/events-request.ts';
import { parseStreamRecord } from '../../lambdas/core/stream/stream-event.ts';
import { loadTinyModel } from '../support/tiny-model.ts';

let tiny: ServedModel;
beforeAll(async () => {
  tiny = await loadTinyModel();
}, 60_000);
afterAll(async () => {
  await tiny.close();
}, 60_000);

function parse(text: string) {
  return parseEventsRequest(JSON.parse(text), text);
}

describe('POST /events body', () => {
  it('turns events into stream records keyed by id that the consumer parses back to the same events', () => {
    const request = parse(
      '{"model": "tiny", "events": [{"id": 12345678901234567891, "features": {"x1": 1}, "eventTime": "2026-06-01T10:00:00Z"}]}',
    );
    const [record] = eventRecords(request, tiny, 1024);
    expect(record!.partitionKey).toBe('12345678901234567891');
    const parsed = parseStreamRecord(
      { data: record!.data, partitionKey: 'k', sequenceNumber: '1', arrivalMs: 0, shardId: 's' },
      1024,
    );
    expect(parsed).toEqual({
      ok: true,
      event: {
        model: 'tiny',
        id: '12345678901234567891',
        features: { x1: 1 },
        eventTimeMs: Date.parse('2026-06-01T10:00:00Z'),
      },
    });
  });

  it('rejects the request whole when one event would be a record larger than the consumer accepts', () => {
    const request = parse(
      `{"events": [{"id": "a", "features": {"x1": 1}}, {"id": "${'b'.repeat(200)}", "features": {"x1": 1}}]}`,
    );
    expect(() => eventRecords(request, tiny, 128)).toThrow(ValidationError);
    try {
      eventRecords(request, tiny, 128);
    } catch (error) {
      expect((error as ValidationError).details).toEqual([
        { instance: 1, field: 'events.1', message: expect.stringContaining('the limit is 128') },
      ]);
    }
  });

  it('names feature problems by event: events.<i>.features.<name>', () => {
    const request = parse(
      '{"events": [{"id": "a", "features": {"x1": 1}}, {"id": "b", "features": {"x1": "one"}}]}',
    );
    expect(() => eventRecords(request, tiny, 1024)).toThrow(
      expect.objectContaining({
        code: 'INVALID_FEATURES',
        details: [expect.objectContaining({ field: 'events.1.features.x1' })],
      }),
    );
  });
});
