/**
 * What the `tandem` command acts on: the local stack running on a data folder (found from its
 * endpoints.json), or a deployed stack found from its CloudFormation outputs with the caller's credentials.
 */
import { userInfo } from 'node:os';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import type { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import {
  callerArn,
  cloudFormationClient,
  StackLookupError,
  stackOutputs,
} from '../../lambdas/adapters/stack-lookup.ts';
import type { InitializeMiddleware, MetadataBearer } from '@smithy/types';
import { ENDPOINTS_FILE, readEndpointsFile, type LocalEndpoints } from '../endpoints-file.ts';

export interface Target {
  /** `local stack (.tandem)` or `stack Tandem (eu-west-1)`, for messages. */
  readonly label: string;
  readonly s3: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  readonly apiUrl: string | undefined;
  /** The prediction table (local: the emulator's; deployed: the stack's PredictionTableName output). */
  readonly table?: string;
  /** The local stack's endpoints (undefined for a deployed stack). */
  readonly local?: LocalEndpoints;
  /** A deployed stack's batch state machine. */
  readonly stateMachineArn?: string;
  /** A deployed stack's rollout state machine (`models rollout`). */
  readonly rolloutStateMachineArn?: string;
  /** The local stack's data folder (where `npm start` writes the per-version metrics). */
  readonly dataDir?: string;
  readonly region?: string;
  /** The stack's schedules as given (local: npm start's; deployed: the Schedules output). */
  readonly schedules?: readonly unknown[];
  /** Local: when the scheduler started (the anchor of rate expressions). */
  readonly schedulesStartedAt?: number;
  /** Who makes changes: the local user, or the caller's ARN. */
  identity(): Promise<string>;
  close(): void;
}

export interface TargetOptions {
  readonly dataDir: string;
  readonly stack?: string;
  readonly region?: string;
}

/** A data folder as the user would write it: relative below the working directory, else absolute. */
function displayPath(dir: string): string {
  const relative = path.relative(process.cwd(), dir);
  return relative === '' ? '.' : relative.startsWith('..') ? dir : relative;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ETIMEDOUT', 'EPIPE']);

/**
 * A local stack's S3 that does not answer although its process runs: the endpoints file is stale (the pid
 * now belongs to another process, or npm start hangs). Says so instead of the socket's error code.
 */
function explainUnreachable(
  dataDir: string,
  endpoints: LocalEndpoints,
): InitializeMiddleware<object, MetadataBearer> {
  return (next) => async (args) => {
    try {
      return await next(args);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === undefined || !UNREACHABLE.has(code)) throw error;
      throw new Error(
        `the local stack in ${displayPath(dataDir)} does not answer at ${endpoints.s3Endpoint} (${code}), although ` +
          `process ${endpoints.pid} from its ${ENDPOINTS_FILE} runs: the file is stale or npm start hangs. ` +
          'Stop that npm start (if it is one) and start it again on the same --data-dir',
        { cause: error },
      );
    }
  };
}

export async function resolveTarget(
  options: TargetOptions,
  deps: { cloudFormation?: Pick<CloudFormationClient, 'send'> } = {},
): Promise<Target> {
  if (options.stack === undefined) {
    const endpoints = await readEndpointsFile(options.dataDir);
    const s3 = new S3Client({
      endpoint: endpoints.s3Endpoint,
      region: endpoints.region,
      credentials: endpoints.credentials,
      forcePathStyle: true,
    });
    s3.middlewareStack.add(explainUnreachable(options.dataDir, endpoints), {
      step: 'initialize',
      name: 'tandemExplainUnreachableLocalStack',
    });
    return {
      label: `local stack (${displayPath(options.dataDir)})`,
      s3,
      bucket: endpoints.bucket,
      prefix: endpoints.modelsPrefix,
      apiUrl: endpoints.apiUrl,
      table: endpoints.table,
      local: endpoints,
      dataDir: options.dataDir,
      schedules: endpoints.schedules ?? [],
      ...(endpoints.schedulesStartedAt !== undefined
        ? { schedulesStartedAt: endpoints.schedulesStartedAt }
        : {}),
      identity: async () => `${userInfo().username} (local)`,
      close: () => s3.destroy(),
    };
  }
  const region = options.region ?? process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'];
  const cloudFormation = deps.cloudFormation ?? cloudFormationClient(region);
  const outputs = await stackOutputs(cloudFormation, options.stack);
  const bucket = outputs['DataBucketName'];
  if (!bucket) {
    const present = Object.keys(outputs);
    throw new StackLookupError(
      'NOT_A_TANDEM_STACK',
      `stack "${options.stack}" has no DataBucketName output (${present.length > 0 ? `its outputs: ${present.join(', ')}` : 'it has no outputs'}): is it a Tandem stack? Check --stack, or deploy Tandem (docs/deploy.md)`,
    );
  }
  const s3 = new S3Client(region ? { region } : {});
  let who: Promise<string> | undefined;
  return {
    label: `stack ${options.stack}${region ? ` (${region})` : ''}`,
    s3,
    bucket,
    prefix: 'models/',
    apiUrl: outputs['ApiUrl'],
    ...(outputs['PredictionTableName'] ? { table: outputs['PredictionTableName'] } : {}),
    ...(outputs['BatchStateMachineArn'] ? { stateMachineArn: outputs['BatchStateMachineArn'] } : {}),
    ...(outputs['RolloutStateMachineArn']
      ? { rolloutStateMachineArn: outputs['RolloutStateMachineArn'] }
      : {}),
    ...(region ? { region } : {}),
    schedules: outputs['Schedules'] ? (JSON.parse(outputs['Schedules']) as unknown[]) : [],
    identity: () => (who ??= callerArn(region).then((arn) => arn ?? 'unknown')),
    close: () => s3.destroy(),
  };
}
