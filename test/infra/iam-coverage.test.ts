/**
 * The synthesized IAM policies against what the deployed code really does. The real handlers
 * (lambdas/handlers/*.ts, wired exactly as in Lambda: env vars, the shared SDK clients) run against s3rver
 * and dynalite through a batch run of a CSV upload, of a gzipped one (staging copy), of a deleted upload
 * (failure path), and through the API's routes. Every AWS call they make is recorded and turned into the IAM
 * request(s) AWS would authorize, which must be allowed by the policies of that function's role in the
 * synthesized template; and every S3 grant of lib/bucket-access.ts must be used by some call.
 *
 * Step Functions and EventBridge have no emulator here: their calls are recorded and answered with the
 * service's minimal success shape, since only the call itself (action, resource, condition keys) is under
 * test. Conditions are evaluated as IAM does (a key the request does not carry matches nothing), and S3's
 * answer to a missing key is the one its authorization gives: 404 only when the role may list the bucket
 * with no condition, 403 otherwise (then the adapters list the key itself).
 */
import type { InitializeMiddleware, MiddlewareStack } from '@smithy/types';
import type { Template } from 'aws-cdk-lib/assertions';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RolloutRequest, RolloutState } from '../../lambdas/core/lifecycle/rollout.ts';
import {
  batchDynamoClient,
  cloudWatchClient,
  dynamoClient,
  eventBridgeClient,
  s3Client,
  sfnClient,
} from '../../lambdas/adapters/aws-clients.ts';
import type { ChunkItem, RunInput } from '../../lambdas/core/batch/contracts.ts';
import type { FinalizeResult } from '../../lambdas/core/batch/finalizer.ts';
import type { PlanResult } from '../../lambdas/core/batch/planner.ts';
import type { RefreshOutcome } from '../../lambdas/core/refresh/refresh.ts';
import { scheduledRunId, scheduledRunInput } from '../../lambdas/core/batch/schedules.ts';
import { FUNCTION_ACCESS, KEY_PATTERNS, type ObjectAccess } from '../../lib/bucket-access.ts';
import { REFRESH_ACCESS } from '../../lib/model-refresh.ts';
import { ensureTable, startEmbeddedAws, type EmbeddedAws } from '../../local/embedded-aws.ts';
import { uploadModelPackages } from '../../local/uploader.ts';
import { apiEvent, lambdaContext } from '../support/api-events.ts';
import {
  flat,
  list,
  onlyResource,
  REPO_ROOT,
  roleOf,
  statementsOf,
  templateOf,
  type Statement,
} from './support.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const BUCKET = 'tandem-data';
const TABLE = 'tandem-predictions';
const MODEL = 'fraud-detector';
const REGION = 'eu-west-1';
const ACCOUNT = '123456789012';
const BUCKET_ARN = `arn:aws:s3:::${BUCKET}`;
const TABLE_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${TABLE}`;
/** A schedule of a folder outside incoming/: the plan and score roles may read it only through its grant. */
const SCHEDULE = { model: 'fraud-detector', prefix: 'warehouse/scheduled/', expression: 'rate(1 day)' };
const STATE_MACHINE_ARN = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:TandemBatchStateMachine`;

type FunctionName = 'predict' | 'trigger' | 'plan' | 'score' | 'finalize' | 'rollout' | 'refresh' | 'monitor';
const LOGICAL_ID_PART: Record<FunctionName, string> = {
  predict: 'ApiPredict',
  refresh: 'RefreshFunction',
  trigger: 'BatchTrigger',
  plan: 'BatchPlan',
  score: 'BatchScore',
  finalize: 'BatchFinalize',
  rollout: 'RolloutStep',
  monitor: 'DriftMonitor',
};

interface Call {
  readonly fn: FunctionName;
  readonly service: 's3' | 'dynamodb' | 'sfn' | 'events' | 'cloudwatch';
  readonly command: string;
  readonly input: Record<string, unknown>;
  status?: number;
}

interface IamRequest {
  readonly action: string;
  readonly resource: string;
  /** The condition keys the request carries (e.g. `s3:prefix`, `events:source`). */
  readonly context?: Readonly<Record<string, string>>;
}

const calls: Call[] = [];
const logOutput: string[] = [];
let restoreStdout: (() => void) | undefined;
let current: FunctionName = 'predict';
let failNextStart = false;
const refreshOutcomes: RefreshOutcome[] = [];

interface RecordableClient {
  middlewareStack: Pick<MiddlewareStack<object, object>, 'add'>;
}

/** Set once the template exists: may the current function's role make this request? */
let authorize: ((fn: FunctionName, request: IamRequest) => boolean) | undefined;

/** Records every command the client sends; `answer` short-circuits services without an emulator. */
function record(
  client: RecordableClient,
  service: Call['service'],
  answer?: (command: string, input: Record<string, unknown>) => Record<string, unknown>,
): void {
  const middleware: InitializeMiddleware<object, object> = (next, context) => async (args) => {
    const input = args.input as Record<string, unknown>;
    const call: Call = { fn: current, service, command: context.commandName ?? '?', input };
    calls.push(call);
    if (answer) return { output: { $metadata: {}, ...answer(call.command, input) }, response: {} };
    try {
      return await next(args);
    } catch (error) {
      call.status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const objectRead = call.command === 'GetObjectCommand' || call.command === 'HeadObjectCommand';
      if (
        service === 's3' &&
        objectRead &&
        call.status === 404 &&
        authorize &&
        !authorize(call.fn, { action: 's3:ListBucket', resource: `arn:aws:s3:::${String(input['Bucket'])}` })
      ) {
        call.status = 403;
        throw Object.assign(new Error('Access Denied'), {
          name: call.command === 'HeadObjectCommand' ? 'Forbidden' : 'AccessDenied',
          $metadata: { httpStatusCode: 403 },
        });
      }
      throw error;
    }
  };
  client.middlewareStack.add(middleware, { step: 'initialize', name: 'tandemRecordCalls' });
}

/** What AWS authorizes for a call (S3: a missing object reads as 404 only with ListBucket, else 403). */
function iamRequests(call: Call): IamRequest[] {
  const input = call.input as Record<string, string | undefined>;
  const object = `arn:aws:s3:::${input['Bucket']}/${input['Key']}`;
  switch (`${call.service} ${call.command}`) {
    case 's3 GetObjectCommand':
    case 's3 HeadObjectCommand':
      return [
        { action: 's3:GetObject', resource: object },
        ...(input['VersionId'] ? [{ action: 's3:GetObjectVersion', resource: object }] : []),
        ...(call.status === 404
          ? [{ action: 's3:ListBucket', resource: `arn:aws:s3:::${input['Bucket']}` }]
          : []),
      ];
    case 's3 PutObjectCommand':
    case 's3 CreateMultipartUploadCommand':
    case 's3 UploadPartCommand':
    case 's3 CompleteMultipartUploadCommand':
      return [{ action: 's3:PutObject', resource: object }];
    case 's3 AbortMultipartUploadCommand':
      return [{ action: 's3:AbortMultipartUpload', resource: object }];
    case 's3 DeleteObjectCommand':
      return [{ action: 's3:DeleteObject', resource: object }];
    case 's3 ListObjectsV2Command':
      return [
        {
          action: 's3:ListBucket',
          resource: `arn:aws:s3:::${input['Bucket']}`,
          ...(input['Prefix'] !== undefined ? { context: { 's3:prefix': input['Prefix'] } } : {}),
        },
      ];
    case 'dynamodb GetItemCommand':
    case 'dynamodb PutItemCommand':
      return [
        {
          action: `dynamodb:${call.command.replace(/Command$/, '')}`,
          resource: `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${input['TableName']}`,
        },
      ];
    case 'dynamodb BatchGetItemCommand':
      return Object.keys(call.input['RequestItems'] as object).map((table) => ({
        action: 'dynamodb:BatchGetItem',
        resource: `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${table}`,
      }));
    case 'cloudwatch ListMetricsCommand':
      return [
        {
          action: 'cloudwatch:ListMetrics',
          resource: '*',
          ...(input['Namespace'] !== undefined
            ? { context: { 'cloudwatch:namespace': input['Namespace'] } }
            : {}),
        },
      ];
    case 'cloudwatch GetMetricDataCommand':
      return [{ action: 'cloudwatch:GetMetricData', resource: '*' }];
    case 'sfn StartExecutionCommand':
      return [{ action: 'states:StartExecution', resource: input['stateMachineArn']! }];
    case 'events PutEventsCommand':
      return (
        call.input['Entries'] as Array<{ EventBusName?: string; Source?: string; DetailType?: string }>
      ).map((entry) => ({
        action: 'events:PutEvents',
        resource: `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/${entry.EventBusName ?? 'default'}`,
        context: {
          ...(entry.Source !== undefined ? { 'events:source': entry.Source } : {}),
          ...(entry.DetailType !== undefined ? { 'events:detail-type': entry.DetailType } : {}),
        },
      }));
    default:
      throw new Error(`no IAM mapping for ${call.service} ${call.command}: add it to this test`);
  }
}

function glob(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
}

type Conditions = Record<string, Record<string, string | string[]>>;

/** A role's Allow statements with the template's tokens replaced by the local resources' ARNs. */
function allowStatements(
  template: Template,
  fn: FunctionName,
): Array<{ actions: string[]; resources: string[]; conditions: Conditions | undefined }> {
  const [bucketId] = onlyResource(template, 'AWS::S3::Bucket', 'DataBucket');
  const [tableId] = onlyResource(template, 'AWS::DynamoDB::Table');
  const [stateMachineId] = onlyResource(template, 'AWS::StepFunctions::StateMachine', 'BatchStateMachine');
  const tokens: Record<string, string> = {
    [`\${${bucketId}.Arn}`]: BUCKET_ARN,
    [`\${${tableId}.Arn}`]: TABLE_ARN,
    [`\${${stateMachineId}}`]: STATE_MACHINE_ARN,
  };
  return statementsOf(template, roleOf(template, LOGICAL_ID_PART[fn]))
    .filter((s: Statement) => s.Effect === 'Allow')
    .map((s) => ({
      conditions: s.Condition as Conditions | undefined,
      actions: list(s.Action),
      resources: (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).map((r) => {
        let resolved = flat(r);
        for (const [token, value] of Object.entries(tokens)) resolved = resolved.split(token).join(value);
        return resolved;
      }),
    }));
}

/** IAM's evaluation of the operators Tandem uses: every key must be in the request and match a value. */
function conditionsHold(conditions: Conditions | undefined, context: IamRequest['context'] = {}): boolean {
  return Object.entries(conditions ?? {}).every(([operator, keys]) =>
    Object.entries(keys).every(([key, values]) => {
      const actual = context[key];
      if (actual === undefined) return false;
      const match =
        operator === 'StringEquals'
          ? (v: string) => v === actual
          : operator === 'StringLike'
            ? (v: string) => glob(v).test(actual)
            : () => {
                throw new Error(`no evaluation of ${operator}: add it to this test`);
              };
      return list(values).some(match);
    }),
  );
}

function allows(statements: ReturnType<typeof allowStatements>, request: IamRequest): boolean {
  return statements.some(
    (s) =>
      s.actions.some((a) => glob(a).test(request.action)) &&
      s.resources.some((r) => !r.includes('${') && glob(r).test(request.resource)) &&
      conditionsHold(s.conditions, request.context),
  );
}

describe('IAM policies cover exactly what the handlers do (s3rver + dynalite)', () => {
  let aws: EmbeddedAws;
  let s3: S3Client;
  let template: Template;
  const runs: Record<string, { input: RunInput; planned?: PlanResult; finalized: FinalizeResult }> = {};
  let startInputs: Array<{ name: string; input: RunInput }> = [];
  const handlers: Partial<Record<FunctionName, (event: unknown, context?: unknown) => Promise<unknown>>> = {};

  async function load(
    fn: FunctionName,
    importHandler: () => Promise<{ handler: (event: never, context: never) => Promise<unknown> }>,
  ): Promise<void> {
    current = fn;
    handlers[fn] = (await importHandler()).handler as (event: unknown, context?: unknown) => Promise<unknown>;
  }

  async function invoke<T>(fn: FunctionName, event: unknown, context?: unknown): Promise<T> {
    current = fn;
    return (await handlers[fn]!(event, context)) as T;
  }

  /** Upload -> trigger (twice: a repeated event) -> plan -> every chunk -> finalize, as the state machine does. */
  async function runUpload(key: string, body: Uint8Array | string, versionId: string): Promise<void> {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    const event = {
      version: '0',
      source: 'aws.s3',
      'detail-type': 'Object Created',
      detail: {
        bucket: { name: BUCKET },
        object: { key, size: body.length, etag: 'etag-1', 'version-id': versionId, sequencer: '01' },
      },
    };
    const before = calls.length;
    await invoke('trigger', event);
    await invoke('trigger', event);
    const started = calls
      .slice(before)
      .filter((c) => c.command === 'StartExecutionCommand')
      .map((c) => ({
        name: c.input['name'] as string,
        input: JSON.parse(c.input['input'] as string) as RunInput,
      }));
    startInputs = [...startInputs, ...started];
    await runInput(key, started[0]!.input);
  }

  /** Plan -> every chunk -> finalize, as the state machine does. */
  async function runInput(name: string, input: RunInput): Promise<void> {
    const planned = await invoke<PlanResult>('plan', input);
    const items = JSON.parse(
      await (
        await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: planned.itemsKey }))
      ).Body!.transformToString(),
    ) as ChunkItem[];
    for (const item of items) await invoke('score', item);
    const finalized = await invoke<FinalizeResult>('finalize', { ...input, planned });
    runs[name] = { input, planned, finalized };
  }

  /** A scheduled run of a folder: the input a deployed schedule starts. */
  async function runScheduledFolder(prefix: string, body: string): Promise<void> {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}part-00000.csv`, Body: body }));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}part-00001.csv`, Body: body }));
    await runInput(
      prefix,
      scheduledRunInput({ model: MODEL, prefix }, BUCKET, scheduledRunId(MODEL, 'd32c5kddcf5bb8c3')),
    );
  }

  beforeAll(async () => {
    template = templateOf({ schedules: [SCHEDULE] });
    const byFunction = new Map<FunctionName, ReturnType<typeof allowStatements>>();
    authorize = (fn, request) => {
      if (!byFunction.has(fn)) byFunction.set(fn, allowStatements(template, fn));
      return allows(byFunction.get(fn)!, request);
    };
    aws = await startEmbeddedAws({ buckets: [BUCKET] });
    s3 = new S3Client(aws.clientConfig('s3'));
    await ensureTable(new DynamoDBClient(aws.clientConfig('dynamodb')), TABLE);
    await uploadModelPackages(s3, BUCKET, path.join(REPO_ROOT, 'models'));

    delete process.env['AWS_PROFILE'];
    Object.assign(process.env, aws.env(), {
      MODELS_URI: `s3://${BUCKET}/models/`,
      DEFAULT_MODEL: MODEL,
      TABLE_NAME: TABLE,
      CAPTURE_BUCKET: BUCKET,
      CAPTURE_REALTIME_RATE: '1',
      CAPTURE_BATCH_RATE: '1',
      DATA_BUCKET: BUCKET,
      STATE_MACHINE_ARN,
      EVENT_BUS_NAME: 'default',
    });
    // The functions' log lines (Powertools writes JSON lines to stdout, errors to stderr), for what they keep.
    const restores = [process.stdout, process.stderr].map((stream) => {
      const write = stream.write.bind(stream);
      stream.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
        const text = String(chunk);
        if (!text.startsWith('{"')) return write(chunk, ...rest);
        logOutput.push(text);
        return true;
      }) as typeof stream.write;
      return () => {
        stream.write = write;
      };
    });
    const logLevel = process.env['POWERTOOLS_LOG_LEVEL'];
    process.env['POWERTOOLS_LOG_LEVEL'] = 'INFO';
    restoreStdout = () => {
      for (const restore of restores) restore();
      process.env['POWERTOOLS_LOG_LEVEL'] = logLevel;
    };
    record(s3Client(), 's3');
    record(dynamoClient(), 'dynamodb');
    record(batchDynamoClient(), 'dynamodb');
    record(sfnClient(), 'sfn', (_command, input) => {
      if (failNextStart) {
        failNextStart = false;
        throw Object.assign(new Error('Service unavailable'), { $metadata: { httpStatusCode: 503 } });
      }
      return {
        executionArn: `${STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:${String(input['name'])}`,
        startDate: new Date(),
      };
    });
    record(eventBridgeClient(), 'events', () => ({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] }));
    // CloudWatch (no emulator): a version that answered 100 instances without an error.
    record(cloudWatchClient(), 'cloudwatch', (command, input) =>
      command === 'ListMetricsCommand'
        ? {
            Metrics: ['Instances', 'Errors', 'ModelLatency', 'Label.0'].map((MetricName) => ({
              MetricName,
              Dimensions: input['Dimensions'],
            })),
          }
        : {
            MetricDataResults: (input['MetricDataQueries'] as Array<{ Id: string; Label: string }>).map(
              (q) => ({
                Id: q.Id,
                Label: q.Label,
                Values: [q.Label === 'Errors' ? 0 : q.Label === 'ModelLatency' ? 5 : 100],
              }),
            ),
          },
    );

    // Module init is part of what a function does (predict loads the default model at init).
    const predictModule = import('../../lambdas/handlers/predict.ts');
    await load('predict', () => predictModule);
    await load('trigger', () => import('../../lambdas/handlers/batch-trigger.ts'));
    await load('plan', () => import('../../lambdas/handlers/batch-plan.ts'));
    await load('score', () => import('../../lambdas/handlers/batch-score.ts'));
    await load('finalize', () => import('../../lambdas/handlers/batch-finalize.ts'));
    await load('rollout', () => import('../../lambdas/handlers/rollout-step.ts'));
    await load('refresh', () => import('../../lambdas/handlers/refresh.ts'));

    const csv = await readFile(path.join(REPO_ROOT, 'models', MODEL, 'demo-transactions.csv'), 'utf8');
    const sample = csv.split('\n').slice(0, 301).join('\n') + '\n';
    await runUpload(`incoming/${MODEL}/access-check.csv`, sample, 'version-1');
    await runUpload(`incoming/${MODEL}/access-check-gz.csv.gz`, gzipSync(sample), 'version-2');
    await runScheduledFolder(SCHEDULE.prefix, sample);

    // A run for a model that does not exist: the plan fails for good (not retried), naming it.
    const noModel: RunInput = {
      runId: 'no-model-run',
      bucket: BUCKET,
      key: `incoming/no-such-model/access-check.csv`,
      model: 'no-such-model',
      options: {},
    };
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: noModel.key, Body: sample }));
    const noModelError = await invoke('plan', noModel).catch((error: Error) => error);
    expect(String(noModelError)).toMatch(/MODEL_NOT_FOUND/);

    // A run whose upload was deleted before planning: the plan fails, finalize records why.
    const goneKey = `incoming/${MODEL}/deleted.csv`;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: goneKey, Body: sample }));
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: goneKey }));
    const gone: RunInput = { runId: 'deleted-run', bucket: BUCKET, key: goneKey, model: MODEL, options: {} };
    const planError = await invoke('plan', gone).catch((error: Error) => error);
    expect(String(planError)).toMatch(/INPUT_MISSING/);
    const finalized = await invoke<FinalizeResult>('finalize', {
      ...gone,
      error: {
        Error: 'BatchInputError',
        Cause: JSON.stringify({ errorMessage: (planError as Error).message }),
      },
    });
    runs[goneKey] = { input: gone, finalized };

    // A run with a chunk that fails (an index its plan does not have): the worker records the failed
    // attempt, and finalize lists and reads the records to say why in the manifest.
    const failing: RunInput = {
      runId: 'failing-run',
      bucket: BUCKET,
      key: `incoming/${MODEL}/access-check.csv`,
      model: MODEL,
      options: {},
    };
    const failingPlan = await invoke<PlanResult>('plan', failing);
    const scoreError = await invoke('score', {
      runId: failing.runId,
      bucket: BUCKET,
      planKey: failingPlan.planKey,
      index: failingPlan.chunks,
    } satisfies ChunkItem).catch((error: Error) => error);
    expect(String(scoreError)).toMatch(/NO_SUCH_CHUNK/);
    runs['failing-run'] = {
      input: failing,
      planned: failingPlan,
      finalized: await invoke<FinalizeResult>('finalize', {
        ...failing,
        planned: failingPlan,
        error: { Error: 'States.ExceedToleratedFailureThreshold', Cause: 'the Map failed' },
      }),
    };

    // Refresh: a version pushed with refresh.on push (its start fails once: the marker is removed and the
    // retried event starts the run), the same event again, a pointer change, and a staleness alarm for a
    // model without a pointer (a missing key: listed to tell it from a forbidden one).
    const manifest = JSON.parse(
      await readFile(path.join(REPO_ROOT, 'models', MODEL, '1.0.0', 'manifest.json'), 'utf8'),
    ) as Record<string, unknown>;
    const refreshed = {
      ...manifest,
      version: '9.9.9',
      refresh: { sources: [`incoming/${MODEL}/`], on: 'push' },
    };
    const manifestKey = `models/${MODEL}/9.9.9/manifest.json`;
    await s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: manifestKey, Body: JSON.stringify(refreshed) }),
    );
    const created = (key: string) => ({
      version: '0',
      source: 'aws.s3',
      'detail-type': 'Object Created',
      detail: { bucket: { name: BUCKET }, object: { key, size: 1, etag: 'etag-1', sequencer: '01' } },
    });
    failNextStart = true;
    expect(String(await invoke('refresh', created(manifestKey)).catch((e: Error) => e))).toMatch(
      /unavailable/,
    );
    refreshOutcomes.push(...(await invoke<RefreshOutcome[]>('refresh', created(manifestKey))));
    refreshOutcomes.push(...(await invoke<RefreshOutcome[]>('refresh', created(manifestKey))));
    refreshOutcomes.push(
      ...(await invoke<RefreshOutcome[]>('refresh', created(`models/${MODEL}/current.json`))),
    );
    refreshOutcomes.push(
      ...(await invoke<RefreshOutcome[]>('refresh', {
        refresh: 'staleness',
        model: 'no-such-model',
        at: 't',
      })),
    );

    const context = lambdaContext();
    for (const [method, route, body] of [
      ['GET', '/ready'],
      ['GET', '/models'],
      ['GET', `/models/${MODEL}`],
      ['GET', '/models/no-such-model'],
      ['POST', '/predict', { id: 'txn-000001' }],
      ['POST', '/predict', { instances: [{ id: 'txn-000002' }, { id: 'txn-000003' }] }],
      // An outcome for an id the batch run precomputed: its check reads the table, its record is put.
      ['POST', '/feedback', { id: 'txn-000001', label: 1 }],
    ] as const) {
      const reply = await invoke<{ statusCode: number; body: string }>(
        'predict',
        apiEvent(method, route, body),
        context,
      );
      if (route === '/feedback') expectWithMessage(reply.statusCode, reply.body).toBe(200);
    }
    // A rollout of another model, step by step as its state machine runs it: start, check, advance,
    // check, promote (pointer reads, conditional writes, history records, metric reads).
    const rolloutModel = 'rollout-model';
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: `models/${rolloutModel}/current.json`,
        Body: '{"version":"1.0.0"}',
      }),
    );
    let rollout = await invoke<RolloutState>('rollout', {
      action: 'start',
      state: {
        rolloutId: 'iamcheck',
        model: rolloutModel,
        candidate: '1.1.0',
        steps: [50, 100],
        bakeSeconds: 60,
        by: 'iam-coverage',
      } satisfies RolloutRequest,
    });
    for (const action of ['check', 'advance', 'check', 'promote'] as const) {
      rollout = await invoke<RolloutState>('rollout', { action, state: rollout });
    }
    expect(rollout.decision).toBe('promoted');

    // Data capture writes in the background; flushed here as the next invocation would.
    current = 'predict';
    await (await predictModule).capture?.flush();

    // The drift monitor on its schedule (every model) and for one model: the first run reads the captures
    // flushed above and the live version's baseline, the second the state the first wrote.
    process.env['DATA_BUCKET'] = BUCKET;
    await load('monitor', () => import('../../lambdas/handlers/monitor.ts'));
    await invoke('monitor', {});
    await invoke('monitor', { model: MODEL });
  }, 120_000);

  afterAll(async () => {
    restoreStdout?.();
    await aws?.stop();
  }, 60_000);

  it("logs a run's message and a failed chunk's reason under keys Powertools keeps (not `message`)", () => {
    const lines = logOutput
      .join('\n')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.filter((l) => String(l['message']).includes('reserved key'))).toEqual([]);
    const finalized = lines.filter((l) => l['message'] === 'run finalized');
    expect(finalized.length).toBeGreaterThanOrEqual(4);
    for (const line of finalized)
      expectWithMessage(line['summary'], JSON.stringify(line)).toEqual(expect.any(String));
    expect(finalized.map((l) => l['summary'])).toContain(runs['failing-run']!.finalized.message);
    const failed = lines.filter((l) => l['message'] === 'chunk failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!['reason']).toMatch(/NO_SUCH_CHUNK|has no chunk/);
  });

  it('ran the batch lane for real: two successful runs, one failed run, and every API route', () => {
    const csvRun = runs[`incoming/${MODEL}/access-check.csv`]!;
    expect(csvRun.finalized.status).toBe('SUCCEEDED');
    expect(csvRun.finalized.counts.scored).toBeGreaterThan(0);
    expect(runs[`incoming/${MODEL}/access-check-gz.csv.gz`]!.finalized.status).toBe('SUCCEEDED');
    // A scheduled folder outside incoming/, read with the grants of the schedules setting.
    expect(runs[SCHEDULE.prefix]!.finalized).toMatchObject({ status: 'SUCCEEDED', counts: { read: 600 } });
    expect(runs[`incoming/${MODEL}/deleted.csv`]!.finalized.status).toBe('FAILED');
    const failing = runs['failing-run']!.finalized;
    expect(failing.status).toBe('FAILED');
    // The reason comes from the chunk's failure record, not from the Map's generic error.
    expect(failing.message).toMatch(/NO_SUCH_CHUNK|has no chunk/);
    const commands = new Set(calls.map((c) => `${c.fn} ${c.command}`));
    for (const expected of [
      'predict ListObjectsV2Command',
      'predict GetItemCommand',
      'predict BatchGetItemCommand',
      'score PutItemCommand',
      'finalize PutEventsCommand',
      'trigger StartExecutionCommand',
      'rollout PutObjectCommand',
      'rollout GetMetricDataCommand',
      'refresh StartExecutionCommand',
      'refresh DeleteObjectCommand',
    ]) {
      expectWithMessage(commands, expected).toContain(expected);
    }
  });

  it('allows every call each function made, by that function’s own role', () => {
    const denied: string[] = [];
    const statements = new Map<FunctionName, ReturnType<typeof allowStatements>>();
    for (const call of calls) {
      if (!statements.has(call.fn)) statements.set(call.fn, allowStatements(template, call.fn));
      for (const request of iamRequests(call)) {
        if (!allows(statements.get(call.fn)!, request)) {
          denied.push(`${call.fn}: ${request.action} ${request.resource} (${call.command})`);
        }
      }
    }
    expect(denied).toEqual([]);
  });

  it('uses every S3 grant of lib/bucket-access.ts (AbortMultipartUpload only runs when an upload fails)', () => {
    const requests = calls.flatMap((call) => iamRequests(call).map((r) => ({ fn: call.fn, ...r })));
    const unused: string[] = [];
    for (const [fn, access] of Object.entries(FUNCTION_ACCESS) as Array<[FunctionName, ObjectAccess]>) {
      const grants: Array<[string, string]> = [
        ...(access.read ?? []).map((n) => ['s3:GetObject', n] as [string, string]),
        ...(access.readVersions ?? []).flatMap((n) => [
          ['s3:GetObject', n] as [string, string],
          ['s3:GetObjectVersion', n] as [string, string],
        ]),
        ...(access.put ?? []).map((n) => ['s3:PutObject', n] as [string, string]),
        ...(access.upload ?? []).map((n) => ['s3:PutObject', n] as [string, string]),
      ];
      for (const [action, name] of grants) {
        const pattern = glob(`${BUCKET_ARN}/${KEY_PATTERNS[name as keyof typeof KEY_PATTERNS].pattern}`);
        if (!requests.some((r) => r.fn === fn && r.action === action && pattern.test(r.resource))) {
          unused.push(`${fn}: ${action} ${name}`);
        }
      }
      for (const name of access.list ?? []) {
        const pattern = glob(KEY_PATTERNS[name].pattern);
        const used = requests.some(
          (r) => r.fn === fn && r.action === 's3:ListBucket' && pattern.test(r.context?.['s3:prefix'] ?? ''),
        );
        if (!used) unused.push(`${fn}: s3:ListBucket ${name}`);
      }
    }
    expect(unused).toEqual([]);
  });

  it('ran the refresh for real: started once (after a failed start), then a duplicate, then skips', () => {
    expect(refreshOutcomes.map((o) => [o.cause, o.result, o.reason])).toEqual([
      ['push', 'started', undefined],
      ['push', 'duplicate', undefined],
      ['promote', 'skipped', 'the model has no refresh sources'],
      ['staleness', 'skipped', 'no readable pointer'],
    ]);
  });

  it("uses every S3 grant of the refresh function's role", () => {
    const requests = calls
      .filter((c) => c.fn === 'refresh')
      .flatMap((call) => iamRequests(call).map((r) => ({ ...r })));
    const grants: Array<[string, string]> = [
      ...REFRESH_ACCESS.read.map((n) => ['s3:GetObject', n] as [string, string]),
      ...REFRESH_ACCESS.put.map((n) => ['s3:PutObject', n] as [string, string]),
      ['s3:DeleteObject', 'refreshMarkers'],
    ];
    const unused = grants.filter(
      ([action, name]) =>
        !requests.some(
          (r) =>
            r.action === action &&
            glob(`${BUCKET_ARN}/${KEY_PATTERNS[name as keyof typeof KEY_PATTERNS].pattern}`).test(r.resource),
        ),
    );
    for (const name of REFRESH_ACCESS.list) {
      const listed = requests.some(
        (r) =>
          r.action === 's3:ListBucket' &&
          glob(KEY_PATTERNS[name].pattern).test(r.context?.['s3:prefix'] ?? ''),
      );
      if (!listed) unused.push(['s3:ListBucket', name]);
    }
    expect(unused).toEqual([]);
  });

  it('gives a repeated upload event the same execution name (Step Functions starts a name once)', () => {
    const byKey = new Map<string, string[]>();
    for (const { name, input } of startInputs) byKey.set(input.key, [...(byKey.get(input.key) ?? []), name]);
    expect([...byKey.values()].map((names) => names.length)).toEqual([2, 2]);
    for (const names of byKey.values()) expect(new Set(names).size).toBe(1);
    expect(new Set([...byKey.values()].map((names) => names[0])).size).toBe(2);
  });
});
