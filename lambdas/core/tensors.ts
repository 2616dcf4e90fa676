/**
 * Turns validated rows into onnxruntime input tensors, one per ONNX input, filled in place from the
 * plan compiled at load (feature positions, category codes, element type, rank).
 */
import ort from 'onnxruntime-node';
import type { FeatureRow } from './features.ts';
import type { Manifest, TensorType } from './manifest.ts';

export interface InputPlan {
  readonly name: string;
  readonly type: TensorType;
  /** Row positions of the features this input packs, in column order. */
  readonly columns: readonly number[];
  /** For category features in numeric tensors: value -> index in the manifest's `values`. */
  readonly codes: readonly (ReadonlyMap<string, number> | undefined)[];
  /** 1 when the model takes a [batch] vector (single-feature inputs only), else 2: [batch, columns]. */
  readonly rank: 1 | 2;
}

export function planInput(
  manifest: Manifest,
  input: { name: string; type: TensorType; features: readonly string[] },
  rank: 1 | 2,
): InputPlan {
  const positions = new Map(manifest.features.map((f, i) => [f.name, i]));
  const columns = input.features.map((name) => positions.get(name)!);
  const codes = input.features.map((name) => {
    const spec = manifest.features[positions.get(name)!];
    if (input.type === 'string' || !spec || !('values' in spec) || !spec.values) return undefined;
    return new Map(spec.values.map((v, i) => [v, i]));
  });
  return { name: input.name, type: input.type, columns, codes, rank };
}

function numericValue(value: FeatureRow[number], codes: ReadonlyMap<string, number> | undefined): number {
  if (typeof value === 'number') return value;
  return codes?.get(value) ?? NaN;
}

function fillNumbers(plan: InputPlan, rows: readonly FeatureRow[], out: { [i: number]: number }): void {
  const width = plan.columns.length;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    const base = r * width;
    for (let c = 0; c < width; c++) out[base + c] = numericValue(row[plan.columns[c]!]!, plan.codes[c]);
  }
}

const singleRowDims = new WeakMap<InputPlan, readonly number[]>();

/** The tensor shape for `batch` rows; the one-row shape (the real-time case) is made once per plan. */
function dims(plan: InputPlan, batch: number): readonly number[] {
  if (batch === 1) {
    let shape = singleRowDims.get(plan);
    if (!shape) {
      shape = Object.freeze(plan.rank === 1 ? [1] : [1, plan.columns.length]);
      singleRowDims.set(plan, shape);
    }
    return shape;
  }
  return plan.rank === 1 ? [batch] : [batch, plan.columns.length];
}

export function encodeInput(plan: InputPlan, rows: readonly FeatureRow[]): ort.Tensor {
  const size = rows.length * plan.columns.length;
  const shape = dims(plan, rows.length);
  switch (plan.type) {
    case 'float32': {
      const data = new Float32Array(size);
      fillNumbers(plan, rows, data);
      return new ort.Tensor('float32', data, shape);
    }
    case 'float64': {
      const data = new Float64Array(size);
      fillNumbers(plan, rows, data);
      return new ort.Tensor('float64', data, shape);
    }
    case 'int32': {
      const data = new Int32Array(size);
      fillNumbers(plan, rows, data);
      return new ort.Tensor('int32', data, shape);
    }
    case 'bool': {
      const data = new Uint8Array(size);
      fillNumbers(plan, rows, data);
      return new ort.Tensor('bool', data, shape);
    }
    case 'int64': {
      const numbers = new Float64Array(size);
      fillNumbers(plan, rows, numbers);
      const data = new BigInt64Array(size);
      for (let i = 0; i < size; i++) data[i] = BigInt(Math.trunc(numbers[i]!) || 0);
      return new ort.Tensor('int64', data, shape);
    }
    case 'string': {
      const data = new Array<string>(size);
      const width = plan.columns.length;
      for (let r = 0; r < rows.length; r++) {
        for (let c = 0; c < width; c++) data[r * width + c] = String(rows[r]![plan.columns[c]!]);
      }
      return new ort.Tensor('string', data, shape);
    }
  }
}

export function encodeFeeds(
  plans: readonly InputPlan[],
  rows: readonly FeatureRow[],
): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const plan of plans) feeds[plan.name] = encodeInput(plan, rows);
  return feeds;
}
