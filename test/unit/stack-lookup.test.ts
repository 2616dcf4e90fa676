/**
 * `tandem --stack <name>`: how a deployed stack is found (CloudFormation DescribeStacks with the caller's
 * credentials), and what the command says when it cannot be: each failure names what to fix.
 */
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { afterEach, describe, expect, it } from '@jest/globals';
import { mockClient } from 'aws-sdk-client-mock';
import { runCli } from '../../local/cli/tandem-cli.ts';
import { stubEnv, unstubAllEnvs } from '../support/stub-env.ts';

const cloudFormation = mockClient(CloudFormationClient);

afterEach(() => {
  cloudFormation.reset();
  unstubAllEnvs();
});

/** An error as the SDK throws it for a service's answer. */
function serviceError(name: string, message: string, httpStatusCode: number): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode } });
}

async function list(
  client: CloudFormationClient | undefined,
  ...extra: string[]
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['models', 'list', '--stack', 'Tandem', ...extra], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    cwd: '/nonexistent',
    ...(client ? { cloudFormation: client } : {}),
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('finding a deployed stack', () => {
  it.each([
    [
      'a stack that does not exist',
      serviceError('ValidationError', 'Stack with id Tandem does not exist', 400),
      'STACK_NOT_FOUND',
      /no stack named "Tandem" in this account and region \(check --stack and --region \/ AWS_REGION\)/,
    ],
    [
      'credentials that may not describe it',
      serviceError(
        'AccessDenied',
        'User: arn:aws:iam::111122223333:user/ops is not authorized to perform: cloudformation:DescribeStacks',
        403,
      ),
      'ACCESS_DENIED',
      /your AWS identity may not describe stack "Tandem" \(it needs cloudformation:DescribeStacks on it\): use a profile that may \(AWS_PROFILE\).*AWS said: User: arn:aws:iam::111122223333:user\/ops is not authorized/,
    ],
    [
      'no credentials at all',
      serviceError('CredentialsProviderError', 'Could not load credentials from any providers', 0),
      'NO_CREDENTIALS',
      /--stack Tandem needs AWS credentials and none were found: set AWS_PROFILE .* or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; without --stack the command acts on the local stack/,
    ],
    [
      'no region',
      new Error('Region is missing'),
      'NO_REGION',
      /--stack Tandem needs a region: give --region <region> or set AWS_REGION/,
    ],
    [
      'any other failure',
      serviceError('Throttling', 'Rate exceeded', 400),
      'STACK_UNREADABLE',
      /cannot describe stack "Tandem": Throttling: Rate exceeded/,
    ],
  ])('names what to fix for %s', async (_case, error, code, message) => {
    cloudFormation.on(DescribeStacksCommand, { StackName: 'Tandem' }).rejects(error);
    const human = await list(new CloudFormationClient({ region: 'eu-west-1' }), '--region', 'eu-west-1');
    expect(human.code).toBe(1);
    expect(human.err).toMatch(message);
    expect(human.err).toMatch(new RegExp(`\\(${code}\\)$`));

    const json = await list(new CloudFormationClient({ region: 'eu-west-1' }), '--json');
    expect(json.code).toBe(1);
    expect(JSON.parse(json.out)).toEqual({ error: { code, message: expect.stringMatching(message) } });
  });

  it('refuses a stack without a DataBucketName output, listing the outputs it has', async () => {
    cloudFormation.on(DescribeStacksCommand).resolves({
      Stacks: [
        {
          StackName: 'Tandem',
          CreationTime: new Date(),
          StackStatus: 'CREATE_COMPLETE',
          Outputs: [{ OutputKey: 'WebsiteUrl', OutputValue: 'https://example.com' }],
        },
      ],
    });
    const result = await list(new CloudFormationClient({ region: 'eu-west-1' }));
    expect(result.code).toBe(1);
    expect(result.err).toMatch(
      /stack "Tandem" has no DataBucketName output \(its outputs: WebsiteUrl\): is it a Tandem stack\? Check --stack, or deploy Tandem \(docs\/deploy.md\) \(NOT_A_TANDEM_STACK\)/,
    );
  });

  it('says so when the describe answers no stack at all', async () => {
    cloudFormation.on(DescribeStacksCommand).resolves({ Stacks: [] });
    const result = await list(new CloudFormationClient({ region: 'eu-west-1' }));
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/no stack named "Tandem" \(STACK_NOT_FOUND\)/);
  });

  it('needs credentials: without any, the real SDK chain fails and the command says what to set', async () => {
    // No network: the instance metadata service is off and every credentials source is empty.
    for (const name of [
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'AWS_PROFILE',
      'AWS_WEB_IDENTITY_TOKEN_FILE',
      'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
      'AWS_CONTAINER_CREDENTIALS_FULL_URI',
      'AWS_ENDPOINT_URL',
      'AWS_ENDPOINT_URL_CLOUDFORMATION',
    ])
      stubEnv(name, undefined);
    stubEnv('AWS_CONFIG_FILE', '/nonexistent/aws-config');
    stubEnv('AWS_SHARED_CREDENTIALS_FILE', '/nonexistent/aws-credentials');
    stubEnv('AWS_EC2_METADATA_DISABLED', 'true');
    // The real client and credentials chain (the last test of the file: the mock stays off).
    cloudFormation.restore();
    const result = await list(undefined, '--region', 'eu-west-1');
    expect(result.code).toBe(1);
    expect(result.err).toMatch(
      /^tandem: --stack Tandem needs AWS credentials and none were found: set AWS_PROFILE/,
    );
    expect(result.err).toMatch(/\(NO_CREDENTIALS\)$/);
  }, 30_000);
});
