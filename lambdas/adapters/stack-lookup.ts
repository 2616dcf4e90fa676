/**
 * Finding a deployed stack for the `tandem` command: its CloudFormation outputs (DescribeStacks) and the
 * caller's identity (STS GetCallerIdentity), with the caller's own credentials.
 */
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { TandemError } from '../core/errors.ts';

/** The stack cannot be found or described: the message says what to check. */
export class StackLookupError extends TandemError<
  | 'STACK_NOT_FOUND'
  | 'STACK_UNREADABLE'
  | 'NO_CREDENTIALS'
  | 'ACCESS_DENIED'
  | 'NO_REGION'
  | 'NOT_A_TANDEM_STACK'
> {}

/** Why DescribeStacks failed, in the caller's terms: what to check or change. */
function lookupError(stackName: string, error: unknown): StackLookupError {
  const e = error as Error & { $metadata?: { httpStatusCode?: number } };
  if (/does not exist/.test(e.message)) {
    return new StackLookupError(
      'STACK_NOT_FOUND',
      `no stack named "${stackName}" in this account and region (check --stack and --region / AWS_REGION)`,
      { cause: error },
    );
  }
  if (e.name === 'CredentialsProviderError' || /Could not load credentials/.test(e.message)) {
    return new StackLookupError(
      'NO_CREDENTIALS',
      `--stack ${stackName} needs AWS credentials and none were found: set AWS_PROFILE (aws configure / aws sso login) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; without --stack the command acts on the local stack`,
      { cause: error },
    );
  }
  if (/Region is missing/i.test(e.message)) {
    return new StackLookupError(
      'NO_REGION',
      `--stack ${stackName} needs a region: give --region <region> or set AWS_REGION`,
      { cause: error },
    );
  }
  if (
    /^AccessDenied/.test(e.name) ||
    e.$metadata?.httpStatusCode === 403 ||
    /not authorized to perform/.test(e.message)
  ) {
    return new StackLookupError(
      'ACCESS_DENIED',
      `your AWS identity may not describe stack "${stackName}" (it needs cloudformation:DescribeStacks on it): use a profile that may (AWS_PROFILE) or ask for the permission. AWS said: ${e.message}`,
      { cause: error },
    );
  }
  return new StackLookupError(
    'STACK_UNREADABLE',
    `cannot describe stack "${stackName}": ${e.name}: ${e.message}`,
    { cause: error },
  );
}

/** The outputs of a stack by key; throws StackLookupError saying what to check when there is no such stack. */
export async function stackOutputs(
  client: Pick<CloudFormationClient, 'send'>,
  stackName: string,
): Promise<Record<string, string>> {
  let stacks;
  try {
    ({ Stacks: stacks } = await client.send(new DescribeStacksCommand({ StackName: stackName })));
  } catch (error) {
    throw lookupError(stackName, error);
  }
  const stack = stacks?.[0];
  if (!stack) throw new StackLookupError('STACK_NOT_FOUND', `no stack named "${stackName}"`);
  const outputs: Record<string, string> = {};
  for (const o of stack.Outputs ?? []) if (o.OutputKey && o.OutputValue) outputs[o.OutputKey] = o.OutputValue;
  return outputs;
}

export function cloudFormationClient(region: string | undefined): CloudFormationClient {
  return new CloudFormationClient(region ? { region } : {});
}

/** The caller's ARN, or undefined when it cannot be found (the change is recorded as by "unknown"). */
export async function callerArn(region: string | undefined): Promise<string | undefined> {
  const sts = new STSClient(region ? { region } : {});
  try {
    return (await sts.send(new GetCallerIdentityCommand({}))).Arn;
  } catch {
    return undefined;
  } finally {
    sts.destroy();
  }
}
