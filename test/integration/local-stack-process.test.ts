/**
 * `npm start` as a user runs it, in a child process: a run in flight survives `kill -9` (the next start
 * on the same data folder resumes it and it ends with a manifest), the first Ctrl+C stops the stack
 * without waiting for the run (recording what it abandoned), and a second one exits at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { RunManifest } from '../../lambdas/core/batch/contracts.ts';
import { readDemoDataset, type DemoDataset } from '../../local/demo-dataset.ts';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT } from '../../local/stack.ts';

const BANNER_END = 'Press Ctrl+C to stop.';

class LocalStackProcess {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  static async start(dataDir: string, env: Record<string, string> = {}): Promise<LocalStackProcess> {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(REPO_ROOT, 'bin', 'local.ts'),
        ...['--port', '0', '--dynamodb-port', '0', '--s3-port', '0', '--kinesis-port', '0'],
        ...['--data-dir', dataDir, '--no-seed'],
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'ERROR', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const stack = new LocalStackProcess(child);
    await stack.waitFor((out) => out.includes(BANNER_END), 45_000);
    return stack;
  }

  get s3Endpoint(): string {
    const match = /^ {2}S3 +(http:\/\/127\.0\.0\.1:\d+)/m.exec(this.output);
    if (!match) throw new Error(`no S3 endpoint in the banner:\n${this.output}`);
    return match[1]!;
  }

  /** Resolves when the output satisfies `done`; fails if the process exits or time runs out first. */
  async waitFor(done: (output: string) => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (!done(this.output)) {
      if (exited) throw new Error(`the local stack exited:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting; output so far:\n${this.output}`);
      await sleep(100);
    }
  }

  /** The run the watcher started for `key` (from its `[batch] <key>: run <id> started` line). */
  async runIdFor(key: string, timeoutMs: number): Promise<string> {
    const pattern = new RegExp(`\\[batch\\] ${escape(key)}: run (\\S+) started`);
    await this.waitFor((out) => pattern.test(out), timeoutMs);
    return pattern.exec(this.output)![1]!;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function s3For(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

async function exists(s3: S3Client, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: LOCAL_BUCKET, Key: key }));
    return true;
  } catch {
    return false;
  }
}

async function listEtags(s3: S3Client, prefix: string): Promise<Map<string, string>> {
  const page = await s3.send(new ListObjectsV2Command({ Bucket: LOCAL_BUCKET, Prefix: prefix }));
  return new Map((page.Contents ?? []).map((o) => [o.Key!, o.ETag!]));
}

/** The objects under `prefix` as s3rver keeps them in the data folder, by key. */
async function storedObjects(dir: string, prefix: string): Promise<Map<string, string>> {
  const folder = path.join(dir, 's3', LOCAL_BUCKET, ...prefix.split('/').filter(Boolean));
  const suffix = '._S3rver_object';
  const names = await readdir(folder).catch(() => [] as string[]);
  const objects = new Map<string, string>();
  for (const name of names.filter((n) => n.endsWith(suffix)).sort())
    objects.set(prefix + name.slice(0, -suffix.length), await readFile(path.join(folder, name), 'utf8'));
  return objects;
}

let demo: DemoDataset;
const dirs: string[] = [];
const processes: LocalStackProcess[] = [];

/** `rows` demo rows with unique ids, as CSV. */
function dataset(rows: number, prefix: string): string {
  const idAt = demo.header.indexOf(demo.idField);
  const lines = [demo.header.join(',')];
  for (let i = 0; i < rows; i++) {
    const fields = [...demo.rows[i % demo.rows.length]!];
    fields[idAt] = `${prefix}-${i}`;
    lines.push(fields.join(','));
  }
  return `${lines.join('\n')}\n`;
}

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tandem-process-'));
  dirs.push(dir);
  return dir;
}

async function start(dir: string, env: Record<string, string> = {}): Promise<LocalStackProcess> {
  const stack = await LocalStackProcess.start(dir, env);
  processes.push(stack);
  return stack;
}

async function upload(s3: S3Client, key: string, body: string): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: LOCAL_BUCKET, Key: key, Body: body }));
}

beforeAll(async () => {
  demo = await readDemoDataset();
}, 60_000);
afterEach(async () => {
  for (const stack of processes.splice(0)) {
    if (stack.child.exitCode === null && stack.child.signalCode === null) stack.child.kill('SIGKILL');
    await stack.exited;
  }
}, 60_000);
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('npm start as a process', () => {
  it('resumes a run killed with kill -9 when it starts again on the same data folder', async () => {
    const dir = await dataDir();
    // Small chunks, so that the run is cut between chunks that are done and chunks that are not.
    const env = { BATCH_OPTIONS: JSON.stringify({ chunkBytes: 8 * 1024 }) };
    const rows = 1_000;
    const key = `incoming/${DEMO_MODEL}/resume-me.csv`;

    const first = await start(dir, env);
    let s3 = s3For(first.s3Endpoint);
    await upload(s3, key, dataset(rows, 'resume'));
    const runId = await first.runIdFor(key, 10_000);
    const manifestKey = `results/${DEMO_MODEL}/resume-me/${runId}/_manifest.json`;
    const reportsPrefix = `runs/${runId}/chunks/`;
    const deadline = Date.now() + 20_000;
    while ((await listEtags(s3, reportsPrefix)).size === 0 && Date.now() < deadline) await sleep(50);
    first.child.kill('SIGKILL');
    await first.exited;
    s3.destroy();
    // Read from s3rver's folder while no process runs: the restarted stack resumes at once.
    const before = await storedObjects(dir, reportsPrefix);
    expect(before.size).toBeGreaterThan(0);
    expect((await storedObjects(dir, path.posix.dirname(manifestKey) + '/')).has(manifestKey)).toBe(false);

    const second = await start(dir, env);
    s3 = s3For(second.s3Endpoint);
    expect(second.output).toContain(`[batch] resuming run ${runId}`);
    await second.waitFor((out) => out.includes(`[batch] SUCCEEDED run ${runId}`), 40_000);

    const manifest = JSON.parse(
      await (
        await s3.send(new GetObjectCommand({ Bucket: LOCAL_BUCKET, Key: manifestKey }))
      ).Body!.transformToString(),
    ) as RunManifest;
    expect(manifest).toMatchObject({
      status: 'SUCCEEDED',
      counts: { planned: rows, read: rows, scored: rows },
    });
    expect(manifest.chunks.completed).toBe(manifest.chunks.planned);
    expect(manifest.chunks.planned).toBeGreaterThan(before.size);
    // The chunks scored before the kill were kept, not scored again (a new report has new timings).
    const after = await storedObjects(dir, reportsPrefix);
    expect(after.size).toBe(manifest.chunks.planned);
    for (const [reportKey, content] of before) expect(after.get(reportKey)).toBe(content);
    s3.destroy();
  }, 90_000);

  it('stops on the first Ctrl+C without waiting for the run, recording what it abandoned', async () => {
    const dir = await dataDir();
    const stack = await start(dir);
    const s3 = s3For(stack.s3Endpoint);
    const key = `incoming/${DEMO_MODEL}/long-run.csv`;
    // Minutes of table writes on the emulator: far longer than the stop may take.
    await upload(s3, key, dataset(60_000, 'long'));
    const runId = await stack.runIdFor(key, 10_000);
    const deadline = Date.now() + 20_000;
    while (!(await exists(s3, `runs/${runId}/plan.json`)) && Date.now() < deadline) await sleep(50);
    s3.destroy();

    stack.child.kill('SIGINT');
    const stopped = await Promise.race([stack.exited, sleep(20_000).then(() => 'still running' as const)]);
    expect(stopped).toEqual({ code: 0, signal: null });
    expect(stack.output).toMatch(
      // The plan may be written before the runner has the Plan step's answer: either way the run resumes.
      new RegExp(
        `\\[batch\\] abandoned run ${runId} \\(${escape(key)}\\): (0 of 1 chunks scored; |stopped while it was being planned: )it resumes`,
      ),
    );
    expect(stack.output).not.toContain(`SUCCEEDED run ${runId}`);
  }, 60_000);

  it('exits at once on a second signal (SIGTERM, then Ctrl+C)', async () => {
    const dir = await dataDir();
    const stack = await start(dir);
    const s3 = s3For(stack.s3Endpoint);
    const key = `incoming/${DEMO_MODEL}/long-run.csv`;
    await upload(s3, key, dataset(60_000, 'twice'));
    await stack.runIdFor(key, 10_000);
    s3.destroy();

    // Back to back: waiting for the first signal's output first would race the stop itself, which can
    // finish within the time the output takes to reach this process on a loaded machine.
    stack.child.kill('SIGTERM');
    stack.child.kill('SIGINT');
    expect(await stack.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(stack.output).toMatch(/again to exit at once/);
    expect(stack.output).toMatch(/(SIGINT|SIGTERM) while stopping: exiting now\./);
  }, 60_000);
});
