/**
 * The serving core against the model zoo: every zoo model is loaded through `loadModel` and its predictions
 * are compared with the zoo's hand-written references (the math), never with onnxruntime's own output.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { ManifestError, ModelLoadError, ValidationError } from '../../lambdas/core/errors.ts';
import { loadModel } from '../../lambdas/core/model-loader.ts';
import {
  allZooModels,
  fixedBatchOne,
  linearZipMapStrings,
  pipelineStringInputs,
  treeClassifierBinaryXgboostStyle,
  treeClassifierMulticlass,
  treeRegressor,
  type ExpectedPrediction,
  type ZooFeatures,
  type ZooModel,
} from '../support/model-zoo.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const RELATIVE = 1e-5;

type Served = Awaited<ReturnType<typeof loadModel>>;
const loaded: Served[] = [];

afterAll(async () => {
  await Promise.all(loaded.map((m) => m.close()));
}, 60_000);

async function load(model: ZooModel, manifest: unknown = model.manifest): Promise<Served> {
  const served = await loadModel({ manifest, modelBytes: model.modelBytes });
  loaded.push(served);
  return served;
}

function expectClose(actual: unknown, expected: number, where: string): void {
  expectWithMessage(typeof actual, where).toBe('number');
  const tolerance = RELATIVE * Math.max(1, Math.abs(expected));
  expectWithMessage(
    Math.abs((actual as number) - expected),
    `${where}: got ${String(actual)}, expected ${expected}`,
  ).toBeLessThanOrEqual(tolerance);
}

function expectPrediction(actual: unknown, expected: ExpectedPrediction, where: string): void {
  expectWithMessage(typeof actual, where).toBe('object');
  const got = actual as Record<string, unknown>;
  if ('value' in expected) {
    expectClose(got['value'], expected.value, `${where} value`);
    return;
  }
  expectWithMessage(got['label'], `${where} label`).toBe(expected.label);
  const probabilities = got['probabilities'] as Record<string, unknown> | undefined;
  expectWithMessage(probabilities, `${where} probabilities`).toBeDefined();
  expectWithMessage(Object.keys(probabilities!).sort(), `${where} probability keys`).toEqual(
    Object.keys(expected.probabilities).sort(),
  );
  for (const [key, p] of Object.entries(expected.probabilities)) {
    expectClose(probabilities![key], p, `${where} P(${key})`);
  }
}

function expectPredictions(
  model: ZooModel,
  rows: readonly ZooFeatures[],
  predictions: readonly unknown[],
): void {
  expect(predictions).toHaveLength(rows.length);
  rows.forEach((row, i) =>
    expectPrediction(predictions[i], model.reference(row), `${model.name}[${i}] ${JSON.stringify(row)}`),
  );
}

/** A deep copy of a zoo manifest to break on purpose. */
function manifestCopy(
  model: ZooModel,
): Record<string, unknown> & { inputs?: { name: string; features: string[] }[] } {
  return structuredClone(model.manifest) as Record<string, unknown> & {
    inputs?: { name: string; features: string[] }[];
  };
}

const variants: (() => ZooModel)[] = [
  ...Object.values({
    linearZipMapStrings,
    treeClassifierMulticlass,
    treeClassifierBinaryXgboostStyle,
    treeRegressor,
    pipelineStringInputs,
    fixedBatchOne,
  }).map((factory) => () => factory()),
  () => linearZipMapStrings({ zipMap: false }),
  () => treeClassifierMulticlass({ declareClasses: true }),
  () => treeClassifierBinaryXgboostStyle({ zipMap: false }),
  () => pipelineStringInputs({ zipMap: false }),
];

function label(factory: () => ZooModel): string {
  const model = factory();
  const extras = [
    model.manifest.outputs.classes ? 'declared classes' : undefined,
    'classes' in model && model.classes && !model.manifest.outputs.classes
      ? 'classes from the graph'
      : undefined,
  ].filter(Boolean);
  return `${model.name}${extras.length ? ` (${extras.join(', ')})` : ''}`;
}

describe('serving the model zoo', () => {
  it('the zoo has the six models', () => {
    expect(allZooModels().map((m) => m.name)).toEqual([
      'linearZipMapStrings',
      'treeClassifierMulticlass',
      'treeClassifierBinaryXgboostStyle',
      'treeRegressor',
      'pipelineStringInputs',
      'fixedBatchOne',
    ]);
  });

  it.each(variants.map((f, i) => [`${label(f)} #${i}`, f] as const))(
    '%s: predicts every sample row in one call as the reference does',
    async (_name, factory) => {
      const model = factory();
      const served = await load(model);
      expect(served.manifest.name).toBe(model.name);
      if (model.manifest.task === 'regression') expect(served.classes).toBeUndefined();
      else expect(served.classes ? [...served.classes] : undefined).toEqual(model.classes);
      expectPredictions(model, model.sampleRows, await served.predict(model.sampleRows));
    },
  );

  it('reads the class labels from the classifier node when the manifest does not state them', async () => {
    const model = treeClassifierMulticlass();
    expect(model.manifest.outputs.classes).toBeUndefined();
    const served = await load(model);
    expect(served.classes ? [...served.classes] : undefined).toEqual([0, 1, 2]);
  });

  it('reads the class labels from ZipMap', async () => {
    const model = treeClassifierBinaryXgboostStyle();
    expect(model.manifest.outputs.classes).toBeUndefined();
    const served = await load(model);
    expect(served.classes ? [...served.classes] : undefined).toEqual([0, 1]);
  });

  it('answers a 5-instance request on a model whose batch dimension is fixed at 1', async () => {
    const model = fixedBatchOne();
    const served = await load(model);
    const rows = model.sampleRows.slice(0, 5);
    const predictions = await served.predict(rows);
    expectPredictions(model, rows, predictions);
    expect(new Set(predictions.map((p) => JSON.stringify(p))).size).toBe(5);
  });

  it('serves a ZipMap model: probabilities keyed by the string class labels', async () => {
    const model = linearZipMapStrings();
    const served = await load(model);
    const predictions = await served.predict(model.sampleRows);
    expectPredictions(model, model.sampleRows, predictions);
    for (const p of predictions) {
      expect(Object.keys((p as { probabilities: object }).probabilities).sort()).toEqual([
        'setosa',
        'versicolor',
        'virginica',
      ]);
    }
  });

  it('serves a ZipMap model with int64 keys: probabilities keyed "0" and "1", numeric labels', async () => {
    const model = treeClassifierBinaryXgboostStyle();
    const served = await load(model);
    const predictions = await served.predict(model.sampleRows);
    expectPredictions(model, model.sampleRows, predictions);
    expect(predictions.map((p) => typeof (p as { label: unknown }).label)).toEqual(
      model.sampleRows.map(() => 'number'),
    );
  });

  it('returns the results in input order', async () => {
    for (const model of [
      pipelineStringInputs(),
      treeClassifierMulticlass(),
      treeRegressor(),
      fixedBatchOne(),
    ]) {
      const served = await load(model);
      const rows = model.sampleRows;
      // A fixed permutation: reversed, then every other row moved to the front.
      const order = [...rows.keys()].reverse();
      const permuted = [...order.filter((_, i) => i % 2 === 0), ...order.filter((_, i) => i % 2 === 1)].map(
        (i) => rows[i]!,
      );
      expectPredictions(model, permuted, await served.predict(permuted));
    }
  });

  it('answers single-instance requests too', async () => {
    for (const model of allZooModels()) {
      const served = await load(model);
      for (const row of model.sampleRows.slice(0, 3)) {
        const [prediction, ...rest] = await served.predict([row]);
        expect(rest).toEqual([]);
        expectPrediction(prediction, model.reference(row), `${model.name} ${JSON.stringify(row)}`);
      }
    }
  });

  it('feeds defaults, NaN for a missing optional feature (Imputer), and unknown categories passed through', async () => {
    const model = pipelineStringInputs();
    const served = await load(model);
    const rows: ZooFeatures[] = [
      { age: 33, color: 'green', size: 2 }, // income defaults to 50000
      { income: 120000, color: 'red', size: 5 }, // age: optional, no default -> NaN -> imputed
      { age: 70, income: 20000, color: 'purple', size: 4 }, // unknown: 'pass' -> one-hot all zeros
    ];
    expectPredictions(model, rows, await served.predict(rows));
  });

  it('labels binary trees with all-positive leaf weights by their probabilities (onnxruntime labels them by margin > 0.5)', async () => {
    const model = treeClassifierBinaryXgboostStyle({ allPositiveLeaves: true });
    const served = await load(model);
    expectPredictions(model, model.sampleRows, await served.predict(model.sampleRows));
  });

  it('rejects bad features with ValidationError INVALID_FEATURES naming the instance and field', async () => {
    const model = pipelineStringInputs();
    const served = await load(model);
    const error = await served
      .predict([
        model.sampleRows[0]!,
        { age: 30, income: 1000, color: 'red' },
        { ...model.sampleRows[1]!, size: 'big' },
      ])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(ValidationError);
    const validation = error as ValidationError;
    expect(validation.code).toBe('INVALID_FEATURES');
    const details = validation.details ?? [];
    expect(details.some((d) => d.instance === 1 && d.field?.includes('size'))).toBe(true);
    expect(details.some((d) => d.instance === 2 && d.field?.includes('size'))).toBe(true);
    expect(details.some((d) => d.instance === 0)).toBe(false);
  });
});

describe('load-time failures', () => {
  it('rejects a manifest whose inputs[0].name is not an input of the model', async () => {
    const model = pipelineStringInputs();
    const manifest = manifestCopy(model);
    manifest.inputs![0]!.name = 'no_such_input';
    await expect(loadModel({ manifest, modelBytes: model.modelBytes })).rejects.toThrow(
      /inputs\.0\.name|no_such_input/,
    );
  });

  it("rejects a manifest whose feature count does not match the input's fixed width, naming the input", async () => {
    const model = treeClassifierMulticlass();
    const manifest = manifestCopy(model);
    manifest['features'] = (manifest['features'] as { name: string }[]).filter((f) => f.name !== 'visits');
    manifest.inputs![0]!.features = manifest.inputs![0]!.features.filter((f) => f !== 'visits');
    await expect(loadModel({ manifest, modelBytes: model.modelBytes })).rejects.toThrow(/float_input/);
  });

  it('rejects a manifest with more features than the fixed-batch model takes', async () => {
    const model = fixedBatchOne();
    const manifest = manifestCopy(model);
    (manifest['features'] as unknown[]).push({ name: 'x4', type: 'number' });
    await expect(loadModel({ manifest, modelBytes: model.modelBytes })).rejects.toThrow(/dense_input/);
  });

  it('rejects an invalid manifest with ManifestError naming the field', async () => {
    const model = treeRegressor();
    const manifest = { ...manifestCopy(model), task: 'clustering' };
    const error = await loadModel({ manifest, modelBytes: model.modelBytes }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as Error).message).toMatch(/task/);
  });

  it('rejects a manifest naming an output the model does not have', async () => {
    const model = treeRegressor();
    const manifest = { ...manifestCopy(model), outputs: { value: 'prediction' } };
    await expect(loadModel({ manifest, modelBytes: model.modelBytes })).rejects.toThrow(
      /outputs\.value|prediction/,
    );
  });

  it.each([
    ['text', new TextEncoder().encode('this is not an ONNX model at all')],
    ['truncated', pipelineStringInputs().modelBytes.slice(0, 200)],
    ['empty', new Uint8Array()],
  ] as const)('rejects corrupt model bytes (%s) with ModelLoadError', async (_name, modelBytes) => {
    const error = await loadModel({ manifest: pipelineStringInputs().manifest, modelBytes }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ModelLoadError);
  });
});
