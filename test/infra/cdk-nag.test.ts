/**
 * cdk-nag's AwsSolutions and Serverless packs over the stack, as cdk-nag 3 runs them: CDK policy validation
 * plugins (`Validations.of(app).addPlugins`), with findings acknowledged through
 * `Validations.of(construct).acknowledge()` (all in lib/nag-suppressions.ts). Two configurations, one synth.
 */
import { Validations, type App, type Stack } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks, type NagPack } from 'cdk-nag';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { testApp, testStack } from './support.ts';
import { expectWithMessage } from '../support/expect-message.ts';

interface Finding {
  readonly rule: string;
  readonly severity: string;
  readonly paths: readonly string[];
}

interface Acknowledgment {
  readonly path: string;
  readonly id: string;
  readonly reason: string;
}

function packs(): NagPack[] {
  return [
    new AwsSolutionsChecks(undefined, { verbose: true }),
    new ServerlessChecks(undefined, { verbose: true }),
  ];
}

/** What the packs report for a stack; with `raw`, acknowledged findings too. */
function findings(stack: Stack, raw = false): Finding[] {
  return packs().flatMap((pack) => {
    // The pack skips acknowledged findings itself; turning that off shows what each acknowledgment covers.
    if (raw) (pack as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
    return pack.validateScope(stack).violations.map((v) => ({
      rule: v.ruleName,
      severity: v.severity ?? 'error',
      paths: v.violatingResources.map((r) => r.constructPath ?? r.resourceLogicalId ?? '?'),
    }));
  });
}

function acknowledgments(stack: Stack): Acknowledgment[] {
  return stack.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((entry) =>
        Object.entries(entry.data as Record<string, string>).map(([key, reason]) => ({
          path: construct.node.path,
          id: key.replace(/^[^:]+::/, ''),
          reason,
        })),
      ),
  );
}

describe('cdk-nag: AwsSolutions and Serverless packs', () => {
  let outdir: string;
  let app: App;
  let stacks: Stack[];
  let synthError: unknown;

  beforeAll(() => {
    outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-nag-'));
    app = testApp({ outdir });
    stacks = [
      testStack(app),
      testStack(
        app,
        {
          architecture: 'arm64',
          provisionedConcurrency: 2,
          writeThrough: true,
          alarmEmail: 'ops@example.com',
          auth: { jwt: { issuer: 'https://issuer.example.com/', audience: ['tandem'] } },
          batchOptions: { tableWrites: 'none' },
          streamLane: true,
          schedules: [
            { model: 'fraud-detector', prefix: 'warehouse/daily/', expression: 'cron(0 6 * * ? *)' },
          ],
        },
        'TandemConfigured',
      ),
    ];
    Validations.of(app).addPlugins(
      new AwsSolutionsChecks(app, { verbose: true }),
      new ServerlessChecks(app, { verbose: true }),
    );
    try {
      app.synth();
    } catch (error) {
      synthError = error;
    }
  }, 60_000);

  afterAll(() => {
    fs.rmSync(outdir, { recursive: true, force: true });
  }, 60_000);

  it('synthesizes with the packs as validation plugins: no unacknowledged error or warning', () => {
    expect(synthError === undefined ? undefined : String(synthError)).toBeUndefined();
    const report = JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8')) as {
      pluginReports: Array<{ pluginName: string; violations: Array<{ ruleName: string; severity: string }> }>;
    };
    const reported = report.pluginReports.flatMap((p) =>
      p.violations.map((v) => `${p.pluginName} ${v.severity} ${v.ruleName}`),
    );
    expect(reported).toEqual([]);
  });

  it.each(['Tandem', 'TandemConfigured'])('%s: each pack finds nothing unacknowledged', (stackName) => {
    const stack = stacks.find((s) => s.stackName === stackName)!;
    expect(findings(stack)).toEqual([]);
  });

  it('gives every acknowledgment a specific reason, and each one covers a real finding', () => {
    for (const stack of stacks) {
      const raw = findings(stack, true);
      const acks = acknowledgments(stack);
      expect(acks.length).toBeGreaterThan(0);
      for (const ack of acks) {
        expectWithMessage(ack.id, ack.path).toMatch(/^(AwsSolutions|Serverless)-/);
        expectWithMessage(ack.reason.length, `${ack.path} ${ack.id}`).toBeGreaterThanOrEqual(80);
        const covered = raw.some(
          (f) => f.rule === ack.id && f.paths.some((p) => p === ack.path || p.startsWith(`${ack.path}/`)),
        );
        expectWithMessage(covered, `${ack.path} acknowledges ${ack.id}, which it does not have`).toBe(true);
      }
    }
  });

  it('acknowledges only these rules', () => {
    const rules = [
      ...new Set(stacks.flatMap(acknowledgments).map((a) => a.id.replace(/\[.*\]$/, ''))),
    ].sort();
    expect(rules).toEqual([
      'AwsSolutions-IAM5',
      'AwsSolutions-L1',
      'AwsSolutions-SF2',
      'AwsSolutions-SQS3',
      'Serverless-EventBusDLQ',
      'Serverless-LambdaDLQ',
      'Serverless-LambdaLatestVersion',
      'Serverless-LambdaTracing',
      'Serverless-SNSRedrivePolicy',
      'Serverless-SQSRedrivePolicy',
      'Serverless-StepFunctionStateMachineXray',
    ]);
    const wildcards = [...new Set(stacks.flatMap(acknowledgments).map((a) => a.id))]
      .filter((id) => id.startsWith('AwsSolutions-IAM5'))
      .map((id) =>
        id
          .replace(/<Tandem\w+?[0-9A-F]{8}\./g, '<')
          .replace(/arn:aws:states:[^:]+:\d+:/, 'arn:aws:states:…:'),
      )
      .sort();
    expect([...new Set(wildcards)]).toEqual([
      'AwsSolutions-IAM5[Resource::*]',
      'AwsSolutions-IAM5[Resource::<Arn>/capture/*]',
      'AwsSolutions-IAM5[Resource::<Arn>/feedback/*]',
      'AwsSolutions-IAM5[Resource::<Arn>/incoming/*]',
      'AwsSolutions-IAM5[Resource::<Arn>/models/*/baseline.json]',
      'AwsSolutions-IAM5[Resource::<Arn>/models/*/current.json]',
      'AwsSolutions-IAM5[Resource::<Arn>/models/*/manifest.json]',
      'AwsSolutions-IAM5[Resource::<Arn>/models/*]',
      'AwsSolutions-IAM5[Resource::<Arn>/monitoring/*]',
      'AwsSolutions-IAM5[Resource::<Arn>/refresh/*]',
      'AwsSolutions-IAM5[Resource::<Arn>/rejected/stream/*]',
      'AwsSolutions-IAM5[Resource::<Arn>/results/*/_manifest.json]',
      'AwsSolutions-IAM5[Resource::<Arn>/results/*/part-*]',
      'AwsSolutions-IAM5[Resource::<Arn>/runs/*/chunks/*]',
      'AwsSolutions-IAM5[Resource::<Arn>/runs/*/failures/*]',
      'AwsSolutions-IAM5[Resource::<Arn>/runs/*/items.json]',
      'AwsSolutions-IAM5[Resource::<Arn>/runs/*/map-results/*]',
      'AwsSolutions-IAM5[Resource::<Arn>/runs/*/plan.json]',
      'AwsSolutions-IAM5[Resource::<Arn>/runs/*/staging/*]',
      // The folder the configured stack schedules (the schedules setting).
      'AwsSolutions-IAM5[Resource::<Arn>/warehouse/daily/*]',
      'AwsSolutions-IAM5[Resource::arn:aws:states:…:execution:<Name>/*]',
      'AwsSolutions-IAM5[Resource::arn:aws:states:…:execution:<Name>:*]',
    ]);
  });
});
