/**
 * Hand-built feeds for the bare onnxruntime side, from a JSON feature object: each float32 input packs
 * its features in order (booleans as 0/1, missing optional features take their default), each string
 * input holds its features as strings. No validation: the least any server does before session.run.
 * Only onnxruntime is imported, so the bare cold-start process stays bare.
 */
import ort from 'onnxruntime-node';

export interface BareLayout {
  readonly inputs: readonly {
    readonly name: string;
    readonly type: string;
    readonly features: readonly string[];
  }[];
  /** Defaults of the optional features, by name. */
  readonly defaults: Readonly<Record<string, number | boolean | string>>;
}

export type Feeds = Record<string, ort.Tensor>;

export function bareEncoder(layout: BareLayout): (features: Readonly<Record<string, unknown>>) => Feeds {
  const plans = layout.inputs.map((input) => {
    if (input.type !== 'float32' && input.type !== 'string') {
      throw new Error(
        `bare encoder: input ${input.name} is ${input.type}; only float32 and string are handled`,
      );
    }
    return input;
  });
  const defaults = layout.defaults;
  return (features) => {
    const feeds: Feeds = {};
    for (const plan of plans) {
      const width = plan.features.length;
      if (plan.type === 'float32') {
        const data = new Float32Array(width);
        for (let c = 0; c < width; c++) {
          const name = plan.features[c]!;
          const value = features[name] ?? defaults[name];
          data[c] = typeof value === 'boolean' ? (value ? 1 : 0) : Number(value);
        }
        feeds[plan.name] = new ort.Tensor('float32', data, [1, width]);
      } else {
        const data = plan.features.map((name) => String(features[name] ?? defaults[name] ?? ''));
        feeds[plan.name] = new ort.Tensor('string', data, [1, width]);
      }
    }
    return feeds;
  };
}
