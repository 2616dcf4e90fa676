/**
 * The upload notifications the trigger is sent, read into UploadedObjects: EventBridge "Object Created"
 * events, S3 event notifications, and either of them wrapped in SQS messages, each key decoded as its
 * source encodes it (upload-key.ts).
 */
import type { UploadedObject } from '../core/batch/trigger.ts';
import { decodeUploadKey, type UploadEventSource } from './upload-key.ts';

function readKey(raw: string, source: UploadEventSource): Pick<UploadedObject, 'key' | 'keyError'> {
  const key = decodeUploadKey(raw, source);
  return key === undefined
    ? { key: raw, keyError: `the ${source} key ${JSON.stringify(raw)} is not validly encoded` }
    : { key };
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
        ...readKey(o.key!, 'eventbridge'),
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
        ...readKey(s3.object.key, 's3-notification'),
        ...(s3.object.versionId ? { versionId: s3.object.versionId } : {}),
        ...(s3.object.eTag ? { etag: s3.object.eTag } : {}),
        ...(s3.object.sequencer ? { sequencer: s3.object.sequencer } : {}),
      });
    }
  };
  visit(event);
  return uploads;
}
