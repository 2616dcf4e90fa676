/**
 * Turns uploads into runs. The execution name is derived from the object version, so a repeated
 * notification for the same upload starts nothing (Step Functions refuses a name already used). The
 * notifications themselves (EventBridge, S3, SQS shapes) are read by adapters/upload-events.ts.
 */
import { createHash } from 'node:crypto';
import type { RunStarter } from '../ports.ts';
import { parseIncomingKey, type BatchOptions, type RunInput } from './contracts.ts';

export interface UploadedObject {
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
  readonly etag?: string;
  readonly sequencer?: string;
}

export interface TriggerOutcome {
  readonly key: string;
  readonly runId?: string;
  readonly result: 'started' | 'duplicate' | 'ignored';
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
    const incoming = parseIncomingKey(upload.key);
    if (!incoming) {
      outcomes.push({ key: upload.key, result: 'ignored' });
      continue;
    }
    const runId = runIdFor(upload, incoming.dataset);
    const input: RunInput = {
      runId,
      bucket: upload.bucket,
      key: upload.key,
      ...(upload.versionId ? { versionId: upload.versionId } : {}),
      ...(upload.etag ? { etag: upload.etag } : {}),
      model: incoming.model ?? '',
      options,
    };
    outcomes.push({ key: upload.key, runId, result: await starter.start(runId, input) });
  }
  return outcomes;
}
