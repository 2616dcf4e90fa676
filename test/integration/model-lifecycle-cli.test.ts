/**
 * The `tandem models ...` commands against the embedded S3 (s3rver with S3's conditional PUTs), found as
 * the CLI finds a local stack (its endpoints.json) or a deployed one (CloudFormation outputs, the lookup
 * mocked): push, promote, rollback and their refusals, history and its flags, and two operators racing.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ModelStore } from '../../lambdas/adapters/s3-model-store.ts';
import { PointerConflictError } from '../../lambdas/core/lifecycle/errors.ts';
import { ModelLifecycle } from '../../lambdas/core/lifecycle/lifecycle.ts';
import { loadModelVersion } from '../../lambdas/core/model-registry.ts';
import { runCli } from '../../local/cli/tandem-cli.ts';
import { ensureBucket, startEmbeddedAws, type EmbeddedAws } from '../../local/embedded-aws.ts';
import { writeEndpointsFile } from '../../local/endpoints-file.ts';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT } from '../../local/stack.ts';
import { uploadModelPackages } from '../../local/uploader.ts';
import { demoV2Package } from '../support/demo-v2-model.ts';
import { stubEnv, unstubAllEnvs } from '../support/stub-env.ts';

let aws: EmbeddedAws;
let s3: S3Client;
let scratch: string;
let dataDir: string;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON output, asserted field by field
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string; json: any }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t), cwd: scratch });
  const text = out.join('\n');
  let json: unknown;
  if (argv.includes('--json')) json = JSON.parse(text);
  return { code, out: text, err: err.join('\n'), json };
}

const local = ['--data-dir', 'data'];

async function pointerBytes(): Promise<string> {
  const r = await s3.send(
    new GetObjectCommand({ Bucket: LOCAL_BUCKET, Key: `models/${DEMO_MODEL}/current.json` }),
  );
  return r.Body!.transformToString();
}

async function writeV2Folder(version: string): Promise<string> {
  const dir = path.join(scratch, `pkg-${version}`);
  await mkdir(dir, { recursive: true });
  const pkg = await demoV2Package(REPO_ROOT, DEMO_MODEL, version);
  await writeFile(path.join(dir, 'manifest.json'), pkg.manifest);
  await writeFile(path.join(dir, 'model.onnx'), pkg.modelBytes);
  return dir;
}

function lifecycle(store = new S3ModelStore(s3, LOCAL_BUCKET)): ModelLifecycle {
  const source = new S3ModelSource(s3, LOCAL_BUCKET);
  return new ModelLifecycle(store, {
    loadVersion: (name, version) => loadModelVersion(source, name, version),
    identity: async () => 'test-operator',
  });
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'tandem-lifecycle-'));
  dataDir = path.join(scratch, 'data');
  await mkdir(dataDir);
  aws = await startEmbeddedAws({ dynamoPort: 0, s3Port: 0 });
  s3 = new S3Client(aws.clientConfig('s3'));
  await ensureBucket(s3, LOCAL_BUCKET);
  await uploadModelPackages(s3, LOCAL_BUCKET, path.join(REPO_ROOT, 'models'));
  await writeEndpointsFile(dataDir, {
    apiUrl: undefined,
    s3Endpoint: aws.s3Endpoint,
    dynamoEndpoint: aws.dynamoEndpoint,
    region: aws.region,
    credentials: aws.credentials,
    bucket: LOCAL_BUCKET,
    table: 'unused',
    modelsPrefix: 'models/',
    pid: process.pid,
  });
}, 60_000);

afterAll(async () => {
  s3?.destroy();
  await aws?.stop();
  await rm(scratch, { recursive: true, force: true });
}, 60_000);

describe('tandem models (local stack)', () => {
  it('lists the models with their live version, found from the data folder', async () => {
    const r = await cli('models', 'list', ...local, '--json');
    expect(r.code).toBe(0);
    expect(r.json.models).toEqual([{ name: DEMO_MODEL, live: '1.0.0', pointer: 'ok', versions: ['1.0.0'] }]);
  });

  it('says how to start a stack when the data folder has none', async () => {
    const r = await cli('models', 'list', '--data-dir', 'nowhere');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /no local stack found: .*nowhere\/endpoints\.json does not exist. Start one with `npm start`/,
    );
  });

  it('pushes a checked package, and refuses to overwrite a version or publish a mismatched one', async () => {
    const dir = await writeV2Folder('2.0.0');
    const pushed = await cli('models', 'push', dir, '--version', '2.0.0', ...local);
    expect(pushed.err).toBe('');
    expect(pushed.code).toBe(0);
    expect(pushed.out).toMatch(/pushed fraud-detector@2.0.0/);

    const again = await cli('models', 'push', dir, '--version', '2.0.0', ...local, '--json');
    expect(again.code).toBe(1);
    expect(again.json.error.code).toBe('VERSION_EXISTS');

    const mismatched = await cli('models', 'push', dir, '--version', '9.9.9', ...local);
    expect(mismatched.code).toBe(1);
    expect(mismatched.err).toMatch(/does not load as fraud-detector@9.9.9; nothing was uploaded/);
    expect(mismatched.err).toMatch(/version: the manifest says fraud-detector@2.0.0/);
    expect((await cli('models', 'list', ...local, '--json')).json.models[0].versions).toEqual([
      '1.0.0',
      '2.0.0',
    ]);
  }, 30_000);

  it('refuses a promote to a version that does not exist or does not load, leaving the pointer as it was', async () => {
    const before = await pointerBytes();
    const missing = await cli('models', 'promote', DEMO_MODEL, '7.0.0', ...local, '--json');
    expect(missing.code).toBe(1);
    expect(missing.json.error).toMatchObject({ code: 'VERSION_NOT_FOUND' });
    expect(missing.json.error.message).toMatch(/does not exist .*current.json is unchanged \(--force/);

    const pkg = await demoV2Package(REPO_ROOT, DEMO_MODEL, '6.0.0');
    await s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `models/${DEMO_MODEL}/6.0.0/manifest.json`,
        Body: pkg.manifest,
      }),
    );
    await s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `models/${DEMO_MODEL}/6.0.0/model.onnx`,
        Body: 'not onnx',
      }),
    );
    const broken = await cli('models', 'promote', DEMO_MODEL, '6.0.0', ...local);
    expect(broken.code).toBe(1);
    expect(broken.err).toMatch(
      /fraud-detector@6.0.0 does not load \(MODEL_CORRUPT\): the server would keep serving 1.0.0/,
    );
    expect(await pointerBytes()).toBe(before);

    const shown = await cli('models', 'show', DEMO_MODEL, ...local, '--json');
    expect(shown.code).toBe(0);
    expect(shown.json.versions.find((v: { version: string }) => v.version === '6.0.0')).toMatchObject({
      loads: false,
      problems: [{ code: 'MODEL_CORRUPT', message: expect.stringMatching(/model.onnx/) }],
    });
  }, 30_000);

  it('promotes and rolls back with a history of who, when, from, to and why', async () => {
    const promoted = await cli(
      'models',
      'promote',
      DEMO_MODEL,
      '2.0.0',
      '--reason',
      'better recall',
      ...local,
    );
    expect(promoted.err).toBe('');
    expect(promoted.out).toMatch(/fraud-detector: 1.0.0 -> 2.0.0 \(promote, change [0-9a-f]+\)/);
    expect(JSON.parse(await pointerBytes())).toMatchObject({ version: '2.0.0', previous: '1.0.0' });

    const rolled = await cli('models', 'rollback', DEMO_MODEL, ...local);
    expect(rolled.code).toBe(0);
    expect(JSON.parse(await pointerBytes())).toMatchObject({ version: '1.0.0', previous: '2.0.0' });

    const history = await cli('models', 'history', DEMO_MODEL, ...local, '--json');
    expect(history.code).toBe(0);
    expect(history.json.flags).toEqual([]);
    expect(history.json.entries).toEqual([
      expect.objectContaining({
        action: 'promote',
        from: '1.0.0',
        to: '2.0.0',
        reason: 'better recall',
        by: expect.stringMatching(/\(local\)$/),
      }),
      expect.objectContaining({ action: 'rollback', from: '2.0.0', to: '1.0.0' }),
    ]);
    const shown = await cli('models', 'show', DEMO_MODEL, ...local);
    expect(shown.out).toMatch(/live: 1.0.0 \(previous 2.0.0\), changed .* by .*\(local\)/);
  }, 30_000);

  it('lets exactly one of two operators racing from the same pointer win; the other gets a conflict', async () => {
    const store = new S3ModelStore(s3, LOCAL_BUCKET);
    // Both read the pointer before either writes: the race a conditional write must settle.
    let arrived = 0;
    let open!: () => void;
    const bothRead = new Promise<void>((resolve) => (open = resolve));
    const racing = Object.create(store) as S3ModelStore;
    racing.writePointer = async (...args) => {
      if (++arrived === 2) open();
      await bothRead;
      return store.writePointer(...args);
    };
    const before = JSON.parse(await pointerBytes()) as { version: string };
    const results = await Promise.allSettled([
      lifecycle(racing).promote(DEMO_MODEL, '2.0.0', { reason: 'operator A' }),
      lifecycle(racing).promote(DEMO_MODEL, '2.0.0', { reason: 'operator B' }),
    ]);
    expect(before.version).toBe('1.0.0');
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(lost.reason).toBeInstanceOf(PointerConflictError);
    expect((lost.reason as Error).message).toMatch(
      /was changed by someone else since it was read \(its ETag is no longer .*\); nothing was written/,
    );
    const history = await lifecycle().history(DEMO_MODEL);
    expect(history.entries.filter((e) => e.to === '2.0.0' && e.from === '1.0.0')).toHaveLength(2);
    expect(history.flags).toEqual([]);
  }, 30_000);

  it('flags a pointer change whose history record was never written, and shows it from the pointer', async () => {
    const store = new S3ModelStore(s3, LOCAL_BUCKET);
    const crashing = Object.create(store) as S3ModelStore;
    crashing.writeHistory = async () => {
      throw new Error('connection reset');
    };
    const outcome = await lifecycle(crashing).rollback(DEMO_MODEL);
    expect(outcome.historyError).toBe('connection reset');
    const history = await cli('models', 'history', DEMO_MODEL, ...local);
    expect(history.code).toBe(1);
    expect(history.out).toMatch(/2\.0\.0 +-> 1\.0\.0 +by test-operator {2}\[NOT RECORDED\]/);
    expect(history.out).toMatch(
      /! the live pointer \(change [0-9a-f]+: 2.0.0 -> 1.0.0 .*\) has no history record/,
    );
  }, 30_000);

  it('flags a current.json written by hand, and rolls it back by the history', async () => {
    // The last recorded change set 2.0.0 (the race's winner; the crashed rollback has no record).
    await s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_BUCKET,
        Key: `models/${DEMO_MODEL}/current.json`,
        Body: '{"version": "1.0.0"}',
      }),
    );
    const history = await cli('models', 'history', DEMO_MODEL, ...local, '--json');
    expect(history.code).toBe(1);
    expect(history.json.flags).toEqual([
      'current.json names 1.0.0 but the last recorded change set 2.0.0: it was written outside the tandem command',
    ]);
    // Without a "previous" in the pointer, rollback goes by the last recorded change that set 1.0.0.
    const rolled = await cli('models', 'rollback', DEMO_MODEL, ...local, '--json');
    expect(rolled.code).toBe(0);
    expect(rolled.json.entry).toMatchObject({ action: 'rollback', from: '1.0.0', to: '2.0.0' });
  }, 30_000);

  it('starts, shows, records and ends a canary; refuses one of the live version or a missing one', async () => {
    const started = await cli('models', 'canary', DEMO_MODEL, '1.0.0', '--percent', '20', ...local);
    expect(started.err).toBe('');
    expect(started.out).toMatch(/1\.0\.0 takes 20% of the instances, 2\.0\.0 the rest/);
    expect(JSON.parse(await pointerBytes())).toMatchObject({
      version: '2.0.0',
      canary: { version: '1.0.0', percent: 20 },
    });
    const shown = await cli('models', 'show', DEMO_MODEL, ...local);
    expect(shown.out).toMatch(/canary: 1\.0\.0 takes 20% of the instances/);
    expect(shown.out).toMatch(/1\.0\.0\s+canary 20%\s+loads/);

    const live = await cli('models', 'canary', DEMO_MODEL, '2.0.0', '--percent', '5', ...local, '--json');
    expect(live.code).toBe(1);
    expect(live.json.error.code).toBe('ALREADY_LIVE');
    const missing = await cli('models', 'canary', DEMO_MODEL, '7.0.0', '--percent', '5', ...local, '--json');
    expect(missing.json.error.code).toBe('VERSION_NOT_FOUND');

    const ended = await cli('models', 'canary', DEMO_MODEL, '1.0.0', '--percent', '0', ...local);
    expect(ended.code).toBe(0);
    expect(JSON.parse(await pointerBytes()).canary).toBeUndefined();
    const history = await cli('models', 'history', DEMO_MODEL, ...local, '--json');
    expect(history.json.flags).toEqual([]);
    expect(
      history.json.entries
        .slice(-2)
        .map((e: { action: string; to: string; percent: number }) => [e.action, e.to, e.percent]),
    ).toEqual([
      ['canary', '1.0.0', 20],
      ['canary', '1.0.0', 0],
    ]);
  }, 60_000);

  it('acts on a deployed stack found from its CloudFormation outputs', async () => {
    const send = jest.fn(async () => ({
      Stacks: [{ Outputs: [{ OutputKey: 'DataBucketName', OutputValue: LOCAL_BUCKET }] }],
    }));
    // The stack's S3 is the embedded one here (the SDK reads AWS_ENDPOINT_URL_S3 and the key pair).
    for (const [k, v] of Object.entries(aws.env())) stubEnv(k, v);
    stubEnv('AWS_PROFILE', undefined as unknown as string);
    try {
      const out: string[] = [];
      const code = await runCli(['models', 'list', '--stack', 'Tandem', '--region', aws.region, '--json'], {
        out: (t) => out.push(t),
        err: (t) => out.push(t),
        cwd: scratch,
        cloudFormation: { send } as never,
      });
      expect(code).toBe(0);
      const json = JSON.parse(out.join('\n'));
      expect(json.target).toBe(`stack Tandem (${aws.region})`);
      expect(json.models[0]).toMatchObject({ name: DEMO_MODEL, versions: ['1.0.0', '2.0.0', '6.0.0'] });
      expect(send).toHaveBeenCalledTimes(1);
      expect((send.mock.calls[0] as unknown as [{ input: unknown }])[0].input).toEqual({
        StackName: 'Tandem',
      });
    } finally {
      unstubAllEnvs();
    }
  }, 30_000);

  it('names a stack that does not exist', async () => {
    const send = jest.fn(async () => {
      throw Object.assign(new Error('Stack with id Nope does not exist'), { name: 'ValidationError' });
    });
    const err: string[] = [];
    const code = await runCli(['models', 'list', '--stack', 'Nope', '--region', 'eu-west-1'], {
      out: () => undefined,
      err: (t) => err.push(t),
      cwd: scratch,
      cloudFormation: { send } as never,
    });
    expect(code).toBe(1);
    expect(err.join('\n')).toMatch(/no stack named "Nope" in this account and region/);
  });
});
