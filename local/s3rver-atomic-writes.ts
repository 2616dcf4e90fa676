/**
 * Crash-safe writes for s3rver's file store. s3rver writes an object's bytes, its `.md5` and its
 * `metadata.json` in place: a process killed in the middle (kill -9 of `npm start` under load) leaves a
 * cut object, or a cut `metadata.json` that fails every later read of the key with HTTP 500 (HeadObject:
 * a bare "UnknownError"), so the restart on that data folder could fail at startup. Here each file is
 * written under a temporary name and renamed over the old one (atomic on one file system), the bytes
 * first: a key's bytes are either as they were or fully written. Reads repair the rest: a `.md5` older
 * than the bytes (killed between the two renames) or cut (a data folder written before) is recomputed
 * from the bytes, and a cut `metadata.json` is dropped (the object keeps its bytes, loses its content type).
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** The part of s3rver's FilesystemStore (lib/stores/filesystem.js) this replaces. */
export interface S3rverFileStore {
  getResourcePath(bucket: string, key: string, resource: 'object' | 'object.md5' | 'metadata.json'): string;
  putObject(object: S3rverObject): Promise<{ size: number; md5: string }>;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5?: string): Promise<void>;
  getMetadata(bucket: string, key: string): Promise<{ etag: string } & Record<string, unknown>>;
}

interface S3rverObject {
  readonly bucket: string;
  readonly key: string;
  readonly metadata: Record<string, string>;
  readonly content: Buffer | Readable;
}

const require = createRequire(import.meta.url);
/** The headers s3rver keeps with an object (besides x-amz-meta-*). */
const ALLOWED_METADATA = (require('s3rver/lib/models/object') as { ALLOWED_METADATA: readonly string[] })
  .ALLOWED_METADATA;

const MD5_ETAG = /^"[0-9a-f]{32}"$/;

let temporaries = 0;

/** A name next to `file` that no key of s3rver maps to (it lists only names ending `._S3rver_object`). */
function temporaryName(file: string): string {
  return `${file}.${process.pid}-${++temporaries}.tmp`;
}

async function replaceFile(file: string, body: string): Promise<void> {
  const temporary = temporaryName(file);
  try {
    await writeFile(temporary, body);
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** Writes the bytes to `file`, returning their size and MD5 (hex). */
async function writeContent(file: string, content: Buffer | Readable): Promise<[number, string]> {
  const md5 = createHash('md5');
  if (Buffer.isBuffer(content)) {
    await writeFile(file, content);
    return [content.length, md5.update(content).digest('hex')];
  }
  let size = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      md5.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  await pipeline(content, hashing, createWriteStream(file));
  return [size, md5.digest('hex')];
}

/** Makes the store's writes crash-safe and its reads repair cut files (see the file comment). */
export function withAtomicWrites(store: S3rverFileStore): void {
  const readMetadata = store.getMetadata.bind(store);

  const putMetadata = async (
    bucket: string,
    key: string,
    metadata: Record<string, string>,
    md5?: string,
  ): Promise<void> => {
    const kept = Object.fromEntries(
      Object.entries(metadata).filter(
        ([name]) => ALLOWED_METADATA.includes(name) || name.startsWith('x-amz-meta-'),
      ),
    );
    if (md5) await replaceFile(store.getResourcePath(bucket, key, 'object.md5'), md5);
    await replaceFile(store.getResourcePath(bucket, key, 'metadata.json'), JSON.stringify(kept, null, 2));
  };

  store.putMetadata = putMetadata;

  store.putObject = async (object) => {
    const file = store.getResourcePath(object.bucket, object.key, 'object');
    await mkdir(path.dirname(file), { recursive: true });
    const temporary = temporaryName(file);
    try {
      const [size, md5] = await writeContent(temporary, object.content);
      await rename(temporary, file);
      // After the bytes: a .md5 older than the object is known stale (see getMetadata).
      await putMetadata(object.bucket, object.key, object.metadata, md5);
      return { size, md5 };
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  };

  store.getMetadata = async (bucket, key) => {
    // Killed between renaming the bytes and their .md5: the .md5 is the previous version's, older than
    // the bytes; s3rver computes it again from the bytes when the file is absent.
    const md5File = store.getResourcePath(bucket, key, 'object.md5');
    const [bytes, md5] = await Promise.all(
      [store.getResourcePath(bucket, key, 'object'), md5File].map((file) =>
        stat(file, { bigint: true }).catch(() => undefined),
      ),
    );
    if (bytes && md5 && md5.mtimeNs < bytes.mtimeNs) await rm(md5File, { force: true });
    let metadata;
    try {
      metadata = await readMetadata(bucket, key);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      // A cut metadata.json: read as none (s3rver's own answer when the file is absent).
      await rm(store.getResourcePath(bucket, key, 'metadata.json'), { force: true });
      metadata = await readMetadata(bucket, key);
    }
    if (MD5_ETAG.test(metadata.etag)) return metadata;
    // A cut .md5: s3rver computes it again from the object's bytes when the file is absent.
    await rm(store.getResourcePath(bucket, key, 'object.md5'), { force: true });
    return readMetadata(bucket, key);
  };
}
