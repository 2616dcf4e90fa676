/**
 * Finding a deployed stack for the `tandem` command: its CloudFormation outputs (DescribeStacks) and the
 * caller's identity (STS GetCallerIdentity), with the caller's own credentials.
 */
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { TandemError } from '../core/errors.ts';

/** The stack cannot be found or described: the message says what to check. */
export class StackLookupError extends TandemError<'STACK_NOT_FOUND' | 'STACK_UNREADABLE'> {}

/** The outputs of a stack by key; throws StackLookupError saying what to check when there is no such stack. */
export async function stackOutputs(
  client: Pick<CloudFormationClient, 'send'>,
  stackName: string,
): Promise<Record<string, string>> {
  let stacks;
  try {
    ({ Stacks: stacks } = await client.send(new DescribeStacksCommand({ StackName: stackName })));
  } catch (error) {
    const e = error as Error;
    if (/does not exist/.test(e.message)) {
      throw new StackLookupError(
        'STACK_NOT_FOUND',
        `no stack named "${stackName}" in this account and region (check --stack and --region / AWS_REGION)`,
        { cause: error },
      );
    }
    throw new StackLookupError(
      'STACK_UNREADABLE',
      `cannot describe stack "${stackName}": ${e.name}: ${e.message}`,
      {
        cause: error,
      },
    );
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
