/**
 * `POST /feedback`: outcomes (ground truth) for predicted entities, checked against the model
 * (feedback-request.ts), refused for ids never predicted (known-ids.ts), and stored as one gzipped JSON
 * Lines object under `feedback/<model>/dt=<day>/` before the 200: an outcome the API accepted is
 * durable, and one it could not store is a 503 the caller retries, never a silent loss.
 */
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import {
  checkOutcomes,
  invalidFeedback,
  parseFeedbackRequest,
} from '../../core/feedback/feedback-request.ts';
import { encodeFeedback, feedbackObjectKey, feedbackRecords } from '../../core/feedback/feedback-record.ts';
import { unknownIds, type RecentPredictions } from '../../core/feedback/known-ids.ts';
import type { ModelRegistry } from '../../core/model-registry.ts';
import type { ObjectStore, PredictionStore } from '../../core/ports.ts';
import { parseJsonBody, type RequestLimits } from '../../core/predict-request.ts';
import { errorResult, json, type ApiResult } from './responses.ts';
import { jsonBodyText } from './route-support.ts';

export interface FeedbackDeps {
  /** Where outcomes are written (the data bucket). */
  readonly objects: ObjectStore;
  readonly bucket: string;
  /** The prediction table (ids known from batch, stream and write-through); absent: only `recent`. */
  readonly predictions?: PredictionStore;
  /** Ids this environment predicted in real time (filled by POST /predict). */
  readonly recent: RecentPredictions;
  readonly now?: () => number;
  /** Called when an accepted request could not be stored (metrics, logs). */
  readonly failed?: (stage: 'check' | 'write', error: unknown) => void;
}

export interface FeedbackCall {
  readonly deps: {
    readonly registry: ModelRegistry;
    readonly limits: RequestLimits;
    readonly feedback?: FeedbackDeps;
  };
  readonly event: APIGatewayProxyEventV2;
  readonly requestId: string;
  model: string | undefined;
}

function unavailable(code: string, message: string, requestId: string): ApiResult {
  return errorResult(503, code, message, requestId, undefined, { 'retry-after': '1' });
}

export async function postFeedback(call: FeedbackCall): Promise<ApiResult> {
  const { deps, event, requestId } = call;
  const feedback = deps.feedback;
  if (feedback === undefined) {
    return errorResult(
      404,
      'FEEDBACK_OFF',
      'POST /feedback needs the data bucket, which this API is not given',
      requestId,
    );
  }
  const text = jsonBodyText(event);
  const request = parseFeedbackRequest(parseJsonBody(text, deps.limits), text);
  call.model = request.model;
  const model = deps.registry.ready(request.model) ?? (await deps.registry.get(request.model));
  const now = (feedback.now ?? Date.now)();
  const outcomes = checkOutcomes(
    request,
    { name: model.name, task: model.manifest.task, classes: model.classes },
    now,
  );

  const second = [deps.registry.canary(model.name), deps.registry.shadow(model.name)];
  const versions = [...new Set([model.version, ...second.flatMap((s) => (s ? [s.model.version] : []))])];
  let unknown: Set<string>;
  try {
    unknown = await unknownIds(
      model.name,
      versions,
      [...new Set(outcomes.map((o) => o.id))],
      feedback.predictions,
      feedback.recent,
    );
  } catch (error) {
    feedback.failed?.('check', error);
    return unavailable(
      'FEEDBACK_CHECK_UNAVAILABLE',
      'the prediction table could not be read to check the ids: retry',
      requestId,
    );
  }
  if (unknown.size > 0) {
    const message = `has no prediction of model "${model.name}" (versions ${versions.join(', ')}) to compare with`;
    throw invalidFeedback(
      outcomes.flatMap((o, i) =>
        unknown.has(o.id)
          ? [
              request.many
                ? { instance: request.items[i]!.index, field: `items.${request.items[i]!.index}.id`, message }
                : { field: 'id', message },
            ]
          : [],
      ),
      'UNKNOWN_ID',
    );
  }

  const records = feedbackRecords(model.name, outcomes, now, requestId);
  try {
    await feedback.objects.writeBytes(
      feedback.bucket,
      feedbackObjectKey(model.name, now, requestId),
      await encodeFeedback(records),
      'application/gzip',
    );
  } catch (error) {
    feedback.failed?.('write', error);
    return unavailable(
      'FEEDBACK_NOT_STORED',
      'the outcomes could not be stored: nothing was kept, retry',
      requestId,
    );
  }
  return json(200, { accepted: records.length, model: { name: model.name } });
}
