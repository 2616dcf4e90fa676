/**
 * Reads an ONNX model's graph once at load: its inputs and outputs, class labels held by classifier and
 * ZipMap nodes, and rewrites ZipMap outputs (seq(map)), which onnxruntime-node cannot return, into the
 * probability tensors they wrap.
 */
import onnxProto from 'onnx-proto';
import { ModelLoadError } from './errors.ts';
import type { ClassLabel } from './manifest.ts';

const { onnx } = onnxProto;
type GraphProto = onnxProto.onnx.IGraphProto;
type NodeProto = onnxProto.onnx.INodeProto;
type TypeProto = onnxProto.onnx.ITypeProto;

export type OnnxElemType = 'float32' | 'float64' | 'int32' | 'int64' | 'string' | 'bool' | 'other';

export interface GraphValue {
  readonly name: string;
  /** `tensor`, or `sequence` / `map` / `other` for non-tensor values. */
  readonly kind: 'tensor' | 'sequence' | 'map' | 'other';
  readonly elemType: OnnxElemType;
  /** Dimensions: a number when fixed, a string when symbolic, null when unknown. Undefined: rank unknown. */
  readonly dims: readonly (number | string | null)[] | undefined;
}

export interface GraphInfo {
  readonly inputs: readonly GraphValue[];
  readonly outputs: readonly GraphValue[];
  /** Class labels of the classifier node (or ZipMap) behind each output, by output name. */
  readonly classLabelsByOutput: ReadonlyMap<string, readonly ClassLabel[]>;
  /** Outputs that were ZipMap sequences and are now the probability tensors behind them. */
  readonly unzippedOutputs: readonly string[];
  /** The model bytes to hand to onnxruntime (rewritten when ZipMap outputs were removed). */
  readonly bytes: Uint8Array;
}

const elemTypes: Record<number, OnnxElemType> = {
  [onnx.TensorProto.DataType.FLOAT]: 'float32',
  [onnx.TensorProto.DataType.DOUBLE]: 'float64',
  [onnx.TensorProto.DataType.INT32]: 'int32',
  [onnx.TensorProto.DataType.INT64]: 'int64',
  [onnx.TensorProto.DataType.STRING]: 'string',
  [onnx.TensorProto.DataType.BOOL]: 'bool',
};

const utf8 = new TextDecoder();

function toNumber(value: number | { toString(): string } | null | undefined): number {
  return typeof value === 'number' ? value : Number(value?.toString() ?? NaN);
}

function describe(name: string, type: TypeProto | null | undefined): GraphValue {
  if (type?.tensorType) {
    const dims = type.tensorType.shape?.dim?.map((d) => {
      if (d.dimParam) return d.dimParam;
      if (d.dimValue !== null && d.dimValue !== undefined) return toNumber(d.dimValue);
      return null;
    });
    return { name, kind: 'tensor', elemType: elemTypes[type.tensorType.elemType ?? 0] ?? 'other', dims };
  }
  const kind = type?.sequenceType ? 'sequence' : type?.mapType ? 'map' : 'other';
  return { name, kind, elemType: 'other', dims: undefined };
}

function attr(node: NodeProto, name: string) {
  return node.attribute?.find((a) => a.name === name);
}

/** Class labels a classifier / ZipMap node states in `classlabels_strings` or `classlabels_int64s`. */
function classLabelsOf(node: NodeProto): ClassLabel[] | undefined {
  const strings = attr(node, 'classlabels_strings')?.strings;
  if (strings && strings.length > 0) return strings.map((s) => utf8.decode(s));
  const ints = attr(node, 'classlabels_int64s')?.ints;
  if (ints && ints.length > 0) return ints.map(toNumber);
  return undefined;
}

/**
 * Removes each ZipMap whose output is a graph output: its producer now writes the graph output's name
 * directly, as a float tensor [batch, classes]. The output keeps its name, so manifests need no change.
 */
function unzipOutputs(graph: GraphProto, classLabelsByOutput: Map<string, readonly ClassLabel[]>): string[] {
  const nodes = graph.node ?? [];
  const unzipped: string[] = [];
  for (const output of graph.output ?? []) {
    if (!output.name || !output.type?.sequenceType) continue;
    const zipMap = nodes.find(
      (n) => n.opType === 'ZipMap' && n.output?.[0] === output.name && (n.domain ?? '') === 'ai.onnx.ml',
    );
    const source = zipMap?.input?.[0];
    if (!zipMap || !source) continue;
    const labels = classLabelsOf(zipMap);
    if (labels) classLabelsByOutput.set(output.name, labels);
    nodes.splice(nodes.indexOf(zipMap), 1);
    for (const node of nodes) {
      node.output = node.output?.map((o) => (o === source ? output.name! : o)) ?? [];
      node.input = node.input?.map((i) => (i === source ? output.name! : i)) ?? [];
    }
    output.type = { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } };
    unzipped.push(output.name);
  }
  return unzipped;
}

/** Parses model bytes, rewrites ZipMap outputs, and describes inputs and outputs. */
export function inspectModel(bytes: Uint8Array): GraphInfo {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (cause) {
    throw new ModelLoadError(
      'MODEL_CORRUPT',
      `model.onnx is not a valid ONNX protobuf: ${(cause as Error).message}`,
      { cause },
    );
  }
  const graph = model.graph;
  if (!graph || !graph.node || graph.node.length === 0) {
    throw new ModelLoadError('MODEL_CORRUPT', 'model.onnx has no graph (empty or not an ONNX model)');
  }
  const classLabelsByOutput = new Map<string, readonly ClassLabel[]>();
  const unzippedOutputs = unzipOutputs(graph, classLabelsByOutput);

  for (const node of graph.node) {
    const labels = classLabelsOf(node);
    if (!labels || node.opType === 'ZipMap') continue;
    for (const out of node.output ?? [])
      if (!classLabelsByOutput.has(out)) classLabelsByOutput.set(out, labels);
  }

  const initializerNames = new Set((graph.initializer ?? []).map((t) => t.name));
  return {
    inputs: (graph.input ?? [])
      .filter((v) => v.name && !initializerNames.has(v.name))
      .map((v) => describe(v.name!, v.type)),
    outputs: (graph.output ?? []).filter((v) => v.name).map((v) => describe(v.name!, v.type)),
    classLabelsByOutput,
    unzippedOutputs,
    bytes: unzippedOutputs.length > 0 ? onnx.ModelProto.encode(model).finish() : bytes,
  };
}
