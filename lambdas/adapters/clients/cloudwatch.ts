import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';

let cloudWatch: CloudWatchClient | undefined;

export function cloudWatchClient(): CloudWatchClient {
  cloudWatch ??= new CloudWatchClient({});
  return cloudWatch;
}
