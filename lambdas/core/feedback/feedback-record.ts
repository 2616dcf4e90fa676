/**
 * Where outcomes are kept and in what form:
 *
 *   feedback/<model>/dt=<yyyy-mm-dd>/<received time>-<request id>.jsonl.gz
 *
 * one gzipped JSON Lines object per accepted POST /feedback, partitioned by the day it was received (an
 * outcome is received at or after it is observed, so the days from a window's start on hold every outcome
 * observed in it).
 */
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { ClassLabel } from '../manifest.ts';
import type { FeedbackOutcome } from './feedback-request.ts';

const gzipAsync = promisify(gzip);

export const FEEDBACK_ROOT = 'feedback/';

export interface FeedbackRecord {
  readonly model: string;
  readonly id: string;
  /** A classifier's outcome: one of its classes. */
  readonly label?: ClassLabel;
  /** A regressor's outcome. */
  readonly value?: number;
  /** ISO 8601: when the outcome was observed (the request's, or when it was received). */
  readonly observedAt: string;
  /** ISO 8601: when the API stored it. */
  readonly receivedAt: string;
  readonly requestId: string;
}

/** The folder of one day of a model's outcomes. */
export function feedbackPartition(model: string, timeMs: number): string {
  return `${FEEDBACK_ROOT}${model}/dt=${new Date(timeMs).toISOString().slice(0, 10)}/`;
}

/** One request's object: the time first (keys sort by time within a day), then the request id. */
export function feedbackObjectKey(model: string, receivedMs: number, requestId: string): string {
  const stamp = new Date(receivedMs).toISOString().replace(/[-:.]/g, '');
  const safeId = requestId.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 64) || 'request';
  return `${feedbackPartition(model, receivedMs)}${stamp}-${safeId}.jsonl.gz`;
}

/** The day folders from `fromMs` to `toMs` (inclusive). */
export function feedbackPartitionsBetween(model: string, fromMs: number, toMs: number): string[] {
  const day = 86_400_000;
  const out: string[] = [];
  for (let t = Math.floor(fromMs / day) * day; t <= toMs; t += day) out.push(feedbackPartition(model, t));
  return out;
}

export function feedbackRecords(
  model: string,
  outcomes: readonly FeedbackOutcome[],
  receivedMs: number,
  requestId: string,
): FeedbackRecord[] {
  const receivedAt = new Date(receivedMs).toISOString();
  return outcomes.map((o) => ({ model, ...o, receivedAt, requestId }));
}

export function encodeFeedback(records: readonly FeedbackRecord[]): Promise<Uint8Array> {
  return gzipAsync(`${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
}
