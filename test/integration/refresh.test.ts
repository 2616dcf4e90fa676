/**
 * Refresh on the local stack, end to end through the upload watcher (the same events and core as the
 * deployed rule and function): a version pushed with `refresh.on: push` re-scores the model's refresh
 * source (a folder of part files) with that version before it serves, so that id-only requests hit once it
 * is promoted; the same event twice starts one run; and a cache whose reads are mostly stale starts one
 * refresh of the live version.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ModelStore } from '../../lambdas/adapters/s3-model-store.ts';
import type { RunManifest } from '../../lambdas/core/batch/contracts.ts';
import { ModelLifecycle } from '../../lambdas/core/lifecycle/lifecycle.ts';
import { loadModelVersion } from '../../lambdas/core/model-registry.ts';
import type { RefreshOutcome } from '../../lambdas/core/refresh/refresh.ts';
import { readDemoDataset } from '../../local/demo-dataset.ts';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT, startLocalStack, type LocalStack } from '../../local/stack.ts';
import { demoV2Package } from '../support/demo-v2-model.ts';

const SOURCE = 'datasets/fraud/daily/';
const demo = await readDemoDataset();
const ROWS = demo.rows.slice(0, 60);
const idColumn = demo.header.indexOf(demo.idField);
const ids = ROWS.map((r) => r[idColumn]!);

let stack: LocalStack;
let lifecycle: ModelLifecycle;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- read field by field in assertions
async function predict(body: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${stack.apiUrl}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/** A CSV field as JSON: true/false, a number, or the text. */
function featureValue(text: string): boolean | number | string {
  if (text === 'true' || text === 'false') return text === 'true';
  return text !== '' && !Number.isNaN(Number(text)) ? Number(text) : text;
}

async function until<T>(what: string, probe: () => T | undefined, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const refreshesOf = (version: string, cause: RefreshOutcome['cause']) =>
  stack.refreshes.filter((o) => o.version === version && o.cause === cause);

/** Pushes a version as `models push` does: checked, then model.onnx and last manifest.json. */
async function push(version: string, manifestChanges: Record<string, unknown>): Promise<void> {
  const pkg = await demoV2Package(REPO_ROOT, DEMO_MODEL, version);
  const manifest = { ...JSON.parse(pkg.manifest), ...manifestChanges };
  await lifecycle.push(
    DEMO_MODEL,
    version,
    { manifest: new TextEncoder().encode(JSON.stringify(manifest)), model: pkg.modelBytes },
    `test ${version}`,
  );
}

async function readManifest(run: RefreshOutcome): Promise<RunManifest> {
  const result = await stack.batch.run(run.runId!)!.result;
  expect(result.status).toBe('SUCCEEDED');
  const bytes = await stack.objects.readBytes(LOCAL_BUCKET, result.manifestKey);
  return JSON.parse(new TextDecoder().decode(bytes)) as RunManifest;
}

beforeAll(async () => {
  stack = await startLocalStack({
    apiPort: 0,
    seed: false,
    handlerEnv: { MODEL_REFRESH_SECONDS: '1' },
    log: () => undefined,
    // One staleness period of 400 ms decides (5 minutes: one period), as the deployed alarm's 5 minutes would.
    refresh: { on: 'promote', staleShare: 0.2, staleMinutes: 5, stalePeriodMs: 400 },
  });
  // The source: two part files, as Spark writes them, outside incoming/ (no upload run of their own).
  const part = (rows: readonly (readonly string[])[]) =>
    [demo.header.join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n';
  await stack.objects.writeBytes(
    LOCAL_BUCKET,
    `${SOURCE}part-00000.csv`,
    part(ROWS.slice(0, 25)),
    'text/csv',
  );
  await stack.objects.writeBytes(LOCAL_BUCKET, `${SOURCE}part-00001.csv`, part(ROWS.slice(25)), 'text/csv');
  await stack.objects.writeBytes(LOCAL_BUCKET, `${SOURCE}_SUCCESS`, new Uint8Array(), 'text/plain');
  const source = new S3ModelSource(stack.s3, LOCAL_BUCKET);
  lifecycle = new ModelLifecycle(new S3ModelStore(stack.s3, LOCAL_BUCKET), {
    loadVersion: (name, version) => loadModelVersion(source, name, version),
    identity: async () => 'refresh-test',
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

describe('refresh on the local stack', () => {
  it('push with refresh.on push: the source is scored with the new version, and its ids hit once promoted', async () => {
    await push('2.0.0', { refresh: { sources: [SOURCE], on: 'push' } });
    const started = await until('the push refresh', () =>
      refreshesOf('2.0.0', 'push').find((o) => o.result === 'started'),
    );
    expect(started).toMatchObject({ model: DEMO_MODEL, source: SOURCE });
    const manifest = await readManifest(started);
    expect(manifest.model).toEqual({ name: DEMO_MODEL, version: '2.0.0' });
    expect(manifest.input.trigger).toEqual({
      kind: 'refresh',
      cause: 'push',
      model: DEMO_MODEL,
      version: '2.0.0',
      source: SOURCE,
    });
    expect(manifest.files?.map((f) => [f.key, f.rows])).toEqual([
      [`${SOURCE}part-00000.csv`, 25],
      [`${SOURCE}part-00001.csv`, ROWS.length - 25],
    ]);
    expect(manifest.counts).toMatchObject({
      planned: ROWS.length,
      scored: ROWS.length,
      writtenToTable: ROWS.length,
    });

    // Not live yet: 1.0.0 has no entries for these ids (nothing was seeded).
    expect((await predict({ id: ids[0] })).body.error?.code).toBe('NOT_PRECOMPUTED');
    await lifecycle.promote(DEMO_MODEL, '2.0.0', { reason: 'warm' });
    const deadline = Date.now() + 15_000;
    let served = await predict({ instances: ids.map((id) => ({ id })) });
    while (served.body.predictions?.[0]?.model?.version !== '2.0.0' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      served = await predict({ instances: ids.map((id) => ({ id })) });
    }
    expect(served.status).toBe(200);
    const predictions = served.body.predictions as { source: string; model: { version: string } }[];
    expect(predictions.filter((p) => p.source !== 'cache' || p.model.version !== '2.0.0')).toEqual([]);
    // The promotion's event asked again, and the push policy refreshes nothing on promote.
    const promoted = await until('the promote event', () =>
      refreshesOf('2.0.0', 'promote').length > 0 ? refreshesOf('2.0.0', 'promote') : undefined,
    );
    expect(promoted).toEqual([
      expect.objectContaining({ result: 'skipped', reason: 'refresh.on is "push"' }),
    ]);
  }, 120_000);

  it('the same event twice starts one run', async () => {
    const before = stack.refreshes.length;
    // The manifest written again: S3 (and the watcher) send the same Object Created event once more.
    const bytes = await stack.objects.readBytes(LOCAL_BUCKET, `models/${DEMO_MODEL}/2.0.0/manifest.json`);
    await stack.s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `models/${DEMO_MODEL}/2.0.0/manifest.json`,
        Body: bytes,
      }),
    );
    const repeated = await until('the repeated event', () => stack.refreshes.slice(before)[0]);
    expect(repeated).toMatchObject({ version: '2.0.0', cause: 'push', result: 'duplicate' });
    expect(refreshesOf('2.0.0', 'push').filter((o) => o.result === 'started')).toHaveLength(1);
  }, 60_000);

  it('promote policy: a version named as shadow is refreshed before it serves anyone', async () => {
    await push('2.5.0', { refresh: { sources: [SOURCE], on: 'promote' } });
    await lifecycle.shadow(DEMO_MODEL, '2.5.0', 0.1, { reason: 'compare' });
    const started = await until('the shadow refresh', () =>
      refreshesOf('2.5.0', 'promote').find((o) => o.result === 'started'),
    );
    const manifest = await readManifest(started);
    expect(manifest.model.version).toBe('2.5.0');
    expect(manifest.input.trigger).toMatchObject({ cause: 'promote', version: '2.5.0' });
    // Its push asked too, and its policy left that alone.
    expect(refreshesOf('2.5.0', 'push')).toEqual([
      expect.objectContaining({ result: 'skipped', reason: 'refresh.on is "promote"' }),
    ]);
    await lifecycle.shadow(DEMO_MODEL, '2.5.0', 0, { reason: 'done' });
  }, 120_000);

  it('a cache whose reads are mostly stale starts one refresh of the live version', async () => {
    // 3.0.0 refreshes on promotion, and its entries are stale one second after they are written.
    await push('3.0.0', {
      refresh: { sources: [SOURCE] },
      cache: { maxAgeSeconds: 1, ttlSeconds: 3600 },
    });
    await lifecycle.promote(DEMO_MODEL, '3.0.0', { reason: 'staleness test' });
    const promoted = await until('the promote refresh', () =>
      refreshesOf('3.0.0', 'promote').find((o) => o.result === 'started'),
    );
    expect((await readManifest(promoted)).input.trigger?.cause).toBe('promote');
    await new Promise((r) => setTimeout(r, 1500));

    // Requests with features: a stale entry is recomputed (and counted as a stale read).
    const instances = ROWS.slice(0, 30).map((row) => ({
      id: row[idColumn]!,
      features: Object.fromEntries(
        demo.header
          .map((name, i) => [name, row[i]!] as const)
          .filter(([name]) => name !== demo.idField)
          .map(([name, value]) => [name, featureValue(value)]),
      ),
    }));
    let stale = 0;
    const deadline = Date.now() + 30_000;
    while (!refreshesOf('3.0.0', 'staleness').some((o) => o.result === 'started') && Date.now() < deadline) {
      const answer = await predict({ instances });
      expect(answer.status).toBe(200);
      stale += (answer.body.predictions as { cacheStatus: string }[]).filter(
        (p) => p.cacheStatus === 'stale',
      ).length;
    }
    expect(stale).toBeGreaterThanOrEqual(20);
    const refreshed = refreshesOf('3.0.0', 'staleness');
    expect(refreshed.map((o) => o.result)).toEqual(['started']);
    const manifest = await readManifest(refreshed[0]!);
    expect(manifest.model.version).toBe('3.0.0');
    expect(manifest.input.trigger).toMatchObject({ cause: 'staleness', version: '3.0.0', source: SOURCE });
    expect(manifest.counts.writtenToTable).toBe(ROWS.length);
  }, 120_000);
});
