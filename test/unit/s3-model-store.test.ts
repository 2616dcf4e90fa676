/** The lifecycle's model store over S3: conditional writes, and S3's refusals as lifecycle errors. */
import {
  GetObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from '@jest/globals';
import { S3ModelStore } from '../../lambdas/adapters/s3-model-store.ts';
import { PointerConflictError, VersionExistsError } from '../../lambdas/core/lifecycle/errors.ts';

const s3 = mockClient(S3Client);
afterEach(() => {
  s3.reset();
}, 60_000);

function refusal(name: string, status: number): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: 'client',
    $metadata: { httpStatusCode: status },
    message: name,
  });
}

describe('S3ModelStore', () => {
  it('rewrites the pointer only if its ETag is the one read, and creates one only where there is none', async () => {
    s3.on(PutObjectCommand).resolves({});
    const store = new S3ModelStore(new S3Client({}), 'bucket');
    await store.writePointer('m', '{"version":"2"}', { tag: '"abc"' });
    await store.writePointer('n', '{"version":"1"}', 'absent');
    const [update, create] = s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
    expect(update).toMatchObject({ Bucket: 'bucket', Key: 'models/m/current.json', IfMatch: '"abc"' });
    expect(update).not.toHaveProperty('IfNoneMatch');
    expect(create).toMatchObject({ Key: 'models/n/current.json', IfNoneMatch: '*' });
  });

  it.each([
    ['PreconditionFailed', 412],
    ['ConditionalRequestConflict', 409],
  ])('turns S3 %s (%i) into a PointerConflictError', async (name, status) => {
    s3.on(PutObjectCommand).rejects(refusal(name, status));
    const store = new S3ModelStore(new S3Client({}), 'bucket');
    await expect(store.writePointer('m', '{}', { tag: '"abc"' })).rejects.toBeInstanceOf(
      PointerConflictError,
    );
  });

  it('passes other S3 errors on as they are', async () => {
    const denied = refusal('AccessDenied', 403);
    s3.on(PutObjectCommand).rejects(denied);
    await expect(new S3ModelStore(new S3Client({}), 'bucket').writePointer('m', '{}', 'absent')).rejects.toBe(
      denied,
    );
  });

  it('never overwrites a package file: an existing one is VERSION_EXISTS', async () => {
    s3.on(PutObjectCommand).rejects(refusal('PreconditionFailed', 412));
    const store = new S3ModelStore(new S3Client({}), 'bucket');
    await expect(store.createPackageFile('m', '1', 'model.onnx', new Uint8Array([1]))).rejects.toBeInstanceOf(
      VersionExistsError,
    );
    expect(s3.commandCalls(PutObjectCommand)[0]!.args[0].input).toMatchObject({
      Key: 'models/m/1/model.onnx',
      IfNoneMatch: '*',
    });
  });

  it('reads a missing pointer as undefined', async () => {
    s3.on(GetObjectCommand).rejects(new NoSuchKey({ $metadata: {}, message: 'no' }));
    expect(await new S3ModelStore(new S3Client({}), 'bucket').readPointer('m')).toBeUndefined();
  });
});
