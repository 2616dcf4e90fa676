/** The stream lane's part of the `npm start` banner: copy-paste examples for AWS CLI v1 and v2 and curl. */
import type { LocalStreamLane } from './stream-lane.ts';

export function streamBanner(
  lane: LocalStreamLane,
  endpoint: string,
  creds: string,
  api: string,
  sample: { id: string; features: Record<string, unknown> },
): string {
  const { inputStreamName: input, outputStreamName: output } = lane.settings;
  const event = JSON.stringify({ id: sample.id, features: sample.features });
  const cli = `${creds} aws --endpoint-url ${endpoint} kinesis`;
  const put = `${cli} put-record --stream-name ${input} --partition-key ${sample.id}`;
  return `  # stream: put an event on ${input}: AWS CLI v2 (raw data needs --cli-binary-format), then v1
  ${put} --cli-binary-format raw-in-base64-out --data '${event}'
  ${put} --data '${event}'

  # stream: or through the API (at most 500 events; 202 with the sequence numbers)
  curl -s ${api}/events -H 'content-type: application/json' -d '{"events": [${event}]}'

  # stream: read the predictions published on ${output} (Data is base64)
  IT=$(${cli} get-shard-iterator --stream-name ${output} --shard-id shardId-000000000000 --shard-iterator-type TRIM_HORIZON --query ShardIterator --output text)
  ${cli} get-records --shard-iterator "$IT" --query 'Records[].Data' --output text | tr '\\t' '\\n' | while read -r d; do echo "$d" | base64 -d; echo; done
`;
}
