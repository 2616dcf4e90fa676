import { S3Client } from '@aws-sdk/client-s3';
import { s3Options, shared } from './shared.ts';

export function s3Client(): S3Client {
  shared.s3 ??= new S3Client(s3Options());
  return shared.s3;
}
