/**
 * The local S3 across kill -9 (the cause of a rare failed restart of `npm start`: s3rver wrote object
 * files in place, and a process killed mid-write left a cut object or a cut metadata.json that failed
 * every later read of the key with HTTP 500, a bare "UnknownError" for HeadObject). A child process
 * overwrites a large and a small object in a loop and is killed at random moments; each restart on the
 * same data folder must read both keys whole, as one of the versions written, with a matching ETag. A
 * data folder cut by an older version is repaired on read.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from '../../local/stack.ts';
import { startEmbeddedAws } from '../../local/embedded-aws.ts';
import { BIG_BYTES, BIG_KEY, CRASH_BUCKET, SMALL_KEY, bigBody } from '../support/s3-writer-process.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
}, 60_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the writer on `dir` until it has written `versions` versions, then kills it with SIGKILL. */
async function writeThenKill(dir: string, versions: number, extraMs: number): Promise<void> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(REPO_ROOT, 'test', 'support', 's3-writer-process.ts'), dir],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 60_000;
  while (!output.includes(`wrote ${versions}\n`)) {
    if (child.exitCode !== null) throw new Error(`the writer exited: ${output}`);
    if (Date.now() > deadline) throw new Error(`the writer is too slow: ${output}`);
    await sleep(5);
  }
  await sleep(extraMs);
  child.kill('SIGKILL');
  await exited;
}

async function readWhole(s3: S3Client, key: string): Promise<{ body: string; etag: string }> {
  const head = await s3.send(new HeadObjectCommand({ Bucket: CRASH_BUCKET, Key: key }));
  const got = await s3.send(new GetObjectCommand({ Bucket: CRASH_BUCKET, Key: key }));
  const body = await got.Body!.transformToString();
  expect(got.ETag).toBe(head.ETag);
  return { body, etag: head.ETag! };
}

const md5 = (text: string) => `"${createHash('md5').update(text).digest('hex')}"`;

describe('the local S3 across kill -9', () => {
  it('keeps every object whole: each restart reads a version that was written in full', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tandem-s3-crash-'));
    dirs.push(dir);
    // Killed at a different moment of the write loop each round (one loop takes 50 to 150 ms).
    const killAfterMs = [10, 30, 50, 70, 90, 110];
    for (const [index, extraMs] of killAfterMs.entries()) {
      const round = index + 1;
      await writeThenKill(dir, 2, extraMs);
      const aws = await startEmbeddedAws({ dataDir: dir, dynamoPort: 0, s3Port: 0, buckets: [CRASH_BUCKET] });
      const s3 = new S3Client(aws.clientConfig('s3'));
      try {
        const big = await readWhole(s3, BIG_KEY);
        const version = Number(big.body.slice(0, big.body.indexOf('|')));
        expectWithMessage(big.body.length, `round ${round}: the large object's size`).toBe(BIG_BYTES);
        expectWithMessage(big.body === bigBody(version), `round ${round}: one version, whole`).toBe(true);
        expectWithMessage(big.etag, `round ${round}: the large object's ETag`).toBe(md5(big.body));
        const small = await readWhole(s3, SMALL_KEY);
        expectWithMessage(
          () => JSON.parse(small.body) as unknown,
          `round ${round}: ${small.body}`,
        ).not.toThrow();
        expect(small.etag).toBe(md5(small.body));
        const listed = await s3.send(new ListObjectsV2Command({ Bucket: CRASH_BUCKET, Prefix: 'runs/' }));
        expect(listed.Contents?.map((o) => o.Key)).toEqual([BIG_KEY, SMALL_KEY]);
      } finally {
        s3.destroy();
        await aws.stop();
      }
    }
  }, 240_000);

  it('repairs a data folder a kill cut before: a cut metadata.json or .md5 no longer fails reads', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tandem-s3-cut-'));
    dirs.push(dir);
    let aws = await startEmbeddedAws({ dataDir: dir, dynamoPort: 0, s3Port: 0, buckets: [CRASH_BUCKET] });
    let s3 = new S3Client(aws.clientConfig('s3'));
    await s3.send(new PutObjectCommand({ Bucket: CRASH_BUCKET, Key: 'runs/a.json', Body: '{"a":1}' }));
    await s3.send(new PutObjectCommand({ Bucket: CRASH_BUCKET, Key: 'runs/b.json', Body: '{"b":2}' }));
    s3.destroy();
    await aws.stop();
    // What s3rver's in-place writes left when killed between opening a file and writing it.
    const folder = path.join(dir, 's3', CRASH_BUCKET, 'runs');
    await writeFile(path.join(folder, 'a.json._S3rver_metadata.json'), '{"content-ty');
    await writeFile(path.join(folder, 'b.json._S3rver_object.md5'), '');
    expect((await readdir(folder)).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    aws = await startEmbeddedAws({ dataDir: dir, dynamoPort: 0, s3Port: 0, buckets: [CRASH_BUCKET] });
    s3 = new S3Client(aws.clientConfig('s3'));
    try {
      expect(await readWhole(s3, 'runs/a.json')).toEqual({ body: '{"a":1}', etag: md5('{"a":1}') });
      expect(await readWhole(s3, 'runs/b.json')).toEqual({ body: '{"b":2}', etag: md5('{"b":2}') });
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: CRASH_BUCKET, Prefix: 'runs/' }));
      expect(listed.Contents?.map((o) => o.Key)).toEqual(['runs/a.json', 'runs/b.json']);
    } finally {
      s3.destroy();
      await aws.stop();
    }
  }, 60_000);
});
