/**
 * The model store behind the lifecycle commands: `models/` in the data bucket. Pointer writes are S3
 * conditional PUTs (If-Match on the ETag read, If-None-Match: * to create), package files and history
 * records are created with If-None-Match: * so that nothing is overwritten; S3's refusals (412
 * PreconditionFailed, 409 ConditionalRequestConflict for a concurrent conditional write) become
 * PointerConflictError and VersionExistsError.
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { isConditionFailure, isNoSuchKey } from './s3-errors.ts';
import { PointerConflictError, VersionExistsError } from '../core/lifecycle/errors.ts';
import type { ModelStoreWriter, PointerCondition, StoredPointer } from '../core/lifecycle/ports.ts';
import type { PackageFileName } from '../core/lifecycle/ports.ts';

export class S3ModelStore implements ModelStoreWriter {
  readonly description: string;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix = 'models/',
  ) {
    this.description = `s3://${bucket}/${prefix}`;
  }

  async readPointer(name: string): Promise<StoredPointer | undefined> {
    try {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.pointerKey(name) }),
      );
      const body = (await response.Body?.transformToByteArray()) ?? new Uint8Array();
      return { body, tag: response.ETag ?? '' };
    } catch (error) {
      if (isNoSuchKey(error)) return undefined;
      throw error;
    }
  }

  async writePointer(name: string, body: string, condition: PointerCondition): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.pointerKey(name),
          Body: body,
          ContentType: 'application/json',
          ...(condition === 'absent' ? { IfNoneMatch: '*' } : { IfMatch: condition.tag }),
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      throw new PointerConflictError(
        'POINTER_CONFLICT',
        `${this.pointerKey(name)} was changed by someone else since it was read (${condition === 'absent' ? 'it was created' : 'its ETag is no longer ' + condition.tag}); nothing was written: look at \`models show ${name}\` and try again`,
        { cause: error },
      );
    }
  }

  async writeHistory(name: string, file: string, body: string): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: `${this.prefix}${name}/history/${file}`,
        Body: body,
        ContentType: 'application/json',
        IfNoneMatch: '*',
      }),
    );
  }

  async readHistory(name: string): Promise<{ file: string; body: Uint8Array }[]> {
    const prefix = `${this.prefix}${name}/history/`;
    const keys = (await this.listKeys(prefix)).filter((k) => k.endsWith('.json'));
    return Promise.all(
      keys.map(async (key) => {
        const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
        return { file: key.slice(prefix.length), body: await response.Body!.transformToByteArray() };
      }),
    );
  }

  async listModels(): Promise<string[]> {
    return this.listFolders(this.prefix);
  }

  async listVersions(name: string): Promise<string[]> {
    const folders = await this.listFolders(`${this.prefix}${name}/`);
    return folders.filter((f) => f !== 'history');
  }

  async createPackageFile(
    name: string,
    version: string,
    file: PackageFileName,
    body: Uint8Array,
  ): Promise<void> {
    const key = `${this.prefix}${name}/${version}/${file}`;
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: file.endsWith('.json') ? 'application/json' : 'application/octet-stream',
          IfNoneMatch: '*',
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      throw new VersionExistsError(
        'VERSION_EXISTS',
        `${key} already exists; versions are never overwritten`,
        {
          cause: error,
        },
      );
    }
  }

  private pointerKey(name: string): string {
    return `${this.prefix}${name}/current.json`;
  }

  private async listFolders(prefix: string): Promise<string[]> {
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          Delimiter: '/',
          ContinuationToken: token,
        }),
      );
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix) names.push(p.Prefix.slice(prefix.length, -1));
      token = page.NextContinuationToken;
    } while (token);
    return names.sort();
  }

  private async listKeys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
      token = page.NextContinuationToken;
    } while (token);
    return keys.sort();
  }
}
