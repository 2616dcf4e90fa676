import { S3Client } from '@aws-sdk/client-s3';

let s3: S3Client | undefined;

export function s3Client(): S3Client {
  // s3rver (local) serves path-style URLs only.
  s3 ??= new S3Client({ forcePathStyle: process.env['TANDEM_S3_FORCE_PATH_STYLE'] === 'true' });
  return s3;
}
