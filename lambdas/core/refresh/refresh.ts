/**
 * Refresh: re-scoring a model's refresh sources (folders of the data bucket) with one of its versions, so
 * that the table holds that version's predictions before traffic reads them. Three causes:
 *
 * - `push`: a version's package was uploaded (`models/<name>/<version>/manifest.json` created);
 * - `promote`: the pointer (`models/<name>/current.json`) names a version as live, canary or shadow;
 * - `staleness`: too many of the model's cache reads were stale or another version's (an alarm, or the
 *   local evaluator of staleness.ts): the live version re-scores its sources.
 *
 * The version's manifest says which cause refreshes it (`refresh.on`: push, promote or off; absent: the
 * stack's `refreshOn` setting); staleness refreshes every model whose policy is not `off`. The sources are
 * the manifest's `refresh.sources` plus the prefixes of the model's schedules. Each (model, version,
 * cause, source) is refreshed once: a marker object under `refresh/` is created with a conditional put
 * before its run starts, so a repeated event (S3 and EventBridge deliver at least once; a pointer is
 * rewritten by every canary step) starts nothing. A staleness refresh's marker carries the time the alarm
 * went off, so each alarm starts one refresh.
 *
 * Pure logic: what happens to S3 and Step Functions is behind the ports below.
 */
import { createHash } from 'node:crypto';
import type { BatchOptions, RunTrigger } from '../batch/contracts.ts';
import { startFolderRun } from '../batch/trigger.ts';
import { parseManifest, type Manifest } from '../manifest.ts';
import { isPackageName } from '../names.ts';
import type { RunStarter } from '../ports.ts';

export type RefreshCause = RunTrigger['cause'];
export type RefreshPolicy = 'push' | 'promote' | 'off';

/** What asks for a refresh. */
export type RefreshEvent =
  | { readonly kind: 'package'; readonly model: string; readonly version: string }
  | { readonly kind: 'pointer'; readonly model: string }
  | { readonly kind: 'staleness'; readonly model: string; readonly at: string };

/** The models' files the refresh reads; undefined when the object does not exist. */
export interface RefreshModelReader {
  readPointer(model: string): Promise<Uint8Array | undefined>;
  readManifest(model: string, version: string): Promise<Uint8Array | undefined>;
}

/** The markers that make a refresh happen once. */
export interface RefreshMarkers {
  /** Creates the object unless it exists: true when this call created it. */
  create(key: string, body: string): Promise<boolean>;
  /** Removes a marker whose run could not be started, so that a retry of the event starts it. */
  remove(key: string): Promise<void>;
}

export interface RefreshDeps {
  readonly bucket: string;
  readonly models: RefreshModelReader;
  readonly markers: RefreshMarkers;
  readonly starter: RunStarter;
  /** The policy of a model whose manifest has no `refresh.on` (the `refreshOn` setting). */
  readonly defaultPolicy: RefreshPolicy;
  /** The prefixes of the model's schedules (the schedules module's scheduledPrefixes). */
  readonly scheduledPrefixes: (model: string) => readonly string[];
  /** Options of every run started (the batch lane's BATCH_OPTIONS); modelVersion is set per refresh. */
  readonly batchOptions?: Partial<BatchOptions>;
  readonly now?: () => number;
}

export interface RefreshOutcome {
  readonly model: string;
  readonly version?: string;
  readonly cause?: RefreshCause;
  readonly source?: string;
  readonly runId?: string;
  /** `skipped`: nothing to refresh, with the reason (policy, no sources, unreadable manifest...). */
  readonly result: 'started' | 'duplicate' | 'skipped';
  readonly reason?: string;
}

export const REFRESH_MARKER_PREFIX = 'refresh/';
/** The reason of a skip for a model that lists no refresh sources (and has no schedules). */
export const NO_REFRESH_SOURCES = 'the model has no refresh sources';

/**
 * The refresh event an object key of the data bucket raises: a package's manifest or a pointer. Anything
 * else (a model file, a history record, a key whose names are not valid) raises none.
 */
export function refreshEventOfKey(key: string): RefreshEvent | undefined {
  const parts = key.split('/');
  if (parts[0] !== 'models') return undefined;
  if (parts.length === 3 && parts[2] === 'current.json' && isPackageName(parts[1]))
    return { kind: 'pointer', model: parts[1] };
  if (
    parts.length === 4 &&
    parts[3] === 'manifest.json' &&
    isPackageName(parts[1]) &&
    isPackageName(parts[2]) &&
    parts[2] !== 'history'
  )
    return { kind: 'package', model: parts[1], version: parts[2] };
  return undefined;
}

/** Whether a version whose policy is `policy` is refreshed for `cause`. */
export function refreshes(policy: RefreshPolicy, cause: RefreshCause): boolean {
  if (policy === 'off') return false;
  return cause === 'staleness' || cause === policy;
}

/** A model's refresh sources: its manifest's, then its schedules' prefixes, each once, as folders. */
export function refreshSources(manifest: Manifest, scheduledPrefixes: readonly string[]): string[] {
  const folders = [...(manifest.refresh?.sources ?? []), ...scheduledPrefixes].map((p) =>
    p.endsWith('/') ? p : `${p}/`,
  );
  return [...new Set(folders)];
}

/**
 * The versions a pointer names: live, canary and shadow, each once. A pointer that cannot be read names
 * none (serving reports it; there is nothing to warm).
 */
export function pointerVersions(bytes: Uint8Array): { readonly live?: string; readonly versions: string[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return { versions: [] };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { versions: [] };
  const record = parsed as Record<string, unknown>;
  const nested = (field: string): unknown => {
    const value = record[field];
    return value !== null && typeof value === 'object' ? (value as { version?: unknown }).version : undefined;
  };
  const live = isPackageName(record['version']) ? record['version'] : undefined;
  const versions = [record['version'], nested('canary'), nested('shadow')].filter(isPackageName);
  return { ...(live ? { live } : {}), versions: [...new Set(versions)] };
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** The marker of one refresh: `refresh/<model>/<version>/<cause>[-<at>]-<source digest>.json`. */
export function refreshMarkerKey(trigger: RunTrigger): string {
  const at = trigger.at === undefined ? '' : `-${trigger.at.replace(/[^0-9A-Za-z]/g, '')}`;
  return `${REFRESH_MARKER_PREFIX}${trigger.model}/${trigger.version}/${trigger.cause}${at}-${sha256(trigger.source).slice(0, 16)}.json`;
}

/** The run of one refresh: a Step Functions execution name (at most 80 of [A-Za-z0-9_-]). */
export function refreshRunId(trigger: RunTrigger): string {
  const identity = [trigger.model, trigger.version, trigger.cause, trigger.source, trigger.at ?? ''].join(
    '\0',
  );
  const model = trigger.model.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 32);
  return `refresh-${model}-${trigger.cause}-${sha256(identity).slice(0, 24)}`;
}

/** Starts the refreshes an event asks for; one outcome per source refreshed, or one saying why none. */
export async function refresh(event: RefreshEvent, deps: RefreshDeps): Promise<RefreshOutcome[]> {
  const { model } = event;
  if (event.kind === 'package') return refreshVersion(model, event.version, 'push', undefined, deps);
  const pointer = await deps.models.readPointer(model);
  const named = pointer ? pointerVersions(pointer) : { versions: [] };
  if (event.kind === 'staleness') {
    if (!named.live) return [{ model, cause: 'staleness', result: 'skipped', reason: 'no readable pointer' }];
    return refreshVersion(model, named.live, 'staleness', event.at, deps);
  }
  if (named.versions.length === 0)
    return [{ model, cause: 'promote', result: 'skipped', reason: 'no readable pointer' }];
  const outcomes: RefreshOutcome[] = [];
  for (const version of named.versions)
    outcomes.push(...(await refreshVersion(model, version, 'promote', undefined, deps)));
  return outcomes;
}

async function refreshVersion(
  model: string,
  version: string,
  cause: RefreshCause,
  at: string | undefined,
  deps: RefreshDeps,
): Promise<RefreshOutcome[]> {
  const skipped = (reason: string): RefreshOutcome[] => [
    { model, version, cause, result: 'skipped', reason },
  ];
  const bytes = await deps.models.readManifest(model, version);
  if (!bytes) return skipped(`models/${model}/${version}/manifest.json does not exist`);
  let manifest: Manifest;
  try {
    manifest = parseManifest(JSON.parse(new TextDecoder().decode(bytes)), `${model}@${version}`);
  } catch (error) {
    return skipped(`the manifest cannot be read: ${(error as Error).message}`);
  }
  const policy = manifest.refresh?.on ?? deps.defaultPolicy;
  if (!refreshes(policy, cause)) return skipped(`refresh.on is "${policy}"`);
  const sources = refreshSources(manifest, deps.scheduledPrefixes(model));
  if (sources.length === 0) return skipped(NO_REFRESH_SOURCES);

  const outcomes: RefreshOutcome[] = [];
  for (const source of sources) {
    const trigger: RunTrigger = { kind: 'refresh', cause, model, version, source, ...(at ? { at } : {}) };
    const runId = refreshRunId(trigger);
    const marker = refreshMarkerKey(trigger);
    const startedAt = new Date((deps.now ?? Date.now)()).toISOString();
    if (!(await deps.markers.create(marker, JSON.stringify({ ...trigger, runId, startedAt })))) {
      outcomes.push({ model, version, cause, source, runId, result: 'duplicate' });
      continue;
    }
    let result: 'started' | 'duplicate';
    try {
      ({ result } = await startFolderRun(
        {
          bucket: deps.bucket,
          model,
          prefix: source,
          runId,
          trigger,
          options: { ...deps.batchOptions, modelVersion: version },
        },
        deps.starter,
      ));
    } catch (error) {
      // Without its run the marker would keep every retry of this event from starting it.
      await deps.markers.remove(marker).catch(() => undefined);
      throw error;
    }
    outcomes.push({ model, version, cause, source, runId, result });
  }
  return outcomes;
}
