/**
 * The prediction store contract, run on the DynamoDB adapter against dynalite and on the in-memory store
 * the unit tests use: an item replaces a stored one only when computed later (or, within one batch run, from
 * a later or the same dataset row); reads return the items found, keyed `model#entityId`.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DynamoDbPredictionStore } from '../../lambdas/adapters/dynamodb-prediction-store.ts';
import { predictionKey, storedPrediction, type StoredPrediction } from '../../lambdas/core/cache-policy.ts';
import type { PredictionStore } from '../../lambdas/core/ports.ts';
import { ensureTable, startEmbeddedAws, type EmbeddedAws } from '../../local/embedded-aws.ts';
import { MemoryPredictionStore } from '../support/memory-prediction-store.ts';

const T = Date.parse('2026-06-01T00:00:00Z');

function item(
  entityId: string,
  computedAt: number,
  extra: { label?: string; runId?: string; sourceRow?: number; source?: 'batch' | 'online' } = {},
): StoredPrediction {
  return storedPrediction(
    {
      model: 'm',
      entityId,
      prediction: { label: extra.label ?? 'a' },
      modelVersion: '1',
      computedAt,
      source: extra.source ?? (extra.runId ? 'batch' : 'online'),
      ...(extra.runId === undefined ? {} : { runId: extra.runId }),
      ...(extra.sourceRow === undefined ? {} : { sourceRow: extra.sourceRow }),
    },
    3600,
  );
}

/** Each case: what is stored first, what is written next, whether it replaces it. */
const CASES: { name: string; first: StoredPrediction; next: StoredPrediction; replaces: boolean }[] = [
  {
    name: 'a later item replaces an earlier one',
    first: item('a', T),
    next: item('a', T + 1, { label: 'b' }),
    replaces: true,
  },
  {
    name: 'an earlier item never replaces a fresher one',
    first: item('b', T + 1),
    next: item('b', T, { label: 'b' }),
    replaces: false,
  },
  {
    name: 'an item computed at the same time does not replace it',
    first: item('c', T),
    next: item('c', T, { label: 'b' }),
    replaces: false,
  },
  {
    name: 'within one run, a later dataset row replaces an earlier one',
    first: item('d', T, { runId: 'r1', sourceRow: 3 }),
    next: item('d', T, { runId: 'r1', sourceRow: 7, label: 'b' }),
    replaces: true,
  },
  {
    name: 'within one run, the same row rewrites itself (a re-run chunk)',
    first: item('e', T, { runId: 'r1', sourceRow: 3 }),
    next: item('e', T, { runId: 'r1', sourceRow: 3, label: 'b' }),
    replaces: true,
  },
  {
    name: 'within one run, an earlier dataset row does not replace a later one',
    first: item('f', T, { runId: 'r1', sourceRow: 7 }),
    next: item('f', T, { runId: 'r1', sourceRow: 3, label: 'b' }),
    replaces: false,
  },
  {
    name: 'another run computed at the same time does not replace it',
    first: item('g', T, { runId: 'r1', sourceRow: 3 }),
    next: item('g', T, { runId: 'r2', sourceRow: 9, label: 'b' }),
    replaces: false,
  },
  {
    name: 'an online answer computed later replaces a batch one',
    first: item('h', T, { runId: 'r1', sourceRow: 3 }),
    next: item('h', T + 1, { label: 'b', source: 'online' }),
    replaces: true,
  },
];

let aws: EmbeddedAws;
let client: DynamoDBClient;

beforeAll(async () => {
  aws = await startEmbeddedAws();
  client = new DynamoDBClient(aws.clientConfig('dynamodb'));
}, 60_000);

afterAll(async () => {
  client?.destroy();
  await aws?.stop();
}, 60_000);

let tables = 0;
const stores: [string, () => Promise<PredictionStore>][] = [
  [
    'DynamoDB adapter on dynalite',
    async () => {
      const table = `contract-${++tables}`;
      await ensureTable(client, table);
      return new DynamoDbPredictionStore(client, table);
    },
  ],
  ['in-memory store of the unit tests', async () => new MemoryPredictionStore()],
];

describe.each(stores)('prediction store contract: %s', (_name, makeStore) => {
  let store: PredictionStore;
  beforeAll(async () => {
    store = await makeStore();
  }, 60_000);

  it.each(CASES)('$name', async ({ first, next, replaces }) => {
    expect(await store.putMany([first])).toEqual({ written: 1, skipped: 0, unprocessed: [] });
    expect(await store.putMany([next])).toEqual(
      replaces ? { written: 1, skipped: 0, unprocessed: [] } : { written: 0, skipped: 1, unprocessed: [] },
    );
    const key = predictionKey(next.model, next.modelVersion, next.entityId);
    expect((await store.getMany([key])).get(key)).toEqual(replaces ? next : first);
  });

  it('reads many keys at once, returning only the items found', async () => {
    const items = ['r1', 'r2', 'r3'].map((id, i) => item(id, T + i));
    await store.putMany(items);
    const keys = ['m#1#r1', 'm#1#r2', 'm#1#r3', 'm#1#missing'];
    const found = await store.getMany(keys);
    expect([...found.keys()].sort()).toEqual(['m#1#r1', 'm#1#r2', 'm#1#r3']);
    for (const stored of items) expect(found.get(predictionKey('m', '1', stored.entityId))).toEqual(stored);
  });

  it('counts written and skipped items in one call', async () => {
    await store.putMany([item('s1', T + 5)]);
    expect(await store.putMany([item('s1', T), item('s2', T)])).toEqual({
      written: 1,
      skipped: 1,
      unprocessed: [],
    });
  });
});
