/** How S3 says an object is not there, for the adapters that read objects. */
import { NoSuchKey } from '@aws-sdk/client-s3';

/** A GetObject of a key that does not exist (S3's NoSuchKey). */
export function isNoSuchKey(error: unknown): boolean {
  return error instanceof NoSuchKey || (error as { name?: string } | null)?.name === 'NoSuchKey';
}
