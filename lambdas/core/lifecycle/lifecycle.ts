/**
 * Model lifecycle operations over a model store: what is live, which versions exist and whether they
 * load, the history of pointer changes, and the changes themselves (promote, rollback, push). Every
 * pointer change is a conditional write from the state it was decided on, followed by a history record;
 * a change that would make serving worse (a version that does not exist or does not load) is refused,
 * leaving the pointer untouched, unless forced.
 */
import { randomBytes } from 'node:crypto';
import { parseBaseline } from '../monitoring/baseline.ts';
import type { MonitoringError } from '../monitoring/errors.ts';
import type { ServedModel } from '../model-loader.ts';
import { LifecycleRefusedError, VersionExistsError } from './errors.ts';
import { historyFile } from './history-file.ts';
import { checkPackage, problemsOf, type PackageFiles, type PackageProblem } from './package-check.ts';
import {
  isInvalidPointer,
  readPointerDocument,
  writePointerDocument,
  type PointerDocument,
} from './pointer-document.ts';
import type { ModelStoreWriter, PackageFileName, PointerCondition } from './ports.ts';
import { isCanaryPercent, isShadowSample } from '../traffic-split.ts';
import type { Manifest } from '../manifest.ts';
import {
  DEFAULT_SHADOW_GATE,
  shadowGate,
  summarizeShadow,
  type ShadowGateDecision,
  type ShadowRecord,
} from '../shadow/shadow-report.ts';

/**
 * `rollout-step` (a canary percentage set by an automatic rollout), `rollout-abort` (the rollout ended the
 * canary after a failed check) change the pointer; `rollout-check` and `rollout-stop` record a rollout's
 * check results and why it stopped without changing it (lambdas/core/lifecycle/rollout.ts).
 */
export type ChangeAction =
  | 'promote'
  | 'rollback'
  | 'canary'
  | 'shadow'
  | 'rollout-step'
  | 'rollout-check'
  | 'rollout-abort'
  | 'rollout-stop';

/** Changes that move the live version (not a canary's, a shadow's or a rollout's step, check or stop). */
const movesLive = (e: HistoryEntry): boolean => e.action === 'promote' || e.action === 'rollback';

/** One pointer change, as recorded under `models/<name>/history/`. */
export interface HistoryEntry {
  readonly change: string;
  readonly model: string;
  readonly action: ChangeAction;
  /** ISO-8601. */
  readonly at: string;
  readonly by: string;
  /** The version live before (absent when the model had no pointer, or an unreadable one). */
  readonly from?: string;
  /** The version the change makes live, or for a canary its candidate. */
  readonly to: string;
  /** For a canary: the candidate's share of traffic (0: the canary ended). */
  readonly percent?: number;
  /** For a shadow: the share of instances it scores (0: the shadow ended). */
  readonly sample?: number;
  /** For a promote of a version that has been a shadow: the agreement gate's evidence and decision. */
  readonly gate?: ShadowGateDecision;
  readonly reason?: string;
  /** Set when the change was made with --force over a refusal; the refusal's message. */
  readonly forced?: string;
  /** False for a change rebuilt from the pointer because its record is missing. */
  readonly recorded?: boolean;
  /** Set on every record of an automatic rollout (lambdas/core/lifecycle/rollout.ts). */
  readonly rollout?: RolloutMark;
}

/** What a history record says of the automatic rollout it belongs to. */
export interface RolloutMark {
  readonly id: string;
  /** The step (1-based) a `rollout-step` sets, or a `rollout-check` checked. */
  readonly step?: number;
  /** The planned percentages and bake time (on the first step's record). */
  readonly steps?: readonly number[];
  readonly bakeSeconds?: number;
  /** A `rollout-check`'s verdicts, each naming its metric, value and threshold. */
  readonly checks?: readonly RolloutVerdict[];
  readonly passed?: boolean;
}

/** One health check of a rollout step. */
export interface RolloutVerdict {
  readonly check: 'traffic' | 'errors' | 'latency' | 'shift';
  /** The metric as computed (e.g. `Errors / (Errors + Instances)`), with the versions it compares. */
  readonly metric: string;
  /** Undefined when there was nothing to measure (then `passed` says why in `message`). */
  readonly value?: number;
  readonly threshold: number;
  readonly passed: boolean;
  readonly message: string;
}

export interface History {
  readonly entries: readonly HistoryEntry[];
  /** What does not add up: a pointer change without a record, a pointer written by hand, an unreadable record. */
  readonly flags: readonly string[];
}

export interface VersionStatus {
  readonly version: string;
  readonly live: boolean;
  /** The canary's candidate: the percentage of instances it takes. */
  readonly canaryPercent?: number;
  /** The shadow: the share of instances it scores. */
  readonly shadowSample?: number;
  /** Whether it loads as the server would load it, and if not why (code, full message, fields). */
  readonly loads: boolean;
  readonly problems?: readonly PackageProblem[];
}

export interface ModelDescription {
  readonly name: string;
  readonly pointer:
    | (PointerDocument & { readonly status: 'ok' })
    | { readonly status: 'missing' }
    | { readonly status: 'invalid'; readonly message: string };
  readonly versions: readonly VersionStatus[];
}

export interface ChangeOutcome {
  readonly entry: HistoryEntry;
  /** Set when the pointer changed but its history record could not be written (`models history` flags it). */
  readonly historyError?: string;
}

export interface LifecycleOptions {
  /** Loads one version exactly as the server does (the registry's loader); throws why it cannot. */
  readonly loadVersion: (name: string, version: string) => Promise<ServedModel>;
  /** Who is making changes (recorded in the pointer and the history). */
  readonly identity: () => Promise<string>;
  readonly now?: () => number;
  readonly newChangeId?: () => string;
  /**
   * The shadow comparisons captured for a model's shadow `version` (the agreement gate's evidence). Absent:
   * a version that has been a shadow (by the pointer or the history) has no evidence and is refused.
   */
  readonly shadowCaptures?: (name: string, version: string) => Promise<readonly ShadowRecord[]>;
}

/** The gate refused a promote: the evidence (comparisons, agreement) and the thresholds it was held to. */
export class ShadowGateError extends LifecycleRefusedError {
  constructor(
    message: string,
    readonly decision: ShadowGateDecision,
  ) {
    super('SHADOW_GATE', message, {
      details: [
        {
          field: 'promotion.minShadowComparisons',
          message: `${decision.n} comparison(s) against the live version; at least ${decision.thresholds.minShadowComparisons} required`,
        },
        {
          field: 'promotion.minShadowAgreement',
          message:
            decision.agreement === null
              ? 'no label agreement (not a classifier): not gated'
              : `label agreement ${decision.agreement.toFixed(4)}; at least ${decision.thresholds.minShadowAgreement} required`,
        },
      ],
    });
  }
}

const utf8 = new TextDecoder();

export class ModelLifecycle {
  private readonly now: () => number;
  private readonly newChangeId: () => string;

  constructor(
    private readonly store: ModelStoreWriter,
    private readonly options: LifecycleOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.newChangeId = options.newChangeId ?? (() => randomBytes(6).toString('hex'));
  }

  get description(): string {
    return this.store.description;
  }

  async list(): Promise<{ name: string; live?: string; pointer: string; versions: string[] }[]> {
    const names = await this.store.listModels();
    return Promise.all(
      names.map(async (name) => {
        const [pointer, versions] = await Promise.all([this.pointerOf(name), this.store.listVersions(name)]);
        return {
          name,
          ...(pointer.status === 'ok' ? { live: pointer.version } : {}),
          pointer: pointer.status === 'invalid' ? `invalid: ${pointer.message}` : pointer.status,
          versions,
        };
      }),
    );
  }

  /** The pointer and every version present, each loaded as the server would load it. */
  async show(name: string): Promise<ModelDescription> {
    const [pointer, versions] = await Promise.all([this.pointerOf(name), this.store.listVersions(name)]);
    if (pointer.status === 'missing' && versions.length === 0) throw this.modelNotFound(name);
    const live = pointer.status === 'ok' ? pointer.version : undefined;
    const canary = pointer.status === 'ok' ? pointer.canary : undefined;
    const shadow = pointer.status === 'ok' ? pointer.shadow : undefined;
    const canaryOf = (version: string) => ({
      ...(canary?.version === version ? { canaryPercent: canary.percent } : {}),
      ...(shadow?.version === version ? { shadowSample: shadow.sample } : {}),
    });
    const statuses: VersionStatus[] = [];
    // One at a time: each load builds an onnxruntime session.
    for (const version of versions) {
      const problems = await this.loadProblems(name, version);
      statuses.push({
        version,
        live: version === live,
        ...canaryOf(version),
        loads: problems.length === 0,
        ...(problems.length > 0 ? { problems } : {}),
      });
    }
    if (live !== undefined && !versions.includes(live)) {
      statuses.push({
        version: live,
        live: true,
        loads: false,
        problems: await this.loadProblems(name, live),
      });
    }
    return { name, pointer, versions: statuses };
  }

  /** Every recorded change, oldest first, and whatever does not add up with the pointer. */
  async history(name: string): Promise<History> {
    const [records, pointer] = await Promise.all([this.store.readHistory(name), this.pointerOf(name)]);
    await this.requireModel(name, records.length > 0 || pointer.status !== 'missing');
    const flags: string[] = [];
    const entries: HistoryEntry[] = [];
    for (const record of records) {
      try {
        entries.push(JSON.parse(utf8.decode(record.body)) as HistoryEntry);
      } catch (error) {
        flags.push(`history record ${record.file} is unreadable: ${(error as Error).message}`);
      }
    }
    entries.sort((a, b) => a.at.localeCompare(b.at));
    if (pointer.status === 'ok') {
      const last = entries.filter(movesLive).at(-1);
      if (pointer.change !== undefined && !entries.some((e) => e.change === pointer.change)) {
        flags.push(
          `the live pointer (change ${pointer.change}: ${pointer.previous ?? '(none)'} -> ${pointer.version}` +
            `${pointer.changedAt ? ` at ${pointer.changedAt}` : ''}) has no history record: the record was not ` +
            'written after the pointer was (the pointer is the truth; the change is shown from it)',
        );
        entries.push({
          change: pointer.change,
          model: name,
          action: 'promote',
          at: pointer.changedAt ?? '',
          by: pointer.changedBy ?? 'unknown',
          ...(pointer.previous !== undefined ? { from: pointer.previous } : {}),
          to: pointer.version,
          recorded: false,
        });
      } else if (pointer.change === undefined && last !== undefined && last.to !== pointer.version) {
        flags.push(
          `current.json names ${pointer.version} but the last recorded change set ${last.to}: ` +
            'it was written outside the tandem command',
        );
      }
    } else if (entries.length > 0) {
      flags.push(
        pointer.status === 'missing'
          ? 'current.json is missing although changes were recorded: it was deleted outside the tandem command'
          : `current.json is invalid (${pointer.message}): it was written outside the tandem command`,
      );
    }
    return { entries, flags };
  }

  async promote(
    name: string,
    version: string,
    opts: { reason?: string; force?: boolean } = {},
  ): Promise<ChangeOutcome> {
    return this.change(name, 'promote', () => version, opts);
  }

  /** Back to the version live before the current one (the pointer's `previous`, else the history's). */
  async rollback(name: string, opts: { reason?: string; force?: boolean } = {}): Promise<ChangeOutcome> {
    return this.change(
      name,
      'rollback',
      async (pointer) => {
        if (pointer?.previous !== undefined) return pointer.previous;
        const { entries } = await this.history(name);
        const last = [...entries]
          .reverse()
          .find((e) => movesLive(e) && e.to === pointer?.version && e.from !== undefined);
        if (last?.from !== undefined) return last.from;
        throw new LifecycleRefusedError(
          'NOTHING_TO_ROLL_BACK',
          `${name} has no earlier version to roll back to (current.json names ${pointer?.version ?? 'nothing'} and no previous one)`,
        );
      },
      opts,
    );
  }

  /**
   * Starts, changes or (percent 0) ends a canary: `version` takes `percent` % of the instances while the
   * live version keeps the rest. A candidate that does not exist or does not load is refused unless forced
   * (the API would not send it traffic anyway). A promote or rollback ends the canary.
   */
  async canary(
    name: string,
    version: string,
    percent: number,
    opts: { reason?: string; force?: boolean } = {},
  ): Promise<ChangeOutcome> {
    if (!isCanaryPercent(percent)) {
      throw new LifecycleRefusedError(
        'INVALID_PERCENT',
        `--percent must be a number from 0 to 100 (0 ends the canary), not ${String(percent)}`,
      );
    }
    return this.secondVersion(name, 'canary', version, percent, opts);
  }

  /**
   * Starts, changes or (sample 0) ends a shadow: `version` scores a `sample` share of the instances that
   * carry features after the live answer, unseen by callers, and each comparison is counted and captured.
   * Refused like a canary: a version that does not exist or does not load (unless forced), the live
   * version, the same shadow again, ending a shadow that is not. A promote or rollback ends the shadow.
   */
  async shadow(
    name: string,
    version: string,
    sample: number,
    opts: { reason?: string; force?: boolean } = {},
  ): Promise<ChangeOutcome> {
    if (!isShadowSample(sample)) {
      throw new LifecycleRefusedError(
        'INVALID_SAMPLE',
        `--sample must be a number from 0 to 1 (0 ends the shadow), not ${String(sample)}`,
      );
    }
    return this.secondVersion(name, 'shadow', version, sample, opts);
  }

  /**
   * A canary or a shadow (a second version next to the live one) started, changed or, with `share` 0,
   * ended: the refusals both share, the conditional pointer write (keeping the other one), the history.
   */
  private async secondVersion(
    name: string,
    action: 'canary' | 'shadow',
    version: string,
    share: number,
    opts: { reason?: string; force?: boolean },
  ): Promise<ChangeOutcome> {
    const stored = await this.store.readPointer(name);
    await this.requireModel(name, stored !== undefined);
    const document = stored ? readPointerDocument(stored.body) : undefined;
    if (!stored || !document || isInvalidPointer(document)) {
      throw new LifecycleRefusedError(
        'NO_LIVE_VERSION',
        `${name} has no ${stored ? 'valid ' : ''}current.json: a ${action} needs a live version (promote one first)`,
      );
    }
    const { canary, shadow, ...base } = document;
    const current =
      action === 'canary'
        ? canary && { version: canary.version, share: canary.percent }
        : shadow && { version: shadow.version, share: shadow.sample };
    const described = (n: number) =>
      action === 'canary' ? `takes ${n}% of the traffic` : `shadows ${n} of the instances`;
    let forced: string | undefined;
    if (share === 0) {
      if (current?.version !== version) {
        throw new LifecycleRefusedError(
          `NO_${action.toUpperCase()}`,
          `${name}@${version} is not the ${action} of ${name} (${current ? `the ${action} is ${current.version}` : 'there is none'}); nothing to end`,
        );
      }
    } else {
      if (document.version === version) {
        throw new LifecycleRefusedError(
          'ALREADY_LIVE',
          `${name}@${version} is the live version: a ${action} needs another version`,
        );
      }
      if (current?.version === version && current.share === share) {
        throw new LifecycleRefusedError(
          `ALREADY_${action.toUpperCase()}`,
          `${name}@${version} already ${described(share)}; nothing to change`,
        );
      }
      forced = (await this.refuseUnloadable(name, version, document.version, action, opts.force)).forced;
    }
    const change = this.newChangeId();
    const at = new Date(this.now()).toISOString();
    const by = await this.options.identity();
    const kept = action === 'canary' ? (shadow ? { shadow } : {}) : canary ? { canary } : {};
    const started =
      share === 0
        ? {}
        : action === 'canary'
          ? { canary: { version, percent: share } }
          : { shadow: { version, sample: share } };
    const pointer: PointerDocument = { ...base, change, changedAt: at, changedBy: by, ...kept, ...started };
    const entry: HistoryEntry = {
      change,
      model: name,
      action,
      at,
      by,
      from: document.version,
      to: version,
      ...(action === 'canary' ? { percent: share } : { sample: share }),
      ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
      ...(forced !== undefined ? { forced } : {}),
    };
    return this.record(name, pointer, { tag: stored.tag }, entry);
  }

  /**
   * Checks a package as the server would load it under `name`@`version`, then uploads it; a version
   * already present is never overwritten. Does not change the pointer.
   */
  async push(name: string, version: string, files: PackageFiles, where: string): Promise<void> {
    const checked = await checkPackage(files, where, { name, version });
    await checked.model?.close();
    if (checked.problems.length > 0) {
      throw new LifecycleRefusedError(
        'PACKAGE_INVALID',
        `${where} does not load as ${name}@${version}; nothing was uploaded`,
        {
          details: checked.problems.map((p) => ({
            ...(p.field ? { field: p.field } : {}),
            message: p.message,
          })),
        },
      );
    }
    if ((await this.store.listVersions(name)).includes(version)) {
      throw new VersionExistsError(
        'VERSION_EXISTS',
        `${name}@${version} already exists in ${this.store.description}; versions are never overwritten: push it as a new version`,
      );
    }
    const baseline = files.baseline;
    if (baseline !== undefined) checkPackageBaseline(baseline, `${where}/baseline.json`, name, version);
    // The model first: a package is only seen as loadable once its manifest is there.
    const order: [PackageFileName, Uint8Array][] = [
      ['model.onnx', files.model!],
      ...(baseline !== undefined ? [['baseline.json', baseline] as [PackageFileName, Uint8Array]] : []),
      ['manifest.json', files.manifest!],
    ];
    for (const [file, body] of order) await this.store.createPackageFile(name, version, file, body);
  }

  private async change(
    name: string,
    action: ChangeAction,
    target: (pointer: PointerDocument | undefined) => Promise<string> | string,
    opts: { reason?: string; force?: boolean },
  ): Promise<ChangeOutcome> {
    const stored = await this.store.readPointer(name);
    await this.requireModel(name, stored !== undefined);
    const document = stored ? readPointerDocument(stored.body) : undefined;
    const current = document && !isInvalidPointer(document) ? document : undefined;
    const version = await target(current);
    if (current?.version === version) {
      throw new LifecycleRefusedError(
        'ALREADY_LIVE',
        `${name}@${version} is already live; nothing to change`,
      );
    }
    const loaded = await this.refuseUnloadable(name, version, current?.version, action, opts.force);
    let forced = loaded.forced;
    const gate =
      action === 'promote' ? await this.shadowGate(name, version, current, loaded.manifest) : undefined;
    if (gate && !gate.passed) {
      const message =
        `${name}@${version} has been a shadow and does not pass the agreement gate against ${current?.version ?? 'the live version'}: ` +
        `${gate.reason}; current.json is unchanged (--force to promote anyway)`;
      if (!opts.force) throw new ShadowGateError(message, gate);
      forced = forced === undefined ? message : `${forced}; ${message}`;
    }
    const at = new Date(this.now()).toISOString();
    const by = await this.options.identity();
    const change = this.newChangeId();
    const pointer: PointerDocument = {
      version,
      ...(current ? { previous: current.version } : {}),
      change,
      changedAt: at,
      changedBy: by,
    };
    const condition: PointerCondition = stored ? { tag: stored.tag } : 'absent';
    const entry: HistoryEntry = {
      change,
      model: name,
      action,
      at,
      by,
      ...(current ? { from: current.version } : {}),
      to: version,
      ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
      ...(forced !== undefined ? { forced } : {}),
      ...(gate !== undefined ? { gate } : {}),
    };
    return this.record(name, pointer, condition, entry);
  }

  /** The conditional pointer write, then its history record (the pointer is the truth). */
  private async record(
    name: string,
    pointer: PointerDocument,
    condition: PointerCondition,
    entry: HistoryEntry,
  ): Promise<ChangeOutcome> {
    await this.store.writePointer(name, writePointerDocument(pointer), condition);
    try {
      await this.store.writeHistory(
        name,
        historyFile(entry.at, entry.change),
        `${JSON.stringify(entry, null, 2)}\n`,
      );
    } catch (error) {
      return { entry, historyError: (error as Error).message };
    }
    return { entry };
  }

  /**
   * Refuses (LifecycleRefusedError with the loader's problems) a version that does not exist or does not
   * load; with `force`, returns the refusal's message to record instead.
   */
  private async refuseUnloadable(
    name: string,
    version: string,
    live: string | undefined,
    action: ChangeAction,
    force: boolean | undefined,
  ): Promise<{ forced?: string; manifest?: Manifest }> {
    const { problems, manifest } = await this.loadCheck(name, version);
    if (problems.length === 0) return manifest ? { manifest } : {};
    const code = problems[0]!.code;
    const message =
      code === 'VERSION_NOT_FOUND'
        ? `${name}@${version} does not exist in ${this.store.description}`
        : `${name}@${version} does not load (${code}): the server would keep serving ${live ?? 'nothing'}`;
    if (!force) {
      throw new LifecycleRefusedError(
        code,
        `${message}; current.json is unchanged (--force to ${action} anyway)`,
        {
          details: problems.map((p) => ({ ...(p.field ? { field: p.field } : {}), message: p.message })),
        },
      );
    }
    return { forced: `${message}: ${problems.map((p) => p.message).join('; ')}` };
  }

  /**
   * Refuses (SHADOW_GATE, with the evidence) a version that has been a shadow and does not pass the
   * agreement gate against the live version, as `promote` would: what `models rollout` checks before it
   * starts, since its last step promotes. Returns the decision (undefined: never shadowed).
   */
  async requireShadowGate(name: string, version: string): Promise<ShadowGateDecision | undefined> {
    const stored = await this.store.readPointer(name);
    await this.requireModel(name, stored !== undefined);
    const document = stored ? readPointerDocument(stored.body) : undefined;
    const current = document && !isInvalidPointer(document) ? document : undefined;
    const loaded = await this.refuseUnloadable(name, version, current?.version, 'promote', false);
    const gate = await this.shadowGate(name, version, current, loaded.manifest);
    if (gate && !gate.passed) {
      throw new ShadowGateError(
        `${name}@${version} has been a shadow and does not pass the agreement gate against ${current?.version ?? 'the live version'}: ` +
          `${gate.reason}; a rollout ends with a promote, so none was started (--force to roll out anyway)`,
        gate,
      );
    }
    return gate;
  }

  /**
   * The agreement gate for promoting `version`, when it has been a shadow (the pointer shadows it now, the
   * history says it did, or comparisons of it were captured); undefined for a version never shadowed. The
   * evidence is the comparisons against the live version now; thresholds are the defaults, overridden by
   * the candidate manifest's `promotion`.
   */
  private async shadowGate(
    name: string,
    version: string,
    current: PointerDocument | undefined,
    manifest: Manifest | undefined,
  ): Promise<ShadowGateDecision | undefined> {
    const records = (await this.options.shadowCaptures?.(name, version)) ?? [];
    if (current?.shadow?.version !== version && records.length === 0) {
      const shadowed = (await this.store.readHistory(name)).some((record) => {
        try {
          const entry = JSON.parse(utf8.decode(record.body)) as Partial<HistoryEntry>;
          return entry.action === 'shadow' && entry.to === version;
        } catch {
          return false;
        }
      });
      if (!shadowed) return undefined;
    }
    const evidence = records.filter((r) => r.version === current?.version);
    const overrides = manifest?.promotion ?? {};
    return shadowGate(summarizeShadow(evidence, 0), {
      minShadowComparisons: overrides.minShadowComparisons ?? DEFAULT_SHADOW_GATE.minShadowComparisons,
      minShadowAgreement: overrides.minShadowAgreement ?? DEFAULT_SHADOW_GATE.minShadowAgreement,
    });
  }

  /** Refuses a name with neither a pointer nor a version (unless `known` already): a typo, most likely. */
  private async requireModel(name: string, known: boolean): Promise<void> {
    if (!known && (await this.store.listVersions(name)).length === 0) throw this.modelNotFound(name);
  }

  private modelNotFound(name: string): LifecycleRefusedError {
    return new LifecycleRefusedError(
      'MODEL_NOT_FOUND',
      `no model named "${name}" in ${this.store.description} (\`models list\` shows the models there; \`models push\` adds one)`,
    );
  }

  private async pointerOf(name: string): Promise<ModelDescription['pointer']> {
    const stored = await this.store.readPointer(name);
    if (!stored) return { status: 'missing' };
    const document = readPointerDocument(stored.body);
    if (isInvalidPointer(document)) return { status: 'invalid', message: document.invalid };
    return { status: 'ok', ...document };
  }

  /** Loads a version as the server does and releases it; the problems, [] when it loads. */
  private async loadProblems(name: string, version: string): Promise<PackageProblem[]> {
    return (await this.loadCheck(name, version)).problems;
  }

  /** Loads a version as the server does and releases it: its manifest, or the problems. */
  private async loadCheck(
    name: string,
    version: string,
  ): Promise<{ problems: PackageProblem[]; manifest?: Manifest }> {
    try {
      const model = await this.options.loadVersion(name, version);
      await model.close();
      return { problems: [], manifest: model.manifest };
    } catch (error) {
      return { problems: problemsOf(error) };
    }
  }
}

/** A package's baseline.json must parse and be of the version pushed: else nothing is uploaded. */
function checkPackageBaseline(bytes: Uint8Array, where: string, name: string, version: string): void {
  let baseline;
  try {
    baseline = parseBaseline(bytes, where);
  } catch (error) {
    const e = error as MonitoringError;
    throw new LifecycleRefusedError('PACKAGE_INVALID', `${e.message}; nothing was uploaded`, {
      ...(e.details ? { details: e.details } : {}),
      cause: error,
    });
  }
  if (baseline.model !== name || baseline.version !== version)
    throw new LifecycleRefusedError(
      'PACKAGE_INVALID',
      `${where} is the baseline of ${baseline.model}@${baseline.version}, not ${name}@${version}; nothing was uploaded`,
    );
}
