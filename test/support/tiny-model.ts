/** A two-feature multiclass linear model whose outputs are easy to compute by hand. */
import { loadModel, type ServedModel } from '../../lambdas/core/model-loader.ts';
import { buildModel } from '../../tools/onnx-builder.ts';

export const TINY_CLASSES = ['a', 'b', 'c'] as const;
const W = [
  [1, 0],
  [0, 1],
  [-1, -1],
];
const B = [0, 0, 0.5];

export function tinyManifest(version = '1') {
  return {
    name: 'tiny',
    version,
    task: 'multiclass-classification',
    idField: 'id',
    features: [
      { name: 'x1', type: 'number', min: -100, max: 100 },
      { name: 'x2', type: 'number', default: 0 },
    ],
    outputs: { label: 'label', probabilities: 'probabilities' },
    cache: { maxAgeSeconds: 3600, ttlSeconds: 86_400 },
  };
}

export function tinyModelBytes(): Uint8Array {
  return buildModel({
    inputs: [{ name: 'X', type: { tensor: 'float', shape: ['N', 2] } }],
    outputs: [
      { name: 'label', type: { tensor: 'string', shape: ['N'] } },
      { name: 'probabilities', type: { seqMap: { key: 'string' } } },
    ],
    nodes: [
      {
        op: 'LinearClassifier',
        domain: 'ai.onnx.ml',
        inputs: ['X'],
        outputs: ['label', 'probs'],
        attrs: {
          classlabels_strings: [...TINY_CLASSES],
          coefficients: { floats: W.flat() },
          intercepts: { floats: B },
          post_transform: 'SOFTMAX',
        },
      },
      {
        op: 'ZipMap',
        domain: 'ai.onnx.ml',
        inputs: ['probs'],
        outputs: ['probabilities'],
        attrs: { classlabels_strings: [...TINY_CLASSES] },
      },
    ],
  });
}

/** softmax(Wx + b), by hand. */
export function tinyExpected(x1: number, x2 = 0): { label: string; probabilities: Record<string, number> } {
  const scores = W.map((w, i) => Math.fround(w[0]! * Math.fround(x1) + w[1]! * Math.fround(x2) + B[i]!));
  const max = Math.max(...scores);
  const exps = scores.map((s) => Math.exp(s - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  const probabilities = Object.fromEntries(TINY_CLASSES.map((c, i) => [c, exps[i]! / sum]));
  const best = scores.indexOf(max);
  return { label: TINY_CLASSES[best]!, probabilities };
}

export function loadTinyModel(version = '1'): Promise<ServedModel> {
  return loadModel({ manifest: tinyManifest(version), modelBytes: tinyModelBytes() });
}
