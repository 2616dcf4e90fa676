/**
 * A second version of the demo model for promotion tests: the same manifest interface (inputs
 * `numeric` [N, 15], `merchant_category` and `channel` [N, 1], a ZipMap of the classes 0 and 1), but a
 * linear model over the numeric features, so its predictions differ from version 1.0.0's trees.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { buildModel } from '../../tools/onnx-builder.ts';

export async function demoV2Package(
  repoRoot: string,
  model: string,
  version: string,
): Promise<{ manifest: string; modelBytes: Uint8Array }> {
  const manifest = JSON.parse(
    await readFile(path.join(repoRoot, 'models', model, '1.0.0', 'manifest.json'), 'utf8'),
  ) as Record<string, unknown>;
  manifest['version'] = version;
  manifest['description'] = 'Test-only linear version of the demo model (promotion tests).';
  // Weights on amount, hour_of_day, ..., prior_chargebacks (the `numeric` input's order).
  const weights = [0.002, -0.05, 0.01, -1.2, 1.5, 0.0004, 0.3, 0.02, 0.4, -0.001, -0.02, 0.5, 0.8, 2.5, 0.6];
  const modelBytes = buildModel({
    inputs: [
      { name: 'numeric', type: { tensor: 'float', shape: ['N', 15] } },
      { name: 'merchant_category', type: { tensor: 'string', shape: ['N', 1] } },
      { name: 'channel', type: { tensor: 'string', shape: ['N', 1] } },
    ],
    outputs: [
      { name: 'label', type: { tensor: 'int64', shape: ['N'] } },
      { name: 'probabilities', type: { seqMap: { key: 'int64' } } },
    ],
    nodes: [
      {
        op: 'LinearClassifier',
        domain: 'ai.onnx.ml',
        inputs: ['numeric'],
        outputs: ['label', 'probability_tensor'],
        attrs: {
          classlabels_ints: { ints: [0, 1] },
          coefficients: { floats: [...weights.map((w) => -w), ...weights] },
          intercepts: { floats: [1, -1] },
          post_transform: 'SOFTMAX',
        },
      },
      {
        op: 'ZipMap',
        domain: 'ai.onnx.ml',
        inputs: ['probability_tensor'],
        outputs: ['probabilities'],
        attrs: { classlabels_int64s: { ints: [0, 1] } },
      },
    ],
  });
  return { manifest: JSON.stringify(manifest, null, 2), modelBytes };
}
