/**
 * The batch lane: an upload to `incoming/<model>/<file>` raises an S3 "Object Created" event on the default
 * event bus; a rule sends it to the trigger function (retries, then a dead-letter queue), which starts one
 * execution of a Standard state machine per object version. The state machine is the one lib/batch-definition.ts
 * builds (the same definition runs locally): plan -> Distributed Map of Standard children scoring chunks ->
 * finalize, which writes the run manifest and publishes `Tandem Batch Run Completed` (source `tandem.batch`).
 */
import { ArnFormat, Aws, Duration, Fn, Names, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { CachePolicyOverride } from '../lambdas/adapters/cache-policy-override.ts';
import type { BatchOptions } from '../lambdas/core/batch/contracts.ts';
import { batchDefinition } from './batch-definition.ts';
import { DATA_PREFIXES } from './data-bucket.ts';
import { FUNCTION_ACCESS, grantObjectAccess, KEY_PATTERNS } from './bucket-access.ts';
import { SETTINGS } from '../lambdas/core/settings.ts';
import { settingsEnvironment, TandemFunction } from './tandem-function.ts';

/** The completion event the finalize function publishes. */
export const BATCH_COMPLETED_EVENT = {
  source: 'tandem.batch',
  detailType: 'Tandem Batch Run Completed',
} as const;

/**
 * The score function's timeout: one invocation. A chunk whose table writes do not fit one invocation
 * continues in the next (its Standard child execution loops), so a slow table never fails a chunk; the
 * name stays from when children were Express executions, which Step Functions stops at 5 minutes.
 */
export const EXPRESS_CHILD_MAX_DURATION = Duration.minutes(5);

/**
 * The file name endings of a dataset the planner reads (lambdas/core/batch/contracts.ts parseIncomingKey):
 * CSV and JSON Lines, optionally gzipped, and Parquet. The upload rule matches them in lower or upper case.
 */
export const DATASET_SUFFIXES = [
  '.csv',
  '.csv.gz',
  '.jsonl',
  '.jsonl.gz',
  '.ndjson',
  '.ndjson.gz',
  '.parquet',
] as const;

/**
 * The object keys that start a run: `incoming/<model>/...<file>` with a dataset ending. EventBridge's
 * wildcard `*` matches any characters, `/` included; it is case-sensitive, so each ending is listed in
 * lower and upper case. Anything else under `incoming/` (a README, a key with no model folder) never
 * reaches the trigger.
 */
export function uploadKeyPatterns(): string[] {
  return DATASET_SUFFIXES.flatMap((suffix) => [
    `${DATA_PREFIXES.incoming}*/*${suffix}`,
    `${DATA_PREFIXES.incoming}*/*${suffix.toUpperCase()}`,
  ]);
}

/** The handler files of the batch lane, relative to the project root. */
export const BATCH_HANDLERS = {
  trigger: 'lambdas/handlers/batch-trigger.ts',
  plan: 'lambdas/handlers/batch-plan.ts',
  score: 'lambdas/handlers/batch-score.ts',
  finalize: 'lambdas/handlers/batch-finalize.ts',
} as const;

export interface BatchPipelineProps {
  readonly bucket: s3.IBucket;
  readonly table: dynamodb.ITable;
  /**
   * Most chunks scored at once (the Distributed Map's MaxConcurrency; also bounds the score function's
   * concurrency and the table's write rate).
   * @default SETTINGS.batchMaxConcurrency (40)
   */
  readonly maxConcurrency?: number;
  /**
   * Percentage of chunks that may fail (after retries) without failing the run.
   * @default SETTINGS.toleratedFailurePercentage (0)
   */
  readonly toleratedFailurePercentage?: number;
  /**
   * Memory of the score function (MB); CPU is proportional (3008 MB = 1.7 vCPU, 3538 MB = 2 vCPU).
   * @default SETTINGS.scoreMemorySize (3008: about 1.7 vCPU, the most a new account's quota allows)
   */
  readonly scoreMemorySize?: number;
  /** @default 2048 */
  readonly planMemorySize?: number;
  /** @default lambda.Architecture.X86_64 */
  readonly architecture?: lambda.Architecture;
  /**
   * Options for every run (`BATCH_OPTIONS` of the trigger; see BatchOptions in lambdas/core/batch/contracts.ts).
   * @default - DEFAULT_BATCH_OPTIONS
   */
  readonly batchOptions?: Partial<BatchOptions>;
  /** @default SETTINGS.logRetentionDays (30) */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Item TTL (and max age) over the model manifests' for the table writes of the score function
   * (`CACHE_TTL_SECONDS`, `CACHE_MAX_AGE_SECONDS`).
   * @default - the manifests' `cache` policy
   */
  readonly cachePolicy?: CachePolicyOverride;
  /**
   * The drift verdict of each run's manifest (`DRIFT_THRESHOLD`, `DRIFT_MIN_RECORDS` of the finalize function).
   * @default - the settings' defaults (PSI 0.2, 100 rows)
   */
  readonly drift?: { readonly threshold?: number; readonly minRecords?: number };
  /**
   * Share of scored rows captured under the bucket's capture/<model>/batch/ (0 = off).
   * @default SETTINGS.captureBatchRate (0.01, `CAPTURE_BATCH_RATE`)
   */
  readonly captureBatchRate?: number;
}

export class BatchPipeline extends Construct {
  public readonly trigger: TandemFunction;
  public readonly plan: TandemFunction;
  public readonly score: TandemFunction;
  public readonly finalize: TandemFunction;
  public readonly stateMachine: sfn.StateMachine;
  public readonly stateMachineLogGroup: logs.LogGroup;
  /** The rule that sends `incoming/` uploads to the trigger. */
  public readonly uploadRule: events.Rule;
  /** Events and asynchronous invocations of the trigger that failed after every retry. */
  public readonly deadLetterQueue: sqs.Queue;
  /** The bus the completion event is published on. */
  public readonly eventBus: events.IEventBus;
  /** Lets the Distributed Map start, describe and stop its child executions. */
  public readonly distributedMapPolicy: iam.Policy;
  /** The ARN patterns of the Distributed Map's child executions. */
  public readonly mapChildExecutionArns: string[];

  constructor(scope: Construct, id: string, props: BatchPipelineProps) {
    super(scope, id);
    const { bucket, table } = props;
    const common = {
      ...(props.architecture ? { architecture: props.architecture } : {}),
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
    };
    const modelsUri = bucket.s3UrlForObject(DATA_PREFIXES.models);

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    this.plan = new TandemFunction(this, 'Plan', {
      ...common,
      entry: BATCH_HANDLERS.plan,
      description: 'Tandem batch: plan the chunks of an upload',
      memorySize: props.planMemorySize ?? 2048,
      // Scans the upload for record boundaries and may decompress a gzip upload into staging.
      timeout: Duration.minutes(15),
      environment: settingsEnvironment('plan', { modelsUri }),
    });
    this.score = new TandemFunction(this, 'Score', {
      ...common,
      entry: BATCH_HANDLERS.score,
      description: 'Tandem batch: score one chunk',
      memorySize: props.scoreMemorySize ?? SETTINGS.scoreMemorySize.default,
      // Each invocation stops starting table writes a minute before this and hands the chunk on.
      timeout: EXPRESS_CHILD_MAX_DURATION,
      onnxRuntime: true,
      environment: settingsEnvironment('score', {
        modelsUri,
        tableName: table.tableName,
        captureBucket: bucket.bucketName,
        captureBatchRate: props.captureBatchRate ?? SETTINGS.captureBatchRate.default,
        cacheMaxAgeSeconds: props.cachePolicy?.maxAgeSeconds,
        cacheTtlSeconds: props.cachePolicy?.ttlSeconds,
      }),
    });
    this.eventBus = events.EventBus.fromEventBusName(this, 'DefaultBus', 'default');
    this.finalize = new TandemFunction(this, 'Finalize', {
      ...common,
      entry: BATCH_HANDLERS.finalize,
      description: 'Tandem batch: write the run manifest and publish the completion event',
      memorySize: 1024,
      timeout: Duration.minutes(5),
      environment: settingsEnvironment('finalize', {
        eventBusName: this.eventBus.eventBusName,
        driftThreshold: props.drift?.threshold,
        driftMinRecords: props.drift?.minRecords,
      }),
    });

    grantObjectAccess(this.plan.role, bucket, FUNCTION_ACCESS.plan);
    grantObjectAccess(this.score.role, bucket, FUNCTION_ACCESS.score);
    // Conditional PutItem: a fresher item is never replaced.
    table.grant(this.score.role, 'dynamodb:PutItem');
    grantObjectAccess(this.finalize.role, bucket, FUNCTION_ACCESS.finalize);
    // Only the completion event: the bus accepts nothing else from this role.
    iam.Grant.addToPrincipal({
      grantee: this.finalize.role,
      actions: ['events:PutEvents'],
      resourceArns: [this.eventBus.eventBusArn],
      conditions: {
        StringEquals: {
          'events:source': [BATCH_COMPLETED_EVENT.source],
          'events:detail-type': [BATCH_COMPLETED_EVENT.detailType],
        },
      },
    });

    this.stateMachineLogGroup = new logs.LogGroup(this, 'StateMachineLogs', {
      // Under /aws/vendedlogs/ CloudWatch Logs authorizes the delivery with one wildcard resource policy;
      // any other name adds this log group to the account's resource policy, which is capped at 5,120
      // characters. The group is retained when the stack is deleted, so the name ends with the id of this
      // stack instance (the last part of its stack id): a stack created again with the same name gets a new
      // group instead of failing on the one it left behind.
      logGroupName: `/aws/vendedlogs/states/${Stack.of(this).stackName}-${Names.uniqueResourceName(this, { maxLength: 100, separator: '-' })}-${Fn.select(2, Fn.split('/', Aws.STACK_ID))}`,
      retention: props.logRetention ?? (SETTINGS.logRetentionDays.default as logs.RetentionDays),
    });
    const definition = batchDefinition({
      planFunctionArn: this.plan.function.functionArn,
      scoreFunctionArn: this.score.function.functionArn,
      finalizeFunctionArn: this.finalize.function.functionArn,
      bucketName: bucket.bucketName,
      maxConcurrency: props.maxConcurrency ?? SETTINGS.batchMaxConcurrency.default,
      toleratedFailurePercentage:
        props.toleratedFailurePercentage ?? SETTINGS.toleratedFailurePercentage.default,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromString(Stack.of(this).toJsonString(definition)),
      comment: 'Tandem batch scoring',
      // No X-Ray: the functions are not traced either (lib/tandem-function.ts says why).
      tracingEnabled: false,
      logs: { destination: this.stateMachineLogGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
    // The map's child executions: `execution:<name>/<map run label>:<id>` (and `<name>:<id>`).
    this.mapChildExecutionArns = ['/*', ':*'].map((suffix) =>
      Stack.of(this).formatArn({
        service: 'states',
        resource: 'execution',
        resourceName: `${this.stateMachine.stateMachineName}${suffix}`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      }),
    );
    this.distributedMapPolicy = this.grantStateMachineWhatTheDefinitionNeeds(bucket);

    this.trigger = new TandemFunction(this, 'Trigger', {
      ...common,
      entry: BATCH_HANDLERS.trigger,
      description: 'Tandem batch: start one run per uploaded object version',
      memorySize: 256,
      timeout: Duration.seconds(30),
      onFailure: this.deadLetterQueue,
      retryAttempts: 2,
      environment: settingsEnvironment('trigger', {
        stateMachineArn: this.stateMachine.stateMachineArn,
        batchOptions: props.batchOptions,
      }),
    });
    this.stateMachine.grantStartExecution(this.trigger.role);

    this.uploadRule = new events.Rule(this, 'UploadRule', {
      description: 'Tandem: datasets uploaded to incoming/<model>/ start a batch run',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [bucket.bucketName] },
          object: { key: events.Match.anyOf(...uploadKeyPatterns().map((p) => events.Match.wildcard(p))) },
        },
      },
    });
    this.uploadRule.addTarget(
      new targets.LambdaFunction(this.trigger.function, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 8,
        maxEventAge: Duration.hours(6),
      }),
    );
  }

  /** The functions the definition lists as functions to invoke (for dashboards and alarms). */
  public get functions(): Record<'trigger' | 'plan' | 'score' | 'finalize', TandemFunction> {
    return { trigger: this.trigger, plan: this.plan, score: this.score, finalize: this.finalize };
  }

  /**
   * The definition is a string, so the grants CDK derives from a state graph are not made for it: the
   * three Lambda tasks, the ItemReader (the run's items.json), the ResultWriter (the run's map-results
   * folder), and the Distributed Map's own child executions.
   */
  private grantStateMachineWhatTheDefinitionNeeds(bucket: s3.IBucket): iam.Policy {
    const role = this.stateMachine.role;
    iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['lambda:InvokeFunction'],
      // The definition invokes the unqualified ARNs.
      resourceArns: [this.plan, this.score, this.finalize].map((f) => f.function.functionArn),
    });
    // ItemReader: the run's items; ResultWriter: the map results folder of the run (the actions CDK's own
    // DistributedMap ResultWriter grants).
    iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['s3:GetObject'],
      resourceArns: [bucket.arnForObjects(KEY_PATTERNS.runItems.pattern)],
    });
    iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['s3:PutObject', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'],
      resourceArns: [bucket.arnForObjects(KEY_PATTERNS.runMapResults.pattern)],
    });
    // A policy of its own, not the role's default policy: the state machine depends on its role (and that
    // policy), while these statements name the state machine; one resource would make a cycle.
    const policy = new iam.Policy(this, 'DistributedMapPolicy', {
      statements: [
        new iam.PolicyStatement({
          actions: ['states:StartExecution'],
          resources: [this.stateMachine.stateMachineArn],
        }),
        new iam.PolicyStatement({
          // No RedriveExecution: a failed run is re-run by uploading the object again (docs/deploy.md),
          // never redriven, so the map never redrives its children.
          actions: ['states:DescribeExecution', 'states:StopExecution'],
          resources: this.mapChildExecutionArns,
        }),
      ],
    });
    policy.attachToRole(role);
    return policy;
  }
}
