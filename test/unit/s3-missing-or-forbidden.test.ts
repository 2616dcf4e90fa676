/**
 * Tandem's roles may list the data bucket only under the prefixes they read (an `s3:prefix` condition), so
 * S3 answers a read of a missing key with 403, not 404. The adapters then list the key itself: not listed
 * is missing (a deleted upload, an unknown model), listed or unlistable is a real 403.
 */
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from '@jest/globals';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ObjectStore } from '../../lambdas/adapters/s3-object-store.ts';
import { ModelLoadError, ModelNotFoundError } from '../../lambdas/core/errors.ts';

const s3 = mockClient(S3Client);

function forbidden(name: 'Forbidden' | 'AccessDenied'): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: 'client',
    $metadata: { httpStatusCode: 403 },
    message: 'Access Denied',
  });
}

afterEach(() => {
  s3.reset();
}, 60_000);

describe('S3ObjectStore.head on a 403', () => {
  const store = () => new S3ObjectStore(s3 as unknown as S3Client);

  it('reads as missing when the key is not listed under its prefix', async () => {
    s3.on(HeadObjectCommand).rejects(forbidden('Forbidden'));
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: 'incoming/m/data.csv.gz' }] });
    await expect(store().head('bucket', 'incoming/m/data.csv')).resolves.toBeUndefined();
    expect(s3.commandCalls(ListObjectsV2Command)[0]!.args[0].input).toEqual({
      Bucket: 'bucket',
      Prefix: 'incoming/m/data.csv',
      MaxKeys: 1,
    });
  });

  it('stays a 403 when the key is listed (the object exists: the read is forbidden)', async () => {
    s3.on(HeadObjectCommand).rejects(forbidden('Forbidden'));
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: 'incoming/m/data.csv' }] });
    await expect(store().head('bucket', 'incoming/m/data.csv')).rejects.toThrow('Access Denied');
  });

  it('stays a 403 when the prefix cannot be listed either', async () => {
    s3.on(HeadObjectCommand).rejects(forbidden('Forbidden'));
    s3.on(ListObjectsV2Command).rejects(forbidden('AccessDenied'));
    await expect(store().head('bucket', 'other/key')).rejects.toThrow('Access Denied');
  });
});

describe('S3ModelSource on a 403', () => {
  const source = () => new S3ModelSource(s3 as unknown as S3Client, 'bucket');

  it('an unlisted current.json is an unknown model (404), not an unavailable store (503)', async () => {
    s3.on(GetObjectCommand).rejects(forbidden('AccessDenied'));
    s3.on(ListObjectsV2Command).resolves({});
    await expect(source().currentVersion('nope')).rejects.toBeInstanceOf(ModelNotFoundError);
  });

  it('a listed file that cannot be read is the store failing', async () => {
    s3.on(GetObjectCommand).rejects(forbidden('AccessDenied'));
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: 'models/m/current.json' }] });
    await expect(source().currentVersion('m')).rejects.toBeInstanceOf(ModelLoadError);
  });
});
