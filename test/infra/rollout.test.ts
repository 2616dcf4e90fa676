/**
 * The automatic rollout as synthesized: the state machine built from rolloutDefinition (one Choice that
 * routes every task's decision, failed tasks caught into Roll back, the outcome published to the alarm
 * topic), the rollout function's environment and least-privilege role, the state machine's role, and
 * the definition's own structure (every transition names a state; every decision a task returns is routed).
 */
import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { ROLLOUT_STATES, ROLLOUT_TASKS, rolloutDefinition } from '../../lib/rollout-definition.ts';
import type { RolloutDecision } from '../../lambdas/core/lifecycle/rollout.ts';
import { flat, list, onlyResource, roleOf, statementsOf, templateOf, type Statement } from './support.ts';

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

describe('the rollout definition', () => {
  const definition = rolloutDefinition({ rolloutFunctionArn: 'fn', topicArn: 'topic' });
  const states = definition.States;

  it('names only states that exist in every transition', () => {
    const targets = Object.values(states).flatMap((state) => [
      ...(state['Next'] ? [state['Next'] as string] : []),
      ...(state['Default'] ? [state['Default'] as string] : []),
      ...((state['Choices'] as { Next: string }[] | undefined) ?? []).map((c) => c.Next),
      ...((state['Catch'] as { Next: string }[] | undefined) ?? []).map((c) => c.Next),
    ]);
    expect(targets.filter((t) => !(t in states))).toEqual([]);
    expect(definition.StartAt in states).toBe(true);
  });

  it('routes every decision a task returns: onward, or (rolled back, stopped) to Notify then Fail', () => {
    const choices = states[ROLLOUT_STATES.next]!['Choices'] as { StringEquals: string; Next: string }[];
    const routes = Object.fromEntries(choices.map((c) => [c.StringEquals, c.Next]));
    const all: Record<RolloutDecision, string> = {
      bake: ROLLOUT_STATES.bake,
      advance: ROLLOUT_STATES.advance,
      promote: ROLLOUT_STATES.promote,
      rollback: ROLLOUT_STATES.rollback,
      promoted: ROLLOUT_STATES.promoted,
      'rolled-back': ROLLOUT_STATES.notify,
      stopped: ROLLOUT_STATES.notify,
    };
    for (const [decision, next] of Object.entries(all)) {
      expect([decision, routes[decision] ?? states[ROLLOUT_STATES.next]!['Default']]).toEqual([
        decision,
        next,
      ]);
    }
    expect(states[ROLLOUT_STATES.notify]!['Next']).toBe(ROLLOUT_STATES.failed);
    expect(states[ROLLOUT_STATES.failed]).toMatchObject({
      Type: 'Fail',
      ErrorPath: '$.outcome.error',
      CausePath: '$.outcome.message',
    });
  });

  it("gives each task its action, bakes with the request's time, and rolls back a step that fails for good", () => {
    for (const [name, action] of Object.entries(ROLLOUT_TASKS)) {
      expect(states[name]).toMatchObject({
        Type: 'Task',
        Resource: 'fn',
        Parameters: { action, 'state.$': '$' },
      });
    }
    expect(states[ROLLOUT_STATES.bake]).toEqual({
      Type: 'Wait',
      SecondsPath: '$.bakeSeconds',
      Next: ROLLOUT_STATES.check,
    });
    for (const name of [ROLLOUT_STATES.check, ROLLOUT_STATES.advance, ROLLOUT_STATES.promote]) {
      expect(states[name]!['Catch']).toEqual([
        { ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: ROLLOUT_STATES.rollback },
      ]);
    }
    // A refusal at the start is not retried, nor rolled back (nothing was written).
    expect(states[ROLLOUT_STATES.start]!['Catch']).toBeUndefined();
    expect((states[ROLLOUT_STATES.start]!['Retry'] as unknown[])[0]).toEqual({
      ErrorEquals: ['LifecycleRefusedError'],
      MaxAttempts: 0,
    });
    expect(states[ROLLOUT_STATES.notify]).toMatchObject({
      Resource: 'arn:aws:states:::sns:publish',
      Parameters: { TopicArn: 'topic', 'Subject.$': '$.outcome.subject', 'Message.$': '$.outcome.message' },
    });
  });
});

describe('the rollout resources', () => {
  let template: Template;
  beforeAll(() => {
    template = templateOf({ rolloutThresholds: { maxErrorRate: 0.05, minInstances: 50 } });
  }, 120_000);

  it('builds the state machine from rolloutDefinition, invoking the rollout function and publishing to the alarm topic', () => {
    const [, sm] = onlyResource(template, 'AWS::StepFunctions::StateMachine', 'RolloutStateMachine');
    const definition = JSON.parse(flat(sm.Properties!['DefinitionString'])) as ReturnType<
      typeof rolloutDefinition
    >;
    expect(definition.States[ROLLOUT_STATES.check]!['Resource']).toMatch(
      /^\$\{TandemRolloutStepFunction\w+\.Arn\}$/,
    );
    expect(definition.States[ROLLOUT_STATES.notify]!['Parameters']).toMatchObject({
      TopicArn: expect.stringMatching(/^\$\{TandemMonitoringAlarmTopic\w+\}$/),
    });
    expect(sm.Properties).toMatchObject({ StateMachineType: 'STANDARD' });
  });

  it('gives the rollout function the models location and the thresholds set, and nothing else', () => {
    const [, fn] = onlyResource(template, 'AWS::Lambda::Function', 'RolloutStep');
    const variables = (fn.Properties!['Environment'] as { Variables: Record<string, unknown> }).Variables;
    expect(Object.keys(variables).sort()).toEqual([
      'MODELS_URI',
      'NODE_OPTIONS',
      'ROLLOUT_MAX_ERROR_RATE',
      'ROLLOUT_MIN_INSTANCES',
    ]);
    expect(variables['ROLLOUT_MAX_ERROR_RATE']).toBe('0.05');
    expect(variables['ROLLOUT_MIN_INSTANCES']).toBe('50');
  });

  it('lets the rollout function read and write under models/ and read metrics, nothing more', () => {
    const statements = statementsOf(template, roleOf(template, 'RolloutStep')).filter(
      (s) => !list(s.Action).some((a) => a.startsWith('logs:')),
    );
    expect(grants(statements)).toEqual([
      'cloudwatch:GetMetricData *',
      'cloudwatch:ListMetrics * if {"StringEquals":{"cloudwatch:namespace":"Tandem"}}',
      's3:GetObject bucket/models/*',
      's3:PutObject bucket/models/*',
    ]);
  });

  it('lets the state machine invoke only the rollout function and publish only to the alarm topic', () => {
    const [, sm] = onlyResource(template, 'AWS::StepFunctions::StateMachine', 'RolloutStateMachine');
    const roleId = (sm.Properties!['RoleArn'] as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]!;
    const statements = statementsOf(template, roleId).filter(
      (s) => !list(s.Action).some((a) => a.startsWith('logs:')),
    );
    const byAction = grants(statements).map((g) => g.replace(/\w{8}(\.Arn)?\}/g, '}'));
    expect(byAction).toEqual([
      'kms:Decrypt ${TandemMonitoringTopicKey}',
      'kms:GenerateDataKey ${TandemMonitoringTopicKey}',
      'lambda:InvokeFunction ${TandemRolloutStepFunction}',
      'sns:Publish ${TandemMonitoringAlarmTopic}',
    ]);
  });

  it('outputs the state machine for the CLI', () => {
    expect(template.toJSON().Outputs['RolloutStateMachineArn']).toEqual(
      expect.objectContaining({ Value: { Ref: expect.stringMatching(/^TandemRolloutStateMachine/) } }),
    );
  });
});
