/**
 * The local upload watcher (s3rver -> EventBridge-shaped event -> trigger) with odd object names: each
 * upload runs as itself (`p+q.csv` is not `p q.csv`, `100%.csv` does not crash anything), results stay
 * in their model's folder whatever the name, objects that are not datasets start nothing, and an error
 * in the watcher is logged once and counted while the stack keeps serving.
 */
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RunManifest } from '../../lambdas/core/batch/contracts.ts';
import { readDemoDataset, type DemoDataset } from '../../local/demo-dataset.ts';
import { DEMO_MODEL, LOCAL_BUCKET, startLocalStack, type LocalStack } from '../../local/stack.ts';
import { expectWithMessage } from '../support/expect-message.ts';

let stack: LocalStack;
let demo: DemoDataset;
const lines: string[] = [];

beforeAll(async () => {
  demo = await readDemoDataset();
  stack = await startLocalStack({ seed: false, log: (line) => lines.push(line) });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
}, 60_000);

function csv(rows: number): string {
  return `${[demo.header.join(','), ...demo.rows.slice(0, rows).map((r) => r.join(','))].join('\n')}\n`;
}

async function upload(key: string, body: string): Promise<void> {
  await stack.s3.send(new PutObjectCommand({ Bucket: LOCAL_BUCKET, Key: key, Body: body }));
}

async function until(done: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; log:\n${lines.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function keys(prefix: string): Promise<string[]> {
  const page = await stack.s3.send(new ListObjectsV2Command({ Bucket: LOCAL_BUCKET, Prefix: prefix }));
  return (page.Contents ?? []).map((o) => o.Key!);
}

describe('the local upload watcher', () => {
  it('runs each odd name as itself, inside results/<model>/, and ignores what is not a dataset', async () => {
    // A distinct row count per upload tells which object each run read.
    const datasets: [string, number, string][] = [
      ['p q.csv', 5, 'p_q'],
      ['p+q.csv', 7, 'p_q'],
      ['100%.csv', 3, '100_'],
      ['100%25.csv', 9, '100_25'],
      ['données été.csv', 4, 'donn_es__t_'],
      ['数据.csv', 6, '__'],
      ['..csv', 2, '_'],
      ['...csv', 8, '__'],
    ];
    const ignored = ['incoming/readme.txt', `incoming/${DEMO_MODEL}/notes.txt`, 'incoming/loose.csv'];
    // One at a time: s3rver's sequencer is the millisecond, so two uploads of one key could collide.
    for (const [name, rows] of datasets) await upload(`incoming/${DEMO_MODEL}/${name}`, csv(rows));
    for (const key of ignored) await upload(key, 'not a dataset\n');

    await until(() => stack.events.length === datasets.length, `${datasets.length} runs`);
    await until(() => stack.watcher.ignored === ignored.length, 'the ignored uploads');
    for (const [name, rows, dataset] of datasets) {
      const key = `incoming/${DEMO_MODEL}/${name}`;
      const event = stack.events.find((e) => e.counts.planned === rows);
      expectWithMessage(event, name).toBeDefined();
      expectWithMessage(event!.status, name).toBe('SUCCEEDED');
      expectWithMessage(event!.dataset, name).toBe(dataset);
      expectWithMessage(event!.manifest.key.startsWith(`results/${DEMO_MODEL}/${dataset}/`), name).toBe(true);
      const manifest = JSON.parse(
        new TextDecoder().decode(await stack.objects.readBytes(LOCAL_BUCKET, event!.manifest.key)),
      ) as RunManifest;
      expectWithMessage(manifest.input.key, name).toBe(key);
    }
    expect(stack.watcher).toMatchObject({ started: datasets.length, ignored: ignored.length, errors: 0 });
    // Nothing ignored left a trace of a run: no plan for it, no manifest outside a model folder.
    expect(await keys('results/_unknown/')).toEqual([]);
    expect((await keys('runs/')).filter((k) => k.endsWith('/plan.json'))).toHaveLength(datasets.length);
    for (const key of ignored) expect(lines.some((l) => l.startsWith(`[batch] ignored ${key} (`))).toBe(true);
  }, 90_000);

  it('logs an error once, counts every one, and keeps the stack up', async () => {
    const before = stack.watcher.errors;
    // After abandon() the runner refuses new runs: every upload now fails inside the watcher.
    stack.batch.abandon();
    await upload(`incoming/${DEMO_MODEL}/after-1.csv`, csv(2));
    await upload(`incoming/${DEMO_MODEL}/after-1.csv`, csv(3));
    await until(() => stack.watcher.errors === before + 2, 'two watcher errors');
    const logged = lines.filter((l) => l.startsWith('[batch] upload watcher:'));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/stopping: runs are abandoned.*the stack keeps running/);
    // S3 still answers.
    expect(await keys(`incoming/${DEMO_MODEL}/after-1`)).toEqual([`incoming/${DEMO_MODEL}/after-1.csv`]);
  }, 30_000);
});
