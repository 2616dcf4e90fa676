/** The I/O the core needs, as interfaces; lambdas/adapters implements them over S3, DynamoDB or files. */
import type { StoredPrediction } from './cache-policy.ts';

/** Failures are thrown as PredictionStoreError, whose code says what kind (errors.ts). */
export interface PredictionStore {
  /** Reads the items with these keys (unique) in as few round trips as the store allows. */
  getMany(keys: readonly string[], signal?: AbortSignal): Promise<Map<string, StoredPrediction>>;
  /**
   * Writes items; each replaces a stored one only when it was computed later. Returns how many were
   * written, how many were skipped because a fresher item was there, and the items (the same objects)
   * not written because the store is throttling: the caller may slow down and send them again.
   */
  putMany(
    items: readonly StoredPrediction[],
    signal?: AbortSignal,
  ): Promise<{ written: number; skipped: number; unprocessed?: readonly StoredPrediction[] }>;
}

/** The files of a model version: the package, and its optional drift baseline. */
export type ModelFile = 'model.onnx' | 'manifest.json' | 'baseline.json';

/** What a pointer says about serving: the live version and, while a canary runs, the candidate. */
export interface ServingPointer {
  readonly version: string;
  /** Absent when there is no canary, or the pointer's canary field cannot be read (then all go to live). */
  readonly canary?: { readonly version: string; readonly percent: number };
  /** Absent when there is no shadow, or the pointer's shadow field cannot be read (then none runs). */
  readonly shadow?: { readonly version: string; readonly sample: number };
}

export interface ModelSource {
  /** Where models come from, for messages (`s3://bucket/models/`, a folder). */
  readonly description: string;
  /** The live version of a model (its `current.json`); throws ModelNotFoundError when there is none. */
  currentVersion(name: string): Promise<string>;
  /**
   * The live version and the canary of a model's `current.json` (same errors as currentVersion). The
   * registry serves a canary only from sources that implement it.
   */
  currentPointer?(name: string): Promise<ServingPointer>;
  /** One file of a model package; throws ModelNotFoundError / ModelLoadError('MODEL_FILE_MISSING'). */
  read(name: string, version: string, file: ModelFile): Promise<Uint8Array>;
  /** The names of the models that have a `current.json`. */
  list(): Promise<string[]>;
}

export interface ObjectInfo {
  readonly size: number;
  readonly etag: string;
  readonly versionId?: string;
  /** User metadata (S3 `x-amz-meta-*`), keys lower-case without the prefix. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Byte-level access to objects: what the batch lane needs of S3. */
export interface ObjectStore {
  /** Undefined when the object does not exist. */
  head(bucket: string, key: string, versionId?: string): Promise<ObjectInfo | undefined>;
  /** Streams an object, or the bytes [start, end) of it. */
  read(
    bucket: string,
    key: string,
    options?: { start?: number; end?: number; versionId?: string },
  ): AsyncIterable<Uint8Array>;
  readBytes(
    bucket: string,
    key: string,
    options?: { start?: number; end?: number; versionId?: string },
  ): Promise<Uint8Array>;
  /** Writes an object from a stream of any length with bounded memory (multipart when large). */
  write(
    bucket: string,
    key: string,
    body: AsyncIterable<Uint8Array | string>,
    contentType: string,
  ): Promise<void>;
  writeBytes(bucket: string, key: string, body: Uint8Array | string, contentType: string): Promise<void>;
  /** Keys under a prefix, in key order. */
  list(bucket: string, prefix: string): Promise<string[]>;
}

/** Starts batch runs; a name already used starts nothing. */
export interface RunStarter {
  start(name: string, input: unknown): Promise<'started' | 'duplicate'>;
}

/** Publishes the batch completion event. */
export interface EventPublisher {
  publish(detailType: string, detail: unknown): Promise<void>;
}
