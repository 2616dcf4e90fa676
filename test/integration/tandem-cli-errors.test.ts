/**
 * The `tandem` command against a local stack (the embedded S3, found from an endpoints.json as the CLI
 * finds `npm start`): every command answers --json with one JSON document on stdout and its exit code
 * (0 done, 1 a problem or refusal, 2 a usage error), and each mistake an operator makes gets a message
 * naming what to fix: no stack running, a stale or corrupt endpoints file, an unknown model, a bad
 * version string, a missing or bad --percent, an unknown command.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { runCli } from '../../local/cli/tandem-cli.ts';
import { ensureBucket, startEmbeddedAws, type EmbeddedAws } from '../../local/embedded-aws.ts';
import { writeEndpointsFile, type LocalEndpoints } from '../../local/endpoints-file.ts';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT } from '../../local/stack.ts';
import { uploadModelPackages } from '../../local/uploader.ts';
import { demoV2Package } from '../support/demo-v2-model.ts';
import { expectWithMessage } from '../support/expect-message.ts';

let aws: EmbeddedAws;
let s3: S3Client;
let scratch: string;
let endpoints: LocalEndpoints;

interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

async function cli(...argv: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t), cwd: scratch });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** A data folder whose endpoints.json is `content` (an object is written as the stack writes it). */
async function dataFolder(name: string, content?: Partial<LocalEndpoints> | string): Promise<string> {
  const dir = path.join(scratch, name);
  await mkdir(dir, { recursive: true });
  if (typeof content === 'string') await writeFile(path.join(dir, 'endpoints.json'), content);
  else if (content) await writeEndpointsFile(dir, { ...endpoints, ...content });
  return name;
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'tandem-cli-errors-'));
  aws = await startEmbeddedAws({ dynamoPort: 0, s3Port: 0 });
  s3 = new S3Client(aws.clientConfig('s3'));
  await ensureBucket(s3, LOCAL_BUCKET);
  await uploadModelPackages(s3, LOCAL_BUCKET, path.join(REPO_ROOT, 'models'));
  endpoints = {
    apiUrl: undefined,
    s3Endpoint: aws.s3Endpoint,
    dynamoEndpoint: aws.dynamoEndpoint,
    region: aws.region,
    credentials: aws.credentials,
    bucket: LOCAL_BUCKET,
    table: 'unused',
    modelsPrefix: 'models/',
    pid: process.pid,
  };
  await dataFolder('data', {});
  const pkg = await demoV2Package(REPO_ROOT, DEMO_MODEL, '2.0.0');
  await mkdir(path.join(scratch, 'pkg'));
  await writeFile(path.join(scratch, 'pkg', 'manifest.json'), pkg.manifest);
  await writeFile(path.join(scratch, 'pkg', 'model.onnx'), pkg.modelBytes);
}, 60_000);

afterAll(async () => {
  s3?.destroy();
  await aws?.stop();
  await rm(scratch, { recursive: true, force: true });
}, 60_000);

const local = ['--data-dir', 'data'];

describe('tandem --json and exit codes, every command on the local stack', () => {
  // In order: each step starts from the state the one before left.
  const steps: [argv: string[], code: number, json: (value: Record<string, unknown>) => void][] = [
    [['models', 'list'], 0, (j) => expect(j['models']).toEqual([expect.objectContaining({ live: '1.0.0' })])],
    [['models', 'show', DEMO_MODEL], 0, (j) => expect(j['pointer']).toMatchObject({ version: '1.0.0' })],
    [['models', 'history', DEMO_MODEL], 0, (j) => expect(j).toEqual({ entries: [], flags: [] })],
    [['models', 'check', 'pkg'], 0, (j) => expect(j).toMatchObject({ ok: true, version: '2.0.0' })],
    [['models', 'check', 'data'], 2, () => undefined],
    [['models', 'inspect', 'pkg/model.onnx'], 0, (j) => expect(j).toHaveProperty('skeleton')],
    [
      ['models', 'push', 'pkg', '--version', '2.0.0'],
      0,
      (j) => expect(j['pushed']).toEqual({ name: DEMO_MODEL, version: '2.0.0' }),
    ],
    [
      ['models', 'push', 'pkg', '--version', '2.0.0'],
      1,
      (j) => expect(j['error']).toMatchObject({ code: 'VERSION_EXISTS' }),
    ],
    [
      ['models', 'canary', DEMO_MODEL, '2.0.0', '--percent', '10'],
      0,
      (j) => expect(j['entry']).toMatchObject({ action: 'canary', percent: 10 }),
    ],
    [
      ['models', 'canary', DEMO_MODEL, '2.0.0', '--percent', '0'],
      0,
      (j) => expect(j['entry']).toMatchObject({ action: 'canary', percent: 0 }),
    ],
    [
      ['models', 'promote', DEMO_MODEL, '2.0.0'],
      0,
      (j) => expect(j['entry']).toMatchObject({ from: '1.0.0', to: '2.0.0' }),
    ],
    [
      ['models', 'promote', DEMO_MODEL, '2.0.0'],
      1,
      (j) => expect(j['error']).toMatchObject({ code: 'ALREADY_LIVE' }),
    ],
    [
      ['models', 'rollback', DEMO_MODEL],
      0,
      (j) => expect(j['entry']).toMatchObject({ from: '2.0.0', to: '1.0.0' }),
    ],
    [['models', 'history', DEMO_MODEL], 0, (j) => expect((j['entries'] as unknown[]).length).toBe(4)],
    [['runs', 'list'], 0, (j) => expect(j['runs']).toEqual([])],
    [
      ['runs', 'show', 'no-such-run'],
      1,
      (j) =>
        expect(j['error']).toMatchObject({
          message: expect.stringMatching(/no manifest for run no-such-run/),
        }),
    ],
  ];

  it('answers each command with one JSON document on stdout and its exit code', async () => {
    for (const [argv, code, check] of steps) {
      const result = await cli(...argv, ...local, '--json');
      const what = `tandem ${argv.join(' ')} --json`;
      expectWithMessage(result.code, `${what}: ${result.err}`).toBe(code);
      if (code === 2) {
        // A usage error goes to stderr with the help; stdout stays empty.
        expectWithMessage(result.out, what).toBe('');
        continue;
      }
      let json: Record<string, unknown> = {};
      expectWithMessage(() => (json = JSON.parse(result.out) as Record<string, unknown>), what).not.toThrow();
      check(json);
    }
  }, 120_000);

  it('finds the data folder relative to the working directory, or absolute', async () => {
    const relative = await cli('models', 'list', '--data-dir', 'data');
    const absolute = await cli('models', 'list', '--data-dir', path.join(scratch, 'data'));
    expect(relative.code).toBe(0);
    expect(absolute.out).toBe(relative.out);
    expect(relative.out).toMatch(
      new RegExp(`^MODEL +LIVE +VERSIONS\\n${DEMO_MODEL} +1\\.0\\.0 +1\\.0\\.0, 2\\.0\\.0$`),
    );
  }, 30_000);
});

describe('tandem errors name what to fix', () => {
  it.each<[string, () => Promise<string[]>, number, RegExp]>([
    [
      'no local stack in the data folder',
      async () => ['models', 'list', '--data-dir', await dataFolder('empty')],
      1,
      /^tandem: no local stack found: .*empty\/endpoints\.json does not exist\. Start one with `npm start` \(and the same --data-dir\), or use --stack <name> for a deployed stack$/,
    ],
    [
      'an endpoints file left by a stack that is no longer running',
      async () => ['models', 'list', '--data-dir', await dataFolder('stopped', { pid: await deadPid() })],
      1,
      /^tandem: the local stack that wrote .*stopped\/endpoints\.json \(pid \d+\) is not running: start it with `npm start`$/,
    ],
    [
      'an endpoints file whose process runs but whose S3 does not answer',
      async () => [
        'models',
        'list',
        '--data-dir',
        await dataFolder('stale', { s3Endpoint: `http://127.0.0.1:${await closedPort()}` }),
      ],
      1,
      /^tandem: the local stack in .*stale does not answer at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\), although process \d+ from its endpoints\.json runs: the file is stale or npm start hangs\. Stop that npm start \(if it is one\) and start it again on the same --data-dir$/,
    ],
    [
      'an endpoints file cut short',
      async () => [
        'models',
        'list',
        '--data-dir',
        await dataFolder('cut', '{"apiUrl": "http://127.0.0.1:3000", "s3'),
      ],
      1,
      /^tandem: .*cut\/endpoints\.json is not valid JSON \(.*\): it was cut short or edited; stop `npm start` if it runs, delete the file and start it again$/,
    ],
    [
      'an endpoints file without the stack',
      async () => ['models', 'list', '--data-dir', await dataFolder('other', '{"hello": "world"}')],
      1,
      /endpoints\.json does not say where the local stack is \(no pid or s3Endpoint\): delete it and start the stack again/,
    ],
    ...(['show', 'history', 'rollback'] as const).map(
      (command): [string, () => Promise<string[]>, number, RegExp] => [
        `an unknown model (models ${command})`,
        async () => ['models', command, 'fraud-detectr', ...local],
        1,
        /^tandem: no model named "fraud-detectr" in s3:\/\/[^ ]+\/models\/ \(`models list` shows the models there; `models push` adds one\) \(MODEL_NOT_FOUND\)$/,
      ],
    ),
    [
      'an unknown model (models promote)',
      async () => ['models', 'promote', 'fraud-detectr', '1.0.0', ...local],
      1,
      /^tandem: no model named "fraud-detectr" .*\(MODEL_NOT_FOUND\)$/,
    ],
    [
      'an unknown model (models canary)',
      async () => ['models', 'canary', 'fraud-detectr', '1.0.0', '--percent', '5', ...local],
      1,
      /^tandem: no model named "fraud-detectr" .*\(MODEL_NOT_FOUND\)$/,
    ],
    [
      'a version that does not exist',
      async () => ['models', 'promote', DEMO_MODEL, '1.0.1', ...local],
      1,
      /^tandem: fraud-detector@1\.0\.1 does not exist in s3:\/\/.*; current\.json is unchanged \(--force to promote anyway\) \(VERSION_NOT_FOUND\)/,
    ],
    [
      'a bad version string',
      async () => ['models', 'promote', DEMO_MODEL, 'v1 final', ...local],
      2,
      /^tandem: "v1 final" is not a valid version \(letters, digits, "\.", "_" or "-"\)\n\nUsage: npm run tandem -- models promote/,
    ],
    [
      'a bad version string to push as',
      async () => ['models', 'push', 'pkg', '--version', '../2.0.0', ...local],
      2,
      /^tandem: "\.\.\/2\.0\.0" is not a valid version/,
    ],
    [
      'a canary without --percent',
      async () => ['models', 'canary', DEMO_MODEL, '2.0.0', ...local],
      2,
      /^tandem: --percent is required \(0 ends the canary\)\n\nUsage: npm run tandem -- models canary/,
    ],
    [
      'a canary with --percent out of range',
      async () => ['models', 'canary', DEMO_MODEL, '2.0.0', '--percent=-5', ...local],
      2,
      /^tandem: --percent must be a number from 0 to 100, not "-5"/,
    ],
    [
      'a canary with --percent not a number',
      async () => ['models', 'canary', DEMO_MODEL, '2.0.0', '--percent', '10%', ...local],
      2,
      /^tandem: --percent must be a number from 0 to 100, not "10%"/,
    ],
    [
      'an unknown command',
      async () => ['models', 'deploy', DEMO_MODEL, ...local],
      2,
      /^tandem: unknown command "models deploy"\n\nUsage: npm run tandem -- <command>/,
    ],
    [
      'an unknown group',
      async () => ['model', 'list', ...local],
      2,
      /^tandem: unknown command "model"\n\nUsage: npm run tandem -- <command>/,
    ],
  ])(
    '%s',
    async (_case, argv, code, message) => {
      const result = await cli(...(await argv()));
      expect(result.err).toMatch(message);
      expect(result.code).toBe(code);
      expect(result.out).toBe('');
    },
    30_000,
  );
});

describe('two operators at once, through the command', () => {
  it('never loses an update: of two promotes racing from one pointer, a loser gets POINTER_CONFLICT', async () => {
    const pkg = await demoV2Package(REPO_ROOT, DEMO_MODEL, '3.0.0');
    await mkdir(path.join(scratch, 'pkg3'));
    await writeFile(path.join(scratch, 'pkg3', 'manifest.json'), pkg.manifest);
    await writeFile(path.join(scratch, 'pkg3', 'model.onnx'), pkg.modelBytes);
    expect((await cli('models', 'push', 'pkg3', '--version', '3.0.0', ...local)).code).toBe(0);

    let conflicts = 0;
    for (let round = 1; round <= 4; round++) {
      const reset = await cli('models', 'promote', DEMO_MODEL, '1.0.0', ...local, '--json');
      expectWithMessage(
        reset.code === 0 ||
          (JSON.parse(reset.out) as { error: { code: string } }).error.code === 'ALREADY_LIVE',
        `round ${round}: ${reset.out}`,
      ).toBe(true);
      // No barrier: each command reads the pointer, loads its version and writes when it gets there.
      const results = await Promise.all(
        ['2.0.0', '3.0.0'].map(async (version) => {
          const r = await cli('models', 'promote', DEMO_MODEL, version, ...local, '--json');
          return {
            code: r.code,
            json: JSON.parse(r.out) as { entry?: { from: string; to: string }; error?: { code: string } },
          };
        }),
      );
      const won = results.filter((r) => r.code === 0).map((r) => r.json.entry!);
      const lost = results.filter((r) => r.code !== 0);
      expectWithMessage(won.length, `round ${round}: someone wins`).toBeGreaterThan(0);
      for (const r of lost) expectWithMessage(r.json.error?.code, `round ${round}`).toBe('POINTER_CONFLICT');
      conflicts += lost.length;
      // Both won only one after the other: the second changed what the first wrote, not what both read.
      if (won.length === 2)
        expect(won.map((e) => e.from).sort()).toEqual(
          ['1.0.0', won.find((e) => e.from === '1.0.0')!.to].sort(),
        );
      const last = won.find((e) => e.from !== '1.0.0') ?? won[0]!;
      const shown = await cli('models', 'show', DEMO_MODEL, ...local, '--json');
      expectWithMessage(JSON.parse(shown.out).pointer.version, `round ${round}`).toBe(last.to);
    }
    const history = await cli('models', 'history', DEMO_MODEL, ...local, '--json');
    expect(JSON.parse(history.out).flags).toEqual([]);
    // Logged for the record: how often the two reads met (timing decides; either outcome is correct).
    process.stderr.write(`pointer race: ${conflicts} conflict(s) in 4 rounds\n`);
  }, 120_000);
});
