/**
 * Turns upload notifications into runs. The execution name is derived from the object version, so a
 * repeated notification for the same upload starts nothing (Step Functions refuses a name already used).
 * Only datasets start runs: an object under incoming/ that is not one (a readme, a file outside a model
 * folder, an unsupported extension) is ignored with a reason before any run exists, so it leaves no
 * FAILED manifest behind and fires no failed-run alarm. The notifications themselves (EventBridge, S3,
 * SQS shapes, each source's key encoding) are read by adapters/upload-events.ts.
 */
import { createHash } from 'node:crypto';
import type { RunStarter } from '../ports.ts';
import {
  folderRunInput,
  parseIncomingKey,
  type BatchOptions,
  type DatasetFormat,
  type IncomingObject,
  type RunInput,
} from './contracts.ts';

export interface UploadedObject {
  readonly bucket: string;
  /** The object key, decoded (decodeUploadKey); the raw key when `keyError` is set. */
  readonly key: string;
  readonly versionId?: string;
  readonly etag?: string;
  readonly sequencer?: string;
  /** Set when the event's key could not be decoded in its source's encoding: no run starts. */
  readonly keyError?: string;
}

/** Why an upload started no run. */
export interface IgnoredReason {
  readonly code: 'UNDECODABLE_KEY' | 'NOT_A_DATASET' | 'NO_MODEL_FOLDER' | 'UNSUPPORTED_FORMAT';
  readonly message: string;
}

export interface TriggerOutcome {
  readonly key: string;
  readonly runId?: string;
  readonly result: 'started' | 'duplicate' | 'ignored';
  /** Set when ignored. */
  readonly reason?: IgnoredReason;
}

export type IncomingDataset = IncomingObject & { readonly model: string; readonly format: DatasetFormat };

/** A key is a dataset when it is `incoming/<model>/[...]<file>` with a supported extension. */
export function classifyUploadKey(
  key: string,
): { readonly dataset: IncomingDataset } | { readonly ignored: IgnoredReason } {
  const incoming = parseIncomingKey(key);
  if (!incoming) return { ignored: { code: 'NOT_A_DATASET', message: 'not a file under incoming/' } };
  if (incoming.model === undefined)
    return {
      ignored: {
        code: 'NO_MODEL_FOLDER',
        message: 'datasets go to incoming/<model>/<file>, with a model name as the first folder',
      },
    };
  if (incoming.format === undefined)
    return {
      ignored: {
        code: 'UNSUPPORTED_FORMAT',
        message: 'supported are .csv, .jsonl (.ndjson), .parquet, and .csv.gz / .jsonl.gz',
      },
    };
  return { dataset: { ...incoming, model: incoming.model, format: incoming.format } };
}

/** A Step Functions execution name (1-80 of [A-Za-z0-9-_]) unique to this object version. */
export function runIdFor(upload: UploadedObject, dataset: string): string {
  // Without versioning, a re-upload keeps the key (and maybe the etag); its notification's sequencer differs.
  const version = upload.versionId ?? `${upload.etag ?? ''}:${upload.sequencer ?? ''}`;
  const identity = `${upload.bucket}/${upload.key}#${version}`;
  const hash = createHash('sha256').update(identity).digest('hex').slice(0, 24);
  const stem = dataset.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40);
  return `${stem}-${hash}`;
}

export async function triggerRuns(
  uploads: readonly UploadedObject[],
  starter: RunStarter,
  options: Partial<BatchOptions> = {},
): Promise<TriggerOutcome[]> {
  const outcomes: TriggerOutcome[] = [];
  for (const upload of uploads) {
    if (upload.keyError !== undefined) {
      const reason: IgnoredReason = { code: 'UNDECODABLE_KEY', message: upload.keyError };
      outcomes.push({ key: upload.key, result: 'ignored', reason });
      continue;
    }
    const classified = classifyUploadKey(upload.key);
    if ('ignored' in classified) {
      outcomes.push({ key: upload.key, result: 'ignored', reason: classified.ignored });
      continue;
    }
    const incoming = classified.dataset;
    const runId = runIdFor(upload, incoming.dataset);
    const input: RunInput = {
      runId,
      bucket: upload.bucket,
      key: upload.key,
      ...(upload.versionId ? { versionId: upload.versionId } : {}),
      ...(upload.etag ? { etag: upload.etag } : {}),
      model: incoming.model,
      options,
    };
    outcomes.push({ key: upload.key, runId, result: await starter.start(runId, input) });
  }
  return outcomes;
}

/** What starts a folder run: a model and a prefix of the data bucket (`runs start <model> --prefix`). */
export interface FolderRunRequest {
  readonly bucket: string;
  readonly model: string;
  readonly prefix: string;
  readonly options?: Partial<BatchOptions>;
  /** Names the run (with the time: a folder is re-scored on every request, unlike an upload). */
  readonly now?: number;
}

/** Starts one run of every data file under a prefix; the planner checks the prefix and the files. */
export async function startFolderRun(
  request: FolderRunRequest,
  starter: RunStarter,
): Promise<{ readonly runId: string; readonly result: 'started' | 'duplicate' }> {
  const prefix = request.prefix.endsWith('/') ? request.prefix : `${request.prefix}/`;
  const at = request.now ?? Date.now();
  const digest = createHash('sha256').update(`${request.bucket}/${prefix}@${at}`).digest('hex').slice(0, 12);
  const runId = `${request.model.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40)}-folder-${at.toString(36)}-${digest}`;
  const input = folderRunInput({
    runId,
    bucket: request.bucket,
    model: request.model,
    prefix,
    ...(request.options ? { options: request.options } : {}),
  });
  return { runId, result: await starter.start(runId, input) };
}
