/**
 * One record of the input stream as the consumer reads it, and the event it carries:
 * `{"model"?: string, "id": string|integer, "features": {...}, "eventTime"?: ISO-8601}`. The id follows
 * the one entity-id rule (entity-id.ts; a JSON number's digits are taken from the record's text).
 */
import type { ErrorDetail } from '../errors.ts';
import { parseJsonEntityId } from '../entity-id.ts';
import { isPackageName } from '../names.ts';

/** A stream record, whatever delivered it (a Lambda Kinesis event, the local poller). */
export interface StreamRecord {
  readonly data: Uint8Array;
  readonly partitionKey: string;
  readonly sequenceNumber: string;
  /** When the stream received the record (epoch ms). */
  readonly arrivalMs: number;
  readonly shardId: string;
}

export interface StreamEvent {
  /** Undefined: the default model. */
  readonly model: string | undefined;
  readonly id: string;
  readonly features: Record<string, unknown>;
  /** The event's time (epoch ms): its `eventTime`, else the record's arrival. */
  readonly eventTimeMs: number;
}

/** Why a record is poison: it is never retried, and goes to `rejected/stream/` with this reason. */
export interface RejectReason {
  readonly code:
    | 'RECORD_TOO_LARGE'
    | 'NOT_JSON'
    | 'NOT_AN_OBJECT'
    | 'INVALID_EVENT'
    | 'INVALID_FEATURES'
    | 'UNKNOWN_MODEL';
  readonly message: string;
  readonly details?: readonly ErrorDetail[];
}

export type ParsedRecord =
  | { readonly ok: true; readonly event: StreamEvent }
  /** `model` is the event's model when it named a valid one (where its rejection is filed). */
  | { readonly ok: false; readonly reason: RejectReason; readonly model: string | undefined };

const EVENT_KEYS = new Set(['model', 'id', 'features', 'eventTime']);
/** ISO-8601 date and time with seconds optional, fraction optional and a zone required. */
export const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The record's data as text, or undefined when it is not UTF-8. */
export function recordText(data: Uint8Array): string | undefined {
  try {
    return UTF8.decode(data);
  } catch {
    return undefined;
  }
}

function reject(code: RejectReason['code'], message: string, model?: string, details?: ErrorDetail[]) {
  return {
    ok: false as const,
    model,
    reason: details === undefined ? { code, message } : { code, message, details },
  };
}

/** Parses one record; feature values are checked later, against the model's schema. */
export function parseStreamRecord(record: StreamRecord, maxEventBytes: number): ParsedRecord {
  if (record.data.byteLength > maxEventBytes) {
    return reject(
      'RECORD_TOO_LARGE',
      `the record is ${record.data.byteLength} bytes; the limit is ${maxEventBytes}`,
    );
  }
  const text = recordText(record.data);
  if (text === undefined) return reject('NOT_JSON', 'the record is not UTF-8 text');
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch (cause) {
    const why = cause instanceof RangeError ? 'it is nested too deeply' : (cause as Error).message;
    return reject('NOT_JSON', `the record is not valid JSON: ${why}`);
  }
  if (!isObject(body)) {
    return reject('NOT_AN_OBJECT', 'the record must be a JSON object with "id" and "features"');
  }
  const issues: ErrorDetail[] = [];
  const model = body['model'];
  const validModel = model === undefined || isPackageName(model);
  if (!validModel) {
    issues.push({
      field: 'model',
      message:
        'must be a model name (1 to 128 letters, digits, ".", "_" or "-", starting with a letter or digit)',
    });
  }
  for (const key of Object.keys(body)) {
    if (!EVENT_KEYS.has(key)) issues.push({ field: key, message: 'is not a known field' });
  }
  const { id, problem } = parseJsonEntityId(body['id'], text, ['id']);
  if (problem !== undefined) issues.push({ field: 'id', message: problem });
  else if (id === undefined)
    issues.push({ field: 'id', message: 'is required (the entity the event is about)' });
  const features = body['features'];
  if (!isObject(features)) issues.push({ field: 'features', message: 'must be an object of feature values' });
  let eventTimeMs = record.arrivalMs;
  const eventTime = body['eventTime'];
  if (eventTime !== undefined) {
    const parsed = typeof eventTime === 'string' && ISO_TIME.test(eventTime) ? Date.parse(eventTime) : NaN;
    if (Number.isNaN(parsed)) {
      issues.push({
        field: 'eventTime',
        message: 'must be an ISO-8601 time with a zone, e.g. 2026-01-31T12:00:00Z',
      });
    } else {
      eventTimeMs = parsed;
    }
  }
  const modelName = validModel ? (model as string | undefined) : undefined;
  if (issues.length > 0) {
    const shown = issues.slice(0, 3).map((i) => `${i.field} ${i.message}`);
    return reject('INVALID_EVENT', `invalid event: ${shown.join('; ')}`, modelName, issues);
  }
  return {
    ok: true,
    event: { model: modelName, id: id!, features: features as Record<string, unknown>, eventTimeMs },
  };
}
