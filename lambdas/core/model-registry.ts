/**
 * The models one process serves: loaded once per version from a ModelSource, the live version re-read
 * from its pointer at most every `refreshSeconds`, load failures remembered for `/ready` and retried.
 */
import { ModelLoadError, ModelNotFoundError, TandemError } from './errors.ts';
import { loadModel, type ServedModel } from './model-loader.ts';
import { checkPackagePath, parseJsonFile, readModelPackage } from './model-package.ts';
import { parseManifest, type Manifest } from './manifest.ts';
import { isPackageName } from './names.ts';
import type { ModelSource } from './ports.ts';

export interface ModelRegistryOptions {
  /** The model served when a request names none. */
  readonly defaultModel: string;
  /** How often the live-version pointer is re-read; 0 reads it on every request. */
  readonly refreshSeconds: number;
  /** How long a failed load is remembered before it is tried again. */
  readonly retryFailedSeconds: number;
  readonly now?: () => number;
}

interface Entry {
  model?: ServedModel;
  loading?: Promise<ServedModel>;
  checkedAt: number;
  failure?: { error: TandemError; at: number };
}

export interface ModelStatus {
  readonly name: string;
  readonly ready: boolean;
  readonly version?: string;
  readonly error?: { readonly code: string; readonly message: string };
}

function asTandemError(error: unknown, name: string): TandemError {
  if (error instanceof TandemError) return error;
  return new ModelLoadError('MODEL_LOAD_FAILED', `cannot load model ${name}: ${(error as Error).message}`, {
    cause: error,
  });
}

export class ModelRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(
    private readonly source: ModelSource,
    private readonly options: ModelRegistryOptions,
  ) {
    this.now = options.now ?? Date.now;
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

  /** The served model by name (default model when undefined); loads or reloads it when needed. */
  async get(name: string | undefined = this.options.defaultModel): Promise<ServedModel> {
    checkName(name);
    let entry = this.entries.get(name);
    if (!entry) {
      entry = { checkedAt: 0 };
      this.entries.set(name, entry);
    }
    const now = this.now();
    if (entry.failure && now - entry.failure.at < this.options.retryFailedSeconds * 1000 && !entry.model) {
      throw entry.failure.error;
    }
    if (entry.model && now - entry.checkedAt < this.options.refreshSeconds * 1000) return entry.model;
    entry.loading ??= this.refresh(name, entry).finally(() => {
      entry.loading = undefined;
    });
    return entry.loading;
  }

  /** Loads the default model now (at init), remembering a failure instead of throwing. */
  async warm(): Promise<void> {
    await this.get().catch(() => undefined);
  }

  /** The default model's readiness, with the reason when it is not ready. */
  status(name: string = this.options.defaultModel): ModelStatus {
    const entry = this.entries.get(name);
    if (entry?.model) return { name, ready: true, version: entry.model.version };
    const error = entry?.failure?.error;
    return {
      name,
      ready: false,
      error: error
        ? { code: error.code, message: error.message }
        : { code: 'MODEL_LOADING', message: 'not loaded yet' },
    };
  }

  async list(): Promise<string[]> {
    return (await this.source.list()).sort();
  }

  /** The manifest of a model's live version (loaded model's, or read without loading the ONNX file). */
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
    await Promise.all([...this.entries.values()].map((e) => e.model?.close()));
    this.entries.clear();
  }

  private async refresh(name: string, entry: Entry): Promise<ServedModel> {
    const now = this.now();
    try {
      const version = await this.source.currentVersion(name);
      entry.checkedAt = now;
      if (entry.model?.version === version) return entry.model;
      const model = await this.load(name, version);
      const previous = entry.model;
      entry.model = model;
      entry.failure = undefined;
      // In-flight requests may still hold the previous session; release it once they are done.
      if (previous) setTimeout(() => void previous.close().catch(() => undefined), 30_000).unref();
      return model;
    } catch (error) {
      const failure = asTandemError(error, name);
      if (entry.model && !(failure instanceof ModelNotFoundError)) {
        // Keep serving the loaded version when a newer one cannot be read or loaded.
        entry.checkedAt = now;
        entry.failure = { error: failure, at: now };
        return entry.model;
      }
      entry.failure = { error: failure, at: now };
      if (failure instanceof ModelNotFoundError) this.entries.delete(name);
      throw failure;
    }
  }

  private load(name: string, version: string): Promise<ServedModel> {
    return loadModelVersion(this.source, name, version);
  }

  private parseJson(bytes: Uint8Array, where: string): unknown {
    return parseJsonFile(bytes, where);
  }
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
