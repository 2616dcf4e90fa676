/**
 * A small ONNX graph builder on onnx-proto, for the demo model's export and for the test suite's models.
 * It writes what skl2onnx / onnxmltools write: ai.onnx.ml operators, ZipMap outputs, named inputs.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export const DataType = onnx.TensorProto.DataType;
export type ElemType = 'float' | 'double' | 'int64' | 'int32' | 'string' | 'bool';

const elemTypeCode: Record<ElemType, number> = {
  float: DataType.FLOAT,
  double: DataType.DOUBLE,
  int64: DataType.INT64,
  int32: DataType.INT32,
  string: DataType.STRING,
  bool: DataType.BOOL,
};

/** A dimension: a fixed size, or a symbolic name (dynamic, e.g. the batch). */
export type Dim = number | string;

export type AttrValue = number | string | number[] | string[] | { ints: number[] } | { floats: number[] };

export interface NodeSpec {
  readonly op: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly domain?: string;
  readonly name?: string;
  readonly attrs?: Record<string, AttrValue>;
}

export interface ValueSpec {
  readonly name: string;
  /** A tensor value, or a ZipMap-style sequence of maps. */
  readonly type: { tensor: ElemType; shape?: readonly Dim[] } | { seqMap: { key: 'string' | 'int64' } };
}

export interface ModelSpec {
  readonly inputs: readonly ValueSpec[];
  readonly outputs: readonly ValueSpec[];
  readonly nodes: readonly NodeSpec[];
  readonly initializers?: readonly {
    name: string;
    type: ElemType;
    dims: readonly number[];
    values: number[];
  }[];
  readonly graphName?: string;
  readonly producer?: string;
  readonly opset?: number;
  readonly mlOpset?: number;
}

function typeProto(type: ValueSpec['type']): onnxProto.onnx.ITypeProto {
  if ('tensor' in type) {
    return {
      tensorType: {
        elemType: elemTypeCode[type.tensor],
        ...(type.shape
          ? {
              shape: {
                dim: type.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
              },
            }
          : {}),
      },
    };
  }
  return {
    sequenceType: {
      elemType: {
        mapType: {
          keyType: type.seqMap.key === 'string' ? DataType.STRING : DataType.INT64,
          valueType: { tensorType: { elemType: DataType.FLOAT } },
        },
      },
    },
  };
}

const utf8 = new TextEncoder();

function attribute(name: string, value: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return { name, type: T.STRING, s: utf8.encode(value) };
  if (typeof value === 'number') {
    return Number.isInteger(value) && !Object.is(value, -0) && !name.startsWith('f_')
      ? { name, type: T.INT, i: value }
      : { name, type: T.FLOAT, f: value };
  }
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === 'string')) {
      return { name, type: T.STRINGS, strings: (value as string[]).map((v) => utf8.encode(v)) };
    }
    throw new Error(`attribute ${name}: numeric arrays must say {ints} or {floats}`);
  }
  if ('ints' in value) return { name, type: T.INTS, ints: value.ints };
  return { name, type: T.FLOATS, floats: value.floats };
}

/** A float scalar attribute (a whole number would otherwise be written as INT). */
export function floatAttr(value: number): { floats: number[] } & { scalar: true } {
  return Object.assign({ floats: [value] }, { scalar: true as const });
}

function nodeProto(spec: NodeSpec, index: number): onnxProto.onnx.INodeProto {
  const T = onnx.AttributeProto.AttributeType;
  return {
    opType: spec.op,
    domain: spec.domain ?? '',
    name: spec.name ?? `${spec.op}_${index}`,
    input: [...spec.inputs],
    output: [...spec.outputs],
    attribute: Object.entries(spec.attrs ?? {}).map(([name, value]) => {
      if (typeof value === 'object' && !Array.isArray(value) && 'scalar' in value) {
        return { name, type: T.FLOAT, f: (value as { floats: number[] }).floats[0] };
      }
      return attribute(name, value);
    }),
  };
}

function initializer(init: NonNullable<ModelSpec['initializers']>[number]): onnxProto.onnx.ITensorProto {
  const base = { name: init.name, dims: [...init.dims], dataType: elemTypeCode[init.type] };
  switch (init.type) {
    case 'float':
      return { ...base, floatData: init.values };
    case 'double':
      return { ...base, doubleData: init.values };
    case 'int64':
      return { ...base, int64Data: init.values };
    case 'int32':
    case 'bool':
      return { ...base, int32Data: init.values };
    default:
      throw new Error(`initializer ${init.name}: type ${init.type} not supported`);
  }
}

/** Encodes a model to ONNX protobuf bytes. */
export function buildModel(spec: ModelSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: spec.producer ?? 'tandem-onnx-builder',
    producerVersion: '1',
    opsetImport: [
      { domain: '', version: spec.opset ?? 15 },
      { domain: 'ai.onnx.ml', version: spec.mlOpset ?? 3 },
    ],
    graph: {
      name: spec.graphName ?? 'graph',
      input: spec.inputs.map((v) => ({ name: v.name, type: typeProto(v.type) })),
      output: spec.outputs.map((v) => ({ name: v.name, type: typeProto(v.type) })),
      node: spec.nodes.map(nodeProto),
      initializer: (spec.initializers ?? []).map(initializer),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}
