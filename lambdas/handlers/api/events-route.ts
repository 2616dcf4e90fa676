/**
 * `POST /events`: validated as /predict validates (one invalid event rejects the request whole, 400 with
 * field details), put on the input stream (partition key: the id) and answered 202 with the count
 * accepted and each event's sequence number. The result is read later with an id-only POST /predict or
 * from the output stream.
 */
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import {
  checkContentEncoding,
  checkContentType,
  parseJsonBody,
  type RequestLimits,
} from '../../core/predict-request.ts';
import { eventRecords, parseEventsRequest } from '../../core/stream/events-request.ts';
import type { OutgoingRecord } from '../../core/stream/micro-batch.ts';
import type { ModelRegistry } from '../../core/model-registry.ts';
import { errorResult, json, type ApiResult } from './responses.ts';

export type EventPutOutcome =
  | { readonly sequenceNumber: string; readonly shardId: string }
  | { readonly errorCode: string; readonly errorMessage: string };

/** The input stream (the Kinesis adapter). */
export interface EventSink {
  put(records: readonly OutgoingRecord[]): Promise<EventPutOutcome[]>;
}

export interface EventsRouteDeps {
  readonly registry: ModelRegistry;
  readonly limits: RequestLimits;
  /** Undefined when the stream lane is off. */
  readonly events?: { readonly sink: EventSink; readonly maxEventBytes: number };
}

export interface EventsCall {
  readonly deps: EventsRouteDeps;
  readonly event: APIGatewayProxyEventV2;
  readonly requestId: string;
  model: string | undefined;
}

function decodeBody(event: APIGatewayProxyEventV2): string | undefined {
  if (event.body === undefined || !event.isBase64Encoded) return event.body;
  return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(event.body, 'base64'));
}

export async function postEvents(call: EventsCall): Promise<ApiResult> {
  const { deps, event, requestId } = call;
  if (deps.events === undefined) {
    return errorResult(
      404,
      'STREAM_LANE_OFF',
      'POST /events needs the stream lane, which this deployment does not have (setting streamLane)',
      requestId,
    );
  }
  const headers = event.headers ?? {};
  checkContentType(headers['content-type']);
  checkContentEncoding(headers['content-encoding']);
  let text: string | undefined;
  try {
    text = decodeBody(event);
  } catch {
    return errorResult(400, 'INVALID_ENCODING', 'the body is not valid UTF-8', requestId);
  }
  const request = parseEventsRequest(parseJsonBody(text, deps.limits), text);
  call.model = request.model;
  const model = deps.registry.ready(request.model) ?? (await deps.registry.get(request.model));
  const records = eventRecords(request, model, deps.events.maxEventBytes);
  let outcomes: EventPutOutcome[];
  try {
    outcomes = await deps.events.sink.put(records);
  } catch {
    return errorResult(
      503,
      'STREAM_UNAVAILABLE',
      'the event stream could not be reached: retry',
      requestId,
      undefined,
      {
        'retry-after': '1',
      },
    );
  }
  const accepted = outcomes.filter((o) => 'sequenceNumber' in o).length;
  if (accepted === 0) {
    return errorResult(
      503,
      'STREAM_UNAVAILABLE',
      'the event stream accepted none of the events: retry',
      requestId,
      undefined,
      {
        'retry-after': '1',
      },
    );
  }
  // Kinesis may refuse some records of a call (throttled shard): those are named, to be sent again.
  return json(202, {
    accepted,
    failed: outcomes.length - accepted,
    model: { name: model.name, version: model.version },
    events: outcomes.map((o, i) =>
      'sequenceNumber' in o
        ? { id: request.events[i]!.id, sequenceNumber: o.sequenceNumber }
        : {
            id: request.events[i]!.id,
            error: { code: 'STREAM_THROTTLED', message: 'not accepted by the stream: send it again' },
          },
    ),
  });
}
