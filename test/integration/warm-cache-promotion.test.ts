/**
 * A warm cache across versions, end to end: a candidate's predictions are precomputed by the batch lane
 * (option modelVersion, `npm run batch -- <file> --version`) before it is promoted; promoting it under
 * id-only traffic against the local API switches reads to entries that already exist (no request is
 * ever NOT_PRECOMPUTED), and entries of a version that is not live are never served.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ModelStore } from '../../lambdas/adapters/s3-model-store.ts';
import { ModelLifecycle } from '../../lambdas/core/lifecycle/lifecycle.ts';
import { loadModelVersion } from '../../lambdas/core/model-registry.ts';
import { readDemoDataset } from '../../local/demo-dataset.ts';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT, startLocalStack, type LocalStack } from '../../local/stack.ts';
import { demoV2Package } from '../support/demo-v2-model.ts';

const demo = await readDemoDataset();
const ROWS = demo.rows.slice(0, 120);
const ids = ROWS.map((r) => r[demo.header.indexOf(demo.idField)]!);

let stack: LocalStack;
let scratch: string;

async function csv(name: string, rows: readonly (readonly string[])[]): Promise<string> {
  const file = path.join(scratch, name);
  await writeFile(file, [demo.header.join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n');
  return file;
}

interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- read field by field in assertions
  body: any;
}

async function predict(body: unknown): Promise<Answer> {
  const response = await fetch(`${stack.apiUrl}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'tandem-warm-cache-'));
  // The API re-reads the pointer every second, so that the promotion is seen within the test.
  stack = await startLocalStack({ apiPort: 0, seed: false, handlerEnv: { MODEL_REFRESH_SECONDS: '1' } });
  const v2 = await demoV2Package(REPO_ROOT, DEMO_MODEL, '2.0.0');
  await stack.objects.writeBytes(
    LOCAL_BUCKET,
    `models/${DEMO_MODEL}/2.0.0/model.onnx`,
    v2.modelBytes,
    'application/octet-stream',
  );
  await stack.objects.writeBytes(
    LOCAL_BUCKET,
    `models/${DEMO_MODEL}/2.0.0/manifest.json`,
    v2.manifest,
    'application/json',
  );
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await rm(scratch, { recursive: true, force: true });
}, 60_000);

describe('a warm cache across a promotion', () => {
  it('precomputes a candidate, and a promotion under id-only traffic keeps every request a cache hit', async () => {
    const live = await stack.runDataset(
      await csv('live.csv', ROWS),
      DEMO_MODEL,
      `incoming/${DEMO_MODEL}/live.csv`,
    );
    expect(live.counts).toMatchObject({ scored: ROWS.length, writtenToTable: ROWS.length });
    const candidate = await stack.runDataset(
      await csv('candidate.csv', ROWS),
      DEMO_MODEL,
      `incoming/${DEMO_MODEL}/candidate.csv`,
      { modelVersion: '2.0.0' },
    );
    expect(candidate.counts).toMatchObject({ scored: ROWS.length, writtenToTable: ROWS.length });
    // Ids only the candidate has scored: misses while 1.0.0 is live.
    const onlyV2Rows = ROWS.slice(0, 3).map((r, i) =>
      r.map((f, c) => (c === demo.header.indexOf(demo.idField) ? `only-v2-${i}` : f)),
    );
    // ... precomputed through the upload lane: the upload's model-version metadata pins the version.
    await stack.s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `incoming/${DEMO_MODEL}/only-v2.csv`,
        Body: await readFile(await csv('only-v2.csv', onlyV2Rows)),
        Metadata: { 'model-version': '2.0.0' },
      }),
    );
    const uploaded = Date.now() + 60_000;
    while (!stack.events.some((e) => e.dataset.startsWith('only-v2')) && Date.now() < uploaded) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(stack.events.find((e) => e.dataset.startsWith('only-v2'))).toMatchObject({
      status: 'SUCCEEDED',
      modelVersion: '2.0.0',
      counts: { scored: 3 },
    });
    const beforeMiss = await predict({ id: 'only-v2-0' });
    expect(beforeMiss.status).toBe(404);
    expect(beforeMiss.body.error.code).toBe('NOT_PRECOMPUTED');

    const before = await predict({ instances: ids.slice(0, 5).map((id) => ({ id })) });
    expect(before.body.predictions.map((p: { model: { version: string } }) => p.model.version)).toEqual(
      Array(5).fill('1.0.0'),
    );

    // Id-only traffic, 4 clients, through the promotion and until 2.0.0 has answered for a while.
    const answers: Answer[] = [];
    let stop = false;
    const client = async (offset: number): Promise<void> => {
      for (let i = offset; !stop; i += 4) {
        const batch = [ids[i % ids.length]!, ids[(i + 1) % ids.length]!].map((id) => ({ id }));
        answers.push(await predict({ instances: batch }));
      }
    };
    const clients = [0, 1, 2, 3].map(client);
    const source = new S3ModelSource(stack.s3, LOCAL_BUCKET);
    const lifecycle = new ModelLifecycle(new S3ModelStore(stack.s3, LOCAL_BUCKET), {
      loadVersion: (name, version) => loadModelVersion(source, name, version),
      identity: async () => 'warm-cache-test',
    });
    while (answers.length < 20) await new Promise((r) => setTimeout(r, 20));
    await lifecycle.promote(DEMO_MODEL, '2.0.0', { reason: 'precomputed' });
    const promotedAt = answers.length;
    const deadline = Date.now() + 30_000;
    const v2Answers = () =>
      answers.filter((a) =>
        a.body.predictions?.every((p: { model: { version: string } }) => p.model.version === '2.0.0'),
      ).length;
    while (v2Answers() < 40 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stop = true;
    await Promise.all(clients);

    const failed = answers.filter((a) => a.status !== 200);
    expect(failed.map((a) => a.body.error?.code)).toEqual([]);
    const predictions = answers.flatMap(
      (a) => a.body.predictions as { source: string; model: { version: string } }[],
    );
    expect(predictions.filter((p) => p.source !== 'cache')).toEqual([]);
    const versions = new Set(predictions.map((p) => p.model.version));
    expect(versions).toEqual(new Set(['1.0.0', '2.0.0']));
    expect(promotedAt).toBeGreaterThanOrEqual(20);
    // After the switch, every answer is the candidate's precomputed one.
    const last = answers.slice(-20).flatMap((a) => a.body.predictions as { model: { version: string } }[]);
    expect(last.every((p) => p.model.version === '2.0.0')).toBe(true);

    const after = await predict({ id: 'only-v2-0' });
    expect(after.status).toBe(200);
    expect(after.body).toMatchObject({ source: 'cache', model: { version: '2.0.0' } });
  }, 120_000);

  it("never serves another version's entries: after a rollback, 2.0.0-only ids are misses again", async () => {
    const source = new S3ModelSource(stack.s3, LOCAL_BUCKET);
    const lifecycle = new ModelLifecycle(new S3ModelStore(stack.s3, LOCAL_BUCKET), {
      loadVersion: (name, version) => loadModelVersion(source, name, version),
      identity: async () => 'warm-cache-test',
    });
    await lifecycle.rollback(DEMO_MODEL);
    const deadline = Date.now() + 10_000;
    let answer = await predict({ id: ids[0] });
    while (answer.body.model?.version !== '1.0.0' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      answer = await predict({ id: ids[0] });
    }
    expect(answer.body).toMatchObject({ source: 'cache', model: { version: '1.0.0' } });
    const miss = await predict({ id: 'only-v2-1' });
    expect(miss.status).toBe(404);
    expect(miss.body.error.code).toBe('NOT_PRECOMPUTED');
  }, 30_000);
});
