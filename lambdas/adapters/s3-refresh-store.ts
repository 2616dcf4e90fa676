/**
 * What the refresh reads and writes in the data bucket: a model's pointer and manifests (`models/`), and
 * its markers (`refresh/`), created with a conditional PUT (`If-None-Match: *`): S3's 412
 * PreconditionFailed (or 409 ConditionalRequestConflict, a concurrent conditional write of the key) means
 * another delivery of the event got there first.
 */
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { isConditionFailure, isListed, isNoSuchKey } from './s3-errors.ts';
import type { RefreshMarkers, RefreshModelReader } from '../core/refresh/refresh.ts';

export class S3RefreshStore implements RefreshModelReader, RefreshMarkers {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  readPointer(model: string): Promise<Uint8Array | undefined> {
    return this.read(`models/${model}/current.json`);
  }

  readManifest(model: string, version: string): Promise<Uint8Array | undefined> {
    return this.read(`models/${model}/${version}/manifest.json`);
  }

  async create(key: string, body: string): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
          IfNoneMatch: '*',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async remove(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  private async read(key: string): Promise<Uint8Array | undefined> {
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return (await response.Body?.transformToByteArray()) ?? new Uint8Array();
    } catch (error) {
      if (isNoSuchKey(error)) return undefined;
      // S3 says 403 for a missing key unless the caller may list the bucket with no prefix condition; the
      // function may list only models/, so the key itself is listed to tell.
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 403 && !(await isListed(this.client, this.bucket, key))) return undefined;
      throw error;
    }
  }
}
