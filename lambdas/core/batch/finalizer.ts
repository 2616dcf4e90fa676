/**
 * Ends a batch run, successful or not: sums the chunk reports into `_manifest.json` (counts, model
 * version, input etag, timings, per-chunk stats), names the outputs, and publishes the completion event.
 * A run that failed before or during scoring still gets a manifest that says why.
 */
import { SETTINGS } from '../settings.ts';
import { driftFigures, mergeDriftCounts, type DriftCounts } from '../monitoring/drift.ts';
import type { EventPublisher, ObjectStore } from '../ports.ts';
import {
  folderDatasetName,
  parseIncomingKey,
  resultsPrefix,
  type BatchPlan,
  type ChunkFailure,
  type ChunkReport,
  type RunCompletedEvent,
  type RunInput,
  type RunDrift,
  type RunManifest,
} from './contracts.ts';
import type { PlanResult } from './planner.ts';
import { readChunkFailures } from './chunk-failures.ts';
import { readTaggedMessage } from './errors.ts';

/**
 * Why a run stopped, as the state machine reported it: the error's name (`BatchInputError`,
 * `States.Timeout`) and its message (adapters/step-functions-failure.ts reads them out of a Catch).
 */
export interface RunFailure {
  readonly name: string;
  readonly message: string;
}

/** What Finalize is given: the run input plus what happened. */
export interface FinalizeInput extends RunInput {
  readonly planned?: PlanResult;
  /** Set when a state failed. */
  readonly error?: RunFailure;
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
  /**
   * The drift verdict's threshold (PSI) and minimum rows.
   * @default the driftThreshold and driftMinRecords settings' defaults (0.2, 100)
   */
  readonly drift?: { readonly threshold: number; readonly minRecords: number };
  readonly events?: EventPublisher;
  readonly now?: () => number;
}

const utf8 = new TextDecoder();

/** The code and message of a failure: its `[CODE]` tag, else the error's name. */
export function describeFailure(failure: RunFailure | undefined): { code: string; message: string } {
  if (failure === undefined) return { code: 'RUN_FAILED', message: 'unknown error' };
  const tagged = readTaggedMessage(failure.message);
  if (tagged) return tagged;
  const code = /^[A-Za-z0-9_.]+$/.test(failure.name) ? failure.name : 'RUN_FAILED';
  return { code, message: failure.message.slice(0, 2000) };
}

async function readJson<T>(objects: ObjectStore, bucket: string, key: string): Promise<T | undefined> {
  if (!(await objects.head(bucket, key))) return undefined;
  return JSON.parse(utf8.decode(await objects.readBytes(bucket, key))) as T;
}

async function readAll<T>(objects: ObjectStore, bucket: string, prefix: string): Promise<T[]> {
  const keys = await objects.list(bucket, prefix);
  const found = await Promise.all(keys.map((key) => readJson<T>(objects, bucket, key)));
  return found.filter((r): r is Awaited<T> => r !== undefined);
}

/** Step Functions' own errors (a Map over its failure threshold, a timeout) say nothing about the data. */
function isGeneric(code: string): boolean {
  return code.startsWith('States.') || code === 'RUN_FAILED';
}

/** The failure that explains a run best: one no retry could fix, else the latest. */
function explainingFailure(failures: readonly ChunkFailure[]): ChunkFailure | undefined {
  const sorted = [...failures].sort((a, b) => a.at.localeCompare(b.at));
  return sorted.find((f) => !f.retryable) ?? sorted.at(-1);
}

const DEFAULT_DRIFT = {
  threshold: SETTINGS.driftThreshold.default,
  minRecords: SETTINGS.driftMinRecords.default,
};

/** The run's drift: its chunks' counts summed and compared with the plan's baseline. */
function runDrift(
  plan: BatchPlan,
  reports: readonly ChunkReport[],
  settings: { readonly threshold: number; readonly minRecords: number },
): RunDrift {
  const drift = plan.drift!;
  if (!('baseline' in drift)) return { status: 'no-baseline', message: drift.notice };
  const counted = reports.filter((r) => r.drift !== undefined);
  let sum: DriftCounts | undefined;
  for (const report of counted) {
    if (!sum) sum = structuredClone(report.drift!);
    else mergeDriftCounts(sum, report.drift!);
  }
  const records = sum?.records ?? 0;
  if (!sum || records < settings.minRecords)
    return {
      status: 'too-few-records',
      message: `too few records: ${records} scored, the minimum for drift figures is ${settings.minRecords} (not drift)`,
      records,
    };
  const figures = driftFigures(drift.baseline, sum, settings.threshold);
  const drifted = figures.drifted.length > 0;
  return {
    status: drifted ? 'drift' : 'ok',
    message: drifted
      ? `drift: ${figures.drifted.join(', ')} above PSI ${settings.threshold} against the baseline of ${plan.model}@${plan.modelVersion} (${records} rows)`
      : `no feature above PSI ${settings.threshold} against the baseline of ${plan.model}@${plan.modelVersion} (${records} rows)`,
    ...figures,
  };
}

export async function finalizeRun(input: FinalizeInput, deps: FinalizerDeps): Promise<FinalizeResult> {
  const now = deps.now ?? Date.now;
  const { bucket, runId } = input;
  const plan = await readJson<BatchPlan>(deps.objects, bucket, `runs/${runId}/plan.json`);
  const [reports, failures] = await Promise.all([
    readAll<ChunkReport>(deps.objects, bucket, `runs/${runId}/chunks/`),
    readChunkFailures(deps.objects, bucket, runId),
  ]);
  reports.sort((a, b) => a.index - b.index);

  const incoming = input.folder ? undefined : parseIncomingKey(input.key);
  const model = plan?.model ?? incoming?.model ?? input.model ?? '_unknown';
  const dataset =
    plan?.dataset ?? (input.folder ? folderDatasetName(input.key) : (incoming?.dataset ?? 'dataset'));
  const prefix = plan?.resultsPrefix ?? resultsPrefix(model || '_unknown', dataset, runId);
  const sum = (
    field: keyof Pick<ChunkReport, 'read' | 'scored' | 'rejected' | 'tableWritten' | 'tableSkipped'>,
  ) => reports.reduce((total, r) => total + r[field], 0);
  const counts = {
    planned: plan?.totalRows ?? 0,
    read: sum('read'),
    scored: sum('scored'),
    rejected: sum('rejected'),
    writtenToTable: sum('tableWritten'),
    tableSkipped: sum('tableSkipped'),
  };
  const planned = plan?.chunks.length ?? 0;
  const reported = new Set(reports.map((r) => r.index));
  // Chunks without a report were not (all) scored; a tolerated failure threshold can still let the run
  // succeed, so the manifest names their rows and their last error.
  const unfinished = (plan?.chunks ?? [])
    .filter((c) => !reported.has(c.index))
    .map((c) => {
      const failure = failures.filter((f) => f.index === c.index).sort((a, b) => b.attempt - a.attempt)[0];
      const file = c.file === undefined ? undefined : plan?.files?.[c.file]?.key;
      return {
        index: c.index,
        ...(file === undefined ? {} : { file }),
        firstRow: c.firstRow,
        rows: c.rows,
        ...(failure ? { error: { code: failure.code, message: failure.message } } : {}),
      };
    });

  let failure: RunManifest['error'] | undefined;
  if (input.error) {
    const described = describeFailure(input.error);
    // Once planned, a failure is a chunk's: its own record says more than what the Map passes on
    // (deployed, only that the failure threshold was exceeded).
    const chunkFailure =
      plan || isGeneric(described.code)
        ? explainingFailure(failures.filter((f) => !reported.has(f.index)))
        : undefined;
    failure = chunkFailure
      ? {
          code: chunkFailure.code,
          message: `chunk ${chunkFailure.index}: ${chunkFailure.message}`,
          state: described.code,
        }
      : described;
  } else {
    // The plan counted every chunk's rows; a worker that read another number lost or invented rows.
    const mismatch = plan
      ? reports.filter((r) => plan.chunks[r.index] !== undefined && plan.chunks[r.index]!.rows !== r.read)
      : [];
    if (mismatch.length > 0) {
      failure = {
        code: 'ROW_COUNT_MISMATCH',
        message: mismatch
          .slice(0, 10)
          .map((r) => `chunk ${r.index} read ${r.read} rows, the plan counted ${plan!.chunks[r.index]!.rows}`)
          .join('; '),
      };
    } else if (counts.read > 0 && counts.scored === 0) {
      // Rows came in and nothing came out (a file whose types contradict the manifest, say): the run
      // delivered nothing, and whoever watches failed runs should hear of it.
      failure = {
        code: 'NOTHING_SCORED',
        message: `all ${counts.read} rows read were rejected; the reasons are in ${prefix}rejected/`,
      };
    }
  }
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
      ...(input.trigger ? { trigger: input.trigger } : {}),
    },
    ...(plan?.files ? { files: plan.files.map((f) => ({ key: f.key, size: f.size, rows: f.rows })) } : {}),
    ...(plan?.input.folder && plan.totalRows === 0 && !failure
      ? {
          notice: {
            code: plan.files?.length ? 'EMPTY_FOLDER' : 'NO_FILES',
            message: plan.files?.length
              ? `the ${plan.files.length} files under ${plan.input.key} hold no rows: nothing to score`
              : `no data files under ${plan.input.key}: nothing to score`,
          },
        }
      : {}),
    ...(plan ? { format: plan.format, gzip: plan.gzip } : {}),
    counts,
    chunks: {
      planned,
      completed: reports.length,
      failed: unfinished.length,
      ...(unfinished.length > 0 ? { failures: unfinished } : {}),
    },
    outputs: {
      parts: reports.flatMap((r) => (r.partKey ? [r.partKey] : [])),
      rejected: reports.flatMap((r) => (r.rejectedKey ? [r.rejectedKey] : [])),
    },
    timings: {
      ...(input.startedAt ? { startedAt: input.startedAt } : plan ? { startedAt: plan.createdAt } : {}),
      finishedAt: new Date(now()).toISOString(),
      ...(plan ? { planMs: plan.planMs } : {}),
    },
    chunkStats: reports.map(({ drift: _counts, ...report }) => report),
    ...(plan?.drift ? { drift: runDrift(plan, reports, deps.drift ?? DEFAULT_DRIFT) } : {}),
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
    : `run ${runId} scored ${counts.scored} rows and rejected ${counts.rejected} (${counts.read} read${
        unfinished.length > 0 ? `; ${unfinished.length} chunks failed within the tolerated threshold` : ''
      })${manifest.notice ? ` [${manifest.notice.code}] ${manifest.notice.message}` : ''}; manifest s3://${bucket}/${manifestKey}`;
  return { status: manifest.status, manifestBucket: bucket, manifestKey, message, counts };
}
