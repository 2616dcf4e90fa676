/** How S3 says an object is not there, or a conditional write lost, for the adapters that use S3. */
import { ListObjectsV2Command, NoSuchKey, type S3Client } from '@aws-sdk/client-s3';

/** A GetObject of a key that does not exist (S3's NoSuchKey). */
export function isNoSuchKey(error: unknown): boolean {
  return error instanceof NoSuchKey || (error as { name?: string } | null)?.name === 'NoSuchKey';
}

/** S3 refused a conditional write: the condition did not hold, or another conditional write was in flight. */
export function isConditionFailure(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  return (
    e.name === 'PreconditionFailed' ||
    e.name === 'ConditionalRequestConflict' ||
    status === 412 ||
    status === 409
  );
}

/**
 * Whether `key` exists (is listed), for telling a missing object from a forbidden one: S3 says 403 for a
 * missing key unless the caller may list the bucket with no prefix condition, and Tandem's roles may list
 * only the prefixes they read.
 */
export async function isListed(client: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key, MaxKeys: 1 }));
    return page.Contents?.[0]?.Key === key;
  } catch {
    return true; // Not allowed to list it either: the 403 stands.
  }
}
