/**
 * A chunk worker's failed attempts, recorded next to the chunk reports. A Distributed Map that fails
 * reports only that its failure threshold was exceeded, so the finalizer reads these to say in the run's
 * manifest which chunk failed and why. Recording is best effort: it never hides the error it records.
 */
import { TandemError } from '../errors.ts';
import type { ObjectStore } from '../ports.ts';
import { chunkFailureKey, type ChunkFailure, type ChunkItem } from './contracts.ts';
import { BatchInputError, ModelUnavailableError } from './errors.ts';

const utf8 = new TextDecoder();

export function describeChunkError(error: unknown): Omit<ChunkFailure, 'index' | 'attempt' | 'at'> {
  const name = error instanceof Error ? error.name : 'Error';
  const raw = error instanceof Error ? error.message : String(error);
  const tagged = /^\[([A-Z0-9_]+)\]\s*([\s\S]*)$/.exec(raw);
  // Node's system errors carry their code (ECONNRESET); SDK errors their name (ThrottlingException).
  const systemCode = (error as { code?: unknown } | null)?.code;
  const code =
    tagged?.[1] ??
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
    message: (tagged?.[2] ?? raw).slice(0, 2000),
    retryable: !(error instanceof BatchInputError || error instanceof ModelUnavailableError),
  };
}

/**
 * Writes the chunk's failure record. `attempt` defaults to one more than the record already there
 * (a deployed worker is not told which attempt it runs).
 */
export async function recordChunkFailure(
  objects: ObjectStore,
  item: ChunkItem,
  error: unknown,
  options: { attempt?: number; now?: () => number } = {},
): Promise<ChunkFailure | undefined> {
  const key = chunkFailureKey(item.runId, item.index);
  try {
    let attempt = options.attempt;
    if (attempt === undefined) {
      const previous = (await objects.head(item.bucket, key))
        ? (JSON.parse(utf8.decode(await objects.readBytes(item.bucket, key))) as Partial<ChunkFailure>)
        : undefined;
      attempt = (typeof previous?.attempt === 'number' ? previous.attempt : 0) + 1;
    }
    const failure: ChunkFailure = {
      index: item.index,
      attempt,
      ...describeChunkError(error),
      at: new Date((options.now ?? Date.now)()).toISOString(),
    };
    await objects.writeBytes(item.bucket, key, JSON.stringify(failure), 'application/json');
    return failure;
  } catch {
    // The store may be what failed the chunk; the chunk's own error is what Step Functions must see.
    return undefined;
  }
}
