/**
 * The ObjectStore port over a local folder (bucket = subfolder): lets one batch worker run against
 * files, e.g. to measure the scoring pipeline without an S3 emulator's HTTP in the way.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import type { ObjectInfo, ObjectStore } from '../lambdas/core/ports.ts';

export class FsObjectStore implements ObjectStore {
  constructor(private readonly root: string) {}

  private file(bucket: string, key: string): string {
    const resolved = path.resolve(this.root, bucket, key);
    if (!resolved.startsWith(path.resolve(this.root, bucket) + path.sep))
      throw new Error(`key escapes the bucket: ${key}`);
    return resolved;
  }

  async head(bucket: string, key: string): Promise<ObjectInfo | undefined> {
    const info = await stat(this.file(bucket, key)).catch(() => undefined);
    if (!info?.isFile()) return undefined;
    return { size: info.size, etag: createHash('md5').update(`${info.size}:${info.mtimeMs}`).digest('hex') };
  }

  async *read(
    bucket: string,
    key: string,
    options: { start?: number; end?: number } = {},
  ): AsyncIterable<Uint8Array> {
    if (options.end !== undefined && options.end <= (options.start ?? 0)) return;
    yield* createReadStream(this.file(bucket, key), {
      start: options.start ?? 0,
      ...(options.end === undefined ? {} : { end: options.end - 1 }),
      highWaterMark: 1024 * 1024,
    }) as AsyncIterable<Uint8Array>;
  }

  async readBytes(
    bucket: string,
    key: string,
    options: { start?: number; end?: number } = {},
  ): Promise<Uint8Array> {
    if (options.start === undefined && options.end === undefined) return readFile(this.file(bucket, key));
    const chunks: Uint8Array[] = [];
    for await (const chunk of this.read(bucket, key, options)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  async write(bucket: string, key: string, body: AsyncIterable<Uint8Array | string>): Promise<void> {
    const target = this.file(bucket, key);
    await mkdir(path.dirname(target), { recursive: true });
    await pipeline(Readable.from(body), createWriteStream(target));
  }

  async writeBytes(bucket: string, key: string, body: Uint8Array | string): Promise<void> {
    const target = this.file(bucket, key);
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, body);
  }

  async list(bucket: string, prefix: string): Promise<string[]> {
    const base = path.resolve(this.root, bucket);
    const entries = await readdir(base, { recursive: true, withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => e.isFile())
      .map((e) => path.relative(base, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
      .filter((key) => key.startsWith(prefix))
      .sort();
  }
}
