/** Helpers for the stream lane's integration tests: put events, read a whole stream, list what was filed. */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { readWholeStream as readStream } from '../../local/kinesis-streams.ts';
import type { S3ObjectStore } from '../../lambdas/adapters/s3-object-store.ts';
import type { PublishedPrediction, RejectedLine } from '../../lambdas/core/stream/micro-batch.ts';
import type { FailedBatch } from '../../local/stream-poller.ts';

/** A valid feature object of the demo model (fraud-detector). */
export function demoFeatures(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    amount: 23.34,
    hour_of_day: 18,
    day_of_week: 1,
    merchant_category: 'gambling',
    channel: 'swipe',
    card_present: true,
    is_international: false,
    distance_from_home_km: 18.36,
    txn_count_1h: 1,
    txn_count_24h: 3,
    amount_to_avg_ratio: 0.7732,
    account_age_days: 234,
    customer_age: 44,
    merchant_risk_score: 0.651,
    prior_chargebacks: 0,
    ...overrides,
  };
}

/** Every record of the output stream, with its published prediction. */
export async function readWholeStream(
  client: KinesisClient,
  streamName: string,
): Promise<{ sequenceNumber: string; partitionKey: string; body: PublishedPrediction }[]> {
  return (await readStream(client, streamName)).map((r) => ({
    sequenceNumber: r.sequenceNumber,
    partitionKey: r.partitionKey,
    body: JSON.parse(Buffer.from(r.data).toString('utf8')) as PublishedPrediction,
  }));
}

export async function rejectedStreamLines(
  objects: S3ObjectStore,
  bucket: string,
): Promise<(RejectedLine & { key: string })[]> {
  const lines: (RejectedLine & { key: string })[] = [];
  for (const key of await objects.list(bucket, 'rejected/stream/')) {
    const text = Buffer.from(await objects.readBytes(bucket, key)).toString('utf8');
    for (const line of text.trim().split('\n')) lines.push({ key, ...(JSON.parse(line) as RejectedLine) });
  }
  return lines;
}

export async function failedStreamBatches(objects: S3ObjectStore, bucket: string): Promise<FailedBatch[]> {
  const batches: FailedBatch[] = [];
  for (const key of await objects.list(bucket, 'failed/stream/')) {
    batches.push(
      JSON.parse(Buffer.from(await objects.readBytes(bucket, key)).toString('utf8')) as FailedBatch,
    );
  }
  return batches;
}
