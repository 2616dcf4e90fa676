/** Model packages under `models/` in the data bucket, behind the ModelSource port. */
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { isListed, isNoSuchKey } from './s3-errors.ts';
import { ModelLoadError, ModelNotFoundError } from '../core/errors.ts';
import type { ModelFile, ModelSource, ServingPointer } from '../core/ports.ts';
import { parseServingPointer } from './model-pointer.ts';

export class S3ModelSource implements ModelSource {
  readonly description: string;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix = 'models/',
  ) {
    this.description = `s3://${bucket}/${prefix}`;
  }

  async currentVersion(name: string): Promise<string> {
    return (await this.currentPointer(name)).version;
  }

  async currentPointer(name: string): Promise<ServingPointer> {
    const key = `${this.prefix}${name}/current.json`;
    const bytes = await this.get(
      key,
      () => new ModelNotFoundError('MODEL_NOT_FOUND', `no model named "${name}" (no ${key})`),
    );
    return parseServingPointer(bytes, key);
  }

  async read(name: string, version: string, file: ModelFile): Promise<Uint8Array> {
    const key = `${this.prefix}${name}/${version}/${file}`;
    return this.get(
      key,
      () => new ModelLoadError('MODEL_FILE_MISSING', `${file} of ${name}@${version} is missing`),
    );
  }

  async list(): Promise<string[]> {
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix,
          Delimiter: '/',
          ContinuationToken: token,
        }),
      );
      for (const p of page.CommonPrefixes ?? []) {
        if (p.Prefix) names.push(p.Prefix.slice(this.prefix.length, -1));
      }
      token = page.NextContinuationToken;
    } while (token);
    return names;
  }

  private async get(key: string, missing: () => Error): Promise<Uint8Array> {
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!response.Body) throw missing();
      return await response.Body.transformToByteArray();
    } catch (error) {
      if (isNoSuchKey(error)) throw missing();
      // S3 says 403 for a missing key unless the caller may list the bucket with no prefix condition;
      // the functions may list only models/, so the key itself is listed to tell.
      if (
        (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 403 &&
        !(await isListed(this.client, this.bucket, key))
      )
        throw missing();
      if (error instanceof ModelLoadError || error instanceof ModelNotFoundError) throw error;
      throw new ModelLoadError(
        'MODEL_STORE_UNAVAILABLE',
        `the model store is unavailable (${(error as Error).name})`,
        {
          cause: error,
        },
      );
    }
  }
}
