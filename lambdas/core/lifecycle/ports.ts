/** What model lifecycle operations need of the model store (the data bucket's `models/` prefix). */
import type { ModelFile } from '../ports.ts';

/** The files `models push` uploads: the package, and its drift baseline when it has one. */
export type PackageFileName = ModelFile;

/** A pointer as stored, with the tag a conditional write compares against. */
export interface StoredPointer {
  readonly body: Uint8Array;
  /** Changes whenever the pointer is rewritten (S3: the ETag). */
  readonly tag: string;
}

/** The condition a pointer write carries: the tag it was read with, or that there is none yet. */
export type PointerCondition = { readonly tag: string } | 'absent';

export interface ModelStoreWriter {
  /** `s3://bucket/models/`, for messages. */
  readonly description: string;
  /** Undefined when the model has no `current.json`. */
  readPointer(name: string): Promise<StoredPointer | undefined>;
  /**
   * Writes `current.json` only if it is still as read (or still absent); throws PointerConflictError
   * otherwise, writing nothing.
   */
  writePointer(name: string, body: string, condition: PointerCondition): Promise<void>;
  /** Writes a history record `models/<name>/history/<file>`; never replaces one (file names are unique). */
  writeHistory(name: string, file: string, body: string): Promise<void>;
  /** The history records of a model, oldest first (file names sort by time). */
  readHistory(name: string): Promise<{ readonly file: string; readonly body: Uint8Array }[]>;
  /** Model names under the prefix (with a pointer or not). */
  listModels(): Promise<string[]>;
  /** The versions present: folders holding a manifest.json or model.onnx. */
  listVersions(name: string): Promise<string[]>;
  /** Writes a package file only when it does not exist; throws VersionExistsError when it does. */
  createPackageFile(name: string, version: string, file: PackageFileName, body: Uint8Array): Promise<void>;
}
