/**
 * The deployed artifacts, as `cdk synth` makes them: the CDK app of cdk.json ("app") run with the context
 * of cdk.json, the way the CDK CLI runs it (CDK_OUTDIR, CDK_CONTEXT_JSON, CDK_DEFAULT_ACCOUNT/REGION), and
 * read back from the cloud assembly: each function's code folder, handler, runtime, memory, timeout and
 * environment, and the state machine's definition. CloudFormation intrinsics are resolved to the names
 * the local stand-ins use (see LocalNames).
 */
import { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { measureFunctionAssets } from '../../../lib/asset-sizes.ts';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';

type CfnResource = {
  Type: string;
  Properties?: Record<string, unknown>;
};

export interface DeployedFunction {
  readonly logicalId: string;
  /** The function's name in the local stand-ins (its logical id). */
  readonly name: string;
  readonly arn: string;
  /** The code folder of the cloud assembly (what `cdk deploy` zips and uploads). */
  readonly codeDirectory: string;
  readonly handler: string;
  readonly runtime: string;
  readonly memorySize: number;
  readonly timeoutSeconds: number;
  /** Environment.Variables, intrinsics resolved. */
  readonly environment: Record<string, string>;
}

export interface DeployedStack {
  readonly stackName: string;
  readonly outdir: string;
  readonly template: { Resources: Record<string, CfnResource> };
  readonly functions: DeployedFunction[];
  /** The local name of each bucket, table and state machine, by logical id. */
  readonly names: LocalNames;
  /** The state machine's definition, intrinsics resolved. */
  readonly stateMachine: { readonly arn: string; readonly definition: Record<string, unknown> };
  /** The EventBridge rule that sends uploads to the trigger: its pattern and its target's function. */
  readonly uploadRule: { readonly pattern: Record<string, unknown>; readonly target: DeployedFunction };
  /** The function whose logical id contains `part` (exactly one). */
  fn(part: string): DeployedFunction;
}

/** Physical names for the local stand-ins, derived from logical ids (S3 wants lowercase). */
export class LocalNames {
  constructor(private readonly resources: Record<string, CfnResource>) {}

  ref(logicalId: string): string {
    const resource = this.resources[logicalId];
    switch (resource?.Type) {
      case 'AWS::S3::Bucket':
        return logicalId.toLowerCase().slice(0, 63);
      case 'AWS::DynamoDB::Table':
      case 'AWS::Lambda::Function':
        return logicalId;
      case 'AWS::StepFunctions::StateMachine':
        return `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${logicalId}`;
      default:
        throw new Error(
          `no local name for a Ref to ${logicalId} (${resource?.Type ?? 'not in the template'})`,
        );
    }
  }

  getAtt(logicalId: string, attribute: string): string {
    const resource = this.resources[logicalId];
    if (resource?.Type === 'AWS::Lambda::Function' && attribute === 'Arn') {
      return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${logicalId}`;
    }
    if (resource?.Type === 'AWS::S3::Bucket' && attribute === 'Arn')
      return `arn:aws:s3:::${this.ref(logicalId)}`;
    throw new Error(`no local value for ${logicalId}.${attribute}`);
  }

  /** Replaces Ref, Fn::GetAtt and Fn::Join; any other intrinsic is an error (add it here when needed). */
  resolve(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (!value || typeof value !== 'object') return value;
    const object = value as Record<string, unknown>;
    const keys = Object.keys(object);
    if (keys.length === 1 && keys[0] === 'Ref') return this.ref(object['Ref'] as string);
    if (keys.length === 1 && keys[0] === 'Fn::GetAtt') {
      const [id, attribute] = object['Fn::GetAtt'] as [string, string];
      return this.getAtt(id, attribute);
    }
    if (keys.length === 1 && keys[0] === 'Fn::Join') {
      const [separator, parts] = object['Fn::Join'] as [string, unknown[]];
      return parts.map((p) => this.resolve(p) as string).join(separator);
    }
    const intrinsic = keys.find((k) => k.startsWith('Fn::'));
    if (intrinsic)
      throw new Error(`unsupported intrinsic ${intrinsic}: ${JSON.stringify(value).slice(0, 200)}`);
    return Object.fromEntries(keys.map((k) => [k, this.resolve(object[k])]));
  }
}

/** Runs the app of cdk.json like `cdk synth -o <outdir>` (cdk.json context, local esbuild bundling). */
export function synthesize(outdir: string): DeployedStack {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')) as {
    app: string;
    context?: Record<string, unknown>;
  };
  const synth = spawnSync(cdkJson.app, {
    cwd: REPO_ROOT,
    shell: true,
    encoding: 'utf8',
    timeout: 180_000,
    env: {
      ...process.env,
      CDK_OUTDIR: outdir,
      CDK_CONTEXT_JSON: JSON.stringify(cdkJson.context ?? {}),
      CDK_DEFAULT_ACCOUNT: ACCOUNT,
      CDK_DEFAULT_REGION: REGION,
    },
  });
  if (synth.status !== 0) {
    throw new Error(`synth (${cdkJson.app}) failed with ${synth.status}:\n${synth.stderr}\n${synth.stdout}`);
  }
  return readStack(outdir);
}

function readStack(outdir: string): DeployedStack {
  const assembly = new CloudAssembly(outdir);
  if (assembly.stacks.length !== 1) {
    throw new Error(`expected one stack, got ${assembly.stacks.map((s) => s.stackName).join(', ')}`);
  }
  const stack = assembly.stacks[0]!;
  const template = stack.template as { Resources: Record<string, CfnResource> };
  const names = new LocalNames(template.Resources);
  const folders = new Map(measureFunctionAssets(assembly).map((s) => [s.logicalId, s.codeDirectory]));

  const functions = Object.entries(template.Resources)
    .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
    .map(([logicalId, r]): DeployedFunction => {
      const props = r.Properties ?? {};
      const codeDirectory = folders.get(logicalId);
      if (!codeDirectory) throw new Error(`${logicalId} has no code folder in the assembly`);
      const variables = (props['Environment'] as { Variables?: unknown } | undefined)?.Variables ?? {};
      return {
        logicalId,
        name: names.ref(logicalId),
        arn: names.getAtt(logicalId, 'Arn'),
        codeDirectory,
        handler: props['Handler'] as string,
        runtime: props['Runtime'] as string,
        memorySize: (props['MemorySize'] as number | undefined) ?? 128,
        timeoutSeconds: (props['Timeout'] as number | undefined) ?? 3,
        environment: names.resolve(variables) as Record<string, string>,
      };
    });
  const fn = (part: string): DeployedFunction => {
    const found = functions.filter((f) => f.logicalId.includes(part));
    if (found.length !== 1) throw new Error(`expected one function matching ${part}, got ${found.length}`);
    return found[0]!;
  };

  // The batch lane's state machine (the rollout has its own).
  const machines = Object.entries(template.Resources).filter(
    ([id, r]) => r.Type === 'AWS::StepFunctions::StateMachine' && id.includes('BatchStateMachine'),
  );
  if (machines.length !== 1) throw new Error(`expected one batch state machine, got ${machines.length}`);
  const [machineId, machine] = machines[0]!;
  const definition = JSON.parse(names.resolve(machine.Properties!['DefinitionString']) as string) as Record<
    string,
    unknown
  >;

  // The upload rule: S3 events to the batch trigger (the refresh function has a rule of its own).
  const trigger = fn('Trigger');
  const rules = Object.values(template.Resources).filter(
    (r) =>
      r.Type === 'AWS::Events::Rule' &&
      ((r.Properties?.['EventPattern'] as { source?: string[] } | undefined)?.source ?? []).includes(
        'aws.s3',
      ) &&
      (r.Properties?.['Targets'] as Array<{ Arn: unknown }>).some(
        (t) => names.resolve(t.Arn) === trigger.arn,
      ),
  );
  if (rules.length !== 1) throw new Error(`expected one rule for uploads, got ${rules.length}`);
  const targets = rules[0]!.Properties!['Targets'] as Array<{ Arn: unknown }>;
  const targetArn = names.resolve(targets[0]!.Arn) as string;
  const target = functions.find((f) => f.arn === targetArn);
  if (!target) throw new Error(`the upload rule targets ${targetArn}, not a function of the stack`);

  return {
    stackName: stack.stackName,
    outdir,
    template,
    functions,
    names,
    stateMachine: { arn: names.ref(machineId), definition },
    uploadRule: {
      pattern: names.resolve(rules[0]!.Properties!['EventPattern']) as Record<string, unknown>,
      target,
    },
    fn,
  };
}
