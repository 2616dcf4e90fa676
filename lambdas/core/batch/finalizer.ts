/**
 * Ends a batch run, successful or not: sums the chunk reports into `_manifest.json` (counts, model
 * version, input etag, timings, per-chunk stats), names the outputs, and publishes the completion event.
 * A run that failed before or during scoring still gets a manifest that says why.
 */
import type { EventPublisher, ObjectStore } from '../ports.ts';
import {
  parseIncomingKey,
  resultsPrefix,
  type BatchPlan,
  type ChunkReport,
  type RunCompletedEvent,
  type RunInput,
  type RunManifest,
} from './contracts.ts';
import type { PlanResult } from './planner.ts';

/** The state the state machine hands to Finalize: the run input plus what happened. */
export interface FinalizeInput extends RunInput {
  readonly planned?: PlanResult;
  /** Set by a Catch: Step Functions' `{Error, Cause}`. */
  readonly error?: { readonly Error?: string; readonly Cause?: string };
  readonly startedAt?: string;
}

export interface FinalizeResult {
  readonly status: RunManifest['status'];
  readonly manifestBucket: string;
  readonly manifestKey: string;
  readonly message: string;
  readonly counts: RunManifest['counts'];
}

export const COMPLETION_DETAIL_TYPE = 'Tandem Batch Run Completed';

export interface FinalizerDeps {
  readonly objects: ObjectStore;
  readonly events?: EventPublisher;
  readonly now?: () => number;
}

const utf8 = new TextDecoder();

/** Reads `[CODE] message` out of a Lambda error's Cause (JSON with errorMessage) or a plain message. */
export function describeFailure(error: FinalizeInput['error']): { code: string; message: string } {
  let message = error?.Cause ?? error?.Error ?? 'unknown error';
  try {
    const cause = JSON.parse(message) as { errorMessage?: unknown };
    if (typeof cause.errorMessage === 'string') message = cause.errorMessage;
  } catch {
    // A plain-text cause.
  }
  const tagged = /^\[([A-Z0-9_]+)\]\s*([\s\S]*)$/.exec(message);
  if (tagged) return { code: tagged[1]!, message: tagged[2]! };
  const code = error?.Error && /^[A-Za-z0-9_.]+$/.test(error.Error) ? error.Error : 'RUN_FAILED';
  return { code, message: message.slice(0, 2000) };
}

async function readJson<T>(objects: ObjectStore, bucket: string, key: string): Promise<T | undefined> {
  if (!(await objects.head(bucket, key))) return undefined;
  return JSON.parse(utf8.decode(await objects.readBytes(bucket, key))) as T;
}

export async function finalizeRun(input: FinalizeInput, deps: FinalizerDeps): Promise<FinalizeResult> {
  const now = deps.now ?? Date.now;
  const { bucket, runId } = input;
  const plan = await readJson<BatchPlan>(deps.objects, bucket, `runs/${runId}/plan.json`);
  const reportKeys = await deps.objects.list(bucket, `runs/${runId}/chunks/`);
  const reports = (
    await Promise.all(reportKeys.map((key) => readJson<ChunkReport>(deps.objects, bucket, key)))
  ).filter((r): r is ChunkReport => r !== undefined);
  reports.sort((a, b) => a.index - b.index);

  const incoming = parseIncomingKey(input.key);
  const model = plan?.model ?? incoming?.model ?? input.model ?? '_unknown';
  const dataset = plan?.dataset ?? incoming?.dataset ?? 'dataset';
  const prefix = plan?.resultsPrefix ?? resultsPrefix(model || '_unknown', dataset, runId);
  const sum = (
    field: keyof Pick<ChunkReport, 'read' | 'scored' | 'rejected' | 'tableWritten' | 'tableSkipped'>,
  ) => reports.reduce((total, r) => total + r[field], 0);
  const counts = {
    read: sum('read'),
    scored: sum('scored'),
    rejected: sum('rejected'),
    writtenToTable: sum('tableWritten'),
    tableSkipped: sum('tableSkipped'),
  };
  const planned = plan?.chunks.length ?? 0;
  const failure = input.error ? describeFailure(input.error) : undefined;
  const manifest: RunManifest = {
    runId,
    status: failure ? 'FAILED' : 'SUCCEEDED',
    ...(failure ? { error: failure } : {}),
    model: { name: model, version: plan?.modelVersion },
    dataset,
    input: plan?.input ?? {
      bucket,
      key: input.key,
      ...(input.versionId ? { versionId: input.versionId } : {}),
      ...(input.etag ? { etag: input.etag } : {}),
    },
    ...(plan ? { format: plan.format, gzip: plan.gzip } : {}),
    counts,
    chunks: { planned, completed: reports.length, failed: Math.max(0, planned - reports.length) },
    outputs: {
      parts: reports.flatMap((r) => (r.partKey ? [r.partKey] : [])),
      rejected: reports.flatMap((r) => (r.rejectedKey ? [r.rejectedKey] : [])),
    },
    timings: {
      ...(input.startedAt ? { startedAt: input.startedAt } : plan ? { startedAt: plan.createdAt } : {}),
      finishedAt: new Date(now()).toISOString(),
      ...(plan ? { planMs: plan.planMs } : {}),
    },
    chunkStats: reports,
  };
  const manifestKey = `${prefix}_manifest.json`;
  await deps.objects.writeBytes(bucket, manifestKey, JSON.stringify(manifest, null, 2), 'application/json');

  const event: RunCompletedEvent = {
    runId,
    status: manifest.status,
    model,
    modelVersion: plan?.modelVersion,
    dataset,
    manifest: { bucket, key: manifestKey },
    counts,
    ...(failure ? { error: failure } : {}),
  };
  await deps.events?.publish(COMPLETION_DETAIL_TYPE, event);
  const message = failure
    ? `run ${runId} failed: [${failure.code}] ${failure.message}`
    : `run ${runId} scored ${counts.scored} rows and rejected ${counts.rejected} (${counts.read} read); manifest s3://${bucket}/${manifestKey}`;
  return { status: manifest.status, manifestBucket: bucket, manifestKey, message, counts };
}
