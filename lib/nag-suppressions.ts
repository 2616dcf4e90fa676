/**
 * Every cdk-nag finding Tandem acknowledges, with the reason, in one place. cdk-nag 3 runs as a CDK policy
 * validation plugin; acknowledgments are CDK's `Validations.of(construct).acknowledge()` and apply to
 * the construct and everything under it. Each acknowledges one finding (a rule, or a rule plus the
 * exact wildcard resource), so a new wildcard or a new resource still fails test/infra/cdk-nag.test.ts.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type { IConstruct } from 'constructs';
import { FUNCTION_ACCESS, KEY_PATTERNS, patternsOf, type KeyPatternName } from './bucket-access.ts';
import { REFRESH_ACCESS } from './model-refresh.ts';
import type { TandemFunction } from './tandem-function.ts';
import type { Tandem } from './tandem-stack.ts';

export const REASONS = {
  noTracing:
    'X-Ray is off by design (lib/tandem-function.ts): active tracing without a tracer shows nothing below the invocation, and a tracer would put the X-Ray SDK on the API cold start and hot path and a subsegment on every table write of a chunk; structured logs (request id, run id, chunk), CloudWatch metrics and the alarms of lib/monitoring.ts cover each lane.',
  stateMachineStar:
    'The state machine logs to CloudWatch Logs: logs:CreateLogDelivery, GetLogDelivery, UpdateLogDelivery, DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy, DescribeResourcePolicies and DescribeLogGroups support only Resource "*" (asserted by test/infra/tandem-stack.test.ts).',
  runtime:
    "Pinned to nodejs22.x: the runtime the bundles target (esbuild node22) and the one onnxruntime-node's N-API binding is tested with here; moving to a newer runtime is a deliberate, tested change, not an automatic one.",
  apiSync:
    'Invoked synchronously by API Gateway: a failure is the HTTP response to the caller (who may retry); there is no asynchronous event to dead-letter.',
  stepFunctionsSync:
    'Invoked synchronously by a Step Functions task: failures are retried with backoff and caught by the state machine (Finalize records them in the run manifest); there is no asynchronous event to dead-letter.',
  triggerDestination:
    'Failed asynchronous invocations go to an on-failure destination, the batch dead-letter queue, whose records carry the event, the error and the request context (a DeadLetterConfig would send the bare event to the same queue a second time).',
  deadLetterQueue:
    'This queue is itself the dead-letter queue (of the upload rule target and the trigger function); its messages are inspected and redriven by an operator, not moved to yet another queue.',
  emailSubscription:
    "An operator's email subscription to the alarm topic: an undeliverable alarm mail has no consumer that would drain a dead-letter queue, and the alarm state stays visible in CloudWatch and on the dashboard.",
  rolloutModels:
    'The rollout function reads the pointer, the versions and the history of the model a rollout names, rewrites its current.json with a conditional write and writes its history records: objects under models/ only, for a model chosen at run time.',
  cloudWatchRead:
    'cloudwatch:GetMetricData and cloudwatch:ListMetrics support only Resource "*" (no resource-level permissions); ListMetrics is limited to the Tandem namespace by a condition, and neither reads anything but metrics.',
  scheduledPrefix:
    'A folder the deployer scheduled for re-scoring (the schedules setting): a folder run reads every file under it, whose names the writer (Spark, Athena, Glue) chooses; checked at synth to be no output prefix of the stack and to hold no wildcard.',
  scheduleDeadLetterQueue:
    'This queue is itself the dead-letter queue of the EventBridge Scheduler schedules; its messages (the run that did not start and why) are inspected by an operator, not moved to yet another queue.',
  mapChildren:
    'The Distributed Map describes and stops its own child executions, whose ARNs are created per map run: the wildcard is limited to executions of this state machine.',
} as const;

function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/**
 * How cdk-nag names a resource in a finding id: the resolved value with references flattened (`Ref X` ->
 * `<X>`, `GetAtt X.Arn` -> `<X.Arn>`, joins concatenated), as cdk-nag's flattenCfnReference does.
 */
export function nagResourceName(scope: IConstruct, value: string): string {
  const visit = (node: unknown): string => {
    if (node === undefined) return '';
    if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/\}/g, '>');
    const object = node as Record<string, unknown>;
    if (Array.isArray(object['Fn::Join'])) {
      const [delimiter, items] = object['Fn::Join'] as [string, unknown[]];
      return items.map(visit).join(delimiter);
    }
    if (object['Fn::Sub'] !== undefined) return visit(object['Fn::Sub']);
    if (Array.isArray(object['Fn::GetAtt'])) {
      const [resource, attribute] = object['Fn::GetAtt'] as [unknown, unknown];
      return `<${visit(resource)}.${visit(attribute)}>`;
    }
    if (object['Fn::ImportValue'] !== undefined) return visit(object['Fn::ImportValue']);
    if (object['Ref'] !== undefined) return `<${visit(object['Ref'])}>`;
    return JSON.stringify(node);
  };
  return visit(Stack.of(scope).resolve(value));
}

function wildcardFinding(scope: IConstruct, arn: string): string {
  return `AwsSolutions-IAM5[Resource::${nagResourceName(scope, arn)}]`;
}

function functionFindings(fn: TandemFunction, invokedBy: 'api' | 'step-functions' | 'events'): void {
  acknowledge(fn.function, 'AwsSolutions-L1', REASONS.runtime);
  acknowledge(fn.function, 'Serverless-LambdaTracing', REASONS.noTracing);
  acknowledge(fn.function, 'Serverless-LambdaLatestVersion', REASONS.runtime);
  const dlqReason =
    invokedBy === 'api'
      ? REASONS.apiSync
      : invokedBy === 'step-functions'
        ? REASONS.stepFunctionsSync
        : REASONS.triggerDestination;
  acknowledge(fn.function, 'Serverless-LambdaDLQ', dlqReason);
}

/** The key patterns a role reads or writes (lib/bucket-access.ts), each with its reason. */
export function keyPatternFindings(
  scope: IConstruct,
  bucket: s3.IBucket,
  names: readonly KeyPatternName[],
): void {
  for (const name of names) {
    acknowledge(
      scope,
      wildcardFinding(scope, bucket.arnForObjects(KEY_PATTERNS[name].pattern)),
      KEY_PATTERNS[name].reason,
    );
  }
}

export function addTandemNagSuppressions(tandem: Tandem): void {
  const bucket = tandem.data.bucket;
  const { predict } = tandem.api;
  const { trigger, plan, score, finalize, stateMachine, deadLetterQueue, distributedMapPolicy } =
    tandem.batch;

  functionFindings(predict, 'api');
  functionFindings(plan, 'step-functions');
  functionFindings(score, 'step-functions');
  functionFindings(finalize, 'step-functions');
  functionFindings(trigger, 'events');

  keyPatternFindings(predict.role, bucket, patternsOf(FUNCTION_ACCESS.predict));
  keyPatternFindings(plan.role, bucket, patternsOf(FUNCTION_ACCESS.plan));
  keyPatternFindings(score.role, bucket, patternsOf(FUNCTION_ACCESS.score));
  keyPatternFindings(finalize.role, bucket, patternsOf(FUNCTION_ACCESS.finalize));
  keyPatternFindings(stateMachine.role, bucket, ['runItems', 'runMapResults']);
  functionFindings(tandem.refresh.function, 'events');
  keyPatternFindings(tandem.refresh.function.role, bucket, patternsOf(REFRESH_ACCESS));

  acknowledge(stateMachine.role, 'AwsSolutions-IAM5[Resource::*]', REASONS.stateMachineStar);
  acknowledge(stateMachine, 'AwsSolutions-SF2', REASONS.noTracing);
  acknowledge(stateMachine, 'Serverless-StepFunctionStateMachineXray', REASONS.noTracing);
  for (const arn of tandem.batch.mapChildExecutionArns) {
    acknowledge(distributedMapPolicy, wildcardFinding(distributedMapPolicy, arn), REASONS.mapChildren);
  }
  if (tandem.monitoring.emailSubscription) {
    acknowledge(
      tandem.monitoring.emailSubscription,
      'Serverless-SNSRedrivePolicy',
      REASONS.emailSubscription,
    );
  }
  const { rollout } = tandem;
  functionFindings(rollout.step, 'step-functions');
  acknowledge(
    rollout.step.role,
    wildcardFinding(rollout.step.role, bucket.arnForObjects(KEY_PATTERNS.models.pattern)),
    REASONS.rolloutModels,
  );
  acknowledge(rollout.step.role, 'AwsSolutions-IAM5[Resource::*]', REASONS.cloudWatchRead);
  acknowledge(rollout.stateMachine, 'AwsSolutions-SF2', REASONS.noTracing);
  acknowledge(rollout.stateMachine, 'Serverless-StepFunctionStateMachineXray', REASONS.noTracing);
  acknowledge(rollout.stateMachine.role, 'AwsSolutions-IAM5[Resource::*]', REASONS.stateMachineStar);

  const schedules = tandem.batchSchedules;
  if (schedules) {
    for (const prefix of schedules.prefixes) {
      for (const role of [plan.role, score.role]) {
        acknowledge(role, wildcardFinding(role, bucket.arnForObjects(`${prefix}*`)), REASONS.scheduledPrefix);
      }
    }
    acknowledge(schedules.deadLetterQueue, 'AwsSolutions-SQS3', REASONS.scheduleDeadLetterQueue);
    acknowledge(schedules.deadLetterQueue, 'Serverless-SQSRedrivePolicy', REASONS.scheduleDeadLetterQueue);
  }
  acknowledge(deadLetterQueue, 'AwsSolutions-SQS3', REASONS.deadLetterQueue);
  acknowledge(deadLetterQueue, 'Serverless-SQSRedrivePolicy', REASONS.deadLetterQueue);
}
