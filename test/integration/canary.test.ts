/**
 * A canary end to end against the local stack: `canary` of a precomputed candidate under id-only traffic
 * sends each entity to one version for the whole canary (by the hash of its id), each version answering
 * from its own cache entries; a candidate that does not load is refused, and when forced takes no
 * traffic; ending the canary sends everything back to the live version.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ModelStore } from '../../lambdas/adapters/s3-model-store.ts';
import { ModelLifecycle } from '../../lambdas/core/lifecycle/lifecycle.ts';
import { loadModelVersion } from '../../lambdas/core/model-registry.ts';
import { goesToCanary } from '../../lambdas/core/traffic-split.ts';
import { readDemoDataset } from '../../local/demo-dataset.ts';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT, startLocalStack, type LocalStack } from '../../local/stack.ts';
import { demoV2Package } from '../support/demo-v2-model.ts';

const demo = await readDemoDataset();
const ROWS = demo.rows.slice(0, 80);
const ids = ROWS.map((r) => r[demo.header.indexOf(demo.idField)]!);

let stack: LocalStack;
let scratch: string;
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

async function publish(version: string, corrupt = false): Promise<void> {
  const pkg = await demoV2Package(REPO_ROOT, DEMO_MODEL, version);
  const prefix = `models/${DEMO_MODEL}/${version}`;
  const model = corrupt ? new TextEncoder().encode('not a model') : pkg.modelBytes;
  await stack.objects.writeBytes(LOCAL_BUCKET, `${prefix}/model.onnx`, model, 'application/octet-stream');
  await stack.objects.writeBytes(LOCAL_BUCKET, `${prefix}/manifest.json`, pkg.manifest, 'application/json');
}

/** Asks until the API answers with the expected canary state (it re-reads the pointer every second). */
async function untilPointer(check: (canary: unknown) => boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const response = await fetch(`${stack.apiUrl}/models/${DEMO_MODEL}`);
    const body = (await response.json()) as { pointer?: { canary?: unknown } };
    if (check(body.pointer?.canary) || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'tandem-canary-'));
  stack = await startLocalStack({ apiPort: 0, seed: false, handlerEnv: { MODEL_REFRESH_SECONDS: '1' } });
  await publish('2.0.0');
  await publish('3.0.0', true);
  const source = new S3ModelSource(stack.s3, LOCAL_BUCKET);
  lifecycle = new ModelLifecycle(new S3ModelStore(stack.s3, LOCAL_BUCKET), {
    loadVersion: (name, version) => loadModelVersion(source, name, version),
    identity: async () => 'canary-test',
  });
  const file = path.join(scratch, 'rows.csv');
  await writeFile(file, [demo.header.join(','), ...ROWS.map((r) => r.join(','))].join('\n') + '\n');
  for (const modelVersion of ['1.0.0', '2.0.0']) {
    const run = await stack.runDataset(file, DEMO_MODEL, `incoming/${DEMO_MODEL}/${modelVersion}.csv`, {
      modelVersion,
    });
    expect(run.counts).toMatchObject({ scored: ROWS.length, writtenToTable: ROWS.length });
  }
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await rm(scratch, { recursive: true, force: true });
}, 60_000);

describe('a canary on the local stack', () => {
  it('sends each entity to one version by its id, each answering from its own precomputed entries', async () => {
    await lifecycle.canary(DEMO_MODEL, '2.0.0', 30, { reason: 'try 2.0.0' });
    await untilPointer((c) => (c as { serving?: boolean } | undefined)?.serving === true);
    const expected = ids.map((id) => (goesToCanary(DEMO_MODEL, id, 30) ? '2.0.0' : '1.0.0'));
    expect(new Set(expected)).toEqual(new Set(['1.0.0', '2.0.0']));
    for (let round = 0; round < 3; round++) {
      const answer = await predict({ instances: ids.map((id) => ({ id })) });
      expect(answer.status).toBe(200);
      const predictions = answer.body.predictions as {
        id: string;
        source: string;
        model: { version: string };
      }[];
      expect(predictions.map((p) => p.id)).toEqual(ids);
      expect(predictions.map((p) => p.model.version)).toEqual(expected);
      expect(predictions.every((p) => p.source === 'cache')).toBe(true);
    }
    const single = await predict({ id: ids[0] });
    expect(single.body.model.version).toBe(expected[0]);
  }, 60_000);

  it('refuses a candidate that does not load, and when forced sends it no traffic', async () => {
    await expect(lifecycle.canary(DEMO_MODEL, '3.0.0', 50)).rejects.toMatchObject({ code: 'MODEL_CORRUPT' });
    await expect(lifecycle.canary(DEMO_MODEL, '9.9.9', 50)).rejects.toMatchObject({
      code: 'VERSION_NOT_FOUND',
    });
    await lifecycle.canary(DEMO_MODEL, '3.0.0', 50, { force: true });
    await untilPointer((c) => (c as { version?: string } | undefined)?.version === '3.0.0');
    const model = (await (await fetch(`${stack.apiUrl}/models/${DEMO_MODEL}`)).json()) as {
      pointer: { canary: unknown };
    };
    expect(model.pointer.canary).toMatchObject({
      version: '3.0.0',
      serving: false,
      error: { code: 'MODEL_CORRUPT' },
    });
    const answer = await predict({ instances: ids.map((id) => ({ id })) });
    expect(answer.status).toBe(200);
    expect(
      answer.body.predictions.every((p: { model: { version: string } }) => p.model.version === '1.0.0'),
    ).toBe(true);
  }, 60_000);

  it('ends the canary with percent 0: everything goes back to the live version', async () => {
    await lifecycle.canary(DEMO_MODEL, '3.0.0', 0);
    await untilPointer((c) => c === undefined);
    const answer = await predict({ instances: ids.map((id) => ({ id })) });
    expect(
      answer.body.predictions.every((p: { model: { version: string } }) => p.model.version === '1.0.0'),
    ).toBe(true);
    const { entries } = await lifecycle.history(DEMO_MODEL);
    expect(entries.map((e) => [e.action, e.from, e.to, e.percent])).toEqual([
      ['canary', '1.0.0', '2.0.0', 30],
      ['canary', '1.0.0', '3.0.0', 50],
      ['canary', '1.0.0', '3.0.0', 0],
    ]);
    expect(entries[1]!.forced).toMatch(/does not load/);
  }, 60_000);
});
