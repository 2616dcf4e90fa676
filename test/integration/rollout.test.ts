/**
 * `tandem models rollout` end to end on the local stack, under traffic: the rollout state machine runs in
 * the command (aws-local-stepfunctions, the deployed definition) and reads the per-version metrics the
 * stack's API writes to the data folder. A good candidate (1.0.0's model republished) is promoted through
 * 10, 50 and 100 % with every step and check in the history; a candidate whose predictions differ grossly
 * (it says "fraud" for everything) is rolled back with the failing check named and a notification; an
 * operator's pointer change during a rollout stops it and is left as the operator set it; a second
 * rollout is refused while one runs.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ModelStore } from '../../lambdas/adapters/s3-model-store.ts';
import { ModelLifecycle } from '../../lambdas/core/lifecycle/lifecycle.ts';
import { loadModelVersion } from '../../lambdas/core/model-registry.ts';
import { runCli } from '../../local/cli/tandem-cli.ts';
import { readDemoDataset } from '../../local/demo-dataset.ts';
import { writeEndpointsFile } from '../../local/endpoints-file.ts';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT, startLocalStack, type LocalStack } from '../../local/stack.ts';
import { buildModel } from '../../tools/onnx-builder.ts';
import { stubEnv, unstubAllEnvs } from '../support/stub-env.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const demo = await readDemoDataset();
const FEATURES = demo.rows.slice(0, 20).map((row) => ({ features: demo.featuresOf(row) }));

let stack: LocalStack;
let scratch: string;
let dataDir: string;
let lifecycle: ModelLifecycle;
let traffic: { stop: () => Promise<number> } | undefined;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON output, asserted field by field
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string; json: any }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli([...argv, '--data-dir', dataDir], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    cwd: scratch,
  });
  const text = out.join('\n');
  return {
    code,
    out: text,
    err: err.join('\n'),
    json: argv.includes('--json') ? JSON.parse(text) : undefined,
  };
}

/** Requests of 20 instances with features (no ids: each goes to a version at random), back to back. */
function startTraffic(): { stop: () => Promise<number> } {
  let running = true;
  let failed = 0;
  const loop = (async () => {
    while (running) {
      const response = await fetch(`${stack.apiUrl}/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ instances: FEATURES }),
      });
      if (response.status !== 200) failed++;
      await response.arrayBuffer();
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return failed;
    },
  };
}

async function publish(version: string, model: Uint8Array): Promise<void> {
  const manifest = JSON.parse(
    await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, '1.0.0', 'manifest.json'), 'utf8'),
  ) as Record<string, unknown>;
  manifest['version'] = version;
  const prefix = `models/${DEMO_MODEL}/${version}`;
  await stack.objects.writeBytes(LOCAL_BUCKET, `${prefix}/model.onnx`, model, 'application/octet-stream');
  await stack.objects.writeBytes(
    LOCAL_BUCKET,
    `${prefix}/manifest.json`,
    new TextEncoder().encode(JSON.stringify(manifest)),
    'application/json',
  );
}

/** The demo model's interface, answering class 1 ("fraud") with probability ~1 for every input. */
function alwaysFraud(): Uint8Array {
  return buildModel({
    inputs: [
      { name: 'numeric', type: { tensor: 'float', shape: ['N', 15] } },
      { name: 'merchant_category', type: { tensor: 'string', shape: ['N', 1] } },
      { name: 'channel', type: { tensor: 'string', shape: ['N', 1] } },
    ],
    outputs: [
      { name: 'label', type: { tensor: 'int64', shape: ['N'] } },
      { name: 'probabilities', type: { seqMap: { key: 'int64' } } },
    ],
    nodes: [
      {
        op: 'LinearClassifier',
        domain: 'ai.onnx.ml',
        inputs: ['numeric'],
        outputs: ['label', 'probability_tensor'],
        attrs: {
          classlabels_ints: { ints: [0, 1] },
          coefficients: { floats: new Array(30).fill(0) },
          intercepts: { floats: [-5, 5] },
          post_transform: 'SOFTMAX',
        },
      },
      {
        op: 'ZipMap',
        domain: 'ai.onnx.ml',
        inputs: ['probability_tensor'],
        outputs: ['probabilities'],
        attrs: { classlabels_int64s: { ints: [0, 1] } },
      },
    ],
  });
}

/**
 * The pointer as stored. s3rver may answer a read that races a write of the same key with a cut body or an
 * aborted response (S3 does not): such a read is tried again.
 */
async function pointer(): Promise<Record<string, unknown>> {
  for (let attempt = 1; ; attempt++) {
    try {
      const bytes = await stack.objects.readBytes(LOCAL_BUCKET, `models/${DEMO_MODEL}/current.json`);
      return JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    } catch (error) {
      if (attempt === 5) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'tandem-rollout-'));
  dataDir = path.join(scratch, 'data');
  await mkdir(dataDir);
  stack = await startLocalStack({
    apiPort: 0,
    seed: false,
    dataDir,
    handlerEnv: { MODEL_REFRESH_SECONDS: '1' },
  });
  await writeEndpointsFile(dataDir, {
    apiUrl: stack.apiUrl,
    s3Endpoint: stack.aws.s3Endpoint,
    dynamoEndpoint: stack.aws.dynamoEndpoint,
    region: stack.aws.region,
    credentials: stack.aws.credentials,
    bucket: LOCAL_BUCKET,
    table: 'unused',
    modelsPrefix: 'models/',
    pid: process.pid,
  });
  const original = await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, '1.0.0', 'model.onnx'));
  await publish('1.1.0', original);
  await publish('1.2.0', original);
  await publish('9.0.0', alwaysFraud());
  const source = new S3ModelSource(stack.s3, LOCAL_BUCKET);
  lifecycle = new ModelLifecycle(new S3ModelStore(stack.s3, LOCAL_BUCKET), {
    loadVersion: (name, version) => loadModelVersion(source, name, version),
    identity: async () => 'operator',
  });
  // The local machine is slow and shared: latency is not what these tests are about.
  stubEnv('ROLLOUT_MAX_LATENCY_MS', '10000');
  stubEnv('ROLLOUT_MIN_INSTANCES', '10');
  traffic = startTraffic();
}, 180_000);

afterAll(async () => {
  const failed = await traffic?.stop();
  unstubAllEnvs();
  await stack?.stop();
  await rm(scratch, { recursive: true, force: true });
  expect(failed).toBe(0);
}, 60_000);

describe('models rollout on the local stack', () => {
  it('promotes a good candidate through 10, 50 and 100 %, every step and check in the history', async () => {
    const run = await cli('models', 'rollout', DEMO_MODEL, '1.1.0', '--steps', '10,50,100', '--bake', '3s');
    expectWithMessage(run.code, `${run.out}\n${run.err}`).toBe(0);
    expect(run.out).toMatch(/step 1 of 3: 1\.1\.0 takes 10%/);
    expect(run.out).toMatch(/promoted after 3 healthy step\(s\)/);
    expect(await pointer()).toMatchObject({ version: '1.1.0', previous: '1.0.0' });
    expect((await pointer())['canary']).toBeUndefined();

    const status = await cli('models', 'rollout-status', DEMO_MODEL, '--json');
    const report = status.json.rollout;
    expect(report).toMatchObject({
      status: 'promoted',
      candidate: '1.1.0',
      live: '1.0.0',
      steps: [10, 50, 100],
    });
    expect(
      report.entries.map((e: { action: string; percent?: number }) => [e.action, e.percent ?? null]),
    ).toEqual([
      ['rollout-step', 10],
      ['rollout-check', 10],
      ['rollout-step', 50],
      ['rollout-check', 50],
      ['rollout-step', 100],
      ['rollout-check', 100],
      ['promote', null],
    ]);
    for (const check of report.entries.filter((e: { action: string }) => e.action === 'rollout-check')) {
      expectWithMessage(check.rollout.passed, JSON.stringify(check.rollout.checks)).toBe(true);
      const traffic = check.rollout.checks.find((c: { check: string }) => c.check === 'traffic');
      expect(traffic.value).toBeGreaterThanOrEqual(10);
    }
    // The history the operators read has them too, and nothing to flag.
    const history = await cli('models', 'history', DEMO_MODEL);
    expect(history.code).toBe(0);
  }, 120_000);

  it('rolls back a candidate whose predictions differ grossly, naming the check, and notifies', async () => {
    const run = await cli('models', 'rollout', DEMO_MODEL, '9.0.0', '--steps', '20,100', '--bake', '3s');
    expectWithMessage(run.code, `${run.out}\n${run.err}`).toBe(1);
    expect(run.out).toMatch(/FAIL shift/);
    expect(run.out).toMatch(/notified: Tandem rollout rolled back: fraud-detector@9\.0\.0/);
    const live = await pointer();
    expect(live).toMatchObject({ version: '1.1.0' });
    expect(live['canary']).toBeUndefined();

    const status = await cli('models', 'rollout-status', DEMO_MODEL, '--json');
    const report = status.json.rollout;
    expect(report).toMatchObject({ status: 'rolled-back', candidate: '9.0.0', step: 1, percent: 20 });
    expect(report.ended).toMatch(
      /^rolled back: step 1 \(20%\) failed: shift: \|share of label [01]: 9\.0\.0 - 1\.1\.0\|/,
    );
    const shift = report.lastChecks.find((c: { check: string }) => c.check === 'shift');
    expect(shift.passed).toBe(false);
    expect(shift.value).toBeGreaterThan(0.5);
    expect(shift.threshold).toBeLessThan(shift.value);
  }, 120_000);

  it("stops at an operator's change, leaving the pointer as the operator set it; a second rollout is refused meanwhile", async () => {
    const running = cli('models', 'rollout', DEMO_MODEL, '1.2.0', '--steps', '10,100', '--bake', '4s');
    const deadline = Date.now() + 20_000;
    while (((await pointer())['canary'] as { rollout?: string } | undefined)?.rollout === undefined) {
      if (Date.now() > deadline) throw new Error('the rollout never set its canary');
      await new Promise((r) => setTimeout(r, 100));
    }
    const second = await cli('models', 'rollout', DEMO_MODEL, '1.2.0', '--bake', '1s');
    expect(second.code).toBe(1);
    expect(second.err).toMatch(
      /one rollout per model at a time \(models rollout-status fraud-detector; if the process running it was killed, end its canary: models canary fraud-detector 1\.2\.0 --percent 0\) \(ROLLOUT_RUNNING\)/,
    );

    await lifecycle.canary(DEMO_MODEL, '1.2.0', 30, { reason: 'I take over' });
    const run = await running;
    expectWithMessage(run.code, `${run.out}\n${run.err}`).toBe(1);
    expect(run.out).toMatch(
      /current\.json was changed outside the rollout \(change \w+ by operator at [^:]+:\d\d:[\d.]+Z: live 1\.1\.0, canary 1\.2\.0 at 30%\)/,
    );
    expect(await pointer()).toMatchObject({ version: '1.1.0', canary: { version: '1.2.0', percent: 30 } });
    expect((await pointer())['canary']).not.toHaveProperty('rollout');

    const status = await cli('models', 'rollout-status', DEMO_MODEL);
    expect(status.out).toMatch(/status: stopped \(step 1, 10%\)/);
  }, 120_000);

  it('on a deployed stack: checks what it can, then starts an execution of the rollout state machine', async () => {
    // The stack's S3 is the embedded one; Step Functions is a recorder that answers StartExecution.
    const calls: { target: string; body: Record<string, unknown> }[] = [];
    const sfn = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        calls.push({ target: String(request.headers['x-amz-target']), body: JSON.parse(body) });
        response.setHeader('content-type', 'application/x-amz-json-1.0');
        response.end(
          JSON.stringify({ executionArn: 'arn:aws:states:us-east-1:1:execution:r:x', startDate: 1 }),
        );
      });
    });
    await new Promise<void>((resolve) => sfn.listen(0, '127.0.0.1', resolve));
    const send = jest.fn(async () => ({
      Stacks: [
        {
          Outputs: [
            { OutputKey: 'DataBucketName', OutputValue: LOCAL_BUCKET },
            { OutputKey: 'RolloutStateMachineArn', OutputValue: 'arn:aws:states:us-east-1:1:stateMachine:r' },
          ],
        },
      ],
    }));
    for (const [k, v] of Object.entries(stack.aws.env())) stubEnv(k, v);
    stubEnv('AWS_ENDPOINT_URL_SFN', `http://127.0.0.1:${(sfn.address() as AddressInfo).port}`);
    try {
      const run = async (...argv: string[]) => {
        const out: string[] = [];
        const code = await runCli([...argv, '--stack', 'Tandem', '--region', stack.aws.region], {
          out: (t) => out.push(t),
          err: (t) => out.push(t),
          cwd: scratch,
          cloudFormation: { send } as never,
        });
        return { code, out: out.join('\n') };
      };
      const refused = await run('models', 'rollout', DEMO_MODEL, '1.2.0');
      expect(refused.code).toBe(1);
      expect(refused.out).toMatch(/a rollout starts from a pointer without one/);
      expect(calls).toEqual([]);

      await lifecycle.canary(DEMO_MODEL, '1.2.0', 0);
      const started = await run(
        'models',
        'rollout',
        DEMO_MODEL,
        '1.2.0',
        '--steps',
        '25,100',
        '--bake',
        '10m',
      );
      expectWithMessage(started.code, started.out).toBe(0);
      expect(calls).toHaveLength(1);
      expect(calls[0]!.target).toBe('AWSStepFunctions.StartExecution');
      const input = JSON.parse(String(calls[0]!.body['input'])) as Record<string, unknown>;
      expect(calls[0]!.body).toMatchObject({
        stateMachineArn: 'arn:aws:states:us-east-1:1:stateMachine:r',
        name: input['rolloutId'],
      });
      expect(input).toMatchObject({
        model: DEMO_MODEL,
        candidate: '1.2.0',
        steps: [25, 100],
        bakeSeconds: 600,
      });
      expect(started.out).toMatch(
        new RegExp(`rollout ${String(input['rolloutId'])} of fraud-detector@1\\.2\\.0 started`),
      );
      // Nothing was written: the state machine's Start step sets the canary.
      expect((await pointer())['canary']).toBeUndefined();
    } finally {
      unstubAllEnvs();
      stubEnv('ROLLOUT_MAX_LATENCY_MS', '10000');
      stubEnv('ROLLOUT_MIN_INSTANCES', '10');
      sfn.close();
    }
  }, 60_000);
});
