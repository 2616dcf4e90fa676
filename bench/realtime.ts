/**
 * Real-time section: the predict handler invoked in-process with API Gateway events, against the same
 * work done bare, in one child process (realtime-child.ts), side by side in alternating blocks.
 *
 * - Model path: `{id, features, bypassCache: true}` through the handler vs `session.run` of a session
 *   with the same SESSION_OPTIONS on the same ZipMap-free graph, fed hand-built tensors of the same row.
 * - Both through the local stack's configuration as deployed: models read from the S3 emulator, a table.
 * - Cache-hit path: `{id}` through the handler against the embedded dynalite vs a bare GetItem of the
 *   same item on the very DynamoDB client the handler uses (clients/dynamodb.ts builds one per process).
 */
import path from 'node:path';
import { forkTs, nextMessage, stopChild } from './child.ts';
import type { Summary } from './stats.ts';

export interface RealtimeOptions {
  readonly modelIterations: number;
  readonly modelWarmup: number;
  readonly cacheIterations: number;
  readonly cacheWarmup: number;
  /** Sides alternate every this many iterations (bare first on even blocks, handler first on odd). */
  readonly blockSize: number;
}

/**
 * Warm-up matters: with a few hundred calls the handler's code is not optimized yet on a busy 2-core
 * machine (p50 +20 %, p99 ~10x); 2,000 calls per side are enough and cost well under a second.
 */
export const REALTIME_QUICK: RealtimeOptions = {
  modelIterations: 2_000,
  modelWarmup: 2_000,
  cacheIterations: 1_000,
  cacheWarmup: 500,
  blockSize: 100,
};
export const REALTIME_FULL: RealtimeOptions = {
  modelIterations: 20_000,
  modelWarmup: 5_000,
  cacheIterations: 5_000,
  cacheWarmup: 1_000,
  blockSize: 250,
};

/** Latencies in microseconds. */
export interface RealtimeRaw {
  readonly ort: Summary;
  readonly handlerModel: Summary;
  /** handler / bare p50 ratio of each block pair: the spread of modelOverheadRatio. */
  readonly modelBlockRatios: Summary;
  readonly sdkGet: Summary;
  /** A bare BatchGetItem of the one key: what the store sends for several ids (extra figure). */
  readonly sdkBatchGet: Summary;
  readonly handlerCache: Summary;
  readonly cacheBlockRatios: Summary;
  /** Responses that were not 200 or not from the expected path (model / cache hit). */
  readonly errors: { readonly model: number; readonly cache: number };
  /** Positive-class probability from the handler and from the bare run (must agree). */
  readonly check: { readonly handler: number; readonly bare: number };
  readonly seededId: string;
}

export interface RealtimeResult {
  readonly ortP50Us: number;
  readonly handlerModelP50Us: number;
  readonly handlerModelP99Us: number;
  readonly modelOverheadRatio: number;
  readonly sdkGetP50Us: number;
  readonly handlerCacheP50Us: number;
  readonly cacheOverheadRatio: number;
  // extras
  readonly ortP99Us: number;
  readonly sdkGetP99Us: number;
  readonly sdkBatchGetP50Us: number;
  readonly handlerCacheP99Us: number;
  readonly iterations: { readonly model: number; readonly cache: number };
  readonly errors: RealtimeRaw['errors'];
  readonly raw: RealtimeRaw;
}

export async function runRealtimeBench(options: RealtimeOptions): Promise<RealtimeResult> {
  const child = forkTs(path.join(import.meta.dirname, 'realtime-child.ts'), [JSON.stringify(options)], {
    label: 'realtime',
  });
  try {
    const raw = await nextMessage<RealtimeRaw>(child, 'result', 600_000);
    return {
      ortP50Us: raw.ort.p50,
      handlerModelP50Us: raw.handlerModel.p50,
      handlerModelP99Us: raw.handlerModel.p99,
      modelOverheadRatio: raw.handlerModel.p50 / raw.ort.p50,
      sdkGetP50Us: raw.sdkGet.p50,
      handlerCacheP50Us: raw.handlerCache.p50,
      cacheOverheadRatio: raw.handlerCache.p50 / raw.sdkGet.p50,
      ortP99Us: raw.ort.p99,
      sdkGetP99Us: raw.sdkGet.p99,
      sdkBatchGetP50Us: raw.sdkBatchGet.p50,
      handlerCacheP99Us: raw.handlerCache.p99,
      iterations: { model: raw.handlerModel.n, cache: raw.handlerCache.n },
      errors: raw.errors,
      raw,
    };
  } finally {
    await stopChild(child);
  }
}
