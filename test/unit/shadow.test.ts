/**
 * Shadow versions without a stack: the pointer's `shadow` field, the comparison and report maths (p99 by
 * nearest rank), the agreement gate and its manifest overrides, the lifecycle's `shadow` command and
 * gated promote over an in-memory store, the registry loading a shadow (and one that does not load), and
 * the runner that scores after the response within a budget, with an injected clock.
 */
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from '@jest/globals';
import { parseServingPointer } from '../../lambdas/adapters/model-pointer.ts';
import { ModelLoadError, ModelNotFoundError } from '../../lambdas/core/errors.ts';
import { PointerConflictError } from '../../lambdas/core/lifecycle/errors.ts';
import { ModelLifecycle, ShadowGateError } from '../../lambdas/core/lifecycle/lifecycle.ts';
import { readPointerDocument } from '../../lambdas/core/lifecycle/pointer-document.ts';
import type {
  ModelStoreWriter,
  PointerCondition,
  StoredPointer,
} from '../../lambdas/core/lifecycle/ports.ts';
import { parseManifest } from '../../lambdas/core/manifest.ts';
import { loadModel, type ServedModel } from '../../lambdas/core/model-loader.ts';
import { loadModelVersion, ModelRegistry } from '../../lambdas/core/model-registry.ts';
import type { ModelFile, ModelSource, ServingPointer } from '../../lambdas/core/ports.ts';
import { parsePredictRequest } from '../../lambdas/core/predict-request.ts';
import { PredictionService } from '../../lambdas/core/prediction-service.ts';
import { comparePredictions } from '../../lambdas/core/shadow/comparison.ts';
import { readShadowCaptures } from '../../lambdas/core/shadow/shadow-captures.ts';
import {
  ShadowRunner,
  type ShadowComparison,
  type ShadowSink,
} from '../../lambdas/core/shadow/shadow-runner.ts';
import {
  percentile,
  shadowGate,
  summarizeShadow,
  type ShadowRecord,
} from '../../lambdas/core/shadow/shadow-report.ts';
import { runCli } from '../../local/cli/tandem-cli.ts';
import { MemoryObjectStore } from '../support/memory-object-store.ts';
import { tinyExpected, tinyManifest, tinyModelBytes } from '../support/tiny-model.ts';

const utf8 = new TextEncoder();
const bytes = (value: unknown) => utf8.encode(JSON.stringify(value));

describe('the pointer shadow field', () => {
  it('reads a shadow with a sample in (0, 1]', () => {
    const pointer = { version: '1', shadow: { version: '2', sample: 0.25 } };
    expect(readPointerDocument(bytes(pointer))).toMatchObject({ shadow: { version: '2', sample: 0.25 } });
    expect(parseServingPointer(bytes(pointer), 'p')).toEqual(pointer);
    expect(
      parseServingPointer(bytes({ version: '1', shadow: { version: '2', sample: 1 } }), 'p').shadow,
    ).toEqual({
      version: '2',
      sample: 1,
    });
  });

  it.each([
    ['sample 0', { version: '2', sample: 0 }],
    ['sample above 1', { version: '2', sample: 1.5 }],
    ['a sample as a string', { version: '2', sample: '0.5' }],
    ['a negative sample', { version: '2', sample: -0.1 }],
    ['no sample', { version: '2' }],
    ['a version that is not a package name', { version: '../2', sample: 0.5 }],
    ['null', null],
    ['an array', [{ version: '2', sample: 0.5 }]],
  ])('ignores an unreadable shadow (%s): the live version still serves', (_, shadow) => {
    const body = bytes({ version: '1', shadow });
    expect(parseServingPointer(body, 'p')).toEqual({ version: '1' });
    const document = readPointerDocument(body);
    expect(document).toEqual({ version: '1' });
  });

  it('ignores, for serving, a shadow naming the live version itself', () => {
    expect(parseServingPointer(bytes({ version: '1', shadow: { version: '1', sample: 0.5 } }), 'p')).toEqual({
      version: '1',
    });
  });
});

describe('one comparison', () => {
  it('says whether the labels agree and the difference of the live label probability', () => {
    const live = { label: 'a', probabilities: { a: 0.8, b: 0.2 } };
    expect(comparePredictions(live, { label: 'a', probabilities: { a: 0.7, b: 0.3 } })).toEqual({
      agreement: true,
      absDifference: expect.closeTo(0.1, 10),
    });
    expect(comparePredictions(live, { label: 'b', probabilities: { a: 0.4, b: 0.6 } })).toEqual({
      agreement: false,
      absDifference: expect.closeTo(0.4, 10),
    });
  });

  it('compares numeric labels with string ones by their text, and has no difference without probabilities', () => {
    expect(comparePredictions({ label: 1 }, { label: '1' })).toEqual({
      agreement: true,
      absDifference: null,
    });
  });

  it('takes the absolute value difference of regressors (largest over several outputs)', () => {
    expect(comparePredictions({ value: 2.5 }, { value: 3 })).toEqual({
      agreement: undefined,
      absDifference: 0.5,
    });
    expect(comparePredictions({ values: [1, 2] }, { values: [1.5, 0] })).toEqual({
      agreement: undefined,
      absDifference: 2,
    });
    expect(comparePredictions({ values: [1, 2] }, { values: [1] }).absDifference).toBeNull();
  });
});

function record(i: number, agreement: boolean | undefined, absDifference: number | null): ShadowRecord {
  return {
    model: 'm',
    version: '1',
    source: 'shadow',
    id: `id-${i}`,
    features: { x: i },
    prediction: { label: 'a' },
    servedBy: 'model',
    requestId: `r${i}`,
    time: new Date(Date.UTC(2026, 11, 6, 4, 0, i)).toISOString(),
    shadowVersion: '2',
    shadowPrediction: { label: agreement === false ? 'b' : 'a' },
    ...(agreement !== undefined ? { agreement } : {}),
    absDifference,
  };
}

describe('the shadow report', () => {
  it('takes the nearest-rank p99', () => {
    const values = Array.from({ length: 200 }, (_, i) => i + 1); // 1..200
    expect(percentile(values, 0.99)).toBe(198);
    expect(percentile([5], 0.99)).toBe(5);
    expect(
      percentile(
        Array.from({ length: 100 }, (_, i) => 100 - i),
        0.99,
      ),
    ).toBe(99);
    expect(percentile([], 0.99)).toBeNull();
  });

  it('counts n, the agreement rate, mean and p99 of the differences, and lists the worst first', () => {
    // 200 comparisons: differences 0.001 .. 0.2; every 20th disagrees (10 of them).
    const records = Array.from({ length: 200 }, (_, i) => record(i, i % 20 !== 0, (i + 1) / 1000));
    const report = summarizeShadow(records);
    expect(report.n).toBe(200);
    expect(report.labelled).toBe(200);
    expect(report.agreement).toBeCloseTo(190 / 200, 12);
    expect(report.meanAbsDifference).toBeCloseTo(0.1005, 12);
    expect(report.p99AbsDifference).toBeCloseTo(0.198, 12);
    expect(report.against).toEqual({ '1': 200 });
    expect(report.largest).toHaveLength(10);
    // The 10 label disagreements (i = 180, 160, ..., 0) come first, the larger difference first.
    expect(report.largest.map((d) => d.id)).toEqual(
      [180, 160, 140, 120, 100, 80, 60, 40, 20, 0].map((i) => `id-${i}`),
    );
    expect(report.largest[0]).toMatchObject({
      features: { x: 180 },
      live: { label: 'a' },
      shadow: { label: 'b' },
    });
    expect(report.firstAt).toBe(records[0]!.time);
  });

  it('has no agreement for regressors, and no disagreements when every answer is the same', () => {
    const report = summarizeShadow([record(1, undefined, 0), record(2, undefined, 0)]);
    expect(report).toMatchObject({ n: 2, labelled: 0, agreement: null, meanAbsDifference: 0, largest: [] });
    expect(summarizeShadow([])).toMatchObject({
      n: 0,
      agreement: null,
      meanAbsDifference: null,
      p99AbsDifference: null,
    });
  });
});

describe('the agreement gate', () => {
  const thresholds = { minShadowComparisons: 200, minShadowAgreement: 0.95 };
  const report = (n: number, agreeing: number) =>
    summarizeShadow(Array.from({ length: n }, (_, i) => record(i, i < agreeing, 0)));

  it('refuses fewer comparisons than required, whatever the agreement', () => {
    expect(shadowGate(report(199, 199), thresholds)).toMatchObject({
      passed: false,
      n: 199,
      agreement: 1,
      reason: expect.stringMatching(/199 shadow comparison\(s\), fewer than the 200 required/),
    });
  });

  it('refuses agreement below the threshold, and passes at it', () => {
    expect(shadowGate(report(200, 189), thresholds)).toMatchObject({ passed: false, agreement: 0.945 });
    expect(shadowGate(report(200, 190), thresholds)).toMatchObject({ passed: true, agreement: 0.95 });
  });

  it('gates regressors (no labels) on the number of comparisons only', () => {
    const regressor = summarizeShadow(Array.from({ length: 200 }, (_, i) => record(i, undefined, 5)));
    expect(shadowGate(regressor, thresholds)).toMatchObject({ passed: true, agreement: null });
  });
});

describe('the manifest promotion thresholds', () => {
  const manifest = (promotion: unknown) => ({ ...tinyManifest('1'), promotion });

  it('accepts the per-model overrides', () => {
    expect(parseManifest(manifest({ minShadowComparisons: 50, minShadowAgreement: 0.9 })).promotion).toEqual({
      minShadowComparisons: 50,
      minShadowAgreement: 0.9,
    });
    expect(parseManifest(manifest({})).promotion).toEqual({});
  });

  it.each([
    ['an agreement above 1', { minShadowAgreement: 1.5 }, 'promotion.minShadowAgreement'],
    ['a negative agreement', { minShadowAgreement: -0.1 }, 'promotion.minShadowAgreement'],
    ['an agreement as a string', { minShadowAgreement: '0.9' }, 'promotion.minShadowAgreement'],
    ['a fractional count', { minShadowComparisons: 2.5 }, 'promotion.minShadowComparisons'],
    ['a negative count', { minShadowComparisons: -1 }, 'promotion.minShadowComparisons'],
    ['an unknown key', { minShadowAgreemnt: 0.9 }, 'promotion'],
    ['not an object', 200, 'promotion'],
  ])('rejects %s, naming the field', (_, promotion, field) => {
    let error: unknown;
    try {
      parseManifest(manifest(promotion));
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({ code: 'INVALID_MANIFEST' });
    expect((error as ModelLoadError).details?.map((d) => d.field)).toContain(field);
  });
});

/** A model store in memory, with the conditional pointer write of S3. */
class MemoryStore implements ModelStoreWriter {
  readonly description = 'memory';
  readonly pointers = new Map<string, StoredPointer>();
  readonly histories = new Map<string, { file: string; body: Uint8Array }[]>();
  versions: string[] = [];
  private tags = 0;

  point(name: string, pointer: unknown): void {
    this.pointers.set(name, { body: bytes(pointer), tag: `t${this.tags++}` });
  }

  async readPointer(name: string) {
    return this.pointers.get(name);
  }

  async writePointer(name: string, body: string, condition: PointerCondition): Promise<void> {
    const current = this.pointers.get(name);
    const ok = condition === 'absent' ? current === undefined : current?.tag === condition.tag;
    if (!ok) throw new PointerConflictError('POINTER_CONFLICT', 'changed since read');
    this.pointers.set(name, { body: utf8.encode(body), tag: `t${this.tags++}` });
  }

  async writeHistory(name: string, file: string, body: string): Promise<void> {
    const list = this.histories.get(name) ?? [];
    list.push({ file, body: utf8.encode(body) });
    this.histories.set(name, list);
  }

  async readHistory(name: string) {
    return this.histories.get(name) ?? [];
  }

  async listModels() {
    return [...this.pointers.keys()];
  }

  async listVersions() {
    return this.versions;
  }

  async createPackageFile(): Promise<void> {
    throw new Error('not used');
  }
}

/** Versions load as the server loads them: the tiny model (its manifest with `promotion`); `broken` does not. */
function lifecycleOver(store: MemoryStore, captures: ShadowRecord[] = [], promotion?: unknown) {
  const source: ModelSource = {
    description: 'memory',
    currentVersion: async () => '1',
    list: async () => ['tiny'],
    read: async (_name, version, file) => {
      if (!store.versions.includes(version))
        throw new ModelLoadError('MODEL_FILE_MISSING', `${file} of tiny@${version} is missing`);
      if (file === 'manifest.json')
        return bytes({ ...tinyManifest(version), ...(promotion ? { promotion } : {}) });
      return version === 'broken' ? utf8.encode('not an onnx model') : tinyModelBytes();
    },
  };
  return new ModelLifecycle(store, {
    loadVersion: (name, version) => loadModelVersion(source, name, version),
    identity: async () => 'tester',
    shadowCaptures: async (_name, version) => captures.filter((r) => r.shadowVersion === version),
  });
}

const pointerOf = (store: MemoryStore) =>
  JSON.parse(new TextDecoder().decode(store.pointers.get('tiny')!.body)) as Record<string, unknown>;

describe('models shadow', () => {
  const setUp = () => {
    const store = new MemoryStore();
    store.versions = ['1', '2', 'broken'];
    store.point('tiny', { version: '1' });
    return store;
  };

  it('writes the shadow into the pointer and a history record with the sample, keeping a canary', async () => {
    const store = setUp();
    store.point('tiny', { version: '1', canary: { version: '2', percent: 10 } });
    const outcome = await lifecycleOver(store).shadow('tiny', '2', 0.5, { reason: 'compare' });
    expect(pointerOf(store)).toMatchObject({
      version: '1',
      canary: { version: '2', percent: 10 },
      shadow: { version: '2', sample: 0.5 },
    });
    expect(outcome.entry).toMatchObject({
      action: 'shadow',
      from: '1',
      to: '2',
      sample: 0.5,
      reason: 'compare',
    });
    const history = await lifecycleOver(store).history('tiny');
    expect(history.flags).toEqual([]);
    expect(history.entries.map((e) => [e.action, e.sample])).toEqual([['shadow', 0.5]]);
  });

  it('ends the shadow with sample 0', async () => {
    const store = setUp();
    await lifecycleOver(store).shadow('tiny', '2', 0.5);
    await lifecycleOver(store).shadow('tiny', '2', 0);
    expect(pointerOf(store)['shadow']).toBeUndefined();
  });

  it.each([
    ['a version that does not exist', '9', 0.5, 'VERSION_NOT_FOUND'],
    ['a version that does not load', 'broken', 0.5, 'MODEL_CORRUPT'],
    ['the live version', '1', 0.5, 'ALREADY_LIVE'],
    ['ending a shadow that is not', '2', 0, 'NO_SHADOW'],
    ['a sample above 1', '2', 1.5, 'INVALID_SAMPLE'],
    ['a sample that is not a number', '2', Number.NaN, 'INVALID_SAMPLE'],
  ])('refuses %s, leaving the pointer untouched', async (_, version, sample, code) => {
    const store = setUp();
    const before = store.pointers.get('tiny');
    await expect(lifecycleOver(store).shadow('tiny', version, sample)).rejects.toMatchObject({ code });
    expect(store.pointers.get('tiny')).toBe(before);
  });

  it('says how to override a refusal of a version that cannot serve', async () => {
    const store = setUp();
    const error = await lifecycleOver(store)
      .shadow('tiny', '9', 0.5)
      .catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/--force to shadow anyway/);
  });

  it('refuses the same shadow again, and a model without a live version', async () => {
    const store = setUp();
    await lifecycleOver(store).shadow('tiny', '2', 0.5);
    await expect(lifecycleOver(store).shadow('tiny', '2', 0.5)).rejects.toMatchObject({
      code: 'ALREADY_SHADOW',
    });
    await lifecycleOver(store).shadow('tiny', '2', 0.2);
    expect(pointerOf(store)['shadow']).toEqual({ version: '2', sample: 0.2 });
    store.pointers.delete('tiny');
    await expect(lifecycleOver(store).shadow('tiny', '2', 0.5)).rejects.toMatchObject({
      code: 'NO_LIVE_VERSION',
    });
    store.point('tiny', 'not a pointer');
    await expect(lifecycleOver(store).shadow('tiny', '2', 0.5)).rejects.toMatchObject({
      code: 'NO_LIVE_VERSION',
    });
  });

  it('starts a shadow of a version that does not load with --force, recording why', async () => {
    const store = setUp();
    const outcome = await lifecycleOver(store).shadow('tiny', 'broken', 1, { force: true });
    expect(outcome.entry.forced).toMatch(/does not load \(MODEL_CORRUPT\)/);
    expect(pointerOf(store)['shadow']).toEqual({ version: 'broken', sample: 1 });
  });

  it('is a conditional write: a pointer changed since it was read is not overwritten', async () => {
    const store = setUp();
    const racing = new MemoryStore();
    racing.versions = store.versions;
    // Reads the pointer, then another writer changes it before the write.
    racing.readPointer = async (name) => {
      const read = store.pointers.get(name);
      store.point('tiny', { version: '1', canary: { version: '2', percent: 5 } });
      return read;
    };
    racing.writePointer = (name, body, condition) => store.writePointer(name, body, condition);
    await expect(lifecycleOver(racing).shadow('tiny', '2', 0.5)).rejects.toBeInstanceOf(PointerConflictError);
    expect(pointerOf(store)['shadow']).toBeUndefined();
  });
});

describe('a promote of a version that has been a shadow', () => {
  const comparisons = (n: number, agreeing: number, live = '1', shadow = '2') =>
    Array.from({ length: n }, (_, i) => ({
      ...record(i, i < agreeing, 0.01),
      version: live,
      shadowVersion: shadow,
    }));

  const shadowed = async (captures: ShadowRecord[], promotion?: unknown) => {
    const store = new MemoryStore();
    store.versions = ['1', '2', '3'];
    store.point('tiny', { version: '1' });
    const ops = lifecycleOver(store, captures, promotion);
    await ops.shadow('tiny', '2', 1);
    return { store, ops };
  };

  it('is refused with SHADOW_GATE and the evidence when there are too few comparisons', async () => {
    const { store, ops } = await shadowed(comparisons(150, 150));
    const error = await ops.promote('tiny', '2').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowGateError);
    expect((error as ShadowGateError).decision).toMatchObject({
      passed: false,
      n: 150,
      agreement: 1,
      thresholds: { minShadowComparisons: 200, minShadowAgreement: 0.95 },
    });
    expect((error as Error).message).toMatch(/150 shadow comparison\(s\), fewer than the 200 required/);
    expect(pointerOf(store)['version']).toBe('1');
  });

  it('is refused when agreement is below the threshold, accepted at it (ending the shadow)', async () => {
    const low = await shadowed(comparisons(200, 180));
    await expect(low.ops.promote('tiny', '2')).rejects.toMatchObject({ code: 'SHADOW_GATE' });
    const ok = await shadowed(comparisons(200, 195));
    const outcome = await ok.ops.promote('tiny', '2');
    expect(outcome.entry.gate).toMatchObject({ passed: true, n: 200, agreement: 0.975 });
    expect(pointerOf(ok.store)).toMatchObject({ version: '2', previous: '1' });
    expect(pointerOf(ok.store)['shadow']).toBeUndefined();
  });

  it("uses the candidate manifest's thresholds", async () => {
    const { store, ops } = await shadowed(comparisons(20, 18), {
      minShadowComparisons: 20,
      minShadowAgreement: 0.9,
    });
    const outcome = await ops.promote('tiny', '2');
    expect(outcome.entry.gate).toMatchObject({
      passed: true,
      thresholds: { minShadowComparisons: 20, minShadowAgreement: 0.9 },
    });
    expect(pointerOf(store)['version']).toBe('2');
  });

  it('counts only comparisons against the live version', async () => {
    const { ops } = await shadowed([...comparisons(300, 300, '0.9'), ...comparisons(10, 10)]);
    await expect(ops.promote('tiny', '2')).rejects.toMatchObject({ decision: { n: 10 } });
  });

  it('is gated after the shadow ended (the history says it was one), and --force overrides, recorded', async () => {
    const { store, ops } = await shadowed([]);
    await ops.shadow('tiny', '2', 0);
    await expect(ops.promote('tiny', '2')).rejects.toMatchObject({ code: 'SHADOW_GATE', decision: { n: 0 } });
    const outcome = await ops.promote('tiny', '2', { force: true });
    expect(outcome.entry.forced).toMatch(/does not pass the agreement gate/);
    expect(pointerOf(store)['version']).toBe('2');
  });

  it('is gated when only captures say it was a shadow', async () => {
    const store = new MemoryStore();
    store.versions = ['1', '2'];
    store.point('tiny', { version: '1' });
    await expect(lifecycleOver(store, comparisons(5, 5)).promote('tiny', '2')).rejects.toMatchObject({
      code: 'SHADOW_GATE',
    });
  });

  it('does not gate a version never shadowed, nor a rollback', async () => {
    const { store, ops } = await shadowed([]);
    const outcome = await ops.promote('tiny', '3');
    expect(outcome.entry.gate).toBeUndefined();
    expect(pointerOf(store)['shadow']).toBeUndefined();
    await ops.rollback('tiny');
    expect(pointerOf(store)['version']).toBe('1');
  });
});

/** A model source in memory whose pointer the test sets; `broken` does not load. */
class PointerSource implements ModelSource {
  readonly description = 'memory';
  pointer: ServingPointer = { version: '1' };
  async currentVersion() {
    return this.pointer.version;
  }
  async currentPointer() {
    return this.pointer;
  }
  async read(_name: string, version: string, file: ModelFile): Promise<Uint8Array> {
    if (version === 'missing')
      throw new ModelLoadError('MODEL_FILE_MISSING', `${file} of tiny@${version} is missing`);
    if (file === 'manifest.json') return bytes(tinyManifest(version));
    return version === 'broken' ? utf8.encode('not onnx') : tinyModelBytes();
  }
  async list() {
    return ['tiny'];
  }
}

describe('the registry and a shadow', () => {
  let registry: ModelRegistry | undefined;
  afterEach(async () => {
    await registry?.close();
    registry = undefined;
  });

  it('loads the shadow next to the live version and says so in its status', async () => {
    const source = new PointerSource();
    source.pointer = { version: '1', shadow: { version: '2', sample: 0.3 } };
    registry = new ModelRegistry(source, { defaultModel: 'tiny', refreshSeconds: 0, retryFailedSeconds: 10 });
    expect((await registry.get('tiny')).version).toBe('1');
    expect(registry.shadow('tiny')).toMatchObject({ model: { version: '2' }, sample: 0.3 });
    expect(registry.status('tiny').shadow).toEqual({ version: '2', sample: 0.3, serving: true });
  });

  it('keeps serving the live version when the shadow does not load, saying why', async () => {
    const source = new PointerSource();
    source.pointer = { version: '1', shadow: { version: 'broken', sample: 1 } };
    registry = new ModelRegistry(source, { defaultModel: 'tiny', refreshSeconds: 0, retryFailedSeconds: 10 });
    expect((await registry.get('tiny')).version).toBe('1');
    expect(registry.shadow('tiny')).toBeUndefined();
    const status = registry.status('tiny');
    expect(status).toMatchObject({
      ready: true,
      version: '1',
      shadow: { version: 'broken', serving: false },
    });
    expect(status.error).toBeUndefined();
    expect(status.shadow?.error?.code).toBe('MODEL_CORRUPT');
  });

  it('serves the promoted shadow as live without loading it again, and drops an ended shadow', async () => {
    const source = new PointerSource();
    source.pointer = { version: '1', shadow: { version: '2', sample: 1 } };
    registry = new ModelRegistry(source, { defaultModel: 'tiny', refreshSeconds: 0, retryFailedSeconds: 10 });
    await registry.get('tiny');
    const shadowModel = registry.shadow('tiny')!.model;
    source.pointer = { version: '2' };
    expect(await registry.get('tiny')).toBe(shadowModel);
    expect(registry.shadow('tiny')).toBeUndefined();
    expect(registry.status('tiny').shadow).toBeUndefined();
  });
});

describe('shadow scoring after the response', () => {
  const service = new PredictionService(undefined, { cacheBudgetMs: 50, writeThrough: false });
  const models: ServedModel[] = [];
  afterEach(async () => {
    await Promise.all(models.splice(0).map((m) => m.close()));
  });
  const tiny = async (version: string, manifest: Record<string, unknown> = {}) => {
    const model = await loadModel({
      manifest: { ...tinyManifest(version), ...manifest },
      modelBytes: tinyModelBytes(),
    });
    models.push(model);
    return model;
  };

  interface Recorded {
    compared: ShadowComparison[];
    failed: number;
    timedOut: number;
  }
  const recorder = (): ShadowSink & { seen: Recorded } => {
    const seen: Recorded = { compared: [], failed: 0, timedOut: 0 };
    return {
      seen,
      compared: (c) => seen.compared.push(...c),
      failed: (_l, _s, n) => (seen.failed += n),
      timedOut: (_l, _s, n) => (seen.timedOut += n),
    };
  };

  it('compares each sampled instance with features, after start returns, leaving the response as it was', async () => {
    const live = await tiny('1');
    const shadow = await tiny('2');
    const featured = parsePredictRequest({
      instances: [{ id: 'a', features: { x1: 2, x2: 1 } }, { features: { x1: -3, x2: 0.5 } }],
    });
    const outcome = await service.predict(featured, live);
    const before = JSON.stringify(outcome);
    const sink = recorder();
    const runner = new ShadowRunner(sink, { budgetMs: 1000, freezesBetweenInvocations: false });
    runner.start(featured, outcome, live, { model: shadow, sample: 1 }, 'req-1', Date.UTC(2026, 11, 6));
    expect(sink.seen.compared).toEqual([]); // nothing is done before start returns
    await runner.settled();
    expect(JSON.stringify(outcome)).toBe(before);
    expect(sink.seen.compared).toHaveLength(2);
    expect(sink.seen.compared[0]).toMatchObject({
      model: 'tiny',
      liveVersion: '1',
      shadowVersion: '2',
      id: 'a',
      features: { x1: 2, x2: 1 },
      agreement: true,
      absDifference: 0,
      requestId: 'req-1',
      shadow: { label: tinyExpected(2, 1).label },
    });
    expect(sink.seen.compared[1]!.id).toBeNull();
  });

  it('skips instances without features, those another version answered, and those not sampled', async () => {
    const live = await tiny('1');
    const shadow = await tiny('2');
    const sink = recorder();
    const runner = new ShadowRunner(sink, {
      budgetMs: 1000,
      freezesBetweenInvocations: false,
      random: () => 0.9,
    });
    const featured = parsePredictRequest({ instances: [{ features: { x1: 1 } }] });
    const canaryOutcome = await service.predict(featured, await tiny('3'));
    runner.start(featured, canaryOutcome, live, { model: shadow, sample: 1 }, 'r', 0);
    const liveOutcome = await service.predict(featured, live);
    runner.start(featured, liveOutcome, live, { model: shadow, sample: 0.5 }, 'r', 0);
    // The same answer for an id-only instance (no features to score).
    runner.start(parsePredictRequest({ id: 'b' }), liveOutcome, live, { model: shadow, sample: 1 }, 'r', 0);
    await runner.settled();
    expect(runner.inFlight).toBe(0);
    expect(sink.seen).toEqual({ compared: [], failed: 0, timedOut: 0 });
  });

  it('counts a shadow that fails (here: a feature it requires is missing) as errors, never throwing', async () => {
    const live = await tiny('1');
    const strict = await tiny('2', {
      features: [
        { name: 'x1', type: 'number' },
        { name: 'x2', type: 'number' },
      ],
    });
    const featured = parsePredictRequest({ instances: [{ features: { x1: 1 } }, { features: { x1: 2 } }] });
    const outcome = await service.predict(featured, live);
    const sink = recorder();
    const runner = new ShadowRunner(sink, { budgetMs: 1000, freezesBetweenInvocations: false });
    runner.start(featured, outcome, live, { model: strict, sample: 1 }, 'r', 0);
    await runner.settled();
    expect(sink.seen).toEqual({ compared: [], failed: 2, timedOut: 0 });
  });

  it('abandons and counts a run past its budget; frozen time between invocations does not count on Lambda', async () => {
    const live = await tiny('1');
    const shadow = await tiny('2');
    const featured = parsePredictRequest({ instances: [{ features: { x1: 1 } }] });
    const outcome = await service.predict(featured, live);
    for (const freezes of [false, true]) {
      let now = 1_000;
      const sink = recorder();
      const runner = new ShadowRunner(sink, {
        budgetMs: 100,
        freezesBetweenInvocations: freezes,
        now: () => now,
      });
      runner.invocationStarted();
      runner.start(featured, outcome, live, { model: shadow, sample: 1 }, 'r', 0);
      runner.invocationEnded();
      now += 60_000; // the environment idles (on Lambda: is frozen) until the next invocation
      runner.invocationStarted();
      await runner.settled();
      runner.invocationEnded();
      expect(sink.seen.compared.length).toBe(freezes ? 1 : 0);
      expect(sink.seen.timedOut).toBe(freezes ? 0 : 1);
    }
  });

  it('abandons a run that takes longer than its budget while running, dropping its answers', async () => {
    const live = await tiny('1');
    const shadow = await tiny('2');
    const featured = parsePredictRequest({ instances: [{ features: { x1: 1 } }, { features: { x1: 2 } }] });
    const outcome = await service.predict(featured, live);
    let now = 0;
    const sink = recorder();
    const runner = new ShadowRunner(sink, { budgetMs: 100, freezesBetweenInvocations: true, now: () => now });
    runner.invocationStarted();
    runner.start(featured, outcome, live, { model: shadow, sample: 1 }, 'r', 0);
    now = 500; // still in the same invocation: running time
    await runner.settled();
    expect(sink.seen).toEqual({ compared: [], failed: 0, timedOut: 2 });
  });

  it('starts no run while maxInFlight runs are unfinished: those instances count as timeouts', async () => {
    const live = await tiny('1');
    const shadow = await tiny('2');
    const featured = parsePredictRequest({ instances: [{ features: { x1: 1 } }] });
    const outcome = await service.predict(featured, live);
    const sink = recorder();
    const runner = new ShadowRunner(sink, {
      budgetMs: 10_000,
      freezesBetweenInvocations: false,
      maxInFlight: 2,
    });
    for (let i = 0; i < 3; i++) runner.start(featured, outcome, live, { model: shadow, sample: 1 }, 'r', 0);
    expect(runner.inFlight).toBe(2);
    await runner.settled();
    expect(sink.seen.compared).toHaveLength(2);
    expect(sink.seen.timedOut).toBe(1);
  });

  it('keeps serving when the sink throws', async () => {
    const live = await tiny('1');
    const shadow = await tiny('2');
    const featured = parsePredictRequest({ instances: [{ features: { x1: 1 } }] });
    const outcome = await service.predict(featured, live);
    const runner = new ShadowRunner(
      {
        compared: () => {
          throw new ModelNotFoundError('MODEL_NOT_FOUND', 'sink failure');
        },
        failed: () => undefined,
        timedOut: () => undefined,
      },
      { budgetMs: 1000, freezesBetweenInvocations: false },
    );
    runner.start(featured, outcome, live, { model: shadow, sample: 1 }, 'r', 0);
    await expect(runner.settled()).resolves.toBeUndefined();
  });
});

describe('reading shadow captures', () => {
  const BUCKET = 'data';
  const line = (r: ShadowRecord) => JSON.stringify(r);
  const put = (objects: MemoryObjectStore, key: string, lines: string[]) =>
    objects.put(BUCKET, key, gzipSync(`${lines.join('\n')}\n`));

  it('reads every shadow record, of one version and since a time when asked', async () => {
    const objects = new MemoryObjectStore();
    const early = { ...record(1, true, 0.1), time: '2026-12-06T03:59:59.000Z' };
    const late = { ...record(2, false, 0.5), time: '2026-12-06T04:00:01.000Z' };
    const other = { ...record(3, true, 0), shadowVersion: '3', time: '2026-12-06T04:10:00.000Z' };
    put(objects, 'capture/m/shadow/dt=2026-12-06/hr=03/a-w-000000.jsonl.gz', [line(early)]);
    put(objects, 'capture/m/shadow/dt=2026-12-06/hr=04/b-w-000001.jsonl.gz', [line(late), line(other)]);
    expect((await readShadowCaptures(objects, BUCKET, 'm')).records.map((r) => r.id)).toEqual([
      'id-1',
      'id-2',
      'id-3',
    ]);
    const since = await readShadowCaptures(objects, BUCKET, 'm', {
      shadowVersion: '2',
      sinceMs: Date.parse('2026-12-06T04:00:00Z'),
    });
    expect(since).toEqual({ records: [late], unreadable: [] });
  });

  it('reports what it cannot read (not gzip, not JSON, not a shadow record) and reads the rest', async () => {
    const objects = new MemoryObjectStore();
    objects.put(BUCKET, 'capture/m/shadow/dt=2026-12-06/hr=04/a-w-000000.jsonl.gz', 'not gzip');
    put(objects, 'capture/m/shadow/dt=2026-12-06/hr=04/b-w-000001.jsonl.gz', [
      '{"truncated": ',
      JSON.stringify({ ...record(1, true, 0), source: 'realtime' }),
      line(record(2, true, 0)),
    ]);
    objects.put(BUCKET, 'capture/m/shadow/dt=2026-12-06/hr=04/notes.txt', 'ignored');
    const read = await readShadowCaptures(objects, BUCKET, 'm');
    expect(read.records.map((r) => r.id)).toEqual(['id-2']);
    expect(read.unreadable).toEqual([
      expect.stringMatching(/a-w-000000\.jsonl\.gz: .*header/),
      expect.stringMatching(/b-w-000001\.jsonl\.gz line 1: /),
      expect.stringMatching(/b-w-000001\.jsonl\.gz line 2: not a shadow comparison/),
    ]);
  });
});

describe('the shadow commands refuse bad options before acting', () => {
  const run = async (...argv: string[]) => {
    const err: string[] = [];
    const code = await runCli(argv, { out: () => undefined, err: (t) => err.push(t), cwd: tmpdir() });
    return { code, err: err.join('\n') };
  };

  it.each([
    [['models', 'shadow', 'm', '2'], /--sample is required \(0 ends the shadow\)/],
    [['models', 'shadow', 'm', '2', '--sample', '1.5'], /--sample must be a number from 0 to 1, not "1\.5"/],
    [['models', 'shadow', 'm', '2', '--sample', 'half'], /--sample must be a number from 0 to 1, not "half"/],
    [['models', 'shadow', 'm', '2', '--sample', ' '], /--sample must be a number from 0 to 1/],
    [['models', 'shadow', 'm', '../2', '--sample', '1'], /"\.\.\/2" is not a valid version/],
    [['models', 'shadow', 'm'], /missing the version/],
    [['models', 'shadow-report', 'm', '--since', 'yesterday'], /--since must be an ISO-8601 time/],
    [['models', 'shadow-report', 'm', '--version', 'a/b'], /"a\/b" is not a valid version/],
  ])('%j', async (argv, message) => {
    const result = await run(...argv);
    expect(result.code).toBe(2);
    expect(result.err).toMatch(message);
  });
});
