/**
 * The models one process serves: loaded once per version from a ModelSource, the live version re-read
 * from its pointer at most every `refreshSeconds`. Whatever happens to the pointer (deleted, not JSON,
 * naming a version that is missing or does not load, a store that cannot be read), the last version that
 * loaded keeps serving; the registry remembers why the pointer's version is not serving, tells its
 * listener once per change, and retries at every check.
 */
import { ModelLoadError, ModelNotFoundError, TandemError, type ErrorDetail } from './errors.ts';
import { loadModel, type ServedModel } from './model-loader.ts';
import { checkPackagePath, parseJsonFile, readModelPackage } from './model-package.ts';
import { parseManifest, type Manifest } from './manifest.ts';
import { isPackageName } from './names.ts';
import type { ModelSource, ServingPointer } from './ports.ts';

/** Why the pointer's version is not serving. */
export interface ServingProblem {
  /** POINTER_MISSING, INVALID_POINTER, VERSION_NOT_FOUND, MODEL_CORRUPT, INVALID_MANIFEST, ... */
  readonly code: string;
  readonly message: string;
  /** When this problem was first seen (epoch ms); a check that finds it again keeps the time. */
  readonly since: number;
}

/** A change of what serves, or of why the pointer's version does not: reported once per change. */
export type ServingChange =
  | {
      readonly kind: 'failed';
      readonly name: string;
      /** The version that keeps serving; undefined when none ever loaded. */
      readonly servingVersion: string | undefined;
      /** What the pointer says; undefined when it cannot be read. */
      readonly pointerVersion: string | undefined;
      readonly problem: ServingProblem;
    }
  | {
      readonly kind: 'serving';
      readonly name: string;
      readonly version: string;
      /** The version served before; undefined on the first load. */
      readonly previousVersion: string | undefined;
      /** The problem this ends, if the pointer's version was not serving before. */
      readonly recovered: ServingProblem | undefined;
    };

export interface ModelRegistryEvents {
  /** A change of what serves or why the pointer's version does not (not called again for the same one). */
  changed?(change: ServingChange): void;
  /**
   * The outcome of a pointer check: whether the pointer's version fails to serve. Called at each change
   * and otherwise at most once per `reportSeconds` per model (a gauge a metric can be built on).
   */
  checked?(name: string, failing: boolean): void;
}

export interface ModelRegistryOptions {
  /** The model served when a request names none. */
  readonly defaultModel: string;
  /** How often the live-version pointer is re-read; 0 reads it on every request. */
  readonly refreshSeconds: number;
  /** How long a failed load is remembered, when no version serves, before it is tried again. */
  readonly retryFailedSeconds: number;
  readonly events?: ModelRegistryEvents;
  /** @default 60 */
  readonly reportSeconds?: number;
  readonly now?: () => number;
}

/** Why a canary or shadow version does not run: its version does not load. */
interface SecondVersionProblem {
  readonly version: string;
  readonly code: string;
  readonly message: string;
  /** When it failed to load (epoch ms): it is tried again `retryFailedSeconds` later. */
  readonly at: number;
}

/** A canary's or shadow's state after a check: the version loaded, or why it does not load. */
interface SecondVersion<S> {
  readonly second?: { readonly model: ServedModel } & S;
  readonly problem?: SecondVersionProblem & S;
}

interface Entry {
  model?: ServedModel;
  /** When the serving version started serving (epoch ms). */
  servingSince?: number;
  loading?: Promise<ServedModel>;
  checkedAt: number;
  /** What the pointer said at the last check; undefined when it could not be read. */
  pointerVersion?: string;
  problem?: ServingProblem & { readonly error: TandemError; readonly key: string };
  reportedAt?: number;
  /** The canary that takes part of the traffic: the candidate loaded, and its percentage. */
  canary?: ServingCanary;
  /** Why the pointer's canary takes no traffic (its version does not load): all of it goes to live. */
  canaryProblem?: SecondVersionProblem & { readonly percent: number };
  /** The shadow that scores a sample of the instances after the live answer: its version loaded, and the sample. */
  shadow?: ServingShadow;
  /** Why the pointer's shadow does not run (its version does not load). */
  shadowProblem?: SecondVersionProblem & { readonly sample: number };
}

/** A version scoring a sample of a model's instances unseen by callers, to compare with the live one. */
export interface ServingShadow {
  readonly model: ServedModel;
  /** 0 < sample <= 1: the share of instances (with features) the shadow scores. */
  readonly sample: number;
}

/** What `status` says of a shadow. */
export interface ShadowStatus {
  readonly version: string;
  readonly sample: number;
  /** False when the shadow's version does not load: nothing is compared. */
  readonly serving: boolean;
  readonly error?: { readonly code: string; readonly message: string };
}

/** A candidate serving part of a model's traffic. */
export interface ServingCanary {
  readonly model: ServedModel;
  /** 0 < percent <= 100: the share of instances assigned to the candidate. */
  readonly percent: number;
}

/** What `status` says of a canary. */
export interface CanaryStatus {
  readonly version: string;
  readonly percent: number;
  /** False when the candidate does not load: it takes no traffic. */
  readonly serving: boolean;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface ModelStatus {
  readonly name: string;
  /** A version serves. */
  readonly ready: boolean;
  /** The version that serves (the last one that loaded). */
  readonly version?: string;
  readonly servingSince?: number;
  /** What the pointer said at the last check (epoch ms `checkedAt`); absent when it could not be read. */
  readonly pointerVersion?: string;
  readonly checkedAt?: number;
  /** Why the pointer's version is not serving; present whenever it is not (also when nothing serves). */
  readonly error?: {
    readonly code: string;
    readonly message: string;
    readonly since?: number;
    /** One per manifest field that is wrong (schema errors, graph mismatches). */
    readonly details?: readonly { readonly field?: string; readonly message: string }[];
  };
  /** The pointer's canary at the last check, whether its candidate serves, and if not why. */
  readonly canary?: CanaryStatus;
  /** The pointer's shadow at the last check, whether its version runs, and if not why. */
  readonly shadow?: ShadowStatus;
}

/** A load error's details as the API shows them: field and message. */
function failureDetails(details: readonly ErrorDetail[]): { field?: string; message: string }[] {
  return details.map((d) => ({ ...(d.field ? { field: d.field } : {}), message: d.message }));
}

/** The codes for a pointer's version that cannot be served, from the errors of the source and loader. */
function problemOf(error: unknown, name: string, pointerRead: boolean): TandemError {
  if (error instanceof ModelNotFoundError && !pointerRead) {
    return new ModelLoadError('POINTER_MISSING', `${name} has no current.json: no version is promoted`, {
      cause: error,
    });
  }
  if (error instanceof TandemError) return error;
  return new ModelLoadError('MODEL_LOAD_FAILED', `cannot load model ${name}: ${(error as Error).message}`, {
    cause: error,
  });
}

export class ModelRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly events: ModelRegistryEvents;

  constructor(
    private readonly source: ModelSource,
    private readonly options: ModelRegistryOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.events = options.events ?? {};
  }

  get defaultModel(): string {
    return this.options.defaultModel;
  }

  /**
   * The served model when it is loaded and its pointer was checked recently enough, else undefined (then
   * `get` loads or re-checks it). Lets the hot path skip a promise when there is nothing to wait for.
   */
  ready(name: string | undefined = this.options.defaultModel): ServedModel | undefined {
    const entry = this.entries.get(name);
    if (entry?.model && this.now() - entry.checkedAt < this.options.refreshSeconds * 1000) return entry.model;
    return undefined;
  }

  /**
   * The served model by name (default model when undefined); re-checks the pointer when it is due. A
   * model that has loaded once keeps being returned whatever the pointer does; one that never loaded
   * throws why (ModelNotFoundError for a name that has no pointer, unless it is the default model).
   */
  async get(name: string | undefined = this.options.defaultModel): Promise<ServedModel> {
    checkName(name);
    let entry = this.entries.get(name);
    if (!entry) {
      entry = { checkedAt: 0 };
      this.entries.set(name, entry);
    }
    const now = this.now();
    if (entry.model) {
      if (now - entry.checkedAt < this.options.refreshSeconds * 1000) return entry.model;
    } else if (entry.problem && now - entry.checkedAt < this.options.retryFailedSeconds * 1000) {
      throw entry.problem.error;
    }
    entry.loading ??= this.refresh(name, entry).finally(() => {
      entry.loading = undefined;
    });
    return entry.loading;
  }

  /**
   * The canary of a model as of the last pointer check (`get` or `ready` first): the candidate and its
   * percentage; undefined when there is none or its candidate does not load.
   */
  canary(name: string = this.options.defaultModel): ServingCanary | undefined {
    return this.entries.get(name)?.canary;
  }

  /**
   * The shadow of a model as of the last pointer check: its loaded version and sample; undefined when
   * there is none or its version does not load.
   */
  shadow(name: string = this.options.defaultModel): ServingShadow | undefined {
    return this.entries.get(name)?.shadow;
  }

  /** Loads the default model now (at init), remembering a failure instead of throwing. */
  async warm(): Promise<void> {
    await this.get().catch(() => undefined);
  }

  /** What serves for a model and, when the pointer's version does not, why. */
  status(name: string = this.options.defaultModel): ModelStatus {
    const entry = this.entries.get(name);
    if (!entry || (entry.checkedAt === 0 && !entry.model)) {
      return { name, ready: false, error: { code: 'MODEL_LOADING', message: 'not loaded yet' } };
    }
    const problem = entry.problem;
    return {
      name,
      ready: entry.model !== undefined,
      ...(entry.model ? { version: entry.model.version, servingSince: entry.servingSince } : {}),
      ...(entry.pointerVersion !== undefined ? { pointerVersion: entry.pointerVersion } : {}),
      checkedAt: entry.checkedAt,
      ...(problem
        ? {
            error: {
              code: problem.code,
              message: problem.message,
              since: problem.since,
              ...(problem.error.details?.length ? { details: failureDetails(problem.error.details) } : {}),
            },
          }
        : {}),
      ...(entry.canary
        ? { canary: { version: entry.canary.model.version, percent: entry.canary.percent, serving: true } }
        : {}),
      ...(entry.canaryProblem
        ? {
            canary: {
              version: entry.canaryProblem.version,
              percent: entry.canaryProblem.percent,
              serving: false,
              error: { code: entry.canaryProblem.code, message: entry.canaryProblem.message },
            },
          }
        : {}),
      ...(entry.shadow
        ? { shadow: { version: entry.shadow.model.version, sample: entry.shadow.sample, serving: true } }
        : {}),
      ...(entry.shadowProblem
        ? {
            shadow: {
              version: entry.shadowProblem.version,
              sample: entry.shadowProblem.sample,
              serving: false,
              error: { code: entry.shadowProblem.code, message: entry.shadowProblem.message },
            },
          }
        : {}),
    };
  }

  /** The models with a pointer, and those served although their pointer is gone. */
  async list(): Promise<string[]> {
    const names = new Set(await this.source.list());
    for (const [name, entry] of this.entries) if (entry.model) names.add(name);
    return [...names].sort();
  }

  /** The manifest of a model's serving version (loaded model's, or read without loading the ONNX file). */
  async manifest(name: string): Promise<Manifest> {
    checkName(name);
    const loaded = this.entries.get(name)?.model;
    if (loaded) return loaded.manifest;
    const version = await this.source.currentVersion(name);
    const bytes = await this.source.read(name, version, 'manifest.json');
    return parseManifest(
      this.parseJson(bytes, `${name}/${version}/manifest.json`),
      `${name}/${version}/manifest.json`,
    );
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.entries.values()].flatMap((e) => [
        e.model?.close(),
        e.canary?.model.close(),
        e.shadow?.model.close(),
      ]),
    );
    this.entries.clear();
  }

  private async refresh(name: string, entry: Entry): Promise<ServedModel> {
    let pointerRead = false;
    try {
      const pointer: ServingPointer = this.source.currentPointer
        ? await this.source.currentPointer(name)
        : { version: await this.source.currentVersion(name) };
      const version = pointer.version;
      pointerRead = true;
      entry.pointerVersion = version;
      if (entry.model?.version !== version) {
        const model =
          entry.canary?.model.version === version
            ? entry.canary.model
            : entry.shadow?.model.version === version
              ? entry.shadow.model
              : await this.load(name, version);
        const previous = entry.model;
        entry.model = model;
        entry.servingSince = this.now();
        if (previous) retire(previous);
        // A promoted candidate is already loaded as the canary or shadow: it keeps serving as live.
        if (entry.canary?.model.version === version) entry.canary = undefined;
        if (entry.shadow?.model.version === version) {
          // Canary and shadow of the same version are two sessions: the one not kept is released.
          if (entry.shadow.model !== model) retire(entry.shadow.model);
          entry.shadow = undefined;
        }
        this.settle(name, entry, undefined, previous?.version);
      } else {
        this.settle(name, entry, undefined, version);
      }
      await this.refreshSecondVersions(name, entry, pointer);
      return entry.model;
    } catch (error) {
      if (!pointerRead) entry.pointerVersion = undefined;
      const problem = problemOf(error, name, pointerRead);
      if (!entry.model && problem.code === 'POINTER_MISSING' && name !== this.options.defaultModel) {
        // A name nothing was ever served under: the caller's mistake, and nothing to remember.
        this.entries.delete(name);
        throw error;
      }
      this.settle(name, entry, problem, entry.model?.version);
      if (entry.model) return entry.model;
      throw problem;
    } finally {
      entry.checkedAt = this.now();
    }
  }

  /**
   * Loads the pointer's canary and shadow versions when they changed (refreshSecond); one that does not
   * load takes no traffic or runs nothing (the reason is kept for `status`, and it is tried again
   * `retryFailedSeconds` later). Serving never depends on them.
   */
  private async refreshSecondVersions(name: string, entry: Entry, pointer: ServingPointer): Promise<void> {
    const canary = await this.refreshSecond<{ readonly percent: number }>(
      name,
      entry.model?.version,
      pointer.canary,
      entry.canary,
      entry.canaryProblem,
    );
    entry.canary = canary.second;
    entry.canaryProblem = canary.problem;
    const shadow = await this.refreshSecond<{ readonly sample: number }>(
      name,
      entry.model?.version,
      pointer.shadow,
      entry.shadow,
      entry.shadowProblem,
    );
    entry.shadow = shadow.second;
    entry.shadowProblem = shadow.problem;
  }

  /**
   * One version served beside the live one (a canary, with its percent; a shadow, with its sample): the
   * loaded one is kept while the pointer names the same version (its setting updated), a new one is loaded
   * and the old one retired, and a version that failed to load recently is not loaded again at every check
   * (each try builds a session).
   */
  private async refreshSecond<S extends object>(
    name: string,
    live: string | undefined,
    wanted: ({ readonly version: string } & S) | undefined,
    current: ({ readonly model: ServedModel } & S) | undefined,
    failed: (SecondVersionProblem & S) | undefined,
  ): Promise<SecondVersion<S>> {
    if (!wanted || wanted.version === live) {
      if (current) retire(current.model);
      return {};
    }
    const { version, ...setting } = wanted;
    const settings = setting as unknown as S;
    if (failed?.version === version && this.now() - failed.at < this.options.retryFailedSeconds * 1000) {
      return { ...(current ? { second: current } : {}), problem: { ...failed, ...settings } };
    }
    if (current?.model.version === version) return { second: { ...current, ...settings } };
    let outcome: SecondVersion<S>;
    try {
      outcome = { second: { model: await this.load(name, version), ...settings } };
    } catch (error) {
      const problem = problemOf(error, name, true);
      outcome = { problem: { ...wanted, code: problem.code, message: problem.message, at: this.now() } };
    }
    if (current) retire(current.model);
    return outcome;
  }

  /** Records the outcome of a check, telling the listener when it differs from the last one. */
  private settle(name: string, entry: Entry, error: TandemError | undefined, previousVersion?: string): void {
    const now = this.now();
    const before = entry.problem;
    let changed = false;
    if (error) {
      const key = `${error.code}\n${entry.pointerVersion ?? ''}\n${error.message}`;
      if (before?.key !== key) {
        entry.problem = { code: error.code, message: error.message, since: now, error, key };
        changed = true;
        this.events.changed?.({
          kind: 'failed',
          name,
          servingVersion: entry.model?.version,
          pointerVersion: entry.pointerVersion,
          problem: { code: error.code, message: error.message, since: now },
        });
      }
    } else {
      entry.problem = undefined;
      const version = entry.model!.version;
      if (before || previousVersion !== version) {
        changed = true;
        this.events.changed?.({
          kind: 'serving',
          name,
          version,
          previousVersion,
          recovered: before ? { code: before.code, message: before.message, since: before.since } : undefined,
        });
      }
    }
    const reportMs = (this.options.reportSeconds ?? 60) * 1000;
    if (changed || entry.reportedAt === undefined || now - entry.reportedAt >= reportMs) {
      entry.reportedAt = now;
      this.events.checked?.(name, error !== undefined);
    }
  }

  private load(name: string, version: string): Promise<ServedModel> {
    return loadModelVersion(this.source, name, version);
  }

  private parseJson(bytes: Uint8Array, where: string): unknown {
    return parseJsonFile(bytes, where);
  }
}

/** How long a replaced version's session is kept open for the requests still using it. */
export const RETIRED_SESSION_CLOSE_MS = 30_000;

/** In-flight requests may still hold a replaced session; it is released once they are done. */
function retire(model: ServedModel): void {
  setTimeout(() => void model.close().catch(() => undefined), RETIRED_SESSION_CLOSE_MS).unref();
}

/** A name that no store could hold is not looked up at all (it could address another folder or key). */
function checkName(name: string): void {
  if (!isPackageName(name))
    throw new ModelNotFoundError('MODEL_NOT_FOUND', `no model named "${String(name).slice(0, 128)}"`);
}

/** Loads one version of a model package (the batch lane pins the version its run started with). */
export async function loadModelVersion(
  source: ModelSource,
  name: string,
  version: string,
): Promise<ServedModel> {
  const model = await loadModel(await readModelPackage(source, name, version));
  try {
    checkPackagePath(model.manifest, name, version);
  } catch (error) {
    await model.close();
    throw error;
  }
  return model;
}
