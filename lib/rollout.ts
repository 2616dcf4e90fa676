/**
 * Automatic rollout (`tandem models rollout --stack`): a Standard state machine built from
 * lib/rollout-definition.ts and the rollout function that runs each of its steps
 * (lambdas/handlers/rollout-step.ts). The function reads and conditionally rewrites the pointers and
 * writes the history records under `models/`, and reads the API's per-version metrics from CloudWatch;
 * the state machine invokes it and publishes the outcome of a rollout that did not promote to the alarm
 * topic.
 */
import { Aws, Duration, Fn, Names, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { SETTINGS } from '../lambdas/core/settings.ts';
import type { RolloutThresholds } from '../lambdas/core/lifecycle/rollout-checks.ts';
import { DATA_PREFIXES } from './data-bucket.ts';
import { grantObjectAccess, type ObjectAccess } from './bucket-access.ts';
import { rolloutDefinition } from './rollout-definition.ts';
import { settingsEnvironment, TandemFunction } from './tandem-function.ts';

export const ROLLOUT_HANDLER = 'lambdas/handlers/rollout-step.ts';

/**
 * The rollout function's data bucket access: it reads a model's current.json, rewrites it (conditionally)
 * and writes history records, all under models/ (proven by test/infra/iam-coverage.test.ts). It lists
 * nothing: the history is read by the `tandem` command, with the operator's credentials.
 */
export const ROLLOUT_ACCESS = {
  read: ['models'],
  put: ['models'],
} as const satisfies ObjectAccess;

export interface RolloutProps {
  /** The data bucket (models/ holds the pointers and the history). */
  readonly bucket: s3.IBucket;
  /** Where a rollout that rolled back or stopped is announced. */
  readonly topic: sns.ITopic;
  /**
   * The key the topic is encrypted with (the state machine needs to use it to publish).
   * @default - the topic is not encrypted with a customer managed key
   */
  readonly topicKey?: kms.IKey;
  /**
   * Thresholds of the checks between steps.
   * @default - the defaults of lambdas/core/settings.ts (rolloutMaxErrorRate, rolloutMaxLatencyMs,
   *   rolloutMaxShift, rolloutMinInstances)
   */
  readonly thresholds?: Partial<RolloutThresholds>;
  /** @default lambda.Architecture.X86_64 */
  readonly architecture?: lambda.Architecture;
  /** @default SETTINGS.logRetentionDays (30) */
  readonly logRetention?: logs.RetentionDays;
}

export class Rollout extends Construct {
  public readonly step: TandemFunction;
  public readonly stateMachine: sfn.StateMachine;
  public readonly stateMachineLogGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: RolloutProps) {
    super(scope, id);
    const thresholds = props.thresholds ?? {};
    this.step = new TandemFunction(this, 'Step', {
      entry: ROLLOUT_HANDLER,
      description: 'Tandem rollout: one step of an automatic rollout (canary, check, promote or roll back)',
      memorySize: 512,
      timeout: Duration.minutes(1),
      ...(props.architecture ? { architecture: props.architecture } : {}),
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
      environment: settingsEnvironment('rollout', {
        modelsUri: props.bucket.s3UrlForObject(DATA_PREFIXES.models),
        rolloutMaxErrorRate: thresholds.maxErrorRate,
        rolloutMaxLatencyMs: thresholds.maxLatencyMs,
        rolloutMaxShift: thresholds.maxShift,
        rolloutMinInstances: thresholds.minInstances,
      }),
    });
    grantObjectAccess(this.step.role, props.bucket, ROLLOUT_ACCESS);
    // CloudWatch has no resource-level permissions for reading metrics: ListMetrics and GetMetricData
    // take only "*" (the namespace condition narrows ListMetrics to the API's namespace).
    this.step.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['cloudwatch:GetMetricData'],
        resources: ['*'],
      }),
    );
    this.step.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['cloudwatch:ListMetrics'],
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': 'Tandem' } },
      }),
    );

    this.stateMachineLogGroup = new logs.LogGroup(this, 'StateMachineLogs', {
      // Under /aws/vendedlogs/ for the same reason as the batch state machine's (lib/batch-pipeline.ts).
      logGroupName: `/aws/vendedlogs/states/${Stack.of(this).stackName}-${Names.uniqueResourceName(this, { maxLength: 100, separator: '-' })}-${Fn.select(2, Fn.split('/', Aws.STACK_ID))}`,
      retention: props.logRetention ?? (SETTINGS.logRetentionDays.default as logs.RetentionDays),
    });
    const definition = rolloutDefinition({
      rolloutFunctionArn: this.step.function.functionArn,
      topicArn: props.topic.topicArn,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromString(Stack.of(this).toJsonString(definition)),
      comment: 'Tandem automatic rollout',
      tracingEnabled: false,
      logs: { destination: this.stateMachineLogGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
    // The definition is a string: the grants a state graph would derive are made here.
    iam.Grant.addToPrincipal({
      grantee: this.stateMachine.role,
      actions: ['lambda:InvokeFunction'],
      // The definition invokes the unqualified ARN.
      resourceArns: [this.step.function.functionArn],
    });
    // Not topic.grantPublish: it grants kms:GenerateDataKey* (an action wildcard) on the key.
    iam.Grant.addToPrincipal({
      grantee: this.stateMachine.role,
      actions: ['sns:Publish'],
      resourceArns: [props.topic.topicArn],
    });
    props.topicKey?.grant(this.stateMachine.role, 'kms:Decrypt', 'kms:GenerateDataKey');
  }

  /** Lets a principal start rollouts (`tandem models rollout --stack`). */
  public grantStart(grantee: iam.IGrantable): iam.Grant {
    return this.stateMachine.grantStartExecution(grantee);
  }
}
