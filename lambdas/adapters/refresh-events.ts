/**
 * The events the refresh function is sent, read into RefreshEvents: S3 "Object Created" events for
 * `models/<name>/current.json` and `models/<name>/<version>/manifest.json` (EventBridge, or S3
 * notifications, as upload-events.ts reads them), and the staleness alarm's state change, which the
 * EventBridge rule turns into `{"refresh": "staleness", "model", "at"}` (lib/model-refresh.ts).
 */
import { refreshEventOfKey, type RefreshEvent } from '../core/refresh/refresh.ts';
import { isPackageName } from '../core/names.ts';
import { uploadsFromEvent } from './upload-events.ts';

/** The staleness alarm's event as the rule's input transformer shapes it. */
export interface StalenessAlarmInput {
  readonly refresh: 'staleness';
  readonly model: string;
  /** The state change's time (the event's `time`). */
  readonly at: string;
}

export function refreshEventsFromEvent(event: unknown): RefreshEvent[] {
  const staleness = event as Partial<StalenessAlarmInput> | null;
  if (staleness && typeof staleness === 'object' && staleness.refresh === 'staleness') {
    const at = staleness.at;
    // `at` names the refresh's marker: an event time, never an unbounded string.
    if (!isPackageName(staleness.model) || typeof at !== 'string' || at === '' || at.length > 64) return [];
    return [{ kind: 'staleness', model: staleness.model, at }];
  }
  return uploadsFromEvent(event).flatMap((upload) => {
    if (upload.keyError !== undefined) return [];
    const found = refreshEventOfKey(upload.key);
    return found ? [found] : [];
  });
}
