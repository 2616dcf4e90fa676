/** S3 behind the ObjectStore port: ranged streaming reads and multipart streaming writes. */
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NotFound,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import type { ObjectInfo, ObjectStore } from '../core/ports.ts';
import { isListed } from './s3-errors.ts';

function range(start: number | undefined, end: number | undefined): string | undefined {
  if (start === undefined && end === undefined) return undefined;
  // HTTP ranges are inclusive; ours are [start, end).
  return `bytes=${start ?? 0}-${end === undefined ? '' : end - 1}`;
}

export class S3ObjectStore implements ObjectStore {
  constructor(
    private readonly client: S3Client,
    private readonly partSize = 8 * 1024 * 1024,
  ) {}

  async head(bucket: string, key: string, versionId?: string): Promise<ObjectInfo | undefined> {
    try {
      const r = await this.client.send(
        new HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }),
      );
      return {
        size: r.ContentLength ?? 0,
        etag: (r.ETag ?? '').replace(/"/g, ''),
        ...(r.VersionId && r.VersionId !== 'null' ? { versionId: r.VersionId } : {}),
        ...(r.Metadata && Object.keys(r.Metadata).length > 0 ? { metadata: r.Metadata } : {}),
      };
    } catch (error) {
      if (error instanceof NotFound || (error as { name?: string }).name === 'NotFound') return undefined;
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404) return undefined;
      // S3 says 403 for a missing key unless the caller may list the bucket with no prefix condition;
      // Tandem's roles may list only the prefixes they read, so the key itself is listed to tell.
      if (status === 403 && !(await isListed(this.client, bucket, key))) return undefined;
      throw error;
    }
  }

  async *read(
    bucket: string,
    key: string,
    options: { start?: number; end?: number; versionId?: string } = {},
  ): AsyncIterable<Uint8Array> {
    if (options.start !== undefined && options.end !== undefined && options.end <= options.start) return;
    const response = await this.client.send(
      new GetObjectCommand({
        Bucket: bucket,
        Key: key,
        VersionId: options.versionId,
        Range: range(options.start, options.end),
      }),
    );
    const body = response.Body as AsyncIterable<Uint8Array> | undefined;
    if (!body) return;
    yield* body;
  }

  async readBytes(
    bucket: string,
    key: string,
    options: { start?: number; end?: number; versionId?: string } = {},
  ): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    for await (const chunk of this.read(bucket, key, options)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  async write(
    bucket: string,
    key: string,
    body: AsyncIterable<Uint8Array | string>,
    contentType: string,
  ): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: bucket, Key: key, Body: Readable.from(body), ContentType: contentType },
      partSize: this.partSize,
      queueSize: 2,
      leavePartsOnError: false,
    });
    await upload.done();
  }

  async writeBytes(
    bucket: string,
    key: string,
    body: Uint8Array | string,
    contentType: string,
  ): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }),
    );
  }

  async list(bucket: string, prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
      token = page.NextContinuationToken;
    } while (token);
    return keys.sort();
  }
}
