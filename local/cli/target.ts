/**
 * What the `tandem` command acts on: the local stack running on a data folder (found from its
 * endpoints.json), or a deployed stack found from its CloudFormation outputs with the caller's credentials.
 */
import { userInfo } from 'node:os';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import type { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { callerArn, cloudFormationClient, stackOutputs } from '../../lambdas/adapters/stack-lookup.ts';
import { readEndpointsFile, type LocalEndpoints } from '../endpoints-file.ts';

export interface Target {
  /** `local stack (.tandem)` or `stack Tandem (eu-west-1)`, for messages. */
  readonly label: string;
  readonly s3: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  readonly apiUrl: string | undefined;
  /** The local stack's endpoints (undefined for a deployed stack). */
  readonly local?: LocalEndpoints;
  /** A deployed stack's batch state machine. */
  readonly stateMachineArn?: string;
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
    return {
      label: `local stack (${displayPath(options.dataDir)})`,
      s3,
      bucket: endpoints.bucket,
      prefix: endpoints.modelsPrefix,
      apiUrl: endpoints.apiUrl,
      local: endpoints,
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
    throw new Error(`stack "${options.stack}" has no DataBucketName output: is it a Tandem stack?`);
  }
  const s3 = new S3Client(region ? { region } : {});
  let who: Promise<string> | undefined;
  return {
    label: `stack ${options.stack}${region ? ` (${region})` : ''}`,
    s3,
    bucket,
    prefix: 'models/',
    apiUrl: outputs['ApiUrl'],
    ...(outputs['BatchStateMachineArn'] ? { stateMachineArn: outputs['BatchStateMachineArn'] } : {}),
    ...(region ? { region } : {}),
    schedules: outputs['Schedules'] ? (JSON.parse(outputs['Schedules']) as unknown[]) : [],
    identity: () => (who ??= callerArn(region).then((arn) => arn ?? 'unknown')),
    close: () => s3.destroy(),
  };
}
