import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DatasetError } from './errors.ts';

/**
 * Decompresses a gzip stream (several concatenated members are fine). Corrupt or truncated data becomes
 * DatasetError CORRUPT_GZIP; errors of the input stream itself pass through unchanged.
 */
export async function* gunzipStream(stream: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  const input = Readable.from(stream, { objectMode: false });
  let inputError: { error: unknown } | undefined;
  input.on('error', (error) => {
    inputError = { error };
    gunzip.destroy(error);
  });
  input.pipe(gunzip);
  try {
    for await (const piece of gunzip) yield piece as Buffer;
  } catch (error) {
    if (inputError !== undefined && error === inputError.error) throw error;
    throw new DatasetError(
      'CORRUPT_GZIP',
      `corrupt or truncated gzip data: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  } finally {
    input.unpipe(gunzip);
    input.destroy();
    gunzip.destroy();
  }
}
