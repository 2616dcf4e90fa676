/**
 * `models inspect`: what an ONNX graph takes and returns (input and output names, element types, shapes,
 * class labels), and a manifest skeleton built from it: one feature per input column, named
 * `<input>_<column>` where the graph does not know the dataset's column names, to be renamed.
 */
import type { ClassLabel } from '../manifest.ts';
import { inspectModel, type GraphValue, type OnnxElemType } from '../onnx-graph.ts';

export interface GraphSummary {
  readonly inputs: readonly GraphValue[];
  readonly outputs: readonly GraphValue[];
  /** Class labels held by the classifier (or ZipMap) behind each output. */
  readonly classLabels: Readonly<Record<string, readonly ClassLabel[]>>;
  /** Outputs written as ZipMap (a sequence of maps): served as the probability tensor behind them. */
  readonly zipMapOutputs: readonly string[];
}

export interface InspectedGraph {
  readonly graph: GraphSummary;
  /** A manifest that `models check` accepts for this graph, with placeholder names to replace. */
  readonly skeleton: Record<string, unknown>;
  /** What the skeleton guessed and the user must check. */
  readonly notes: readonly string[];
}

const TENSOR_TYPES = new Set<OnnxElemType>(['float32', 'float64', 'int32', 'int64', 'string', 'bool']);

function featureType(elem: OnnxElemType): string {
  if (elem === 'string') return 'string';
  if (elem === 'bool') return 'boolean';
  if (elem === 'int32' || elem === 'int64') return 'integer';
  return 'number';
}

/** The number of columns of a [batch, columns] input; 1 for a [batch] input; undefined when symbolic. */
function columns(value: GraphValue): number | undefined {
  if (!value.dims || value.dims.length < 2) return 1;
  const width = value.dims[value.dims.length - 1];
  return typeof width === 'number' ? width : undefined;
}

export function shapeText(value: GraphValue): string {
  if (value.kind !== 'tensor') return value.kind;
  if (!value.dims) return `${value.elemType} [rank unknown]`;
  return `${value.elemType} [${value.dims.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

export function inspectGraph(bytes: Uint8Array): InspectedGraph {
  const info = inspectModel(bytes);
  const notes: string[] = [];
  const features: Record<string, unknown>[] = [];
  const inputs: Record<string, unknown>[] = [];
  for (const input of info.inputs) {
    if (input.kind !== 'tensor' || !TENSOR_TYPES.has(input.elemType)) {
      notes.push(
        `input "${input.name}" is a ${shapeText(input)} value: Tandem feeds tensors of numbers, strings or booleans only`,
      );
      continue;
    }
    let width = columns(input);
    if (width === undefined) {
      notes.push(
        `input "${input.name}" has a symbolic column count: list as many features as the model was trained on`,
      );
      width = 1;
    }
    const type = featureType(input.elemType);
    const names = width === 1 ? [input.name] : Array.from({ length: width }, (_, i) => `${input.name}_${i}`);
    for (const name of names)
      features.push({ name, type, required: true, ...(type === 'string' ? { unknown: 'pass' } : {}) });
    inputs.push({ name: input.name, type: input.elemType, features: names });
  }
  if (features.some((f) => String(f['name']).match(/_\d+$/)))
    notes.push(
      'feature names "<input>_<n>" are placeholders: rename them to your dataset\'s columns, in the column order the model was trained on (and in inputs[].features)',
    );

  const labelled = info.outputs.filter((o) => info.classLabelsByOutput.has(o.name));
  const label = labelled.find((o) => o.elemType === 'int64' || o.elemType === 'string');
  const probabilities = labelled.find((o) => o.elemType === 'float32' || o.elemType === 'float64');
  const classes = info.classLabelsByOutput.get((probabilities ?? label)?.name ?? '') ?? [];
  let task: string;
  let outputs: Record<string, unknown>;
  if (label || probabilities) {
    task = classes.length === 2 ? 'binary-classification' : 'multiclass-classification';
    outputs = {
      ...(label ? { label: label.name } : {}),
      ...(probabilities ? { probabilities: probabilities.name } : {}),
    };
    notes.push(`a classifier with classes ${JSON.stringify(classes)} (read from the graph)`);
  } else {
    task = 'regression';
    const value = info.outputs.find(
      (o) => o.kind === 'tensor' && (o.elemType === 'float32' || o.elemType === 'float64'),
    );
    outputs = value ? { value: value.name } : {};
    if (!value) notes.push('no output holds class labels or a float value: set outputs by hand');
    else if (info.outputs.length > 1)
      notes.push(`regression value read from "${value.name}", the first float output: check it`);
  }
  return {
    graph: {
      inputs: info.inputs,
      outputs: info.outputs,
      classLabels: Object.fromEntries(info.classLabelsByOutput),
      zipMapOutputs: info.unzippedOutputs,
    },
    skeleton: {
      schemaVersion: 1,
      name: 'my-model',
      version: '1.0.0',
      task,
      idField: 'id',
      features,
      inputs,
      outputs,
    },
    notes,
  };
}
