import type { ObjectStore } from '../ports.ts';

/** Random access to an object by ranged reads (what a Parquet reader needs: footer, then row groups). */
export interface RandomAccessSource {
  readonly byteLength: number;
  read(start: number, end: number): Promise<ArrayBuffer>;
}

export function objectRandomAccess(
  objects: ObjectStore,
  bucket: string,
  key: string,
  size: number,
  versionId?: string,
): RandomAccessSource {
  return {
    byteLength: size,
    async read(start, end) {
      const bytes = await objects.readBytes(bucket, key, { start, end, ...(versionId ? { versionId } : {}) });
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    },
  };
}
