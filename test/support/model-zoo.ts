/**
 * The test suite's zoo of ONNX models, each built with the ONNX graph builder the way skl2onnx / onnxmltools /
 * older exporters write them, and each with an INDEPENDENT reference implementation: plain TypeScript that
 * computes the expected prediction by hand (linear algebra, softmax / sigmoid, walking the trees), so that the
 * serving code is checked against the math, never against onnxruntime's or the server's own output.
 *
 * Every factory returns a fresh model: `{ name, manifest, modelBytes, reference, sampleRows }`.
 * `test/unit/model-zoo.test.ts` proves each reference equals onnxruntime run directly on the model.
 *
 * Conventions the references follow (they are the ONNX semantics, checked against onnxruntime 1.30):
 * - Feature values enter the graph as float32 tensors: references round inputs, thresholds and weights with
 *   `Math.fround` where the graph compares or multiplies them, and compute the rest in float64.
 * - A boolean feature in a numeric tensor is 1 / 0; a category feature in a numeric tensor is its index in `values`.
 * - A missing optional feature without a default enters a numeric tensor as NaN (what the Imputer replaces).
 * - Tree splits: BRANCH_LEQ goes to the true branch when x <= threshold, BRANCH_LT when x < threshold; NaN
 *   follows `nodes_missing_value_tracks_true`.
 * - Classifier labels are the class with the highest probability (never equal: sample rows avoid ties).
 */
import type { z } from 'zod';
import type { manifestSchema } from '../../lambdas/core/manifest.ts';
import { buildModel, type ModelSpec, type NodeSpec, type ValueSpec } from '../../tools/onnx-builder.ts';

/** A manifest as written in manifest.json (defaults not applied yet). */
export type ZooManifest = z.input<typeof manifestSchema>;
export type ZooFeatureValue = number | string | boolean;
export type ZooFeatures = Record<string, ZooFeatureValue>;
export type ExpectedClassification = { label: string | number; probabilities: Record<string, number> };
export type ExpectedRegression = { value: number };
export type ExpectedPrediction = ExpectedClassification | ExpectedRegression;

export interface ZooModel {
  /** The factory's name; also the manifest name. */
  readonly name: string;
  readonly manifest: ZooManifest;
  readonly modelBytes: Uint8Array;
  /** The expected prediction for one instance's features, computed by hand. */
  reference(features: ZooFeatures): ExpectedPrediction;
  /** Feature objects (no id field) covering every branch / class, including values exactly on thresholds. */
  readonly sampleRows: ZooFeatures[];
  /** Class labels in the order of the probability tensor's columns (classifiers). */
  readonly classes?: readonly (string | number)[];
  /** The trees (tree models), over the columns of the model's only input: for branch-coverage checks. */
  readonly trees?: readonly TreeNode[];
}

// ---------------------------------------------------------------------------------------------------------------
// Hand math

const f32 = Math.fround;

function dot(w: readonly number[], x: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += f32(w[i]!) * x[i]!;
  return s;
}

function sigmoid(s: number): number {
  return 1 / (1 + Math.exp(-s));
}

function softmax(scores: readonly number[]): number[] {
  const max = Math.max(...scores);
  const exps = scores.map((s) => Math.exp(s - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

function classification(
  classes: readonly (string | number)[],
  probabilities: readonly number[],
): ExpectedClassification {
  const byClass: Record<string, number> = {};
  classes.forEach((c, i) => (byClass[String(c)] = probabilities[i]!));
  return { label: classes[argmax(probabilities)]!, probabilities: byClass };
}

/** A feature as a float32 tensor element: numbers (NaN when absent), booleans 1/0, categories by index. */
function numericValue(
  features: ZooFeatures,
  name: string,
  opts: { values?: readonly string[]; default?: number } = {},
) {
  const raw = Object.hasOwn(features, name) ? features[name] : opts.default;
  if (raw === undefined) return NaN;
  if (typeof raw === 'boolean') return raw ? 1 : 0;
  if (typeof raw === 'string') {
    const index = opts.values?.indexOf(raw) ?? -1;
    if (index < 0) throw new Error(`reference: ${name}=${raw} is not one of ${opts.values?.join(', ')}`);
    return index;
  }
  return f32(raw);
}

// ---------------------------------------------------------------------------------------------------------------
// Trees: written as nested objects; flattened into ai.onnx.ml attributes for the graph, walked for the reference.

export type TreeNode =
  | {
      readonly feature: number;
      readonly mode: 'BRANCH_LEQ' | 'BRANCH_LT';
      readonly threshold: number;
      readonly ifTrue: TreeNode;
      readonly ifFalse: TreeNode;
      /** Where NaN goes (XGBoost: the "missing" child is the true child). */
      readonly missingTrue?: boolean;
    }
  | {
      /** Leaf weights by class / target id; zero weights are not written to the graph. */
      readonly leaf: readonly number[];
    };

function split(
  feature: number,
  mode: 'BRANCH_LEQ' | 'BRANCH_LT',
  threshold: number,
  ifTrue: TreeNode,
  ifFalse: TreeNode,
  missingTrue = false,
): TreeNode {
  return { feature, mode, threshold, ifTrue, ifFalse, missingTrue };
}

function leaf(...weights: number[]): TreeNode {
  return { leaf: weights };
}

/** Walks one tree: the leaf weights this instance lands on. */
function walk(tree: TreeNode, x: readonly number[]): readonly number[] {
  let node = tree;
  while (!('leaf' in node)) {
    const v = x[node.feature]!;
    const t = f32(node.threshold);
    const goTrue = Number.isNaN(v) ? node.missingTrue === true : node.mode === 'BRANCH_LEQ' ? v <= t : v < t;
    node = goTrue ? node.ifTrue : node.ifFalse;
  }
  return node.leaf;
}

/** base + the sum over trees of the leaf weights, per class / target. */
function treeScores(trees: readonly TreeNode[], base: readonly number[], x: readonly number[]): number[] {
  const scores = base.map((b) => f32(b));
  for (const tree of trees) {
    walk(tree, x).forEach((w, k) => (scores[k] = (scores[k] ?? 0) + f32(w)));
  }
  return scores;
}

interface FlatTrees {
  readonly nodes: Record<string, { ints: number[] } | { floats: number[] } | string[]>;
  readonly leaves: { treeId: number; nodeId: number; id: number; weight: number }[];
}

/** The nodes_* attributes (depth-first node ids per tree) and the leaf weights, as skl2onnx writes them. */
function flattenTrees(trees: readonly TreeNode[]): FlatTrees {
  const treeIds: number[] = [];
  const nodeIds: number[] = [];
  const featureIds: number[] = [];
  const modes: string[] = [];
  const values: number[] = [];
  const trueIds: number[] = [];
  const falseIds: number[] = [];
  const missingTrue: number[] = [];
  const hitrates: number[] = [];
  const leaves: FlatTrees['leaves'] = [];
  trees.forEach((tree, treeId) => {
    let next = 0;
    const visit = (node: TreeNode): number => {
      const id = next++;
      const at = treeIds.length;
      treeIds.push(treeId);
      nodeIds.push(id);
      hitrates.push(1);
      if ('leaf' in node) {
        featureIds.push(0);
        modes.push('LEAF');
        values.push(0);
        trueIds.push(0);
        falseIds.push(0);
        missingTrue.push(0);
        node.leaf.forEach((weight, k) => {
          if (weight !== 0) leaves.push({ treeId, nodeId: id, id: k, weight });
        });
        return id;
      }
      featureIds.push(node.feature);
      modes.push(node.mode);
      values.push(node.threshold);
      trueIds.push(-1);
      falseIds.push(-1);
      missingTrue.push(node.missingTrue ? 1 : 0);
      trueIds[at] = visit(node.ifTrue);
      falseIds[at] = visit(node.ifFalse);
      return id;
    };
    visit(tree);
  });
  return {
    nodes: {
      nodes_treeids: { ints: treeIds },
      nodes_nodeids: { ints: nodeIds },
      nodes_featureids: { ints: featureIds },
      nodes_modes: modes,
      nodes_values: { floats: values },
      nodes_truenodeids: { ints: trueIds },
      nodes_falsenodeids: { ints: falseIds },
      nodes_missing_value_tracks_true: { ints: missingTrue },
      nodes_hitrates: { floats: hitrates },
    },
    leaves,
  };
}

function classifierLeafAttrs(flat: FlatTrees) {
  return {
    class_treeids: { ints: flat.leaves.map((l) => l.treeId) },
    class_nodeids: { ints: flat.leaves.map((l) => l.nodeId) },
    class_ids: { ints: flat.leaves.map((l) => l.id) },
    class_weights: { floats: flat.leaves.map((l) => l.weight) },
  };
}

function regressorLeafAttrs(flat: FlatTrees) {
  return {
    target_treeids: { ints: flat.leaves.map((l) => l.treeId) },
    target_nodeids: { ints: flat.leaves.map((l) => l.nodeId) },
    target_ids: { ints: flat.leaves.map((l) => l.id) },
    target_weights: { floats: flat.leaves.map((l) => l.weight) },
  };
}

const ML = 'ai.onnx.ml';

/** A ZipMap node and its seq(map) graph output, or (zipMap: false) the probability tensor as the graph output. */
function probabilitiesOutput(
  zipMap: boolean,
  tensorName: string,
  outputName: string,
  classes: readonly string[] | readonly number[],
): { nodes: NodeSpec[]; output: ValueSpec } {
  const strings = typeof classes[0] === 'string';
  if (!zipMap) {
    return {
      nodes: [],
      output: { name: tensorName, type: { tensor: 'float', shape: ['N', classes.length] } },
    };
  }
  return {
    nodes: [
      {
        op: 'ZipMap',
        domain: ML,
        inputs: [tensorName],
        outputs: [outputName],
        attrs: strings
          ? { classlabels_strings: classes as string[] }
          : { classlabels_int64s: { ints: classes as number[] } },
      },
    ],
    output: { name: outputName, type: { seqMap: { key: strings ? 'string' : 'int64' } } },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// a. linearZipMapStrings: multiclass LinearClassifier (iris-like), SOFTMAX, string labels, ZipMap.

export interface ZipMapOption {
  /** Write a ZipMap (seq(map)) probabilities output, as skl2onnx does (default true). False: a [N, C] tensor. */
  readonly zipMap?: boolean;
}

export function linearZipMapStrings(options: ZipMapOption = {}): ZooModel {
  const zipMap = options.zipMap ?? true;
  const classes = ['setosa', 'versicolor', 'virginica'];
  const featureNames = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];
  const W = [
    [0.42, 0.97, -2.52, -1.08],
    [0.53, -0.32, -0.21, -0.94],
    [-0.95, -0.65, 2.73, 2.02],
  ];
  const b = [9.85, 2.24, -12.09];
  // Without ZipMap, the probability tensor itself is the graph output named 'probabilities'.
  const probs = probabilitiesOutput(
    zipMap,
    zipMap ? 'probability_tensor' : 'probabilities',
    'probabilities',
    classes,
  );
  const spec: ModelSpec = {
    producer: 'skl2onnx',
    inputs: [{ name: 'input', type: { tensor: 'float', shape: ['N', 4] } }],
    outputs: [{ name: 'label', type: { tensor: 'string', shape: ['N'] } }, probs.output],
    nodes: [
      {
        op: 'LinearClassifier',
        domain: ML,
        inputs: ['input'],
        outputs: ['label', zipMap ? 'probability_tensor' : 'probabilities'],
        attrs: {
          classlabels_strings: classes,
          coefficients: { floats: W.flat() },
          intercepts: { floats: b },
          multi_class: 1,
          post_transform: 'SOFTMAX',
        },
      },
      ...probs.nodes,
    ],
  };
  return {
    name: 'linearZipMapStrings',
    classes,
    manifest: {
      name: 'linearZipMapStrings',
      version: '1',
      task: 'multiclass-classification',
      idField: 'id',
      features: featureNames.map((name) => ({ name, type: 'number' as const, min: 0, max: 20 })),
      outputs: { label: 'label', probabilities: 'probabilities', classes },
    },
    modelBytes: buildModel(spec),
    reference(features) {
      const x = featureNames.map((n) => numericValue(features, n));
      const scores = W.map((row, k) => dot(row, x) + f32(b[k]!));
      return classification(classes, softmax(scores));
    },
    sampleRows: [
      { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
      { sepal_length: 4.9, sepal_width: 3.0, petal_length: 1.4, petal_width: 0.2 },
      { sepal_length: 5.4, sepal_width: 3.9, petal_length: 1.7, petal_width: 0.4 },
      { sepal_length: 7.0, sepal_width: 3.2, petal_length: 4.7, petal_width: 1.4 },
      { sepal_length: 5.7, sepal_width: 2.8, petal_length: 4.1, petal_width: 1.3 },
      { sepal_length: 6.0, sepal_width: 2.2, petal_length: 4.0, petal_width: 1.0 },
      { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 },
      { sepal_length: 7.7, sepal_width: 2.6, petal_length: 6.9, petal_width: 2.3 },
      { sepal_length: 6.2, sepal_width: 2.8, petal_length: 4.8, petal_width: 1.8 },
      { sepal_length: 5, sepal_width: 3, petal_length: 3, petal_width: 1 },
      { sepal_length: 0, sepal_width: 0, petal_length: 0, petal_width: 0 },
    ],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// b. treeClassifierMulticlass: TreeEnsembleClassifier, int64 classes 0/1/2, 4 trees, LEQ and LT mixed,
//    base_values, SOFTMAX, probabilities as a plain [N, 3] tensor. Input columns in a different order than
//    the manifest's feature list, with a boolean and an integer feature.

export interface MulticlassTreeOptions {
  /** Put `outputs.classes` in the manifest (default false: the serving code reads the classifier node's labels). */
  readonly declareClasses?: boolean;
}

export function treeClassifierMulticlass(options: MulticlassTreeOptions = {}): ZooModel {
  const classes = [0, 1, 2];
  // Column order of the 'float_input' tensor.
  const columns = ['temperature', 'humidity', 'windy', 'visits'];
  const [T, H, W, V] = [0, 1, 2, 3];
  const LEQ = 'BRANCH_LEQ' as const;
  const LT = 'BRANCH_LT' as const;
  const trees: TreeNode[] = [
    split(
      T,
      LEQ,
      20,
      split(H, LT, 70, leaf(1.2, 0.1), leaf(0.3, 0.9)),
      split(W, LEQ, 0.5, leaf(0, 0.4, 1.1), leaf(0.2, 1.0, 0.3)),
    ),
    split(
      V,
      LT,
      3,
      split(T, LT, 25.5, split(H, LEQ, 40, leaf(0.8), leaf(0.4, 0.5)), leaf(0, 0, 0.9)),
      split(H, LEQ, 55.25, leaf(0, 0.7, 0.2), split(W, LT, 0.5, leaf(0, 0.1, 0.8), leaf(0.5, 0.6))),
    ),
    split(H, LEQ, 80, split(V, LEQ, 5, leaf(0.3), leaf(0, 0, 0.6)), leaf(0, 0.8)),
    split(T, LT, 10, leaf(0.9), split(W, LEQ, 0.5, leaf(0, 0, 0.4), leaf(0, 0.5))),
  ];
  const base = [0.1, -0.2, 0.05];
  const flat = flattenTrees(trees);
  const spec: ModelSpec = {
    producer: 'skl2onnx',
    inputs: [{ name: 'float_input', type: { tensor: 'float', shape: ['N', 4] } }],
    outputs: [
      { name: 'label', type: { tensor: 'int64', shape: ['N'] } },
      { name: 'probabilities', type: { tensor: 'float', shape: ['N', 3] } },
    ],
    nodes: [
      {
        op: 'TreeEnsembleClassifier',
        domain: ML,
        inputs: ['float_input'],
        outputs: ['label', 'probabilities'],
        attrs: {
          ...flat.nodes,
          ...classifierLeafAttrs(flat),
          classlabels_int64s: { ints: classes },
          base_values: { floats: base },
          post_transform: 'SOFTMAX',
        },
      },
    ],
  };
  return {
    name: 'treeClassifierMulticlass',
    classes,
    trees,
    manifest: {
      name: 'treeClassifierMulticlass',
      version: '2024-05-01',
      task: 'multiclass-classification',
      idField: 'id',
      // Manifest order differs from the tensor's column order on purpose.
      features: [
        { name: 'visits', type: 'integer', min: 0 },
        { name: 'temperature', type: 'number', min: -50, max: 60 },
        { name: 'windy', type: 'boolean', default: false },
        { name: 'humidity', type: 'number', min: 0, max: 100 },
      ],
      inputs: [{ name: 'float_input', type: 'float32', features: columns }],
      outputs: {
        label: 'label',
        probabilities: 'probabilities',
        ...(options.declareClasses ? { classes } : {}),
      },
    },
    modelBytes: buildModel(spec),
    reference(features) {
      const x = [
        numericValue(features, 'temperature'),
        numericValue(features, 'humidity'),
        numericValue(features, 'windy', { default: 0 }),
        numericValue(features, 'visits'),
      ];
      return classification(classes, softmax(treeScores(trees, base, x)));
    },
    sampleRows: [
      { temperature: 15, humidity: 50, windy: false, visits: 1 },
      { temperature: 20, humidity: 70, windy: true, visits: 3 }, // T=20 LEQ true, H=70 LT false, V=3 LT false
      { temperature: 25.5, humidity: 40, windy: false, visits: 2 }, // T=25.5 LT false, H=40
      { temperature: 22, humidity: 40, windy: true, visits: 0 }, // H=40 LEQ true
      { temperature: 30, humidity: 55.25, windy: false, visits: 4 }, // H=55.25 LEQ true
      { temperature: 30, humidity: 60, windy: true, visits: 7 },
      { temperature: 30, humidity: 60, visits: 7 }, // windy defaults to false
      { temperature: 10, humidity: 80, windy: true, visits: 5 }, // T=10 LT false, H=80 LEQ true, V=5 LEQ true
      { temperature: 9.5, humidity: 85, windy: false, visits: 6 },
      { temperature: -5, humidity: 20, windy: true, visits: 10 },
      { temperature: 35, humidity: 95, windy: true, visits: 2 },
      { temperature: 21, humidity: 69.5, windy: false, visits: 8 },
    ],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// c. treeClassifierBinaryXgboostStyle: what onnxmltools writes for XGBoost binary:logistic: one score
//    (class_ids all 0), classlabels_int64s [0, 1], base_values [logit(base_score)], LOGISTIC, BRANCH_LT with
//    missing values tracking the true branch, ZipMap with int64 keys.

export interface XgboostOptions extends ZipMapOption {
  /**
   * Use trees whose leaf weights are all positive (base value negative). onnxruntime then decides the LABEL
   * by comparing the raw margin with 0.5 instead of 0, so its label output disagrees with its own
   * probabilities for margins in (0, 0.5]. The reference keeps the math: label = P(1) > 0.5.
   */
  readonly allPositiveLeaves?: boolean;
}

export function treeClassifierBinaryXgboostStyle(options: XgboostOptions = {}): ZooModel {
  const zipMap = options.zipMap ?? true;
  const classes = [0, 1];
  const featureNames = ['amount', 'age_days', 'score'];
  const [A, D, S] = [0, 1, 2];
  const LT = 'BRANCH_LT' as const;
  const trees: TreeNode[] = options.allPositiveLeaves
    ? [
        split(A, LT, 100, split(S, LT, 0.5, leaf(0.05), leaf(0.3), true), leaf(0.6), true),
        split(S, LT, 0.75, leaf(0.1), leaf(0.45), true),
        split(D, LT, 7, leaf(0.35), leaf(0.02), true),
      ]
    : [
        split(
          A,
          LT,
          100,
          split(S, LT, 0.5, leaf(-0.6), leaf(0.2), true),
          split(D, LT, 30, leaf(0.9), leaf(0.1), true),
          true,
        ),
        split(S, LT, 0.75, split(A, LT, 250, leaf(-0.3), leaf(0.35), true), leaf(0.5), true),
        split(D, LT, 7, leaf(0.4), split(A, LT, 20, leaf(-0.25), leaf(-0.05), true), true),
      ];
  const base = [options.allPositiveLeaves ? -0.6 : -0.2];
  const flat = flattenTrees(trees);
  const probs = probabilitiesOutput(
    zipMap,
    zipMap ? 'probability_tensor' : 'probabilities',
    'probabilities',
    classes,
  );
  const spec: ModelSpec = {
    producer: 'OnnxMLTools',
    inputs: [{ name: 'input', type: { tensor: 'float', shape: ['N', 3] } }],
    outputs: [{ name: 'label', type: { tensor: 'int64', shape: ['N'] } }, probs.output],
    nodes: [
      {
        op: 'TreeEnsembleClassifier',
        domain: ML,
        inputs: ['input'],
        outputs: ['label', zipMap ? 'probability_tensor' : 'probabilities'],
        attrs: {
          ...flat.nodes,
          ...classifierLeafAttrs(flat),
          classlabels_int64s: { ints: classes },
          base_values: { floats: base },
          post_transform: 'LOGISTIC',
        },
      },
      ...probs.nodes,
    ],
  };
  const name = options.allPositiveLeaves
    ? 'treeClassifierBinaryAllPositiveLeaves'
    : 'treeClassifierBinaryXgboostStyle';
  return {
    name,
    classes,
    trees,
    manifest: {
      name,
      version: '3',
      task: 'binary-classification',
      idField: 'id',
      features: [
        { name: 'amount', type: 'number', min: 0 },
        { name: 'age_days', type: 'integer', min: 0 },
        { name: 'score', type: 'number', min: 0, max: 1 },
      ],
      outputs: { label: 'label', probabilities: 'probabilities' },
    },
    modelBytes: buildModel(spec),
    reference(features) {
      const x = featureNames.map((n) => numericValue(features, n));
      const margin = treeScores(trees, base, x)[0]!;
      const p = sigmoid(margin);
      return classification(classes, [1 - p, p]);
    },
    sampleRows: options.allPositiveLeaves
      ? [
          { amount: 50, age_days: 3, score: 0.2 }, // margin -0.6+0.05+0.1+0.35 = -0.1
          { amount: 50, age_days: 10, score: 0.6 }, // -0.6+0.3+0.1+0.02 = -0.18
          { amount: 100, age_days: 3, score: 0.75 }, // -0.6+0.6+0.45+0.35 = 0.8
          { amount: 150, age_days: 10, score: 0.8 }, // -0.6+0.6+0.45+0.02 = 0.47 (ORT label quirk)
          { amount: 150, age_days: 3, score: 0.1 }, // -0.6+0.6+0.1+0.35 = 0.45 (ORT label quirk)
          { amount: 20, age_days: 7, score: 0.5 }, // -0.6+0.3+0.1+0.02 = -0.18
          { amount: 99, age_days: 10, score: 0.9 }, // -0.6+0.3+0.45+0.02 = 0.17 (ORT label quirk)
          { amount: 300, age_days: 30, score: 0.1 }, // -0.6+0.6+0.1+0.02 = 0.12 (ORT label quirk)
        ]
      : [
          { amount: 10, age_days: 1, score: 0.1 },
          { amount: 10, age_days: 100, score: 0.1 },
          { amount: 100, age_days: 5, score: 0.75 }, // amount=100 LT false, score=0.75 LT false
          { amount: 99.5, age_days: 30, score: 0.5 }, // score=0.5 LT false, age_days=30 LT false
          { amount: 250, age_days: 29, score: 0.2 }, // amount=250 LT false, age_days=29
          { amount: 20, age_days: 7, score: 0.3 }, // amount=20, age_days=7 LT false
          { amount: 19.75, age_days: 8, score: 0.9 },
          { amount: 500, age_days: 400, score: 0.0 },
          { amount: 0, age_days: 0, score: 1 },
          { amount: 120, age_days: 45, score: 0.74 },
        ],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// d. treeRegressor: TreeEnsembleRegressor, 1 target, 3 trees, SUM, base_values; output 'variable' [N, 1].
//    A category feature enters the float tensor as its index.

export function treeRegressor(): ZooModel {
  const zones = ['north', 'south', 'east'];
  const [R, A, Z] = [0, 1, 2];
  const LEQ = 'BRANCH_LEQ' as const;
  const LT = 'BRANCH_LT' as const;
  const trees: TreeNode[] = [
    split(
      A,
      LEQ,
      75.5,
      split(R, LT, 3, leaf(-40), leaf(-15)),
      split(Z, LEQ, 0.5, leaf(35), split(Z, LT, 2, leaf(10), leaf(22.5))),
    ),
    split(R, LEQ, 4, split(A, LT, 50, leaf(-12.25), leaf(3.5)), leaf(18)),
    split(Z, LT, 1, leaf(8), split(A, LEQ, 120, leaf(-6.5), leaf(14))),
  ];
  const base = [150];
  const flat = flattenTrees(trees);
  const spec: ModelSpec = {
    producer: 'skl2onnx',
    inputs: [{ name: 'input', type: { tensor: 'float', shape: ['N', 3] } }],
    outputs: [{ name: 'variable', type: { tensor: 'float', shape: ['N', 1] } }],
    nodes: [
      {
        op: 'TreeEnsembleRegressor',
        domain: ML,
        inputs: ['input'],
        outputs: ['variable'],
        attrs: {
          ...flat.nodes,
          ...regressorLeafAttrs(flat),
          n_targets: 1,
          aggregate_function: 'SUM',
          base_values: { floats: base },
          post_transform: 'NONE',
        },
      },
    ],
  };
  return {
    name: 'treeRegressor',
    trees,
    manifest: {
      name: 'treeRegressor',
      version: '1.0.0',
      task: 'regression',
      idField: 'id',
      features: [
        { name: 'rooms', type: 'integer', min: 1, max: 20 },
        { name: 'area', type: 'number', min: 0 },
        { name: 'zone', type: 'category', values: zones },
      ],
      outputs: { value: 'variable' },
    },
    modelBytes: buildModel(spec),
    reference(features) {
      const x = [
        numericValue(features, 'rooms'),
        numericValue(features, 'area'),
        numericValue(features, 'zone', { values: zones }),
      ];
      return { value: treeScores(trees, base, x)[0]! };
    },
    sampleRows: [
      { rooms: 2, area: 40, zone: 'north' },
      { rooms: 3, area: 75.5, zone: 'south' }, // rooms=3 LT false, area=75.5 LEQ true
      { rooms: 4, area: 50, zone: 'east' }, // rooms=4 LEQ true, area=50 LT false
      { rooms: 5, area: 80, zone: 'north' }, // zone 0 <= 0.5
      { rooms: 6, area: 120, zone: 'south' }, // area=120 LEQ true, zone 1 < 2
      { rooms: 6, area: 130, zone: 'east' }, // zone 2 LT 2 false
      { rooms: 1, area: 10.25, zone: 'east' },
      { rooms: 4, area: 75.75, zone: 'south' },
      { rooms: 10, area: 300, zone: 'north' },
    ],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// e. pipelineStringInputs: an skl2onnx ColumnTransformer + LogisticRegression pipeline with three named inputs:
//    numeric [N,2] float -> Imputer (NaN) -> Scaler; color [N,1] string -> OneHotEncoder (zeros=1) -> Reshape;
//    size [N,1] int64 -> Cast; Concat -> Normalizer (L2) -> binary LinearClassifier (one coefficient row,
//    LOGISTIC, labels 'no' / 'yes') -> ZipMap.

export function pipelineStringInputs(options: ZipMapOption = {}): ZooModel {
  const zipMap = options.zipMap ?? true;
  const classes = ['no', 'yes'];
  const colors = ['red', 'green', 'blue'];
  const imputed = [38.5, 52000];
  const offset = [40, 50000];
  const scale = [0.1, 0.00002];
  const coefficients = [0.8, 1.2, 0.5, -0.7, 0.1, 0.9];
  const intercept = -0.3;
  const incomeDefault = 50000;
  const probs = probabilitiesOutput(
    zipMap,
    zipMap ? 'probability_tensor' : 'output_probability',
    'output_probability',
    classes,
  );
  const spec: ModelSpec = {
    producer: 'skl2onnx',
    opset: 13,
    mlOpset: 1,
    inputs: [
      { name: 'numeric', type: { tensor: 'float', shape: ['N', 2] } },
      { name: 'color', type: { tensor: 'string', shape: ['N', 1] } },
      { name: 'size', type: { tensor: 'int64', shape: ['N', 1] } },
    ],
    outputs: [{ name: 'output_label', type: { tensor: 'string', shape: ['N'] } }, probs.output],
    initializers: [{ name: 'onehot_shape', type: 'int64', dims: [2], values: [-1, colors.length] }],
    nodes: [
      {
        op: 'Imputer',
        domain: ML,
        inputs: ['numeric'],
        outputs: ['imputed'],
        attrs: { imputed_value_floats: { floats: imputed }, replaced_value_float: NaN },
      },
      {
        op: 'Scaler',
        domain: ML,
        inputs: ['imputed'],
        outputs: ['scaled'],
        attrs: { offset: { floats: offset }, scale: { floats: scale } },
      },
      {
        op: 'OneHotEncoder',
        domain: ML,
        inputs: ['color'],
        outputs: ['onehot3d'],
        attrs: { cats_strings: colors, zeros: 1 },
      },
      { op: 'Reshape', inputs: ['onehot3d', 'onehot_shape'], outputs: ['onehot'] },
      { op: 'Cast', inputs: ['size'], outputs: ['size_float'], attrs: { to: 1 } },
      { op: 'Concat', inputs: ['scaled', 'onehot', 'size_float'], outputs: ['concat'], attrs: { axis: 1 } },
      { op: 'Normalizer', domain: ML, inputs: ['concat'], outputs: ['normalized'], attrs: { norm: 'L2' } },
      {
        op: 'LinearClassifier',
        domain: ML,
        inputs: ['normalized'],
        outputs: ['output_label', zipMap ? 'probability_tensor' : 'output_probability'],
        attrs: {
          classlabels_strings: classes,
          coefficients: { floats: coefficients },
          intercepts: { floats: [intercept] },
          post_transform: 'LOGISTIC',
        },
      },
      ...probs.nodes,
    ],
  };
  return {
    name: 'pipelineStringInputs',
    classes,
    manifest: {
      name: 'pipelineStringInputs',
      version: 'v7',
      task: 'binary-classification',
      idField: 'id',
      features: [
        { name: 'age', type: 'number', min: 0, max: 120, required: false },
        { name: 'income', type: 'number', min: 0, default: incomeDefault },
        { name: 'color', type: 'category', values: colors, unknown: 'pass' },
        { name: 'size', type: 'integer', min: 0, max: 10 },
      ],
      inputs: [
        { name: 'numeric', type: 'float32', features: ['age', 'income'] },
        { name: 'color', type: 'string', features: ['color'] },
        { name: 'size', type: 'int64', features: ['size'] },
      ],
      outputs: { label: 'output_label', probabilities: 'output_probability' },
    },
    modelBytes: buildModel(spec),
    reference(features) {
      // Imputer: NaN (a missing optional feature) -> the imputed value; Scaler: (x - offset) * scale.
      const numeric = [
        numericValue(features, 'age'),
        numericValue(features, 'income', { default: incomeDefault }),
      ];
      const scaled = numeric.map((v, i) => {
        const x = Number.isNaN(v) ? f32(imputed[i]!) : v;
        return (x - f32(offset[i]!)) * f32(scale[i]!);
      });
      // OneHotEncoder with zeros=1: an unknown category is all zeros.
      const color = String(features['color']);
      const onehot = colors.map((c) => (c === color ? 1 : 0));
      const size = Number(features['size']);
      const v = [...scaled, ...onehot, size];
      const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      const normalized = v.map((x) => x / norm);
      // Binary LinearClassifier with one coefficient row: the score is the positive class's; LOGISTIC.
      const p = sigmoid(dot(coefficients, normalized) + f32(intercept));
      return classification(classes, [1 - p, p]);
    },
    sampleRows: [
      { age: 25, income: 30000, color: 'red', size: 1 },
      { age: 60, income: 90000, color: 'green', size: 3 },
      { age: 40, income: 50000, color: 'blue', size: 0 },
      { age: 33, color: 'green', size: 2 }, // income takes its default
      { income: 120000, color: 'red', size: 5 }, // age missing: NaN, imputed
      { age: 70, income: 20000, color: 'purple', size: 4 }, // unknown color passed: one-hot all zeros
      { age: 18, income: 0, color: 'green', size: 10 },
      { age: 45.5, income: 61000, color: 'blue', size: 7 },
      { age: 90, income: 10000, color: 'green', size: 0 },
    ],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// f. fixedBatchOne: an older exporter's graph (opset 9, MatMul + Add with initializers) whose input shape is
//    fixed [1, 3]: onnxruntime rejects any other batch size; output [1, 1].

export function fixedBatchOne(): ZooModel {
  const weights = [0.75, -1.5, 2.25];
  const bias = 0.5;
  const spec: ModelSpec = {
    producer: 'keras2onnx',
    opset: 9,
    mlOpset: 1,
    inputs: [{ name: 'dense_input', type: { tensor: 'float', shape: [1, 3] } }],
    outputs: [{ name: 'dense', type: { tensor: 'float', shape: [1, 1] } }],
    initializers: [
      { name: 'dense/kernel', type: 'float', dims: [3, 1], values: weights },
      { name: 'dense/bias', type: 'float', dims: [1], values: [bias] },
    ],
    nodes: [
      { op: 'MatMul', inputs: ['dense_input', 'dense/kernel'], outputs: ['dense/MatMul'] },
      { op: 'Add', inputs: ['dense/MatMul', 'dense/bias'], outputs: ['dense'] },
    ],
  };
  return {
    name: 'fixedBatchOne',
    manifest: {
      name: 'fixedBatchOne',
      version: '1',
      task: 'regression',
      idField: 'id',
      features: [
        { name: 'x1', type: 'number' },
        { name: 'x2', type: 'integer' },
        { name: 'flag', type: 'boolean' },
      ],
      outputs: { value: 'dense' },
    },
    modelBytes: buildModel(spec),
    reference(features) {
      const x = ['x1', 'x2', 'flag'].map((n) => numericValue(features, n));
      return { value: dot(weights, x) + f32(bias) };
    },
    sampleRows: [
      { x1: 1, x2: 1, flag: true },
      { x1: 0, x2: 0, flag: false },
      { x1: -2.5, x2: 3, flag: true },
      { x1: 10.125, x2: -4, flag: false },
      { x1: 0.1, x2: 7, flag: true },
      { x1: 3.3, x2: 2, flag: false },
      { x1: -100, x2: 50, flag: true },
      { x1: 42, x2: 0, flag: false },
    ],
  };
}

// ---------------------------------------------------------------------------------------------------------------

/** The zoo with each factory's default options (ZipMap where the exporter writes one). */
export const zooFactories = {
  linearZipMapStrings,
  treeClassifierMulticlass,
  treeClassifierBinaryXgboostStyle,
  treeRegressor,
  pipelineStringInputs,
  fixedBatchOne,
} as const;

export function allZooModels(): ZooModel[] {
  return Object.values(zooFactories).map((factory) => factory());
}

/** The ONNX operators used across the zoo (each must appear at least once). */
export const zooOperators = [
  'LinearClassifier',
  'TreeEnsembleClassifier',
  'TreeEnsembleRegressor',
  'ZipMap',
  'Imputer',
  'Scaler',
  'OneHotEncoder',
  'Normalizer',
  'Cast',
  'Concat',
  'Reshape',
  'MatMul',
  'Add',
] as const;
