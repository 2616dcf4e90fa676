/**
 * The stream lane's IAM policies against what its code really does, as iam-coverage.test.ts does for the
 * other functions: the real consumer handler (lambdas/handlers/stream-score.ts, wired as in Lambda) scores
 * a Kinesis event of valid, poison and unknown-model records against s3rver, dynalite and kinesalite, and
 * the real API handler serves POST /events. Every AWS call is turned into the IAM request AWS would
 * authorize, which the function's role in the synthesized template (streamLane on) must allow; and every
 * data-plane grant of the consumer must be used. The event source mapping's own reads of the input
 * stream and its sends to the on-failure queue are made by Lambda with the role, not by the handler.
 */
import type { InitializeMiddleware, MiddlewareStack } from '@smithy/types';
import type { Template } from 'aws-cdk-lib/assertions';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  batchDynamoClient,
  dynamoClient,
  kinesisClient,
  s3Client,
} from '../../lambdas/adapters/aws-clients.ts';
import { ensureTable, startEmbeddedAws, type EmbeddedAws } from '../../local/embedded-aws.ts';
import { ensureStream } from '../../local/kinesis-streams.ts';
import { uploadModelPackages } from '../../local/uploader.ts';
import { apiEvent, lambdaContext } from '../support/api-events.ts';
import { demoFeatures } from '../support/stream-harness.ts';
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
const INPUT = 'tandem-events';
const OUTPUT = 'tandem-predictions';
const MODEL = 'fraud-detector';
const REGION = 'eu-west-1';
const ACCOUNT = '123456789012';
const BUCKET_ARN = `arn:aws:s3:::${BUCKET}`;
const TABLE_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${TABLE}`;
const streamArn = (name: string) => `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/${name}`;

type Fn = 'consumer' | 'predict';
const ROLE_PART: Record<Fn, string> = { consumer: 'StreamConsumer', predict: 'ApiPredict' };

interface Call {
  readonly fn: Fn;
  readonly service: 's3' | 'dynamodb' | 'kinesis';
  readonly command: string;
  readonly input: Record<string, unknown>;
  status?: number;
}
const calls: Call[] = [];
let current: Fn = 'consumer';

function record(
  client: { middlewareStack: Pick<MiddlewareStack<object, object>, 'add'> },
  service: Call['service'],
): void {
  const middleware: InitializeMiddleware<object, object> = (next, context) => async (args) => {
    const call: Call = {
      fn: current,
      service,
      command: context.commandName ?? '?',
      input: args.input as Record<string, unknown>,
    };
    calls.push(call);
    try {
      return await next(args);
    } catch (error) {
      call.status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      throw error;
    }
  };
  client.middlewareStack.add(middleware, { step: 'initialize', name: 'tandemRecordCalls' });
}

function iamRequests(call: Call): { action: string; resource: string }[] {
  const input = call.input as Record<string, string | undefined>;
  const object = `${BUCKET_ARN}/${input['Key']}`;
  switch (`${call.service} ${call.command}`) {
    case 's3 GetObjectCommand':
    case 's3 HeadObjectCommand':
      return [
        { action: 's3:GetObject', resource: object },
        ...(call.status === 404 ? [{ action: 's3:ListBucket', resource: BUCKET_ARN }] : []),
      ];
    case 's3 PutObjectCommand':
      return [{ action: 's3:PutObject', resource: object }];
    case 's3 ListObjectsV2Command':
      return [{ action: 's3:ListBucket', resource: BUCKET_ARN }];
    case 'dynamodb PutItemCommand':
    case 'dynamodb GetItemCommand':
      return [{ action: `dynamodb:${call.command.replace(/Command$/, '')}`, resource: TABLE_ARN }];
    case 'dynamodb BatchGetItemCommand':
      return [{ action: 'dynamodb:BatchGetItem', resource: TABLE_ARN }];
    case 'kinesis PutRecordsCommand':
      return [{ action: 'kinesis:PutRecords', resource: streamArn(input['StreamName']!) }];
    default:
      throw new Error(`no IAM mapping for ${call.service} ${call.command}: add it to this test`);
  }
}

const glob = (pattern: string) =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);

function allowStatements(template: Template, fn: Fn) {
  const [bucketId] = onlyResource(template, 'AWS::S3::Bucket', 'DataBucket');
  const [tableId] = onlyResource(template, 'AWS::DynamoDB::Table');
  const [eventsId] = onlyResource(template, 'AWS::Kinesis::Stream', 'StreamEvents');
  const [predictionsId] = onlyResource(template, 'AWS::Kinesis::Stream', 'StreamPredictions');
  const tokens: Record<string, string> = {
    [`\${${bucketId}.Arn}`]: BUCKET_ARN,
    [`\${${tableId}.Arn}`]: TABLE_ARN,
    [`\${${eventsId}.Arn}`]: streamArn(INPUT),
    [`\${${predictionsId}.Arn}`]: streamArn(OUTPUT),
  };
  return statementsOf(template, roleOf(template, ROLE_PART[fn]))
    .filter((s: Statement) => s.Effect === 'Allow' && s.Condition === undefined)
    .map((s) => ({
      actions: list(s.Action),
      resources: (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).map((r) => {
        let resolved = flat(r);
        for (const [token, value] of Object.entries(tokens)) resolved = resolved.split(token).join(value);
        return resolved;
      }),
    }));
}

function allows(
  statements: ReturnType<typeof allowStatements>,
  request: { action: string; resource: string },
) {
  return statements.some(
    (s) =>
      s.actions.some((a) => glob(a).test(request.action)) &&
      s.resources.some((r) => !r.includes('${') && glob(r).test(request.resource)),
  );
}

function kinesisEvent(bodies: unknown[]): KinesisStreamEvent {
  return {
    Records: bodies.map((body, i) => ({
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: `pk-${i}`,
        sequenceNumber: `${1000 + i}`,
        data: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)).toString('base64'),
        approximateArrivalTimestamp: Date.now() / 1000,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: `shardId-000000000000:${1000 + i}`,
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: 'arn:aws:iam::1:role/r',
      awsRegion: REGION,
      eventSourceARN: streamArn(INPUT),
    })),
  };
}

describe('IAM policies of the stream lane cover exactly what its handlers do', () => {
  let aws: EmbeddedAws;
  let template: Template;
  let response: KinesisStreamBatchResponse;
  let eventsReply: { statusCode?: number };

  beforeAll(async () => {
    template = templateOf({ streamLane: true });
    aws = await startEmbeddedAws({ buckets: [BUCKET], kinesisPort: 0 });
    const s3 = new S3Client(aws.clientConfig('s3'));
    await ensureTable(new DynamoDBClient(aws.clientConfig('dynamodb')), TABLE);
    await uploadModelPackages(s3, BUCKET, path.join(REPO_ROOT, 'models'));
    const kinesis = new KinesisClient(aws.clientConfig('kinesis'));
    await ensureStream(kinesis, INPUT);
    await ensureStream(kinesis, OUTPUT);
    kinesis.destroy();

    delete process.env['AWS_PROFILE'];
    Object.assign(process.env, aws.env(), {
      MODELS_URI: `s3://${BUCKET}/models/`,
      DEFAULT_MODEL: MODEL,
      TABLE_NAME: TABLE,
      DATA_BUCKET: BUCKET,
      STREAM_OUTPUT_NAME: OUTPUT,
      STREAM_INPUT_NAME: INPUT,
      TANDEM_STREAM_LANE: 'true',
      POWERTOOLS_METRICS_DISABLED: 'true',
      // As the stack sets them for the consumer: every scored event captured, so that its write is seen.
      CAPTURE_BUCKET: BUCKET,
      CAPTURE_STREAM_RATE: '1',
    });
    record(s3Client(), 's3');
    record(dynamoClient(), 'dynamodb');
    record(batchDynamoClient(), 'dynamodb');
    record(await kinesisClient(), 'kinesis');

    current = 'consumer';
    const { handler, capture } = await import('../../lambdas/handlers/stream-score.ts');
    response = await handler(
      kinesisEvent([
        { id: 'iam-1', features: demoFeatures() },
        'not json',
        { id: 'iam-2', model: 'no-such-model', features: demoFeatures() },
      ]),
    );
    await capture?.flush();
    expect(capture?.counts.written).toBe(1);
    current = 'predict';
    const predict = await import('../../lambdas/handlers/predict.ts');
    eventsReply = await predict.handler(
      apiEvent('POST', '/events', { events: [{ id: 'iam-3', features: demoFeatures() }] }),
      lambdaContext(),
    );
  }, 120_000);

  afterAll(async () => {
    await aws?.stop();
  }, 60_000);

  it('ran the handlers for real: a scored record, two rejected ones, and an event put through the API', () => {
    expect(response).toEqual({ batchItemFailures: [] });
    expect(eventsReply.statusCode).toBe(202);
    const commands = new Set(
      calls.map((c) => `${c.fn} ${c.command} ${String(c.input['StreamName'] ?? '')}`.trim()),
    );
    for (const expected of [
      'consumer PutItemCommand',
      `consumer PutRecordsCommand ${OUTPUT}`,
      'consumer PutObjectCommand',
      `predict PutRecordsCommand ${INPUT}`,
    ]) {
      expectWithMessage(commands, expected).toContain(expected);
    }
  });

  it('allows every call each function made, by that function’s own role', () => {
    const denied: string[] = [];
    for (const call of calls) {
      const statements = allowStatements(template, call.fn);
      for (const request of iamRequests(call)) {
        if (!allows(statements, request))
          denied.push(`${call.fn}: ${request.action} ${request.resource} (${call.command})`);
      }
    }
    expect(denied).toEqual([]);
  });

  it("uses every data-plane grant of the consumer's role", () => {
    const requests = calls.filter((c) => c.fn === 'consumer').flatMap(iamRequests);
    const unused = allowStatements(template, 'consumer')
      .flatMap((s) => s.actions.flatMap((action) => s.resources.map((resource) => ({ action, resource }))))
      .filter(
        ({ action, resource }) => /^(s3|dynamodb):|^kinesis:PutRecords$/.test(action) && resource !== '*',
      )
      .filter(
        ({ action, resource }) =>
          !requests.some((r) => glob(action).test(r.action) && glob(resource).test(r.resource)),
      )
      .map(({ action, resource }) => `${action} ${resource}`);
    expect(unused).toEqual([]);
  });
});
