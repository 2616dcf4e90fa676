/**
 * `POST /events`: `{"model"?, "events": [{"id", "features", "eventTime"?}, ...]}`, checked as /predict
 * checks its instances (the entity-id rule, then the model's feature validator, every field named in the
 * details), and turned into the input stream's records (partition key: the id). One invalid event
 * rejects the request whole.
 */
import { ValidationError, type ErrorDetail } from '../errors.ts';
import { jsonElementFieldSources, parseEntityId } from '../entity-id.ts';
import { validateFeatureObjects } from '../features.ts';
import type { ServedModel } from '../model-loader.ts';
import { isPackageName } from '../names.ts';
import type { OutgoingRecord } from './micro-batch.ts';
import { ISO_TIME } from './stream-event.ts';

export const MAX_EVENTS = 500;

export interface EventsRequest {
  readonly model: string | undefined;
  readonly events: readonly {
    readonly id: string;
    readonly features: Record<string, unknown>;
    readonly eventTime: string | undefined;
  }[];
}

const TOP_LEVEL = new Set(['model', 'events']);
const EVENT_KEYS = new Set(['id', 'features', 'eventTime']);

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function invalid(issues: ErrorDetail[]): ValidationError {
  const shown = issues.slice(0, 3).map((i) => `${i.field} ${i.message}`);
  return new ValidationError(
    'INVALID_REQUEST',
    `invalid request: ${shown.join('; ')}${issues.length > 3 ? '; …' : ''}`,
    { details: issues },
  );
}

/** Checks the body's shape; `text` is the body as received (numeric ids are taken from it). */
export function parseEventsRequest(body: unknown, text: string | undefined): EventsRequest {
  if (!isObject(body)) {
    throw new ValidationError('INVALID_REQUEST', 'the body must be a JSON object with "events"', {
      details: [{ field: '(root)', message: 'must be an object' }],
    });
  }
  const issues: ErrorDetail[] = [];
  for (const key of Object.keys(body)) {
    if (!TOP_LEVEL.has(key)) issues.push({ field: key, message: 'is not a known field' });
  }
  const model = body['model'];
  if (model !== undefined && !isPackageName(model)) {
    issues.push({
      field: 'model',
      message:
        'must be a model name (1 to 128 letters, digits, ".", "_" or "-", starting with a letter or digit)',
    });
  }
  const list = body['events'];
  if (!Array.isArray(list) || list.length === 0) {
    issues.push({ field: 'events', message: 'must be a non-empty array of events' });
    throw invalid(issues);
  }
  if (list.length > MAX_EVENTS) {
    throw new ValidationError(
      'TOO_MANY_INSTANCES',
      `too many events: ${list.length}; the limit is ${MAX_EVENTS} per request`,
      { details: [{ field: 'events', message: `at most ${MAX_EVENTS} events` }] },
    );
  }
  let idTexts: (string | undefined)[] | undefined;
  const events: EventsRequest['events'][number][] = [];
  list.forEach((raw: unknown, i) => {
    const prefix = `events.${i}.`;
    if (!isObject(raw)) {
      issues.push({
        instance: i,
        field: `events.${i}`,
        message: 'must be an object with "id" and "features"',
      });
      return;
    }
    for (const key of Object.keys(raw)) {
      if (!EVENT_KEYS.has(key))
        issues.push({ instance: i, field: `${prefix}${key}`, message: 'is not a known field' });
    }
    const rawId = raw['id'];
    const numberText =
      typeof rawId === 'number' && text !== undefined
        ? (idTexts ??= jsonElementFieldSources(text, ['events'], 'id'))[i]
        : undefined;
    const { id, problem } = parseEntityId(rawId, numberText);
    if (problem !== undefined) issues.push({ instance: i, field: `${prefix}id`, message: problem });
    else if (id === undefined)
      issues.push({
        instance: i,
        field: `${prefix}id`,
        message: 'is required (the entity the event is about)',
      });
    const features = raw['features'];
    if (!isObject(features))
      issues.push({
        instance: i,
        field: `${prefix}features`,
        message: 'must be an object of feature values',
      });
    const eventTime = raw['eventTime'];
    if (
      eventTime !== undefined &&
      (typeof eventTime !== 'string' || !ISO_TIME.test(eventTime) || Number.isNaN(Date.parse(eventTime)))
    ) {
      issues.push({
        instance: i,
        field: `${prefix}eventTime`,
        message: 'must be an ISO-8601 time with a zone, e.g. 2026-01-31T12:00:00Z',
      });
    }
    if (id !== undefined && isObject(features)) {
      events.push({ id, features, eventTime: typeof eventTime === 'string' ? eventTime : undefined });
    }
  });
  if (issues.length > 0) throw invalid(issues);
  return { model: model as string | undefined, events };
}

/**
 * Validates every event's features with the model's validator (details name `events.<i>.features.<name>`)
 * and returns the stream records, each at most `maxEventBytes` (what the consumer accepts).
 */
export function eventRecords(
  request: EventsRequest,
  model: ServedModel,
  maxEventBytes: number,
): OutgoingRecord[] {
  try {
    validateFeatureObjects(
      model.validator,
      request.events.map((e, index) => ({ index, features: e.features })),
      false,
    );
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const details = error.details?.map((d) => ({
      ...d,
      ...(d.field ? { field: d.field.replace(/^instances\./, 'events.') } : {}),
    }));
    throw new ValidationError(error.code, error.message.replaceAll('instances.', 'events.'), { details });
  }
  const encoder = new TextEncoder();
  const issues: ErrorDetail[] = [];
  const records = request.events.map((event, i) => {
    const data = encoder.encode(
      JSON.stringify({
        ...(request.model === undefined ? {} : { model: request.model }),
        id: event.id,
        features: event.features,
        ...(event.eventTime === undefined ? {} : { eventTime: event.eventTime }),
      }),
    );
    if (data.byteLength > maxEventBytes) {
      issues.push({
        instance: i,
        field: `events.${i}`,
        message: `is ${data.byteLength} bytes as a stream record; the limit is ${maxEventBytes}`,
      });
    }
    return { partitionKey: event.id, data };
  });
  if (issues.length > 0) throw invalid(issues);
  return records;
}
