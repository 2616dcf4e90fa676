/**
 * Turns upload notifications into runs. The execution name is derived from the object version, so a
 * repeated notification for the same upload starts nothing (Step Functions refuses a name already used).
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

interface EventBridgeS3Event {
  readonly 'detail-type'?: string;
  readonly detail?: {
    readonly bucket?: { readonly name?: string };
    readonly object?: {
      readonly key?: string;
      readonly etag?: string;
      'version-id'?: string;
      readonly sequencer?: string;
    };
  };
}

interface S3NotificationRecord {
  readonly eventName?: string;
  readonly s3?: {
    readonly bucket?: { readonly name?: string };
    readonly object?: {
      readonly key?: string;
      readonly eTag?: string;
      readonly versionId?: string;
      readonly sequencer?: string;
    };
  };
}

/** Reads uploads from an EventBridge "Object Created" event, an S3 notification, or SQS-wrapped ones. */
export function uploadsFromEvent(event: unknown): UploadedObject[] {
  const uploads: UploadedObject[] = [];
  const visit = (value: unknown) => {
    if (!value || typeof value !== 'object') return;
    const eb = value as EventBridgeS3Event;
    if (eb['detail-type'] === 'Object Created' && eb.detail?.bucket?.name && eb.detail.object?.key) {
      const o = eb.detail.object;
      uploads.push({
        bucket: eb.detail.bucket.name,
        key: o.key!,
        ...(o['version-id'] ? { versionId: o['version-id'] } : {}),
        ...(o.etag ? { etag: o.etag } : {}),
        ...(o.sequencer ? { sequencer: o.sequencer } : {}),
      });
      return;
    }
    const records = (value as { Records?: unknown[] }).Records;
    if (!Array.isArray(records)) return;
    for (const record of records) {
      const body = (record as { body?: unknown }).body;
      if (typeof body === 'string') {
        try {
          visit(JSON.parse(body));
        } catch {
          // Not JSON: not an upload notification.
        }
        continue;
      }
      const s3 = (record as S3NotificationRecord).s3;
      const name = (record as S3NotificationRecord).eventName ?? '';
      if (!s3?.bucket?.name || !s3.object?.key || !name.startsWith('ObjectCreated')) continue;
      uploads.push({
        bucket: s3.bucket.name,
        // S3 notifications URL-encode keys, with + for spaces.
        key: decodeURIComponent(s3.object.key.replace(/\+/g, ' ')),
        ...(s3.object.versionId ? { versionId: s3.object.versionId } : {}),
        ...(s3.object.eTag ? { etag: s3.object.eTag } : {}),
        ...(s3.object.sequencer ? { sequencer: s3.object.sequencer } : {}),
      });
    }
  };
  visit(event);
  return uploads;
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
