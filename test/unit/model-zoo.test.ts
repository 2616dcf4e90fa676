/**
 * Sanity tests of the model zoo itself: each model runs DIRECTLY on onnxruntime (no serving code), and its
 * hand-written reference must agree with what onnxruntime computes. This is what makes the references
 * trustworthy oracles for the serving tests (test/unit/model-support.test.ts).
 */
import onnxProto from 'onnx-proto';
import ort from 'onnxruntime-node';
import { describe, expect, it } from '@jest/globals';
import { parseManifest, type Manifest } from '../../lambdas/core/manifest.ts';
import {
  allZooModels,
  fixedBatchOne,
  linearZipMapStrings,
  pipelineStringInputs,
  treeClassifierBinaryXgboostStyle,
  treeClassifierMulticlass,
  treeRegressor,
  zooOperators,
  type ExpectedPrediction,
  type TreeNode,
  type ZooFeatures,
  type ZooModel,
} from '../support/model-zoo.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const TOLERANCE = 1e-5;

function close(actual: number, expected: number): boolean {
  return Math.abs(actual - expected) <= TOLERANCE * Math.max(1, Math.abs(expected));
}

// ---------------------------------------------------------------------------------------------------------------
// A small, test-only encoder from feature objects to onnxruntime tensors, following the manifest.

function featureValue(
  manifest: Manifest,
  name: string,
  row: ZooFeatures,
  tensorType: string,
): number | string {
  const spec = manifest.features.find((f) => f.name === name);
  if (!spec) throw new Error(`no feature ${name}`);
  const raw = Object.hasOwn(row, name) ? row[name] : spec.default;
  if (tensorType === 'string') return raw === undefined ? '' : String(raw);
  if (raw === undefined) return NaN;
  if (typeof raw === 'boolean') return raw ? 1 : 0;
  if (typeof raw === 'string') {
    const index = spec.type === 'category' || spec.type === 'string' ? (spec.values?.indexOf(raw) ?? -1) : -1;
    if (index < 0) throw new Error(`${name}: ${raw} has no index`);
    return index;
  }
  return raw;
}

function encodeFeeds(manifest: Manifest, inputNames: readonly string[], rows: readonly ZooFeatures[]) {
  const inputs = manifest.inputs ?? [
    { name: inputNames[0]!, type: 'float32' as const, features: manifest.features.map((f) => f.name) },
  ];
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of inputs) {
    const values = rows.flatMap((row) =>
      input.features.map((name) => featureValue(manifest, name, row, input.type)),
    );
    const dims = [rows.length, input.features.length];
    switch (input.type) {
      case 'string':
        feeds[input.name] = new ort.Tensor('string', values as string[], dims);
        break;
      case 'int64':
        feeds[input.name] = new ort.Tensor(
          'int64',
          BigInt64Array.from(values as number[], (v) => BigInt(v)),
          dims,
        );
        break;
      case 'float32':
        feeds[input.name] = new ort.Tensor('float32', Float32Array.from(values as number[]), dims);
        break;
      default:
        throw new Error(`encodeFeeds: ${input.type} not needed by the zoo`);
    }
  }
  return feeds;
}

interface DirectResult {
  label?: string | number;
  probabilities?: number[];
  value?: number;
  /** dims of each fetched output, from the run. */
  dims: Record<string, readonly number[]>;
}

function at(tensor: ort.Tensor, i: number): number | string {
  const v = (tensor.data as ArrayLike<number | bigint | string>)[i]!;
  return typeof v === 'bigint' ? Number(v) : v;
}

/**
 * Runs the model on onnxruntime directly, fetching only tensor outputs (onnxruntime-node cannot return
 * ZipMap's seq(map)), one row per run when the input's batch dimension is fixed at 1.
 */
async function runDirect(
  model: ZooModel,
  rows: readonly ZooFeatures[] = model.sampleRows,
): Promise<DirectResult[]> {
  const manifest = parseManifest(model.manifest);
  const session = await ort.InferenceSession.create(model.modelBytes);
  try {
    const fixedBatchOne = session.inputMetadata.some((m) => m.isTensor && m.shape[0] === 1);
    const tensorOutputs = session.outputMetadata.filter((m) => m.isTensor).map((m) => m.name);
    const batches = fixedBatchOne ? rows.map((r) => [r]) : [rows];
    const results: DirectResult[] = [];
    for (const batch of batches) {
      const out = await session.run(encodeFeeds(manifest, session.inputNames, batch), tensorOutputs);
      const dims = Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.dims]));
      const { label, probabilities, value } = manifest.outputs;
      for (let i = 0; i < batch.length; i++) {
        const r: DirectResult = { dims };
        if (label && out[label]) r.label = at(out[label], i);
        if (probabilities && out[probabilities]) {
          const t = out[probabilities];
          const columns = t.dims[1]!;
          r.probabilities = Array.from({ length: columns }, (_, c) => at(t, i * columns + c) as number);
        }
        if (value && out[value]) r.value = at(out[value], i) as number;
        results.push(r);
      }
    }
    return results;
  } finally {
    await session.release();
  }
}

function expectMatchesReference(
  model: ZooModel,
  direct: DirectResult,
  expected: ExpectedPrediction,
  row: number,
) {
  const where = `${model.name} row ${row} ${JSON.stringify(model.sampleRows[row])}`;
  if ('value' in expected) {
    expectWithMessage(direct.value, where).toBeDefined();
    expectWithMessage(
      close(direct.value!, expected.value),
      `${where}: ${direct.value} vs ${expected.value}`,
    ).toBe(true);
    return;
  }
  if (direct.label !== undefined) expectWithMessage(direct.label, where).toBe(expected.label);
  if (direct.probabilities) {
    const classes = model.classes!;
    expectWithMessage(direct.probabilities, where).toHaveLength(classes.length);
    expectWithMessage(Object.keys(expected.probabilities).sort(), where).toEqual(classes.map(String).sort());
    classes.forEach((c, k) => {
      const e = expected.probabilities[String(c)]!;
      expectWithMessage(
        Math.abs(direct.probabilities![k]! - e),
        `${where} P(${c}): ${direct.probabilities![k]} vs ${e}`,
      ).toBeLessThanOrEqual(TOLERANCE);
    });
  }
}

function nodesOf(bytes: Uint8Array) {
  return onnxProto.onnx.ModelProto.decode(bytes).graph?.node ?? [];
}

function hasZipMap(model: ZooModel): boolean {
  return nodesOf(model.modelBytes).some((n) => n.opType === 'ZipMap');
}

// ---------------------------------------------------------------------------------------------------------------

/** Every model variant whose outputs are all tensors: onnxruntime can return everything. */
const tensorOnlyVariants: (() => ZooModel)[] = [
  () => linearZipMapStrings({ zipMap: false }),
  () => treeClassifierMulticlass(),
  () => treeClassifierMulticlass({ declareClasses: true }),
  () => treeClassifierBinaryXgboostStyle({ zipMap: false }),
  () => treeRegressor(),
  () => pipelineStringInputs({ zipMap: false }),
  () => fixedBatchOne(),
];

const zipMapVariants: (() => ZooModel)[] = [
  () => linearZipMapStrings(),
  () => treeClassifierBinaryXgboostStyle(),
  () => pipelineStringInputs(),
];

describe('model zoo: manifests and coverage', () => {
  const models = [
    ...allZooModels(),
    ...tensorOnlyVariants.map((f) => f()),
    treeClassifierBinaryXgboostStyle({ allPositiveLeaves: true }),
  ];

  it.each(models.map((m) => [m.name, m] as const))(
    '%s: the manifest passes parseManifest',
    (_name, model) => {
      const manifest = parseManifest(model.manifest);
      expect(manifest.name).toBe(model.name);
      expect(manifest.idField).toBe('id');
      expect(model.sampleRows.length).toBeGreaterThanOrEqual(8);
      expect(model.sampleRows.length).toBeLessThanOrEqual(20);
    },
  );

  it('has six models with distinct names', () => {
    const names = allZooModels().map((m) => m.name);
    expect(new Set(names).size).toBe(6);
  });

  it('uses every operator the serving code must handle', () => {
    const ops = new Set(models.flatMap((m) => nodesOf(m.modelBytes).map((n) => n.opType)));
    for (const op of zooOperators) expectWithMessage(ops, op).toContain(op);
    // Tree splits of both kinds.
    const modes = new Set(
      models.flatMap((m) =>
        nodesOf(m.modelBytes).flatMap((n) =>
          (n.attribute ?? [])
            .filter((a) => a.name === 'nodes_modes')
            .flatMap((a) => (a.strings ?? []).map((s) => new TextDecoder().decode(s))),
        ),
      ),
    );
    expect([...modes].sort()).toEqual(['BRANCH_LEQ', 'BRANCH_LT', 'LEAF']);
  });

  it('declares outputs.classes in one model and leaves it to the classifier node in another', () => {
    expect(linearZipMapStrings().manifest.outputs.classes).toEqual(['setosa', 'versicolor', 'virginica']);
    expect(treeClassifierMulticlass().manifest.outputs.classes).toBeUndefined();
    expect(treeClassifierMulticlass({ declareClasses: true }).manifest.outputs.classes).toEqual([0, 1, 2]);
  });

  it.each(models.filter((m) => m.classes).map((m) => [m.name, m] as const))(
    '%s: the sample rows cover every class',
    (_name, model) => {
      const labels = new Set(
        model.sampleRows.map((r) => (model.reference(r) as { label: string | number }).label),
      );
      expect([...labels].sort()).toEqual([...model.classes!].sort());
    },
  );

  it.each(models.filter((m) => m.trees).map((m) => [m.name, m] as const))(
    '%s: the sample rows reach every leaf, and some sit exactly on a threshold',
    (_name, model) => {
      const manifest = parseManifest(model.manifest);
      const columns = manifest.inputs?.[0]?.features ?? manifest.features.map((f) => f.name);
      const reached = new Set<TreeNode>();
      const onThreshold = new Set<string>();
      for (const row of model.sampleRows) {
        const x = columns.map((name) => Math.fround(featureValue(manifest, name, row, 'float32') as number));
        for (const tree of model.trees!) {
          let node = tree;
          while (!('leaf' in node)) {
            const v = x[node.feature]!;
            if (v === Math.fround(node.threshold)) onThreshold.add(node.mode);
            node = (node.mode === 'BRANCH_LEQ' ? v <= node.threshold : v < node.threshold)
              ? node.ifTrue
              : node.ifFalse;
          }
          reached.add(node);
        }
      }
      const leaves: TreeNode[] = [];
      const collect = (n: TreeNode): void => {
        if ('leaf' in n) leaves.push(n);
        else {
          collect(n.ifTrue);
          collect(n.ifFalse);
        }
      };
      model.trees!.forEach(collect);
      expect(leaves.filter((l) => !reached.has(l)).map((l) => JSON.stringify(l))).toEqual([]);
      expect(onThreshold.size).toBeGreaterThan(0);
    },
  );
});

describe('model zoo: references agree with onnxruntime', () => {
  it.each(tensorOnlyVariants.map((f) => [f().name, f] as const))(
    '%s (tensor outputs): labels, probabilities and values',
    async (_name, factory) => {
      const model = factory();
      const direct = await runDirect(model);
      expect(direct).toHaveLength(model.sampleRows.length);
      model.sampleRows.forEach((row, i) =>
        expectMatchesReference(model, direct[i]!, model.reference(row), i),
      );
    },
  );

  it.each(zipMapVariants.map((f) => [f().name, f] as const))(
    '%s (ZipMap): loads in onnxruntime, and its label output matches the reference',
    async (_name, factory) => {
      const model = factory();
      expect(hasZipMap(model)).toBe(true);
      const session = await ort.InferenceSession.create(model.modelBytes);
      try {
        const probabilities = session.outputMetadata.find(
          (m) => m.name === model.manifest.outputs.probabilities,
        );
        expect(probabilities?.isTensor).toBe(false);
      } finally {
        await session.release();
      }
      const direct = await runDirect(model);
      model.sampleRows.forEach((row, i) => {
        expect(direct[i]!.probabilities).toBeUndefined();
        expectWithMessage(direct[i]!.label, JSON.stringify(row)).toBe(
          (model.reference(row) as { label: unknown }).label,
        );
      });
    },
  );

  it('the ZipMap and tensor variants of a model compute the same graph', () => {
    for (const [zipped, plain] of [
      [linearZipMapStrings(), linearZipMapStrings({ zipMap: false })],
      [pipelineStringInputs(), pipelineStringInputs({ zipMap: false })],
      [treeClassifierBinaryXgboostStyle(), treeClassifierBinaryXgboostStyle({ zipMap: false })],
    ] as const) {
      const ops = (m: ZooModel) =>
        nodesOf(m.modelBytes)
          .map((n) => n.opType)
          .filter((op) => op !== 'ZipMap');
      expect(ops(zipped)).toEqual(ops(plain));
      expect(zipped.sampleRows).toEqual(plain.sampleRows);
    }
  });
});

describe('onnxruntime conventions the zoo (and the serving code) rely on', () => {
  it('a fixed [1, 3] input rejects a batch of 2', async () => {
    const model = fixedBatchOne();
    const session = await ort.InferenceSession.create(model.modelBytes);
    try {
      expect(session.inputMetadata[0]).toMatchObject({ name: 'dense_input', shape: [1, 3] });
      const rows = model.sampleRows.slice(0, 2);
      await expect(
        session.run(encodeFeeds(parseManifest(model.manifest), session.inputNames, rows)),
      ).rejects.toThrow(/invalid dimensions/i);
    } finally {
      await session.release();
    }
  });

  it('output shapes: regressor [N, 1], binary classifiers [N, 2], labels [N]', async () => {
    const regression = await runDirect(treeRegressor());
    expect(regression[0]!.dims['variable']).toEqual([treeRegressor().sampleRows.length, 1]);
    const pipeline = pipelineStringInputs({ zipMap: false });
    const binary = await runDirect(pipeline);
    // One coefficient row in, two probability columns out: [1 - p, p].
    expect(binary[0]!.dims['output_probability']).toEqual([pipeline.sampleRows.length, 2]);
    expect(binary[0]!.dims['output_label']).toEqual([pipeline.sampleRows.length]);
    const xgb = treeClassifierBinaryXgboostStyle({ zipMap: false });
    const trees = await runDirect(xgb);
    // class_ids all 0 (one margin) in, two probability columns out: [1 - sigmoid(m), sigmoid(m)].
    expect(trees[0]!.dims['probabilities']).toEqual([xgb.sampleRows.length, 2]);
  });

  it('binary trees with all-positive leaf weights: probabilities are right but the label output is not', async () => {
    // onnxruntime labels such a model by margin > 0.5 (not > 0): for margins in (0, 0.5] its label is 0
    // although its own P(1) = sigmoid(margin) > 0.5. The reference keeps the math.
    const model = treeClassifierBinaryXgboostStyle({ allPositiveLeaves: true, zipMap: false });
    const direct = await runDirect(model);
    const expected = model.sampleRows.map(
      (r) => model.reference(r) as { label: number; probabilities: Record<string, number> },
    );
    model.sampleRows.forEach((_row, i) => {
      expect(Math.abs(direct[i]!.probabilities![1]! - expected[i]!.probabilities['1']!)).toBeLessThanOrEqual(
        TOLERANCE,
      );
    });
    expect(expected.map((e) => e.label)).toEqual([0, 0, 1, 1, 1, 0, 1, 1]);
    expect(direct.map((d) => d.label)).toEqual([0, 0, 1, 0, 0, 0, 0, 0]);
  });
});
