/**
 * One Lambda function of Tandem, packaged deliberately: esbuild (local, no Docker) bundles the TypeScript
 * handler into one minified ES module with a source map; the AWS SDK clients come from the Lambda runtime;
 * functions that run the model get the pruned onnxruntime-node copied beside the bundle. Each function has
 * its own role (no managed policies: it may write to its own log group and nothing else until granted) and
 * an explicit log group with a retention.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import { LogLevel, NodejsFunction, OutputFormat, SourceMapMode } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import * as path from 'node:path';
import {
  SETTINGS,
  toEnvString,
  type FunctionName,
  type Setting,
  type SettingName,
} from '../lambdas/core/settings.ts';
import { stageOnnxRuntime, type OnnxRuntimeArch } from './onnxruntime-asset.ts';

/** The repository root: where package.json, package-lock.json and node_modules are. */
export const PROJECT_ROOT = path.resolve(import.meta.dirname, '..');

/**
 * Left out of every bundle. The AWS SDK for JavaScript v3 is in the Lambda Node.js runtime (all of its
 * packages: the clients and the helpers the handlers use, lib-storage and util-dynamodb, at one version),
 * so the bundles import it from there, as CDK's NodejsFunction does by default on Node.js 18+.
 * onnxruntime-node is a native package: it is shipped as files, not bundled.
 */
export const EXTERNAL_MODULES = ['@aws-sdk/*', 'onnxruntime-node'];

/**
 * Gives the ES module bundle a `require` for the CommonJS code inside it (esbuild's `__require` shim
 * uses it for `require()` calls of Node built-ins and of external packages).
 */
export const ESM_REQUIRE_BANNER =
  "import { createRequire as __tandemCreateRequire } from 'node:module'; const require = __tandemCreateRequire(import.meta.url);";

/**
 * The environment of one function from setting values (by setting name): each becomes the variable its
 * definition names (lambdas/core/settings.ts), written the way the function's reader parses it. A setting
 * the function does not read is a mistake, and throws.
 */
export function settingsEnvironment(
  fn: FunctionName,
  values: Partial<Record<SettingName, unknown>>,
): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const [name, value] of Object.entries(values) as Array<[SettingName, unknown]>) {
    if (value === undefined) continue;
    const setting: Setting = SETTINGS[name];
    if (setting.env === undefined || !setting.functions?.includes(fn)) {
      throw new Error(`setting ${name} is not read by the ${fn} function (lambdas/core/settings.ts)`);
    }
    environment[setting.env] = toEnvString(setting, value as never);
  }
  return environment;
}

export interface TandemFunctionProps {
  /** The handler file, relative to the project root, exporting `handler`. */
  readonly entry: string;
  readonly description: string;
  /** @default 1024 */
  readonly memorySize?: number;
  /** @default Duration.seconds(30) */
  readonly timeout?: Duration;
  /** @default lambda.Architecture.X86_64 */
  readonly architecture?: lambda.Architecture;
  /** @default - none */
  readonly environment?: Record<string, string>;
  /**
   * Ship the pruned onnxruntime-node (for the function's architecture) in `node_modules/` beside the bundle.
   * @default false
   */
  readonly onnxRuntime?: boolean;
  /** @default SETTINGS.logRetentionDays (30) */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Where failed asynchronous invocations go (after `retryAttempts` retries), as an on-failure destination:
   * the record carries the event, the error and the request context.
   * @default - none (for functions invoked synchronously: the caller gets the error)
   */
  readonly onFailure?: sqs.IQueue;
  /**
   * Retries of failed asynchronous invocations.
   * @default - Lambda's default (2), and no event invoke configuration
   */
  readonly retryAttempts?: number;
  /** @default PROJECT_ROOT */
  readonly projectRoot?: string;
}

export class TandemFunction extends Construct {
  public readonly function: NodejsFunction;
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;
  /** The function's timeout (its duration alarm is set against it). */
  public readonly timeout: Duration;

  constructor(scope: Construct, id: string, props: TandemFunctionProps) {
    super(scope, id);
    const projectRoot = props.projectRoot ?? PROJECT_ROOT;
    const architecture = props.architecture ?? lambda.Architecture.X86_64;
    const memorySize = props.memorySize ?? 1024;
    this.timeout = props.timeout ?? Duration.seconds(30);

    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? (SETTINGS.logRetentionDays.default as logs.RetentionDays),
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${props.description} (execution role)`,
    });
    this.logGroup.grantWrite(this.role);

    // Staged only when this stack is bundled (not for `cdk ls`, or `cdk deploy -e` of another stack).
    const stagedOrt =
      props.onnxRuntime && Stack.of(this).bundlingRequired
        ? stageOnnxRuntime({ projectRoot, arch: nodeArch(architecture) }).directory
        : undefined;

    this.function = new NodejsFunction(this, 'Function', {
      entry: path.join(projectRoot, props.entry),
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture,
      memorySize,
      timeout: this.timeout,
      description: props.description,
      role: this.role,
      logGroup: this.logGroup,
      // No X-Ray. Active tracing without a tracer shows one segment per invocation and none of the S3 and
      // DynamoDB calls inside it, and instrumenting every SDK client (Powertools Tracer) would put the X-Ray
      // SDK on the API's hot path and cold start and a subsegment on each of a chunk's table writes. The
      // functions' structured logs (request id, run id, chunk) and metrics already say where time goes.
      tracing: lambda.Tracing.DISABLED,
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
      ...(props.onFailure ? { onFailure: new destinations.SqsDestination(props.onFailure) } : {}),
      ...(props.retryAttempts !== undefined ? { retryAttempts: props.retryAttempts } : {}),
      projectRoot,
      depsLockFilePath: path.join(projectRoot, 'package-lock.json'),
      bundling: {
        format: OutputFormat.ESM,
        target: 'node22',
        mainFields: ['module', 'main'],
        minify: true,
        // Error classes name themselves (`this.name = new.target.name`), and Step Functions retries and
        // catches by that name (batch-definition.ts NON_RETRYABLE_ERRORS): minified names would match none.
        keepNames: true,
        sourceMap: true,
        sourceMapMode: SourceMapMode.EXTERNAL,
        sourcesContent: false,
        externalModules: EXTERNAL_MODULES,
        banner: ESM_REQUIRE_BANNER,
        forceDockerBundling: false,
        logLevel: LogLevel.WARNING,
        // In the bundling options (not only in the hook), so that AssetStaging's in-process cache keys a
        // bundle with onnxruntime apart from one without, and one arch from another.
        ...(stagedOrt
          ? { environment: { TANDEM_ONNXRUNTIME_DIR: stagedOrt }, commandHooks: copyIntoBundle(stagedOrt) }
          : {}),
      },
    });
  }
}

function nodeArch(architecture: lambda.Architecture): OnnxRuntimeArch {
  if (architecture.name === lambda.Architecture.ARM_64.name) return 'arm64';
  if (architecture.name === lambda.Architecture.X86_64.name) return 'x64';
  throw new Error(`unsupported architecture ${architecture.name}`);
}

/** Copies the staged `node_modules/` into the bundle's output folder (runs locally, after esbuild). */
function copyIntoBundle(stagedDir: string) {
  const quote = (p: string): string => `"${p.replace(/(["\\$`])/g, '\\$1')}"`;
  return {
    beforeBundling: (): string[] => [],
    beforeInstall: (): string[] => [],
    afterBundling: (_inputDir: string, outputDir: string): string[] => [
      `mkdir -p ${quote(path.join(outputDir, 'node_modules'))}`,
      `cp -R ${quote(path.join(stagedDir, 'node_modules'))}/. ${quote(path.join(outputDir, 'node_modules'))}/`,
    ],
  };
}
