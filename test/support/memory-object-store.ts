/** The ObjectStore port in memory, for unit tests of the batch core (no S3, no files). */
import { createHash } from 'node:crypto';
import type { ObjectInfo, ObjectStore } from '../../lambdas/core/ports.ts';

export class MemoryObjectStore implements ObjectStore {
  readonly objects = new Map<string, Uint8Array>();
  /** Every write, as `bucket/key`, oldest first. */
  readonly writes: string[] = [];

  put(bucket: string, key: string, body: Uint8Array | string): void {
    this.objects.set(`${bucket}/${key}`, typeof body === 'string' ? Buffer.from(body) : body);
  }

  text(bucket: string, key: string): string | undefined {
    const bytes = this.objects.get(`${bucket}/${key}`);
    return bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8');
  }

  async head(bucket: string, key: string): Promise<ObjectInfo | undefined> {
    const bytes = this.objects.get(`${bucket}/${key}`);
    if (bytes === undefined) return undefined;
    return { size: bytes.length, etag: createHash('md5').update(bytes).digest('hex') };
  }

  async *read(
    bucket: string,
    key: string,
    options: { start?: number; end?: number } = {},
  ): AsyncIterable<Uint8Array> {
    const bytes = this.objects.get(`${bucket}/${key}`);
    if (bytes === undefined) throw Object.assign(new Error(`NoSuchKey: ${key}`), { name: 'NoSuchKey' });
    const slice = bytes.subarray(options.start ?? 0, options.end ?? bytes.length);
    for (let i = 0; i < slice.length; i += 64 * 1024) yield slice.subarray(i, i + 64 * 1024);
  }

  async readBytes(
    bucket: string,
    key: string,
    options: { start?: number; end?: number } = {},
  ): Promise<Uint8Array> {
    const pieces: Uint8Array[] = [];
    for await (const piece of this.read(bucket, key, options)) pieces.push(piece);
    return Buffer.concat(pieces);
  }

  async write(bucket: string, key: string, body: AsyncIterable<Uint8Array | string>): Promise<void> {
    const pieces: Buffer[] = [];
    for await (const piece of body)
      pieces.push(typeof piece === 'string' ? Buffer.from(piece) : Buffer.from(piece));
    this.writes.push(`${bucket}/${key}`);
    this.put(bucket, key, Buffer.concat(pieces));
  }

  async writeBytes(bucket: string, key: string, body: Uint8Array | string): Promise<void> {
    this.writes.push(`${bucket}/${key}`);
    this.put(bucket, key, body);
  }

  async list(bucket: string, prefix: string): Promise<string[]> {
    return [...this.objects.keys()]
      .filter((k) => k.startsWith(`${bucket}/${prefix}`))
      .map((k) => k.slice(bucket.length + 1))
      .sort();
  }
}
