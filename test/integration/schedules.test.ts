/**
 * The `schedules` setting on the local stack, driven by a clock the test moves (no waiting): a rate
 * schedule fires a folder run of its prefix and its manifest is written; a schedule of an empty prefix
 * makes a run that succeeds and says so (NO_FILES); a schedule whose run is still going when it fires
 * again is skipped, not started twice; `tandem schedules list` prints the next fire times.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RunManifest } from '../../lambdas/core/batch/contracts.ts';
import { parseCsv } from '../../lambdas/core/codecs/csv.ts';
import { readScheduleSetting } from '../../lib/settings.ts';
import { resources, templateOf } from '../infra/support.ts';
import { runCli } from '../../local/cli/tandem-cli.ts';
import { writeEndpointsFile } from '../../local/endpoints-file.ts';
import {
  DEMO_MODEL,
  LOCAL_BUCKET,
  LOCAL_TABLE,
  REPO_ROOT,
  startLocalStack,
  type LocalStack,
} from '../../local/stack.ts';

const MINUTE = 60_000;
const START = Date.parse('2026-12-06T04:00:20Z');
let clock = START;
let stack: LocalStack;
let dataDir: string;
const lines: string[] = [];
/** Holds the chunks of the daily run while set (to find its run still going at the next fire time). */
let hold: Promise<void> | undefined;

const SCHEDULES = [
  { model: DEMO_MODEL, prefix: 'warehouse/fraud/daily', expression: 'rate(1 minute)' },
  { model: DEMO_MODEL, prefix: 'warehouse/fraud/empty/', expression: 'cron(0/2 * * * ? *)' },
];

beforeAll(async () => {
  const [head, ...rows] = parseCsv(
    await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, 'demo-transactions.csv'), 'utf8'),
  );
  const csv = (part: readonly { fields: string[] }[]) =>
    [head!.fields, ...part.map((r) => r.fields)].map((r) => r.join(',')).join('\n') + '\n';
  dataDir = await mkdtemp(path.join(tmpdir(), 'tandem-schedules-'));
  stack = await startLocalStack({
    seed: false,
    schedules: readScheduleSetting(SCHEDULES),
    scheduleClock: { now: () => clock, timers: false },
    log: (line) => void lines.push(line),
    batch: {
      retryIntervalMs: 10,
      beforeChunk: async () => {
        await hold;
      },
    },
  });
  await stack.objects.writeBytes(
    LOCAL_BUCKET,
    'warehouse/fraud/daily/part-00000.csv',
    csv(rows.slice(0, 40)),
    'text/csv',
  );
  await stack.objects.writeBytes(
    LOCAL_BUCKET,
    'warehouse/fraud/daily/part-00001.csv',
    csv(rows.slice(40, 100)),
    'text/csv',
  );
  await writeEndpointsFile(dataDir, {
    apiUrl: undefined,
    s3Endpoint: stack.aws.s3Endpoint,
    dynamoEndpoint: stack.aws.dynamoEndpoint,
    region: stack.aws.region,
    credentials: stack.aws.credentials,
    bucket: LOCAL_BUCKET,
    table: LOCAL_TABLE,
    modelsPrefix: 'models/',
    pid: process.pid,
    schedules: SCHEDULES,
    schedulesStartedAt: START,
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await rm(dataDir, { recursive: true, force: true });
}, 60_000);

async function manifestAt(key: string): Promise<RunManifest> {
  return JSON.parse(
    new TextDecoder().decode(await stack.objects.readBytes(LOCAL_BUCKET, key)),
  ) as RunManifest;
}

describe('schedules on the local stack', () => {
  it('computes each next fire time from its expression, in UTC, and fires nothing before it', async () => {
    expect(stack.scheduler!.state().map((s) => [s.schedule.label, new Date(s.next!).toISOString()])).toEqual([
      [`${DEMO_MODEL}:warehouse/fraud/daily/ rate(1 minute)`, '2026-12-06T04:01:20.000Z'],
      [`${DEMO_MODEL}:warehouse/fraud/empty/ cron(0/2 * * * ? *)`, '2026-12-06T04:02:00.000Z'],
    ]);
    clock = START + MINUTE - 1;
    expect(await stack.scheduler!.tick()).toEqual([]);
  });

  it('a rate schedule scores the files of its prefix as one run and writes its manifest', async () => {
    clock = START + MINUTE;
    const [run, ...others] = await stack.scheduler!.tick();
    expect(others).toEqual([]);
    expect(run!.runId).toMatch(new RegExp(`^${DEMO_MODEL}-schedule-`));
    const result = await run!.result;
    expect(result.status).toBe('SUCCEEDED');
    expect(result.manifestKey).toBe(`results/${DEMO_MODEL}/daily/${run!.runId}/_manifest.json`);
    const manifest = await manifestAt(result.manifestKey);
    expect(manifest.input).toMatchObject({ key: 'warehouse/fraud/daily/', folder: true });
    expect(manifest.counts).toMatchObject({ read: 100, scored: 100, rejected: 0 });
    expect(lines).toContainEqual(
      `[schedule] ${DEMO_MODEL}:warehouse/fraud/daily/ rate(1 minute): run ${run!.runId} SUCCEEDED, manifest ${result.manifestKey}`,
    );
  });

  it('a schedule of an empty prefix makes a run that succeeds and says there were no files', async () => {
    clock = START + 2 * MINUTE - 20_000; // 04:02:00, the cron's fire time
    const started = await stack.scheduler!.tick();
    expect(started.map((r) => r.schedule.prefix)).toEqual(['warehouse/fraud/empty/']);
    const result = await started[0]!.result;
    expect(result.status).toBe('SUCCEEDED');
    const manifest = await manifestAt(result.manifestKey);
    expect(manifest.notice?.code).toBe('NO_FILES');
    expect(manifest.counts).toMatchObject({ read: 0, scored: 0 });
  });

  it('does not start a schedule twice while its run is going: the fire time is skipped and said so', async () => {
    let release!: () => void;
    hold = new Promise((resolve) => (release = resolve));
    clock = START + 2 * MINUTE; // the daily's 04:02:20
    const [held] = await stack.scheduler!.tick();
    expect(held!.schedule.prefix).toBe('warehouse/fraud/daily/');
    clock = START + 3 * MINUTE;
    expect(await stack.scheduler!.tick()).toEqual([]);
    const daily = stack.scheduler!.state()[0]!;
    expect(daily).toMatchObject({ running: held!.runId, skipped: 1 });
    expect(lines).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `fire time 2026-12-06T04:03:20.000Z skipped, run ${held!.runId} is still going; next at 2026-12-06T04:04:20.000Z$`,
        ),
      ),
    );
    release();
    hold = undefined;
    expect((await held!.result).status).toBe('SUCCEEDED');
    expect(stack.scheduler!.state()[0]!.running).toBeUndefined();
    // Fire times missed while busy make one run, not one per missed time.
    clock = START + 10 * MINUTE;
    const after = await stack.scheduler!.tick();
    expect(after.map((r) => r.schedule.prefix).sort()).toEqual([
      'warehouse/fraud/daily/',
      'warehouse/fraud/empty/',
    ]);
    await Promise.all(after.map((r) => r.result));
  });

  it('the input a deployed schedule gives the state machine runs an empty prefix to a NO_FILES success', async () => {
    const template = templateOf({
      schedules: [{ model: DEMO_MODEL, prefix: 'warehouse/fraud/nothing-yet/', expression: 'rate(1 hour)' }],
    });
    const [schedule] = Object.values(resources(template, 'AWS::Scheduler::Schedule'));
    // What Scheduler sends: its Input with the bucket's name resolved and the context attribute filled in.
    const join = (schedule!.Properties!['Target'] as { Input: { 'Fn::Join': [string, unknown[]] } }).Input[
      'Fn::Join'
    ];
    const input = JSON.parse(
      join[1]
        .map((part) => (typeof part === 'string' ? part : LOCAL_BUCKET))
        .join(join[0])
        .replace('<aws.scheduler.execution-id>', 'd32c5kddcf5bb8c3'),
    ) as { runId: string };
    expect(input.runId).toBe(`${DEMO_MODEL}-schedule-d32c5kddcf5bb8c3`);
    expect(await stack.batch.start(input.runId, input)).toBe('started');
    const result = await stack.batch.run(input.runId)!.result;
    expect(result.status).toBe('SUCCEEDED');
    expect((await manifestAt(result.manifestKey)).notice?.code).toBe('NO_FILES');
  }, 60_000);

  it('`tandem schedules list` prints each schedule with its next fire time', async () => {
    let out = '';
    const code = await runCli(['schedules', 'list', '--data-dir', dataDir, '--json'], {
      out: (t) => void (out += t),
      err: (t) => void (out += t),
      cwd: process.cwd(),
      now: () => START,
    });
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({
      schedules: [
        {
          model: DEMO_MODEL,
          prefix: 'warehouse/fraud/daily/',
          expression: 'rate(1 minute)',
          next: '2026-12-06T04:01:20.000Z',
        },
        {
          model: DEMO_MODEL,
          prefix: 'warehouse/fraud/empty/',
          expression: 'cron(0/2 * * * ? *)',
          next: '2026-12-06T04:02:00.000Z',
        },
      ],
    });
  });
});

describe('npm start with bad schedules', () => {
  it('refuses to start, naming each bad schedule and field, before anything starts', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tandem-bad-schedules-'));
    const bad = JSON.stringify([
      { model: DEMO_MODEL, prefix: 'capture/fraud-detector/', expression: 'rate(1 minute)' },
      { model: DEMO_MODEL, prefix: 'warehouse/daily/', expression: 'cron(0 6 ? * MON#6 *)' },
    ]);
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', path.join(REPO_ROOT, 'bin', 'local.ts'), '--data-dir', dir, '--schedules', bad],
        { cwd: REPO_ROOT, timeout: 60_000 },
        (error, stdout, stderr) =>
          resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, output: stdout + stderr }),
      );
    });
    expect(code).toBe(1);
    expect(output).toMatch(
      /schedules\[0\] \(fraud-detector capture\/fraud-detector\/\) prefix: "capture\/fraud-detector\/" is under capture\//,
    );
    expect(output).toMatch(
      /schedules\[1\] \(fraud-detector warehouse\/daily\/\) expression: .*# takes a day and a week from 1 to 5/,
    );
    // Nothing was started: no emulator data, no endpoints file.
    expect(await readdir(dir)).toEqual([]);
    await rm(dir, { recursive: true, force: true });
  }, 90_000);
});
