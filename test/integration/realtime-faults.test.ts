/**
 * The real-time lane when DynamoDB misbehaves: the real handler over HTTP reads the table through a
 * proxy that throttles, errors, hangs or cuts connections at the wire. The model answers every request
 * it can, the response says the cache was skipped and why (in plain words), an id-only request gets a
 * 503 it can retry, and once the table is healthy again cache hits come back.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readDemoDataset } from '../../local/demo-dataset.ts';
import { startLocalStack, type LocalStack } from '../../local/stack.ts';
import {
  dynamoOperation,
  SERVER_ERROR,
  startFaultProxy,
  THROTTLED,
  type FaultAction,
  type FaultProxy,
} from '../support/fault-proxy.ts';

type FaultMode = 'pass' | 'throttle' | 'server-error' | 'hang' | 'reset';
const ACTIONS: Record<FaultMode, FaultAction> = {
  pass: { kind: 'pass' },
  throttle: THROTTLED,
  'server-error': SERVER_ERROR,
  hang: { kind: 'hang' },
  reset: { kind: 'reset' },
};
/** Every table request from now on gets this fault. */
function setMode(mode: FaultMode): void {
  proxy.decide(() => ACTIONS[mode]);
}
/** How many table requests have been handled the way this fault handles them, so far. */
function seen(mode: FaultMode): number {
  return proxy.log.filter((l) => l.action === ACTIONS[mode].kind).length;
}

const BUDGET_MS = 1000;
const demo = await readDemoDataset();
const rows = demo.rows;
const featuresOf = demo.featuresOf;

let stack: LocalStack;
let proxy: FaultProxy;

beforeAll(async () => {
  let dynamoEndpoint = '';
  proxy = await startFaultProxy(() => dynamoEndpoint);
  // The seeding batch run writes through the stack's own client; the handler reads through the proxy.
  stack = await startLocalStack({
    apiPort: 0,
    handlerEnv: { AWS_ENDPOINT_URL_DYNAMODB: proxy.url, CACHE_BUDGET_MS: String(BUDGET_MS) },
  });
  dynamoEndpoint = stack.aws.env()['AWS_ENDPOINT_URL_DYNAMODB']!;
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  await proxy?.close();
}, 60_000);

async function post(body: unknown) {
  const response = await fetch(`${stack.apiUrl}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- read field by field in assertions
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

/** The reason each fault must be reported with, and the model's answer standing in for the cache. */
const FAULTS: readonly { mode: FaultMode; reason: string }[] = [
  { mode: 'throttle', reason: 'the table is throttling requests' },
  { mode: 'server-error', reason: 'the table answered with a server error' },
  { mode: 'hang', reason: `no answer within ${BUDGET_MS} ms` },
  { mode: 'reset', reason: 'the table could not be reached' },
];

describe('real-time lane with a failing table', () => {
  it('serves cache hits through the proxy while it passes requests on', async () => {
    setMode('pass');
    const row = rows[0]!;
    const hit = await post({ id: row[0] });
    expect(hit.status).toBe(200);
    expect(hit.body).toMatchObject({ id: row[0], source: 'cache', cacheStatus: 'hit' });
    expect(proxy.log.map((l) => dynamoOperation(l.request))).toContain('GetItem');
  });

  describe.each(FAULTS)('when the table is $mode', ({ mode, reason }) => {
    it('answers an instance with features from the model and says the cache was skipped', async () => {
      setMode('pass');
      const row = rows[1]!;
      const expected = await post({ id: row[0], features: featuresOf(row), bypassCache: true });
      setMode(mode);
      const before = seen(mode);
      const answer = await post({ id: row[0], features: featuresOf(row) });
      expect(seen(mode)).toBeGreaterThan(before); // the table was really tried
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({
        id: row[0],
        source: 'model',
        cacheStatus: 'skipped',
        cache: { status: 'skipped', reason },
        prediction: expected.body.prediction,
      });
      expect(answer.headers.get('x-tandem-cache')).toBe('skipped');
      expect(JSON.stringify(answer.body)).not.toMatch(/Exception|InternalServerError|ECONN|\$metadata/);
    });

    it('answers many instances (BatchGetItem) from the model, in request order', async () => {
      setMode(mode);
      const some = rows.slice(2, 7);
      const answer = await post({ instances: some.map((r) => ({ id: r[0], features: featuresOf(r) })) });
      expect(answer.status).toBe(200);
      expect(answer.body.cache).toEqual({ status: 'skipped', reason });
      expect(answer.body.predictions.map((p: { id: string; source: string }) => [p.id, p.source])).toEqual(
        some.map((r) => [r[0], 'model']),
      );
    });

    it('gives an id-only instance a 503 CACHE_UNAVAILABLE to retry, naming the instance', async () => {
      setMode(mode);
      const answer = await post({
        instances: [{ id: rows[8]![0] }, { id: rows[9]![0], features: featuresOf(rows[9]!) }],
      });
      expect(answer.status).toBe(503);
      expect(answer.headers.get('retry-after')).toBe('1');
      expect(answer.body.error).toMatchObject({ code: 'CACHE_UNAVAILABLE' });
      expect(answer.body.error.message).toContain(reason);
      expect(answer.body.error.details).toEqual([
        expect.objectContaining({ instance: 0, field: 'instances.0.id' }),
      ]);
    });
  });

  it('keeps every request within the budget when many wait on a table that never answers', async () => {
    setMode('hang');
    const some = rows.slice(10, 74);
    // More concurrent requests than the SDK's default socket pool (50): hung sockets must not starve it.
    const answers = await Promise.all(some.map((r) => post({ id: r[0], features: featuresOf(r) })));
    expect(answers.map((a) => [a.status, a.body.cache?.reason])).toEqual(
      some.map(() => [200, `no answer within ${BUDGET_MS} ms`]),
    );
  });

  it('serves cache hits again once the table recovers', async () => {
    setMode('pass');
    const some = rows.slice(10, 74);
    const answers = await Promise.all(some.map((r) => post({ id: r[0] })));
    expect(answers.map((a) => [a.status, a.body.source, a.body.cacheStatus])).toEqual(
      some.map(() => [200, 'cache', 'hit']),
    );
    const many = await post({ instances: some.map((r) => ({ id: r[0] })) });
    expect(many.body.cache).toEqual({ status: 'used' });
    expect((await fetch(`${stack.apiUrl}/ready`)).status).toBe(200);
  });
});
