/** The process's S3 client: built on first use, once per process, from the environment. */
import { S3Client } from '@aws-sdk/client-s3';

let client: S3Client | undefined;

export function s3Client(): S3Client {
  // s3rver (local) serves path-style URLs only.
  client ??= new S3Client({ forcePathStyle: process.env['TANDEM_S3_FORCE_PATH_STYLE'] === 'true' });
  return client;
}
