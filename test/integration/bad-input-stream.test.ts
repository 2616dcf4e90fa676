/**
 * POST /events over real HTTP on the local stack with the stream lane on: good events are put on the
 * input stream and scored into the table (an id-only /predict then answers from it); each bad request
 * gets a 4xx with a stable code and field details, and puts nothing on the stream. The stream records'
 * own catalogue (not JSON, wrong types, unknown model, oversized, ids the id rule rejects) is in
 * stream-lane.test.ts, which accounts for where each of them ends.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DEMO_MODEL, startLocalStack, type LocalStack } from '../../local/stack.ts';
import { demoFeatures } from '../support/stream-harness.ts';

let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({
    apiPort: 0,
    seed: false,
    stream: { settings: { batchingWindowSeconds: 0 }, pollIntervalMs: 50 },
    log: () => undefined,
  });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
}, 60_000);

async function post(path: string, body: unknown) {
  const response = await fetch(`${stack.apiUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- read field by field in assertions
  return { status: response.status, body: (await response.json()) as any };
}

describe('POST /events', () => {
  it('puts the events on the stream (202, sequence numbers); an id-only /predict then reads the table', async () => {
    const reply = await post(
      '/events',
      `{"events": [{"id": "ev-1", "features": ${JSON.stringify(demoFeatures())}, "eventTime": "2026-06-01T10:00:00Z"},
                   {"id": 12345678901234567891, "features": ${JSON.stringify(demoFeatures({ amount: 99 }))}}]}`,
    );
    expect(reply.status).toBe(202);
    expect(reply.body).toMatchObject({ accepted: 2, failed: 0, model: { name: DEMO_MODEL } });
    expect(reply.body.events.map((e: { id: string }) => e.id)).toEqual(['ev-1', '12345678901234567891']);
    for (const e of reply.body.events) expect(e.sequenceNumber).toMatch(/^\d+$/);
    await stack.stream!.poller.waitUntilIdle(30_000);
    const cached = await post('/predict', { instances: [{ id: 'ev-1' }, { id: '12345678901234567891' }] });
    expect(cached.status).toBe(200);
    expect(cached.body.predictions.map((p: { source: string }) => p.source)).toEqual(['cache', 'cache']);
  }, 60_000);

  const tooMany = {
    events: Array.from({ length: 501 }, (_, i) => ({ id: `e${i}`, features: demoFeatures() })),
  };
  const cases: { name: string; body: unknown; status: number; code: string; field?: string }[] = [
    { name: 'not JSON', body: '{"events": [', status: 400, code: 'INVALID_JSON' },
    { name: 'no events', body: { model: DEMO_MODEL }, status: 400, code: 'INVALID_REQUEST', field: 'events' },
    {
      name: 'events not an array',
      body: { events: {} },
      status: 400,
      code: 'INVALID_REQUEST',
      field: 'events',
    },
    { name: 'empty events', body: { events: [] }, status: 400, code: 'INVALID_REQUEST', field: 'events' },
    { name: 'more than 500 events', body: tooMany, status: 400, code: 'TOO_MANY_INSTANCES', field: 'events' },
    {
      name: 'an event not an object',
      body: { events: [42] },
      status: 400,
      code: 'INVALID_REQUEST',
      field: 'events.0',
    },
    {
      name: 'an event without id',
      body: { events: [{ features: demoFeatures() }] },
      status: 400,
      code: 'INVALID_REQUEST',
      field: 'events.0.id',
    },
    {
      name: 'a fractional id',
      body: '{"events": [{"id": 1.5, "features": {}}]}',
      status: 400,
      code: 'INVALID_REQUEST',
      field: 'events.0.id',
    },
    {
      name: 'a wrongly typed feature in the second event',
      body: {
        events: [
          { id: 'a', features: demoFeatures() },
          { id: 'b', features: demoFeatures({ amount: 'lots' }) },
        ],
      },
      status: 400,
      code: 'INVALID_FEATURES',
      field: 'events.1.features.amount',
    },
    {
      name: 'an unknown field',
      body: { events: [{ id: 'a', features: demoFeatures(), when: 'now' }] },
      status: 400,
      code: 'INVALID_REQUEST',
      field: 'events.0.when',
    },
    {
      name: 'an eventTime that is not ISO-8601',
      body: { events: [{ id: 'a', features: demoFeatures(), eventTime: 'yesterday' }] },
      status: 400,
      code: 'INVALID_REQUEST',
      field: 'events.0.eventTime',
    },
    {
      name: 'an oversized event (its unknown 70 kB feature named)',
      body: { events: [{ id: 'a', features: demoFeatures({ note: 'x'.repeat(70_000) }) }] },
      status: 400,
      code: 'INVALID_FEATURES',
      field: 'events.0.features.note',
    },
    {
      name: 'an unknown model',
      body: { model: 'no-such-model', events: [{ id: 'a', features: demoFeatures() }] },
      status: 404,
      code: 'MODEL_NOT_FOUND',
    },
  ];

  it.each(cases)('rejects $name with $status $code, putting nothing on the stream', async (c) => {
    const before = stack.stream!.poller.stats.recordsDelivered;
    const reply = await post('/events', c.body);
    expect(reply.status).toBe(c.status);
    expect(reply.body.error.code).toBe(c.code);
    if (c.field !== undefined) {
      expect(reply.body.error.details.map((d: { field: string }) => d.field)).toContain(c.field);
    }
    await stack.stream!.poller.waitUntilIdle(10_000);
    expect(stack.stream!.poller.stats.recordsDelivered).toBe(before);
  });
});
