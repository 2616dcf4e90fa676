/**
 * The deployed artifacts, not the sources: the stack is synthesized as `cdk synth` does, each function's
 * asset folder is copied to a bare folder, and the bundles are run the way the Lambda runtimes run them
 * (test/deployed/support/lambda-sandbox.ts) on Node 20 and Node 22, against dynalite and s3rver, with the
 * environment the template gives each function. The batch lane goes the deployed way: an S3 "Object
 * Created" event that the stack's EventBridge rule matches invokes the trigger, whose StartExecution runs
 * the synthesized state machine definition, whose tasks invoke plan, score and finalize by their ARNs.
 */
import { CreateTableCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RunManifest } from '../../lambdas/core/batch/contracts.ts';
import { startEmbeddedAws, type EmbeddedAws } from '../../local/embedded-aws.ts';
import { uploadModelPackages } from '../../local/uploader.ts';
import { csvLine, loadDemoData, typedRecord, type DemoData } from '../support/batch-harness.ts';
import {
  ACCOUNT,
  REGION,
  REPO_ROOT,
  synthesize,
  type DeployedFunction,
  type DeployedStack,
} from './support/assembly.ts';
import { matchesPattern } from './support/event-pattern.ts';
import {
  LambdaSandbox,
  nodeMajor,
  RUNTIMES,
  type Invocation,
  type NodeRuntime,
} from './support/lambda-sandbox.ts';
import { LocalControlPlane } from './support/local-control-plane.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const MODEL = 'fraud-detector';
const ROWS = 120;

let stack: DeployedStack;
let aws: EmbeddedAws;
let s3: S3Client;
let dynamo: DynamoDBClient;
let sandbox: LambdaSandbox;
let demo: DemoData;
let bucket: string;
let table: string;
const planes = new Map<NodeRuntime['id'], { plane: LocalControlPlane; endpoint: string }>();

beforeAll(async () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-deployed-synth-'));
  const synthStarted = performance.now();
  stack = synthesize(outdir);
  console.log(`deployed tier: synth ${Math.round(performance.now() - synthStarted)} ms`);
  bucket = new URL(stack.fn('ApiPredict').environment['MODELS_URI']!).hostname;
  table = stack.fn('ApiPredict').environment['TABLE_NAME']!;
  demo = await loadDemoData();

  aws = await startEmbeddedAws({ buckets: [bucket] });
  s3 = new S3Client(aws.clientConfig('s3'));
  dynamo = new DynamoDBClient(aws.clientConfig('dynamodb'));
  // The table as the template declares it (key schema and attribute types).
  const tableProps = stack.template.Resources[table]!.Properties!;
  await dynamo.send(
    new CreateTableCommand({
      TableName: table,
      KeySchema: tableProps['KeySchema'] as never,
      AttributeDefinitions: tableProps['AttributeDefinitions'] as never,
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
  await uploadModelPackages(s3, bucket, path.join(REPO_ROOT, 'models'));

  sandbox = new LambdaSandbox(stack.functions, aws.env());
  for (const runtime of RUNTIMES) {
    const plane = new LocalControlPlane({
      stateMachineArn: stack.stateMachine.arn,
      definition: stack.stateMachine.definition,
      functions: stack.functions,
      s3,
      retryIntervalMs: 10,
      invoke: (fn, event) => invokeOrThrow(fn, runtime, event),
    });
    planes.set(runtime.id, { plane, endpoint: await plane.start() });
  }
}, 240_000);

afterAll(async () => {
  if (sandbox) console.log(`deployed tier: processes (cold start + invocation), mean\n${sandbox.summary()}`);
  for (const { plane } of planes.values()) await plane.stop();
  await aws?.stop();
  sandbox?.remove();
  if (stack) fs.rmSync(stack.outdir, { recursive: true, force: true });
}, 60_000);

/** Invokes a function with the endpoints of the runtime's control plane; a failure throws like Lambda's. */
async function invoke(fn: DeployedFunction, runtime: NodeRuntime, event: unknown): Promise<Invocation> {
  const endpoint = planes.get(runtime.id)!.endpoint;
  return sandbox.invoke(fn, runtime, event, {
    AWS_ENDPOINT_URL_SFN: endpoint,
    AWS_ENDPOINT_URL_EVENTBRIDGE: endpoint,
  });
}

/** Step Functions' view of a Lambda task: the result, or an error named by errorType with the JSON cause. */
async function invokeOrThrow(fn: DeployedFunction, runtime: NodeRuntime, event: unknown): Promise<unknown> {
  const invocation = await invoke(fn, runtime, event);
  if (invocation.ok) return invocation.result;
  const error = new Error(JSON.stringify(invocation.error));
  error.name = invocation.error!.errorType;
  throw error;
}

function failures(invocations: readonly Invocation[]): string[] {
  return invocations
    .filter((i) => !i.ok)
    .map(
      (i) => `${i.fn} (${i.phase}): ${i.error?.errorType} ${i.error?.errorMessage}\n${i.logs.slice(-2000)}`,
    );
}

/** The EventBridge event S3 sends for an upload (detail-type "Object Created"). */
function objectCreated(key: string, etag: string, size: number): Record<string, unknown> {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Object Created',
    source: 'aws.s3',
    account: ACCOUNT,
    time: new Date().toISOString(),
    region: REGION,
    resources: [`arn:aws:s3:::${bucket}`],
    detail: {
      version: '0',
      bucket: { name: bucket },
      object: { key, size, etag, sequencer: Date.now().toString(16).toUpperCase().padStart(18, '0') },
      'request-id': randomUUID(),
      requester: ACCOUNT,
      'source-ip-address': '127.0.0.1',
      reason: 'PutObject',
    },
  };
}

function apiEvent(method: string, rawPath: string, body: unknown): Record<string, unknown> {
  const now = new Date();
  return {
    version: '2.0',
    routeKey: `${method} ${rawPath}`,
    rawPath,
    rawQueryString: '',
    headers: { 'content-type': 'application/json', host: 'api.example.com', 'user-agent': 'deployed-tier' },
    requestContext: {
      accountId: ACCOUNT,
      apiId: 'local',
      authorizer: {
        iam: { accountId: ACCOUNT, callerId: 'AIDAEXAMPLE', userArn: `arn:aws:iam::${ACCOUNT}:user/test` },
      },
      domainName: 'api.example.com',
      domainPrefix: 'api',
      http: {
        method,
        path: rawPath,
        protocol: 'HTTP/1.1',
        sourceIp: '127.0.0.1',
        userAgent: 'deployed-tier',
      },
      requestId: randomUUID(),
      routeKey: `${method} ${rawPath}`,
      stage: '$default',
      time: now.toISOString(),
      timeEpoch: now.getTime(),
    },
    body: JSON.stringify(body),
    isBase64Encoded: false,
  };
}

async function readText(key: string): Promise<string> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return object.Body!.transformToString();
}

const FORMATS = ['CSV', 'gzipped CSV', 'JSON Lines', 'Parquet'] as const;

/** The demo rows of a format's upload: ROWS of them, other ids for each format (runs go side by side). */
function rowsOf(format: (typeof FORMATS)[number]): string[][] {
  const at = FORMATS.indexOf(format) * ROWS;
  return demo.rows.slice(at, at + ROWS);
}

/** A format's upload: its file name (after `prefix`) and its bytes. */
function dataset(prefix: string, format: (typeof FORMATS)[number]): { file: string; body: Uint8Array } {
  const rows = rowsOf(format);
  const csv = `${[csvLine(demo.header), ...rows.map((r) => csvLine(r))].join('\n')}\n`;
  const jsonl = `${rows.map((r) => JSON.stringify(typedRecord(demo, r))).join('\n')}\n`;
  const parquetType = (name: string) =>
    ({ boolean: 'BOOLEAN', number: 'DOUBLE', integer: 'INT32' })[demo.types.get(name) ?? ''] ?? 'STRING';
  const parquet = parquetWriteBuffer({
    columnData: demo.header.map((name) => ({
      name,
      data: rows.map((r) => typedRecord(demo, r)[name]),
      type: parquetType(name),
    })),
    rowGroupSize: 50,
  } as never);
  const encoder = new TextEncoder();
  const files = {
    CSV: { file: `${prefix}-transactions.csv`, body: encoder.encode(csv) },
    'gzipped CSV': { file: `${prefix}-transactions.csv.gz`, body: gzipSync(csv) },
    'JSON Lines': { file: `${prefix}-transactions.jsonl`, body: encoder.encode(jsonl) },
    Parquet: { file: `${prefix}-transactions.parquet`, body: new Uint8Array(parquet) },
  };
  return files[format];
}

interface RunOutcome {
  readonly runId: string;
  readonly status: string;
  readonly manifest: RunManifest;
  readonly invocations: Invocation[];
}

/** Uploads a dataset under incoming/, delivers the S3 event as the stack's rule would, awaits the run. */
async function runUpload(runtime: NodeRuntime, key: string, body: Uint8Array): Promise<RunOutcome> {
  const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  const event = objectCreated(key, put.ETag!.replace(/"/g, ''), body.byteLength);
  expectWithMessage(matchesPattern(event, stack.uploadRule.pattern), `the upload rule matches ${key}`).toBe(
    true,
  );
  const triggered = await invoke(stack.uploadRule.target, runtime, event);
  expect(failures([triggered])).toEqual([]);
  const [outcome] = triggered.result as Array<{ result: string; runId: string }>;
  expect(outcome?.result).toBe('started');
  const execution = planes.get(runtime.id)!.plane.executions.get(outcome!.runId);
  expectWithMessage(execution, `execution ${outcome!.runId}`).toBeDefined();
  const { status } = await execution!.done;
  // Runs go on side by side: a run's invocations are those whose event names it.
  const invocations = [
    triggered,
    ...sandbox.invocations.filter((i) => i !== triggered && JSON.stringify(i.event).includes(outcome!.runId)),
  ];
  const finalize = invocations.find(
    (i) =>
      i.fn === stack.fn('BatchFinalize').name && i.ok && JSON.stringify(i.result).includes(outcome!.runId),
  );
  expectWithMessage(
    finalize,
    `finalize ran for ${outcome!.runId}:\n${failures(invocations).join('\n')}`,
  ).toBeDefined();
  const manifestKey = (finalize!.result as { manifestKey: string }).manifestKey;
  const manifest = JSON.parse(await readText(manifestKey)) as RunManifest;
  return { runId: outcome!.runId, status, manifest, invocations };
}

describe('the bundles in bare folders', () => {
  it('reach no package of the repository: only their own node_modules and the runtime SDK', () => {
    for (const fn of stack.functions) {
      for (const runtime of RUNTIMES) {
        for (const repoOnly of ['zod', '@aws-lambda-powertools/logger', 'hyparquet', 'jest']) {
          expectWithMessage(
            sandbox.resolveFrom(fn, runtime, repoOnly),
            `${fn.name} -> ${repoOnly}`,
          ).toBeUndefined();
        }
        expectWithMessage(sandbox.resolveFrom(fn, runtime, '@aws-sdk/client-s3'), fn.name).toMatch(
          new RegExp(`^${sandbox.runtimeDir}/node_modules/@aws-sdk/client-s3/`),
        );
      }
    }
    // The runtime folder holds the SDK and its dependencies only.
    const runtimePackages = fs.readdirSync(path.join(sandbox.runtimeDir, 'node_modules'));
    expect(runtimePackages).toContain('@aws-sdk');
    expect(runtimePackages).not.toContain('@aws-lambda-powertools');
    expect(runtimePackages).not.toContain('zod');
  });

  it('are the eight functions of the stack, on nodejs22.x, each handler an ES module', () => {
    expect(stack.functions.map((f) => f.logicalId.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([
      'TandemApiPredictFunction',
      'TandemBatchFinalizeFunction',
      'TandemBatchPlanFunction',
      'TandemBatchScoreFunction',
      'TandemBatchTriggerFunction',
      'TandemDriftMonitorFunction',
      'TandemRefreshFunction',
      'TandemRolloutStepFunction',
    ]);
    for (const fn of stack.functions) {
      expectWithMessage(fn.runtime, fn.name).toBe('nodejs22.x');
      expectWithMessage(fn.handler, fn.name).toBe('index.handler');
      expectWithMessage(fs.existsSync(path.join(sandbox.taskDir(fn), 'index.mjs')), fn.name).toBe(true);
      expectWithMessage(fn.environment['NODE_OPTIONS'], fn.name).toContain('--enable-source-maps');
    }
  });
});

describe.each(RUNTIMES)('on $id', (runtime) => {
  it(`runs Node ${runtime.major}`, () => {
    expect(nodeMajor(runtime)).toBe(runtime.major);
  });

  const WRONG_COLUMNS = 'wrong columns';
  const runs = new Map<string, Promise<RunOutcome>>();

  // The runs of this runtime go on side by side, as uploads do; each test below checks one of them.
  beforeAll(async () => {
    const uploads: [string, string, Uint8Array][] = FORMATS.map((format) => {
      const upload = dataset(`node${runtime.major}`, format);
      return [format, upload.file, upload.body];
    });
    uploads.push([
      WRONG_COLUMNS,
      `node${runtime.major}-wrong.csv`,
      new TextEncoder().encode('transaction_id,colour\nt-1,blue\n'),
    ]);
    for (const [label, file, body] of uploads) {
      const run = runUpload(runtime, `incoming/${MODEL}/${file}`, body);
      run.catch(() => undefined); // awaited (and reported) by its test
      runs.set(label, run);
    }
    await Promise.allSettled(runs.values());
  }, 240_000);

  it.each(FORMATS)('completes a batch run of a %s upload', async (format) => {
    const run = await runs.get(format)!;
    const why = `${format}: ${run.manifest.error?.code ?? ''} ${run.manifest.error?.message ?? ''}\n${failures(run.invocations).join('\n')}`;
    expectWithMessage(run.status, why).toBe('SUCCEEDED');
    expectWithMessage(run.manifest.status, why).toBe('SUCCEEDED');
    expectWithMessage(run.manifest.counts, why).toMatchObject({
      read: ROWS,
      scored: ROWS,
      rejected: 0,
      writtenToTable: ROWS,
    });
    expectWithMessage(run.manifest.chunks, why).toMatchObject({
      completed: run.manifest.chunks.planned,
      failed: 0,
    });
    expectWithMessage(run.manifest.model, why).toEqual({ name: MODEL, version: '1.0.0' });
    const parts = await Promise.all(run.manifest.outputs.parts.map(readText));
    const rows = parts.flatMap((p) =>
      p
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    );
    expectWithMessage(rows.map((r) => r['id']).sort(), why).toEqual(
      rowsOf(format)
        .map((r) => r[0])
        .sort(),
    );
    const event = planes
      .get(runtime.id)!
      .plane.events.find(
        (e) => e.DetailType === 'Tandem Batch Run Completed' && e.Detail.includes(run.runId),
      );
    expectWithMessage(JSON.parse(event?.Detail ?? '{}'), why).toMatchObject({
      runId: run.runId,
      status: 'SUCCEEDED',
    });
  });

  it("fails a dataset without the model's columns at once: the input error is not retried", async () => {
    const run = await runs.get(WRONG_COLUMNS)!;
    expect(run.status).toBe('FAILED');
    expect(run.manifest.error).toMatchObject({ code: 'MISSING_COLUMNS' });
    // Step Functions matches the error's name (BatchInputError) against the definition's non-retryable
    // errors: one attempt only. A minified class name would be retried.
    const plans = run.invocations.filter((i) => i.fn === stack.fn('BatchPlan').name);
    expect(plans.map((i) => i.error?.errorType)).toEqual(['BatchInputError']);
  });

  it('answers a prediction from the model, and one from the table filled by the batch run', async () => {
    const predict = stack.fn('ApiPredict');
    const [id, ...fields] = demo.rows[FORMATS.length * ROWS + 5]!;
    const features = Object.fromEntries(
      Object.entries(typedRecord(demo, [id!, ...fields])).filter(([name]) => name !== demo.header[0]),
    );
    const fromModel = await invoke(
      predict,
      runtime,
      apiEvent('POST', '/predict', { id: `new-${id}`, features }),
    );
    expect(failures([fromModel])).toEqual([]);
    const modelAnswer = fromModel.result as { statusCode: number; body: string };
    expectWithMessage(modelAnswer.statusCode, modelAnswer.body).toBe(200);
    expect(JSON.parse(modelAnswer.body)).toMatchObject({
      id: `new-${id}`,
      source: 'model',
      model: { name: MODEL, version: '1.0.0' },
    });

    expectWithMessage((await runs.get('CSV')!).status, 'the CSV run of this runtime').toBe('SUCCEEDED');
    const cachedId = rowsOf('CSV')[0]![0]!;
    const item = await dynamo.send(
      new GetItemCommand({ TableName: table, Key: { pk: { S: `${MODEL}#1.0.0#${cachedId}` } } }),
    );
    expect(item.Item?.['source']).toEqual({ S: 'batch' });
    const fromTable = await invoke(predict, runtime, apiEvent('POST', '/predict', { id: cachedId }));
    expect(failures([fromTable])).toEqual([]);
    const tableAnswer = fromTable.result as { statusCode: number; body: string };
    expectWithMessage(tableAnswer.statusCode, tableAnswer.body).toBe(200);
    expect(JSON.parse(tableAnswer.body)).toMatchObject({
      id: cachedId,
      source: 'cache',
      model: { name: MODEL },
    });
  }, 240_000);
});
