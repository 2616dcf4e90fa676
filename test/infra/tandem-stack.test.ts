/**
 * Targeted assertions on the synthesized TandemStack (bundling skipped: the packaging is covered by
 * asset-size.test.ts). One template per configuration, built once.
 */
import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it, jest } from '@jest/globals';
import { STATE_NAMES } from '../../lib/batch-definition.ts';
import { parseIncomingKey } from '../../lambdas/core/batch/contracts.ts';
import { DATASET_SUFFIXES, uploadKeyPatterns } from '../../lib/batch-pipeline.ts';
import { readSettings, TandemPropsError } from '../../lib/settings.ts';
import { Tandem } from '../../lib/tandem-stack.ts';
import {
  actionsOf,
  flat,
  list,
  onlyResource,
  REPO_ROOT,
  resources,
  roleOf,
  statementsOf,
  templateOf,
  testApp,
  testStack,
  type Resource,
  type Statement,
} from './support.ts';
import { expectWithMessage } from '../support/expect-message.ts';

/** `<action> <resource>[ if <conditions>]`, the bucket ARN shown as `bucket`. */
function grants(statements: Statement[]): string[] {
  return statements
    .flatMap((s) =>
      list(s.Action).flatMap((a) =>
        (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).map(
          (r) =>
            `${a} ${flat(r).replace(/\$\{TandemDataBucket\w+\.Arn\}/, 'bucket')}${
              s.Condition ? ` if ${JSON.stringify(s.Condition)}` : ''
            }`,
        ),
      ),
    )
    .sort();
}

/** The state machine definition, with tokens replaced by `${Logical.Attr}` placeholders. */
function definitionOf(template: Template): {
  StartAt: string;
  States: Record<string, Record<string, unknown>>;
} {
  const [, sm] = onlyResource(template, 'AWS::StepFunctions::StateMachine', 'BatchStateMachine');
  return JSON.parse(flat(sm.Properties!['DefinitionString'])) as never;
}

describe('TandemStack (defaults)', () => {
  let template: Template;
  beforeAll(() => {
    template = templateOf();
  }, 60_000);

  describe('data bucket', () => {
    it('is encrypted, private, versioned, TLS-only and retained', () => {
      const [id, bucket] = onlyResource(template, 'AWS::S3::Bucket', 'DataBucket');
      expect(bucket.DeletionPolicy).toBe('Retain');
      expect(bucket.Properties).toMatchObject({
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        VersioningConfiguration: { Status: 'Enabled' },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      });
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: id },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 's3:*',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    });

    it('sends Object Created events to EventBridge, natively (no notifications custom resource)', () => {
      const [, bucket] = onlyResource(template, 'AWS::S3::Bucket', 'DataBucket');
      expect(bucket.Properties!['NotificationConfiguration']).toEqual({
        EventBridgeConfiguration: { EventBridgeEnabled: true },
      });
      template.resourceCountIs('Custom::S3BucketNotifications', 0);
      // predict, trigger, plan, score, finalize, the rollout step, refresh and the drift monitor.
      template.resourceCountIs('AWS::Lambda::Function', 8);
    });

    it('expires run state, ages results and old versions', () => {
      const [, bucket] = onlyResource(template, 'AWS::S3::Bucket', 'DataBucket');
      const rules = (
        bucket.Properties!['LifecycleConfiguration'] as { Rules: Array<Record<string, unknown>> }
      ).Rules;
      expect(rules).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ Prefix: 'runs/', ExpirationInDays: 14, Status: 'Enabled' }),
          expect.objectContaining({
            Prefix: 'results/',
            ObjectSizeGreaterThan: '131071',
            Transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 30 }],
          }),
          expect.objectContaining({
            NoncurrentVersionExpiration: { NoncurrentDays: 30 },
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 2 },
          }),
          expect.objectContaining({ Prefix: 'runs/', NoncurrentVersionExpiration: { NoncurrentDays: 1 } }),
        ]),
      );
      const [, logBucket] = onlyResource(template, 'AWS::S3::Bucket', 'AccessLogs');
      expect(logBucket.Properties!['LifecycleConfiguration']).toEqual({
        Rules: [expect.objectContaining({ ExpirationInDays: 90, Status: 'Enabled' })],
      });
      expect(rules.find((r) => r['Prefix'] === 'incoming/' || r['Prefix'] === 'models/')).toBeUndefined();
    });

    // S3 applies a rule's actions only to the objects its whole filter matches (prefix AND size).
    it.each([
      ['results/m/d/r/_manifest.json', 2_000],
      ['results/m/d/r/rejected/part-00000.jsonl', 131_072],
      ['results/m/d/r/part-00000.jsonl', 50 * 1024 * 1024],
    ])('expires %s (%d bytes) after 365 days, whatever its size', (key, size) => {
      const [, bucket] = onlyResource(template, 'AWS::S3::Bucket', 'DataBucket');
      const rules = (
        bucket.Properties!['LifecycleConfiguration'] as { Rules: Array<Record<string, unknown>> }
      ).Rules;
      const applying = rules.filter(
        (r) =>
          r['Status'] === 'Enabled' &&
          key.startsWith((r['Prefix'] as string | undefined) ?? '') &&
          (r['ObjectSizeGreaterThan'] === undefined || size > Number(r['ObjectSizeGreaterThan'])),
      );
      expect(applying.map((r) => r['ExpirationInDays']).filter((d) => d !== undefined)).toEqual([365]);
      const transitions = applying.flatMap((r) => (r['Transitions'] as unknown[] | undefined) ?? []);
      expect(transitions).toHaveLength(size > 131_071 ? 1 : 0);
    });

    it('writes server access logs to a separate private, TLS-only, retained bucket', () => {
      const [logsId, logBucket] = onlyResource(template, 'AWS::S3::Bucket', 'AccessLogs');
      const [, bucket] = onlyResource(template, 'AWS::S3::Bucket', 'DataBucket');
      expect(bucket.Properties!['LoggingConfiguration']).toEqual({
        DestinationBucketName: { Ref: logsId },
        LogFilePrefix: 'data-bucket/',
      });
      expect(logBucket.DeletionPolicy).toBe('Retain');
      expect(logBucket.Properties).toMatchObject({
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, RestrictPublicBuckets: true },
      });
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: logsId },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
            Match.objectLike({
              Effect: 'Allow',
              Principal: { Service: 'logging.s3.amazonaws.com' },
              Action: 's3:PutObject',
            }),
          ]),
        },
      });
    });
  });

  describe('prediction table', () => {
    it('is on-demand, keyed by pk, with TTL on expiresAt, PITR, deletion protection, retained', () => {
      const [, table] = onlyResource(template, 'AWS::DynamoDB::Table');
      expect(table.DeletionPolicy).toBe('Retain');
      expect(table.UpdateReplacePolicy).toBe('Retain');
      expect(table.Properties).toMatchObject({
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: true,
      });
    });
  });

  describe('real-time API', () => {
    it('routes every endpoint (the OpenAPI document and the Open Inference Protocol v2 included) to the predict alias, each behind IAM authorization', () => {
      const routes = Object.values(resources(template, 'AWS::ApiGatewayV2::Route')).map((r) => r.Properties!);
      expect(routes.map((r) => r['RouteKey']).sort()).toEqual([
        'GET /health',
        'GET /models',
        'GET /models/{name}',
        'GET /openapi.json',
        'GET /ready',
        'GET /v2',
        'GET /v2/health/live',
        'GET /v2/health/ready',
        'GET /v2/models/{name}',
        'GET /v2/models/{name}/ready',
        'GET /v2/models/{name}/versions/{version}',
        'GET /v2/models/{name}/versions/{version}/ready',
        'POST /feedback',
        'POST /predict',
        'POST /v2/models/{name}/infer',
        'POST /v2/models/{name}/versions/{version}/infer',
      ]);
      for (const route of routes) expect(route['AuthorizationType']).toBe('AWS_IAM');
      template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 0);
      const [aliasId] = onlyResource(template, 'AWS::Lambda::Alias');
      template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
        IntegrationType: 'AWS_PROXY',
        IntegrationUri: { Ref: aliasId },
        PayloadFormatVersion: '2.0',
      });
    });

    it('throttles the stage and writes JSON access logs to a log group with retention', () => {
      const [, stage] = onlyResource(template, 'AWS::ApiGatewayV2::Stage');
      expect(stage.Properties).toMatchObject({
        StageName: '$default',
        AutoDeploy: true,
        DefaultRouteSettings: { ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000 },
      });
      const access = stage.Properties!['AccessLogSettings'] as { DestinationArn: unknown; Format: string };
      const logGroupId = flat(access.DestinationArn).slice(2, -'.Arn}'.length);
      expect(template.toJSON().Resources[logGroupId].Properties.RetentionInDays).toBe(30);
      expect(JSON.parse(access.Format)).toMatchObject({
        requestId: '$context.requestId',
        status: '$context.status',
      });
    });

    it('runs predict on nodejs22.x without X-Ray, with its own log group and the config.ts environment', () => {
      const [, fn] = onlyResource(template, 'AWS::Lambda::Function', 'Predict');
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Handler: 'index.handler',
        Architectures: ['x86_64'],
        MemorySize: 1769,
        LoggingConfig: { LogGroup: { Ref: expect.stringContaining('PredictLogGroup') } },
      });
      // No X-Ray (lib/tandem-function.ts says why): no tracing mode, no xray:* grant.
      expect(fn.Properties!['TracingConfig']).toBeUndefined();
      const env = (fn.Properties!['Environment'] as { Variables: Record<string, unknown> }).Variables;
      expect(flat(env['MODELS_URI'])).toMatch(/^s3:\/\/\$\{TandemDataBucket\w+\}\/models\/$/);
      expect(env).toMatchObject({
        DEFAULT_MODEL: 'fraud-detector',
        TABLE_NAME: { Ref: expect.stringContaining('PredictionsTable') },
        CACHE_BUDGET_MS: '150',
        WRITE_THROUGH: 'false',
        MODEL_REFRESH_SECONDS: '60',
        LOG_PAYLOADS: 'false',
      });
      // The cache max age and TTL come from each model manifest unless the deployment sets them.
      expect(env['CACHE_MAX_AGE_SECONDS']).toBeUndefined();
      expect(env['CACHE_TTL_SECONDS']).toBeUndefined();
    });

    it("serves the 'live' alias, without provisioned concurrency by default", () => {
      const [, alias] = onlyResource(template, 'AWS::Lambda::Alias');
      expect(alias.Properties!['Name']).toBe('live');
      expect(alias.Properties!['ProvisionedConcurrencyConfig']).toBeUndefined();
    });
  });

  describe('batch pipeline', () => {
    it('sends Object Created events under incoming/ of the data bucket to the trigger, with retries and a DLQ', () => {
      const [bucketId] = onlyResource(template, 'AWS::S3::Bucket', 'DataBucket');
      const [triggerId] = onlyResource(template, 'AWS::Lambda::Function', 'Trigger');
      const [queueId, queue] = onlyResource(template, 'AWS::SQS::Queue', 'DeadLetterQueue');
      expect(queue.Properties).toMatchObject({
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: 14 * 86_400,
      });
      template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          source: ['aws.s3'],
          'detail-type': ['Object Created'],
          detail: {
            bucket: { name: [{ Ref: bucketId }] },
            object: { key: uploadKeyPatterns().map((wildcard) => ({ wildcard })) },
          },
        },
        Targets: [
          Match.objectLike({
            Arn: { 'Fn::GetAtt': [triggerId, 'Arn'] },
            DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queueId, 'Arn'] } },
            RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 6 * 3600 },
          }),
        ],
      });
      template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: { Ref: triggerId },
        DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queueId, 'Arn'] } } },
      });
      template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Allow',
              Principal: { Service: 'events.amazonaws.com' },
              Action: 'sqs:SendMessage',
            }),
          ]),
        },
      });
    });

    // EventBridge's wildcard: `*` matches any characters (`/` included), the rest literally, case-sensitively.
    const wildcardMatches = (pattern: string, key: string): boolean =>
      new RegExp(
        `^${pattern
          .split('*')
          .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*')}$`,
      ).test(key);
    const startsARun = (template: Template, key: string): boolean => {
      const [, rule] = onlyResource(template, 'AWS::Events::Rule', 'UploadRule');
      const keys = (
        rule.Properties!['EventPattern'] as { detail: { object: { key: Array<{ wildcard: string }> } } }
      ).detail.object.key;
      return keys.some((matcher) => wildcardMatches(matcher.wildcard, key));
    };

    it.each([
      ['incoming/fraud-detector/transactions.csv', true],
      ['incoming/fraud-detector/2024/06/transactions.csv.gz', true],
      ['incoming/fraud-detector/t.jsonl', true],
      ['incoming/fraud-detector/t.jsonl.gz', true],
      ['incoming/fraud-detector/t.ndjson', true],
      ['incoming/fraud-detector/t.ndjson.gz', true],
      ['incoming/fraud-detector/t.parquet', true],
      ['incoming/fraud-detector/T.CSV', true],
      ['incoming/fraud-detector/T.PARQUET', true],
      ['incoming/readme.txt', false],
      ['incoming/transactions.csv', false],
      ['incoming/fraud-detector/readme.txt', false],
      ['incoming/fraud-detector/t.parquet.gz', false],
      ['incoming/fraud-detector/t.csv.zip', false],
      ['incoming/fraud-detector/', false],
      ['results/fraud-detector/t/run-1/part-00000.csv', false],
      ['models/fraud-detector/1.0.0/data.csv', false],
    ])('starts a run for %s: %s', (key, expected) => {
      expect(startsARun(template, key)).toBe(expected);
      // The rule never drops what the planner reads (it may only leave odd cases to the trigger).
      const incoming = parseIncomingKey(key);
      if (startsARun(template, key)) expect(incoming?.model && incoming.format).toBeTruthy();
    });

    it('lets every ending the planner reads through the upload rule', () => {
      for (const suffix of DATASET_SUFFIXES) {
        const key = `incoming/m/data${suffix}`;
        expectWithMessage(parseIncomingKey(key)?.format, key).toBeDefined();
        expectWithMessage(startsARun(template, key), key).toBe(true);
      }
      for (const ending of ['csv', 'jsonl', 'ndjson', 'parquet', 'tsv', 'json', 'txt', 'gz', 'zip']) {
        for (const gz of ['', '.gz']) {
          const key = `incoming/m/data.${ending}${gz}`;
          expectWithMessage(startsARun(template, key), key).toBe(parseIncomingKey(key)?.format !== undefined);
        }
      }
    });

    it('gives the batch functions the handler environment and throughput sizing', () => {
      const env = (part: string): Record<string, unknown> =>
        (
          onlyResource(template, 'AWS::Lambda::Function', part)[1].Properties!['Environment'] as {
            Variables: Record<string, unknown>;
          }
        ).Variables;
      expect(env('Trigger')['STATE_MACHINE_ARN']).toEqual({ Ref: expect.stringContaining('StateMachine') });
      expect(env('Trigger')['BATCH_OPTIONS']).toBeUndefined();
      expect(flat(env('Plan')['MODELS_URI'])).toMatch(/\/models\/$/);
      expect(Object.keys(env('Score')).sort()).toEqual([
        'CAPTURE_BATCH_RATE',
        'CAPTURE_BUCKET',
        'MODELS_URI',
        'NODE_OPTIONS',
        'TABLE_NAME',
      ]);
      expect(env('Score')['CAPTURE_BATCH_RATE']).toBe('0.01');
      expect(env('Finalize')['EVENT_BUS_NAME']).toBe('default');
      const props = (part: string) => onlyResource(template, 'AWS::Lambda::Function', part)[1].Properties!;
      // One invocation scores a chunk; table writes that need longer continue in the next invocation.
      expect(props('Score')).toMatchObject({ MemorySize: 3008, Timeout: 300, Runtime: 'nodejs22.x' });
      expect(props('Plan')).toMatchObject({ Timeout: 900 });
    });

    it('builds the state machine from batchDefinition: Distributed Map of Standard children over the plan', () => {
      const [, sm] = onlyResource(template, 'AWS::StepFunctions::StateMachine', 'BatchStateMachine');
      expect(sm.Properties).toMatchObject({
        StateMachineType: 'STANDARD',
        TracingConfiguration: { Enabled: false },
        LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: false },
      });
      const definition = definitionOf(template);
      expect(definition.StartAt).toBe(STATE_NAMES.plan);
      const map = definition.States[STATE_NAMES.map]!;
      expect(map).toMatchObject({
        Type: 'Map',
        ItemReader: { Resource: 'arn:aws:states:::s3:getObject', ReaderConfig: { InputType: 'JSON' } },
        ItemProcessor: {
          ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' },
          // A chunk whose table writes ran out of time comes back with `resume` and is scored again.
          States: {
            [STATE_NAMES.score]: { Next: STATE_NAMES.chunkDone },
            [STATE_NAMES.chunkDone]: {
              Type: 'Choice',
              Choices: [{ Variable: '$.resume', IsPresent: true, Next: STATE_NAMES.score }],
              Default: STATE_NAMES.chunkScored,
            },
          },
        },
        MaxConcurrency: 40,
        ToleratedFailurePercentage: 0,
        ResultWriter: {
          Resource: 'arn:aws:states:::s3:putObject',
          Parameters: { Bucket: expect.stringMatching(/^\$\{TandemDataBucket\w+\}$/) },
        },
      });
      const tasks = {
        plan: definition.States[STATE_NAMES.plan]!,
        score: (map['ItemProcessor'] as { States: Record<string, Record<string, unknown>> }).States[
          STATE_NAMES.score
        ]!,
        finalize: definition.States[STATE_NAMES.finalize]!,
      };
      for (const [name, task] of Object.entries(tasks)) {
        expectWithMessage(task['Resource'], name).toMatch(
          new RegExp(`^\\$\\{TandemBatch${name[0]!.toUpperCase()}${name.slice(1)}Function\\w+\\.Arn\\}$`),
        );
        const retries = task['Retry'] as Array<Record<string, unknown>>;
        expectWithMessage(
          retries.some((r) => r['JitterStrategy'] === 'FULL' && (r['MaxAttempts'] as number) > 0),
          name,
        ).toBe(true);
        // Backoff: every retry that retries waits longer each time, up to a cap where one is set.
        for (const retry of retries.filter((r) => (r['MaxAttempts'] as number) > 0)) {
          expectWithMessage(retry['BackoffRate'] as number, name).toBeGreaterThan(1);
          expectWithMessage(retry['IntervalSeconds'] as number, name).toBeGreaterThan(0);
        }
      }
      // A chunk is retried on any error (its output is idempotent), Finalize too; a bad input is not.
      for (const task of [tasks.score, tasks.finalize]) {
        const retries = task['Retry'] as Array<{ ErrorEquals: string[]; MaxAttempts: number }>;
        expect(retries.find((r) => r.ErrorEquals.includes('States.ALL'))?.MaxAttempts).toBeGreaterThan(0);
      }
      const scoreRetries = tasks.score['Retry'] as Array<{ ErrorEquals: string[]; MaxAttempts: number }>;
      expect(scoreRetries[0]).toEqual({
        ErrorEquals: ['BatchInputError', 'ModelUnavailableError'],
        MaxAttempts: 0,
      });
      // Any failure of Plan or the Map still reaches Finalize, which writes the manifest saying why.
      for (const state of [definition.States[STATE_NAMES.plan]!, map]) {
        expect(state['Catch']).toEqual([
          { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE_NAMES.finalize },
        ]);
      }
    });

    it('logs the state machine to its own log group with retention', () => {
      const [, sm] = onlyResource(template, 'AWS::StepFunctions::StateMachine', 'BatchStateMachine');
      const dest = (
        sm.Properties!['LoggingConfiguration'] as {
          Destinations: Array<{ CloudWatchLogsLogGroup: { LogGroupArn: unknown } }>;
        }
      ).Destinations[0]!.CloudWatchLogsLogGroup.LogGroupArn;
      const logGroupId = flat(dest).slice(2, -'.Arn}'.length);
      const group = template.toJSON().Resources[logGroupId] as Resource;
      expect(group.Properties!['RetentionInDays']).toBe(30);
      // Under /aws/vendedlogs/ (one wildcard resource policy for every delivery), and ending with this stack
      // instance's id: retained on delete, so a stack created again must not reuse the name.
      expect(group.Properties!['LogGroupName']).toEqual({
        'Fn::Join': [
          '',
          [
            expect.stringMatching(/^\/aws\/vendedlogs\/states\/Tandem-Tandem-Batch-[0-9A-F]{8}-$/),
            { 'Fn::Select': [2, { 'Fn::Split': ['/', { Ref: 'AWS::StackId' }] }] },
          ],
        ],
      });
    });

    it('gives no retained resource a fixed physical name (cdk destroy, then cdk deploy, must work)', () => {
      const nameProperties = ['LogGroupName', 'BucketName', 'TableName', 'QueueName', 'TopicName', 'Name'];
      const fixed: string[] = [];
      for (const [id, resource] of Object.entries(template.toJSON().Resources as Record<string, Resource>)) {
        if (resource.DeletionPolicy !== 'Retain') continue;
        for (const property of nameProperties) {
          const name = resource.Properties?.[property];
          if (name !== undefined && !JSON.stringify(name).includes('AWS::StackId')) {
            fixed.push(`${id}.${property} = ${JSON.stringify(name)}`);
          }
        }
      }
      expect(fixed).toEqual([]);
      // The retained resources the deploy guide's tear-down section lists are still retained.
      expect(Object.keys(resources(template, 'AWS::Logs::LogGroup')).length).toBeGreaterThan(0);
    });
  });

  describe('least privilege', () => {
    it('lets predict read models/ and the table, write captures and outcomes (feedback), and nothing else', () => {
      const statements = statementsOf(template, roleOf(template, 'Predict'));
      expect(
        grants(
          statements.filter(
            (s) => !list(s.Action).some((a) => a.startsWith('logs:') || a.startsWith('xray:')),
          ),
        ),
      ).toEqual([
        expect.stringMatching(/^dynamodb:BatchGetItem \$\{TandemPredictionsTable\w+\.Arn\}$/),
        expect.stringMatching(/^dynamodb:GetItem \$\{TandemPredictionsTable\w+\.Arn\}$/),
        's3:GetObject bucket/models/*',
        's3:ListBucket bucket if {"StringLike":{"s3:prefix":["models/*"]}}',
        's3:PutObject bucket/capture/*',
        's3:PutObject bucket/feedback/*',
      ]);
      expect(actionsOf(statements)).not.toContain('dynamodb:PutItem');
    });

    it('lets the scorer read incoming/, its plan, the staging copy and models/, write its parts and report, and put table items', () => {
      const statements = statementsOf(template, roleOf(template, 'Score'));
      const s3 = grants(statements).filter((g) => g.startsWith('s3:'));
      expect(s3).toEqual([
        's3:AbortMultipartUpload bucket/results/*/part-*',
        's3:GetObject bucket/incoming/*',
        's3:GetObject bucket/models/*',
        's3:GetObject bucket/runs/*/plan.json',
        's3:GetObject bucket/runs/*/staging/*',
        's3:GetObjectVersion bucket/incoming/*',
        's3:PutObject bucket/capture/*',
        's3:PutObject bucket/results/*/part-*',
        's3:PutObject bucket/runs/*/chunks/*',
        's3:PutObject bucket/runs/*/failures/*',
      ]);
      expect(actionsOf(statements).filter((a) => a.startsWith('dynamodb:'))).toEqual(['dynamodb:PutItem']);
      const table = statements.filter((s) => list(s.Action).includes('dynamodb:PutItem'));
      expect(table.map((s) => flat(s.Resource))).toEqual([
        expect.stringMatching(/^\$\{TandemPredictionsTable\w+\.Arn\}$/),
      ]);
    });

    it('lets plan, finalize and trigger do only their part', () => {
      const plan = grants(statementsOf(template, roleOf(template, 'Plan'))).filter(
        (g) => !/^(logs|xray):/.test(g),
      );
      expect(plan).toEqual([
        's3:AbortMultipartUpload bucket/runs/*/staging/*',
        's3:GetObject bucket/incoming/*',
        's3:GetObject bucket/models/*',
        's3:GetObjectVersion bucket/incoming/*',
        's3:ListBucket bucket if {"StringLike":{"s3:prefix":["incoming/*","models/*"]}}',
        's3:PutObject bucket/runs/*/items.json',
        's3:PutObject bucket/runs/*/plan.json',
        's3:PutObject bucket/runs/*/staging/*',
      ]);
      const finalize = grants(statementsOf(template, roleOf(template, 'Finalize'))).filter(
        (g) => !/^(logs|xray):/.test(g),
      );
      expect(finalize).toEqual([
        'events:PutEvents arn:aws:events:eu-west-1:123456789012:event-bus/default if {"StringEquals":{"events:source":["tandem.batch"],"events:detail-type":["Tandem Batch Run Completed"]}}',
        's3:GetObject bucket/runs/*/chunks/*',
        's3:GetObject bucket/runs/*/failures/*',
        's3:GetObject bucket/runs/*/plan.json',
        's3:ListBucket bucket if {"StringLike":{"s3:prefix":["runs/*/plan.json","runs/*/chunks/*","runs/*/failures/*"]}}',
        's3:PutObject bucket/results/*/_manifest.json',
      ]);
      const trigger = actionsOf(statementsOf(template, roleOf(template, 'Trigger'))).filter(
        (a) => !/^(logs|xray):/.test(a),
      );
      expect(trigger).toEqual([
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
        'sqs:SendMessage',
        'states:StartExecution',
      ]);
    });

    it("lets the state machine invoke its three functions, read the run's items, write its map results, and run its map children", () => {
      const [smId, sm] = onlyResource(template, 'AWS::StepFunctions::StateMachine', 'BatchStateMachine');
      const roleId = (sm.Properties!['RoleArn'] as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]!;
      const statements = statementsOf(template, roleId);
      const invoke = statements.filter((s) => list(s.Action).includes('lambda:InvokeFunction'));
      expect(invoke.flatMap((s) => (s.Resource as unknown[]).map(flat)).sort()).toEqual([
        expect.stringMatching(/^\$\{TandemBatchFinalizeFunction\w+\.Arn\}$/),
        expect.stringMatching(/^\$\{TandemBatchPlanFunction\w+\.Arn\}$/),
        expect.stringMatching(/^\$\{TandemBatchScoreFunction\w+\.Arn\}$/),
      ]);
      expect(grants(statements).filter((g) => g.startsWith('s3:'))).toEqual([
        's3:AbortMultipartUpload bucket/runs/*/map-results/*',
        's3:GetObject bucket/runs/*/items.json',
        's3:GetObject bucket/runs/*/map-results/*',
        's3:ListMultipartUploadParts bucket/runs/*/map-results/*',
        's3:PutObject bucket/runs/*/map-results/*',
      ]);
      const start = statements.find((s) => list(s.Action).includes('states:StartExecution'));
      expect(start?.Resource).toEqual({ Ref: smId });
      const children = statements.find((s) => list(s.Action).includes('states:DescribeExecution'));
      // No RedriveExecution: runs are re-run by uploading again, never redriven.
      expect(list(children!.Action).sort()).toEqual(['states:DescribeExecution', 'states:StopExecution']);
      expect((children!.Resource as unknown[]).map(flat)).toEqual([
        `arn:aws:states:eu-west-1:123456789012:execution:\${${smId}.Name}/*`,
        `arn:aws:states:eu-west-1:123456789012:execution:\${${smId}.Name}:*`,
      ]);
    });

    it('uses Resource "*" only for the state machines\' log delivery and the rollout\'s metric reads (no X-Ray anywhere)', () => {
      const smRoles = ['BatchStateMachine', 'RolloutStateMachine'].map((part) => {
        const [, sm] = onlyResource(template, 'AWS::StepFunctions::StateMachine', part);
        return (sm.Properties!['RoleArn'] as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]!;
      });
      const rolloutRole = roleOf(template, 'RolloutStep');
      const logDelivery = [
        'logs:CreateLogDelivery',
        'logs:DeleteLogDelivery',
        'logs:DescribeLogGroups',
        'logs:DescribeResourcePolicies',
        'logs:GetLogDelivery',
        'logs:ListLogDeliveries',
        'logs:PutResourcePolicy',
        'logs:UpdateLogDelivery',
      ];
      for (const [policyId, policy] of Object.entries(resources(template, 'AWS::IAM::Policy'))) {
        const roles = (policy.Properties!['Roles'] as Array<{ Ref: string }>).map((r) => r.Ref);
        const allowed = smRoles.some((r) => roles.includes(r))
          ? logDelivery
          : roles.includes(rolloutRole)
            ? ['cloudwatch:GetMetricData', 'cloudwatch:ListMetrics']
            : [];
        for (const s of (policy.Properties!['PolicyDocument'] as { Statement: Statement[] }).Statement) {
          const star = (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).includes('*');
          if (star)
            expectWithMessage(
              list(s.Action).filter((a) => !allowed.includes(a)),
              policyId,
            ).toEqual([]);
          for (const action of list(s.Action)) {
            expectWithMessage(action, policyId).not.toMatch(/\*/);
            expectWithMessage(action, policyId).not.toMatch(/^xray:/);
          }
        }
      }
      template.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
      for (const role of Object.values(resources(template, 'AWS::IAM::Role'))) {
        expect(role.Properties!['ManagedPolicyArns']).toBeUndefined();
      }
    });

    it('lets each function write only to its own log group', () => {
      for (const part of ['Predict', 'Trigger', 'Plan', 'Score', 'Finalize']) {
        const [, fn] = onlyResource(template, 'AWS::Lambda::Function', part);
        const logGroup = (fn.Properties!['LoggingConfig'] as { LogGroup: { Ref: string } }).LogGroup.Ref;
        const logs = statementsOf(template, roleOf(template, part)).filter((s) =>
          list(s.Action).some((a) => a.startsWith('logs:')),
        );
        expect(logs.map((s) => [list(s.Action).sort(), flat(s.Resource)])).toEqual([
          [['logs:CreateLogStream', 'logs:PutLogEvents'], `\${${logGroup}.Arn}`],
        ]);
      }
    });
  });

  describe('monitoring', () => {
    it('alarms on API 5xx and p99 latency, failed runs, table throttles, dead letters and every function', () => {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/ApiGateway',
        MetricName: '5xx',
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/ApiGateway',
        MetricName: 'Latency',
        ExtendedStatistic: 'p99',
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Metrics: Match.arrayWith([
          Match.objectLike({
            MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: 'ExecutionsFailed' }) }),
          }),
        ]),
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Metrics: Match.arrayWith([
          Match.objectLike({
            MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: 'WriteThrottleEvents' }) }),
          }),
        ]),
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
      });
      const lambdaErrors = Object.values(resources(template, 'AWS::CloudWatch::Alarm')).filter(
        (a) => a.Properties!['Namespace'] === 'AWS/Lambda' && a.Properties!['MetricName'] === 'Errors',
      );
      expect(lambdaErrors).toHaveLength(6);
      const [topicId] = onlyResource(template, 'AWS::SNS::Topic');
      // Throttling anywhere is alarmed: each function, and the state machine's executions.
      const lambdaThrottles = Object.values(resources(template, 'AWS::CloudWatch::Alarm')).filter(
        (a) => a.Properties!['Namespace'] === 'AWS/Lambda' && a.Properties!['MetricName'] === 'Throttles',
      );
      expect(lambdaThrottles.map((a) => flat(a.Properties!['Dimensions']))).toHaveLength(6);
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/States',
        MetricName: 'ExecutionThrottled',
        Statistic: 'Sum',
        Threshold: 1,
      });
      // The score function's longest invocation nearing its 300 s timeout (it stops starting writes at 240 s).
      const [scoreId] = onlyResource(template, 'AWS::Lambda::Function', 'Score');
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: 'Duration',
        Statistic: 'Maximum',
        Threshold: 270_000,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: scoreId } }],
      });
      for (const alarm of Object.values(resources(template, 'AWS::CloudWatch::Alarm'))) {
        expect(alarm.Properties!['AlarmActions']).toEqual([{ Ref: topicId }]);
      }
      template.resourceCountIs('AWS::SNS::Subscription', 0);
      template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    });

    it("lets this account's CloudWatch alarms publish to the topic, over TLS only", () => {
      const [topicId] = onlyResource(template, 'AWS::SNS::Topic');
      const [, policy] = onlyResource(template, 'AWS::SNS::TopicPolicy');
      expect(policy.Properties!['Topics']).toEqual([{ Ref: topicId }]);
      const statements = (policy.Properties!['PolicyDocument'] as { Statement: Statement[] }).Statement;
      const publish = statements.filter((s) => s.Effect === 'Allow');
      expect(publish).toEqual([
        expect.objectContaining({
          Principal: { Service: 'cloudwatch.amazonaws.com' },
          Action: 'sns:Publish',
          Resource: { Ref: topicId },
          Condition: {
            StringEquals: { 'aws:SourceAccount': '123456789012' },
            ArnLike: { 'aws:SourceArn': 'arn:aws:cloudwatch:eu-west-1:123456789012:alarm:*' },
          },
        }),
      ]);
      expect(statements.filter((s) => s.Effect === 'Deny')).toEqual([
        expect.objectContaining({ Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      ]);
    });

    it('encrypts the alarm topic with a rotated key CloudWatch may use', () => {
      const [keyId] = onlyResource(template, 'AWS::KMS::Key');
      template.hasResourceProperties('AWS::KMS::Key', {
        EnableKeyRotation: true,
        KeyPolicy: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Principal: { Service: 'cloudwatch.amazonaws.com' },
              Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
            }),
          ]),
        },
      });
      template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] } });
    });

    it('gives every log group a retention', () => {
      const groups = Object.values(resources(template, 'AWS::Logs::LogGroup'));
      // Eight functions, two state machines, the API's access logs.
      expect(groups).toHaveLength(11);
      for (const group of groups) expect(group.Properties!['RetentionInDays']).toBe(30);
    });
  });

  it('outputs what a caller needs: exactly the outputs the deploy guide lists', () => {
    const guide = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'deploy.md'), 'utf8');
    const section = guide.slice(guide.indexOf('### Outputs'), guide.indexOf('## Upload the model'));
    const documented = [...section.matchAll(/^\| `(\w+)`/gm)].map((m) => m[1]!).sort();
    expect(documented.length).toBeGreaterThan(5);
    expect(Object.keys(template.toJSON().Outputs as object).sort()).toEqual(documented);
  });

  it('keeps what the deploy guide says is kept on tear-down, and schedules the alarm key for deletion', () => {
    for (const type of ['AWS::S3::Bucket', 'AWS::DynamoDB::Table', 'AWS::Logs::LogGroup']) {
      for (const [id, resource] of Object.entries(resources(template, type))) {
        expectWithMessage(resource.DeletionPolicy, id).toBe('Retain');
      }
    }
    const [, key] = onlyResource(template, 'AWS::KMS::Key');
    expect(key.DeletionPolicy).toBe('Delete');
    expect(key.Properties!['PendingWindowInDays']).toBe(7);
  });
});

describe('TandemStack (configured)', () => {
  let template: Template;
  beforeAll(() => {
    template = templateOf({
      modelName: 'churn',
      architecture: 'arm64',
      provisionedConcurrency: 3,
      predictMemorySize: 2048,
      scoreMemorySize: 4096,
      auth: { jwt: { issuer: 'https://issuer.example.com/', audience: ['tandem-client'] } },
      batchMaxConcurrency: 7,
      toleratedFailurePercentage: 5,
      cacheBudgetMs: 80,
      cacheMaxAgeSeconds: 600,
      cacheTtlSeconds: 7200,
      writeThrough: true,
      alarmEmail: 'ops@example.com',
      logRetention: logs.RetentionDays.ONE_WEEK,
      batchOptions: { delimiter: ';' },
    });
  }, 60_000);

  it('puts a JWT authorizer on every route', () => {
    const [authorizerId] = onlyResource(template, 'AWS::ApiGatewayV2::Authorizer');
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      IdentitySource: ['$request.header.Authorization'],
      JwtConfiguration: { Issuer: 'https://issuer.example.com/', Audience: ['tandem-client'] },
    });
    const routes = Object.values(resources(template, 'AWS::ApiGatewayV2::Route'));
    expect(routes).toHaveLength(16);
    for (const route of routes) {
      expect(route.Properties).toMatchObject({
        AuthorizationType: 'JWT',
        AuthorizerId: { Ref: authorizerId },
      });
    }
  });

  it('sets provisioned concurrency on the live alias, arm64 everywhere, and the predict settings', () => {
    template.hasResourceProperties('AWS::Lambda::Alias', {
      Name: 'live',
      ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 3 },
    });
    for (const fn of Object.values(resources(template, 'AWS::Lambda::Function'))) {
      expect(fn.Properties!['Architectures']).toEqual(['arm64']);
    }
    const [, predict] = onlyResource(template, 'AWS::Lambda::Function', 'Predict');
    expect(predict.Properties).toMatchObject({
      MemorySize: 2048,
      Environment: {
        Variables: expect.objectContaining({
          DEFAULT_MODEL: 'churn',
          CACHE_BUDGET_MS: '80',
          WRITE_THROUGH: 'true',
          CACHE_MAX_AGE_SECONDS: '600',
          CACHE_TTL_SECONDS: '7200',
        }),
      },
    });
    const score = onlyResource(template, 'AWS::Lambda::Function', 'Score')[1];
    expect(score.Properties).toMatchObject({
      MemorySize: 4096,
      Environment: {
        Variables: expect.objectContaining({ CACHE_MAX_AGE_SECONDS: '600', CACHE_TTL_SECONDS: '7200' }),
      },
    });
    const trigger = onlyResource(template, 'AWS::Lambda::Function', 'Trigger')[1];
    expect(
      JSON.parse(
        (trigger.Properties!['Environment'] as { Variables: Record<string, string> }).Variables[
          'BATCH_OPTIONS'
        ]!,
      ),
    ).toEqual({
      delimiter: ';',
    });
  });

  it('lets predict put items only with write-through', () => {
    expect(
      actionsOf(statementsOf(template, roleOf(template, 'Predict'))).filter((a) => a.startsWith('dynamodb:')),
    ).toEqual(['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:PutItem']);
  });

  it('passes the map settings into the definition', () => {
    expect(definitionOf(template).States[STATE_NAMES.map]).toMatchObject({
      MaxConcurrency: 7,
      ToleratedFailurePercentage: 5,
    });
  });

  it('subscribes the alarm email and applies the log retention', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
    for (const group of Object.values(resources(template, 'AWS::Logs::LogGroup'))) {
      expect(group.Properties!['RetentionInDays']).toBe(7);
    }
  });
});

describe('Tandem props validation', () => {
  const build = (props: ConstructorParameters<typeof Tandem>[2]) => () => testStack(testApp(), props);

  // One message per setting, naming it, from the definitions of lambdas/core/settings.ts.
  it.each([
    [{ modelName: 'bad name' }, /^ {2}- modelName: expected 1-128 letters/m],
    [{ predictMemorySize: 64 }, /^ {2}- predictMemorySize: expected an integer from 128 to 10240, got 64$/m],
    [{ batchMaxConcurrency: 0 }, /^ {2}- batchMaxConcurrency: expected an integer from 1 to 10000, got 0$/m],
    [
      { toleratedFailurePercentage: 101 },
      /^ {2}- toleratedFailurePercentage: expected a number from 0 to 100, got 101$/m,
    ],
    [{ provisionedConcurrency: -1 }, /^ {2}- provisionedConcurrency: expected an integer from 0 to 10000/m],
    [
      { auth: { jwt: { issuer: 'http://insecure', audience: ['a'] } } },
      /^ {2}- auth\.jwt\.issuer: expected an https:\/\/ URL \(the OIDC issuer\), got "http:\/\/insecure"$/m,
    ],
    [
      { auth: { jwt: { issuer: 'https://ok.example.com', audience: [] } } },
      /^ {2}- auth\.jwt\.audience: expected at least one audience/m,
    ],
    [{ alarmEmail: 'not-an-email' }, /^ {2}- alarmEmail: expected an email address, got "not-an-email"$/m],
    [
      { cacheMaxAgeSeconds: 0 },
      /^ {2}- cacheMaxAgeSeconds: expected an integer from 1 to 315360000, got 0$/m,
    ],
    [
      { batchOptions: { chunkSize: 5 } as never },
      /^ {2}- batchOptions: unknown option\(s\) chunkSize; known: /m,
    ],
    [{ batchOptions: { chunkBytes: 10 } }, /^ {2}- batchOptions: chunkBytes must be an integer >= 1024$/m],
    [{ cacheTtlSeconds: 1.5 }, /^ {2}- cacheTtlSeconds: expected an integer from 1/m],
    [
      { cacheMaxAgeSeconds: 3600, cacheTtlSeconds: 60 },
      /^ {2}- cacheTtlSeconds: must be at least cacheMaxAgeSeconds \(3600\), got 60/m,
    ],
    [{ logRetention: 10 as never }, /^ {2}- logRetention: expected one of 1, 3, 5, 7, 14, 30/m],
    [
      { apiThrottle: { rateLimit: 0, burstLimit: 10 } },
      /^ {2}- apiThrottle\.rateLimit: expected an integer/m,
    ],
    [{ architecture: 'sparc' as never }, /^ {2}- architecture: expected one of x86_64, arm64, got "sparc"$/m],
  ])('rejects %j, naming the setting', (props, message) => {
    expect(build(props)).toThrow(TandemPropsError);
    expect(build(props)).toThrow(message);
  });

  it('lists every bad prop at once', () => {
    expect(build({ predictMemorySize: 64, scoreMemorySize: 20_000 })).toThrow(
      /predictMemorySize: expected .*\n.*scoreMemorySize: expected /,
    );
  });

  it('checks the JWT issuer with the same rule as the jwtIssuer context key', () => {
    // One rule: an issuer the context accepts is one the construct accepts, and the other way round.
    for (const issuer of ['https://issuer.example.com', 'https://cognito-idp.eu-west-1.amazonaws.com/pool']) {
      expect(build({ auth: { jwt: { issuer, audience: ['a'] } } })).not.toThrow();
      expect(
        readSettings((key) => ({ auth: 'jwt', jwtIssuer: issuer, jwtAudience: 'a' })[key as string]),
      ).toBeDefined();
    }
    for (const issuer of ['https://', 'https:///path', 'http://issuer.example.com', 'https://a b']) {
      expect(build({ auth: { jwt: { issuer, audience: ['a'] } } })).toThrow(/auth\.jwt\.issuer/);
      expect(() =>
        readSettings((key) => ({ auth: 'jwt', jwtIssuer: issuer, jwtAudience: 'a' })[key as string]),
      ).toThrow(/jwtIssuer: expected an https:\/\/ URL/);
    }
  });

  it('warns when only one of the cache max age and TTL is set (the other comes from each manifest)', () => {
    // Synthesis prints its validation report (the warning) on console.error: kept out of the test output.
    const printed = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const stack = testStack(testApp(), { cacheTtlSeconds: 3600 });
    Annotations.fromStack(stack).hasWarning(
      '/Tandem/Tandem',
      Match.stringLikeRegexp('only cacheTtlSeconds is set: the other comes from each model manifest'),
    );
    expect(
      Annotations.fromStack(
        testStack(testApp(), { cacheTtlSeconds: 3600, cacheMaxAgeSeconds: 60 }),
      ).findWarning('*', Match.stringLikeRegexp('cacheTtlSeconds is set')),
    ).toEqual([]);
    expect(printed.mock.calls.flat().join('\n')).toMatch(/only cacheTtlSeconds is set/);
    printed.mockRestore();
  });
});
