/**
 * A chunk worker's failed attempts, recorded next to the chunk reports. A Distributed Map that fails
 * reports only that its failure threshold was exceeded, so the finalizer reads these to say in the run's
 * manifest which chunk failed and why. Recording is best effort: it never hides the error it records.
 */
import { TandemError } from '../errors.ts';
import type { ObjectStore } from '../ports.ts';
import { chunkFailureKey, chunkFailuresPrefix, type ChunkFailure, type ChunkItem } from './contracts.ts';
import { BatchInputError, ModelUnavailableError, readTaggedMessage } from './errors.ts';

const utf8 = new TextDecoder();

export function describeChunkError(error: unknown): Omit<ChunkFailure, 'index' | 'attempt' | 'at'> {
  const name = error instanceof Error ? error.name : 'Error';
  const raw = error instanceof Error ? error.message : String(error);
  const tagged = readTaggedMessage(raw);
  // Node's system errors carry their code (ECONNRESET); other errors their name.
  const systemCode = (error as { code?: unknown } | null)?.code;
  const code =
    tagged?.code ??
    (error instanceof TandemError
      ? error.code
      : typeof systemCode === 'string' && /^[A-Z][A-Z0-9_]*$/.test(systemCode)
        ? systemCode
        : /^[A-Za-z0-9_.]+$/.test(name) && name !== 'Error'
          ? name
          : 'CHUNK_FAILED');
  return {
    name,
    code,
    message: (tagged?.message ?? raw).slice(0, 2000),
    retryable: !(error instanceof BatchInputError || error instanceof ModelUnavailableError),
  };
}

/**
 * Writes the record of one failed attempt. `attempt` when the caller knows it (the local runner); a
 * deployed worker is not told, and readChunkFailures numbers its records in time order.
 */
export async function recordChunkFailure(
  objects: ObjectStore,
  item: ChunkItem,
  error: unknown,
  options: { attempt?: number; now?: () => number } = {},
): Promise<ChunkFailure | undefined> {
  const atMs = (options.now ?? Date.now)();
  const failure: ChunkFailure = {
    index: item.index,
    attempt: options.attempt ?? 0,
    ...describeChunkError(error),
    at: new Date(atMs).toISOString(),
  };
  try {
    const nonce = Math.random().toString(36).slice(2, 10);
    const key = chunkFailureKey(item.runId, item.index, atMs, nonce);
    await objects.writeBytes(item.bucket, key, JSON.stringify(failure), 'application/json');
    return failure;
  } catch {
    // The store may be what failed the chunk; the chunk's own error is what Step Functions must see.
    return undefined;
  }
}

/** Every failed attempt of a run, oldest first, each numbered within its chunk when it was not. */
export async function readChunkFailures(
  objects: ObjectStore,
  bucket: string,
  runId: string,
): Promise<ChunkFailure[]> {
  const keys = (await objects.list(bucket, chunkFailuresPrefix(runId))).sort();
  const records = await Promise.all(
    keys.map(async (key) => {
      try {
        return JSON.parse(utf8.decode(await objects.readBytes(bucket, key))) as ChunkFailure;
      } catch {
        return undefined; // a record that cannot be read explains nothing; the run's error still stands
      }
    }),
  );
  const seen = new Map<number, number>();
  return records
    .filter((r): r is ChunkFailure => r !== undefined && typeof r.index === 'number')
    .sort((a, b) => a.at.localeCompare(b.at))
    .map((r) => {
      const attempt = (seen.get(r.index) ?? 0) + 1;
      seen.set(r.index, attempt);
      return r.attempt > 0 ? r : { ...r, attempt };
    });
}
