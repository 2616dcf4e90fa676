/**
 * The L3 construct as another CDK app uses it: props that are `readonly` with a `@default` on every optional
 * one (checked on the source with the TypeScript compiler), created resources exposed, and the `grant*`
 * methods a consumer wires its own principals with.
 */
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from '@jest/globals';
import { Tandem } from '../../lib/index.ts';
import { flat, list, REPO_ROOT, resources, statementsOf, testApp, type Statement } from './support.ts';

const LIB = path.join(REPO_ROOT, 'lib');

interface PropIssue {
  readonly where: string;
  readonly problem: string;
}

/** Every property of every `...Props` / `...Options` interface under lib/, and those that break the rules. */
function checkProps(): { checked: string[]; issues: PropIssue[] } {
  const checked: string[] = [];
  const issues: PropIssue[] = [];
  for (const file of fs.readdirSync(LIB).filter((f) => f.endsWith('.ts'))) {
    const text = fs.readFileSync(path.join(LIB, file), 'utf8');
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
    source.forEachChild((node) => {
      if (!ts.isInterfaceDeclaration(node) || !/(Props|Options)$/.test(node.name.text)) return;
      for (const member of node.members) {
        if (!ts.isPropertySignature(member)) continue;
        const where = `${file} ${node.name.text}.${member.name.getText(source)}`;
        checked.push(where);
        const readonly = member.modifiers?.some((m) => m.kind === ts.SyntaxKind.ReadonlyKeyword);
        if (!readonly) issues.push({ where, problem: 'not readonly' });
        const hasDefault = ts.getJSDocTags(member).some((tag) => tag.tagName.text === 'default');
        if (member.questionToken && !hasDefault) issues.push({ where, problem: 'optional without @default' });
      }
    });
  }
  return { checked, issues };
}

function hostWithTandem(props: ConstructorParameters<typeof Tandem>[2] = {}) {
  const stack = new Stack(testApp(), 'Host', { env: { account: '123456789012', region: 'eu-west-1' } });
  const tandem = new Tandem(stack, 'Tandem', props);
  const consumer = new iam.Role(stack, 'Consumer', { assumedBy: new iam.AccountRootPrincipal() });
  return { stack, tandem, consumer };
}

function consumerStatements(stack: Stack): Statement[] {
  const template = Template.fromStack(stack);
  const [roleId] = Object.keys(resources(template, 'AWS::IAM::Role')).filter((id) =>
    id.startsWith('Consumer'),
  );
  return statementsOf(template, roleId!);
}

describe('Tandem construct API', () => {
  it('declares every props interface readonly, with @default on each optional property', () => {
    const { checked, issues } = checkProps();
    expect(checked).toEqual(
      expect.arrayContaining([
        'tandem-stack.ts TandemProps.modelName',
        'tandem-stack.ts TandemProps.cacheTtlSeconds',
        'realtime-api.ts RealtimeApiProps.bucket',
        'batch-pipeline.ts BatchPipelineProps.maxConcurrency',
        'data-bucket.ts DataBucketProps.runsExpirationDays',
        'monitoring.ts MonitoringProps.alarmEmail',
      ]),
    );
    expect(issues).toEqual([]);
  });

  it('exposes what it creates: each property refers to a resource of its type in the template', () => {
    const { stack, tandem } = hostWithTandem();
    const template = Template.fromStack(stack).toJSON() as { Resources: Record<string, { Type: string }> };
    /** The type of the resource a token (a Ref or a GetAtt) refers to. */
    const typeOf = (token: string): string | undefined => {
      const resolved = stack.resolve(token) as { Ref?: string; 'Fn::GetAtt'?: [string, string] };
      const id = resolved.Ref ?? resolved['Fn::GetAtt']?.[0];
      return id === undefined ? undefined : template.Resources[id]?.Type;
    };
    expect(typeOf(tandem.data.bucket.bucketArn)).toBe('AWS::S3::Bucket');
    expect(typeOf(tandem.predictions.table.tableArn)).toBe('AWS::DynamoDB::Table');
    expect(typeOf(tandem.api.api.apiId)).toMatch(/^AWS::ApiGateway(V2)?::(Rest)?Api$/);
    expect(tandem.api.alias.aliasName).toBe('live');
    expect(typeOf(tandem.api.predict.function.functionArn)).toBe('AWS::Lambda::Function');
    const roles = Object.values(tandem.batch.functions).map((fn) => fn.role.roleArn);
    expect(roles.length).toBeGreaterThanOrEqual(4);
    for (const role of roles) expect(typeOf(role)).toBe('AWS::IAM::Role');
    expect(typeOf(tandem.batch.stateMachine.stateMachineArn)).toBe('AWS::StepFunctions::StateMachine');
    expect(typeOf(tandem.batch.deadLetterQueue.queueUrl)).toBe('AWS::SQS::Queue');
    expect(typeOf(tandem.monitoring.dashboard.dashboardName)).toBe('AWS::CloudWatch::Dashboard');
    expect(Object.keys(tandem.monitoring.alarms).length).toBeGreaterThanOrEqual(9);
    for (const alarm of Object.values(tandem.monitoring.alarms)) {
      expect(typeOf(alarm.alarmArn)).toBe('AWS::CloudWatch::Alarm');
    }
    expect(tandem.authMode).toBe('iam');
  });

  it('grants a consumer the API, dataset uploads, results and model publishing, each on its own keys', () => {
    const { stack, tandem, consumer } = hostWithTandem();
    tandem.grantInvokeApi(consumer);
    tandem.grantUploadDatasets(consumer, 'fraud-detector');
    tandem.grantReadResults(consumer);
    tandem.grantPublishModels(consumer, 'fraud-detector');
    const granted = consumerStatements(stack)
      .flatMap((s) =>
        list(s.Action).flatMap((action) =>
          (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).map(
            (r) =>
              `${action} ${flat(r).replace(/\$\{TandemDataBucket\w+\.Arn\}/, 'bucket')}${s.Condition ? ` if ${JSON.stringify(s.Condition)}` : ''}`,
          ),
        ),
      )
      .sort();
    const api = (route: string) =>
      expect.stringMatching(
        new RegExp(
          `^execute-api:Invoke arn:aws:execute-api:eu-west-1:123456789012:\\$\\{TandemApi\\w+\\}/\\*/${route.replace(/\*/g, '\\*')}$`,
        ),
      );
    expect(granted).toEqual([
      api('GET/health'),
      api('GET/models'),
      api('GET/models/*'),
      api('GET/openapi.json'),
      api('GET/ready'),
      api('GET/v2'),
      api('GET/v2/health/live'),
      api('GET/v2/health/ready'),
      api('GET/v2/models/*'),
      api('GET/v2/models/*/ready'),
      api('GET/v2/models/*/versions/*'),
      api('GET/v2/models/*/versions/*/ready'),
      api('POST/feedback'),
      api('POST/predict'),
      api('POST/v2/models/*/infer'),
      api('POST/v2/models/*/versions/*/infer'),
      's3:AbortMultipartUpload bucket/incoming/fraud-detector/*',
      's3:AbortMultipartUpload bucket/models/fraud-detector/*',
      's3:GetObject bucket/results/*',
      's3:ListBucket bucket if {"StringLike":{"s3:prefix":["results/*"]}}',
      's3:PutObject bucket/incoming/fraud-detector/*',
      's3:PutObject bucket/models/fraud-detector/*',
    ]);
  });

  it('refuses an IAM grant on a JWT-authorized API, and a model name that is not one', () => {
    const { tandem, consumer } = hostWithTandem({
      auth: { jwt: { issuer: 'https://issuer.example.com/', audience: ['tandem'] } },
    });
    expect(tandem.authMode).toBe('jwt');
    expect(() => tandem.grantInvokeApi(consumer)).toThrow(/JWT authorizer; callers need a token/);
    expect(() => tandem.grantUploadDatasets(consumer, '../models')).toThrow(/a model name is 1-128 letters/);
  });
});
