/**
 * Least-privilege grants on key prefixes of a bucket. The bucket's own grant* methods add `s3:List*` and
 * `s3:GetBucket*` on top of the object actions; these add only what is named.
 */
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';

/**
 * GetObject on the objects under `prefix` (and GetObjectVersion, for reads pinned to a version: the
 * batch lane reads an upload at the version that triggered it).
 */
export function grantReadPrefix(
  grantee: iam.IGrantable,
  bucket: s3.IBucket,
  prefix: string,
  options: { versions?: boolean } = {},
): iam.Grant {
  return iam.Grant.addToPrincipal({
    grantee,
    actions: options.versions ? ['s3:GetObject', 's3:GetObjectVersion'] : ['s3:GetObject'],
    resourceArns: [bucket.arnForObjects(`${prefix}*`)],
  });
}

/** PutObject (multipart uploads included) and AbortMultipartUpload on the objects under `prefix`. */
export function grantWritePrefix(grantee: iam.IGrantable, bucket: s3.IBucket, prefix: string): iam.Grant {
  return iam.Grant.addToPrincipal({
    grantee,
    actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
    resourceArns: [bucket.arnForObjects(`${prefix}*`)],
  });
}

/**
 * ListBucket on the bucket: key names, no content. Needed by code that lists a prefix, and by code that
 * must tell a missing object from a forbidden one: without ListBucket, S3 answers GetObject / HeadObject of
 * a missing key with 403 AccessDenied instead of 404 NoSuchKey (an `s3:prefix` condition does not help:
 * that key is absent from object requests).
 */
export function grantListBucket(grantee: iam.IGrantable, bucket: s3.IBucket): iam.Grant {
  return iam.Grant.addToPrincipal({ grantee, actions: ['s3:ListBucket'], resourceArns: [bucket.bucketArn] });
}
