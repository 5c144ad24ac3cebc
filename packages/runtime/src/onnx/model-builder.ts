// A small typed writer of ONNX models, and a reader of their signature (no ONNX Runtime needed).
import { InputError } from '@aiedge/protocol';
import {
  AttributeType,
  decodeModelSignature,
  encodeModelMessage,
  int64ToNumber,
  type AttributeProtoMessage,
  type DimensionMessage,
  type ModelSignatureMessage,
  type NodeProtoMessage,
  type TypeProtoMessage,
  type ValueInfoProtoMessage,
} from './_proto.js';
import {
  onnxDataTypeOf,
  ortTensorTypeOfOnnx,
  tensorToMessage,
  type DecodedTensor,
  type OrtTensorType,
} from './tensor-proto.js';

/** Default opset of the ONNX (default) domain written by {@link encodeModel}. */
export const DEFAULT_OPSET = 17;
/** Default IR version written by {@link encodeModel}. */
export const DEFAULT_IR_VERSION = 8;
/** Default producer name written by {@link encodeModel}. */
export const DEFAULT_PRODUCER_NAME = 'aiedge';

/**
 * A graph input or output: a tensor of `type` with `shape`. A number is a fixed dimension, a
 * non-empty string a named dynamic dimension (dim_param), '' an anonymous dynamic dimension;
 * `null` means the rank itself is unknown.
 */
export interface ValueInfoSpec {
  /** Value name. */
  name: string;
  /** Element type. */
  type: OrtTensorType;
  /** Dimensions (see the interface comment); [] for a scalar. */
  shape: (number | string)[] | null;
}

/**
 * A node attribute. Numbers are always tagged so ints and floats cannot be confused
 * (`{ int: 1 }` vs `{ float: 1 }`); a bare string is a string attribute.
 */
export type AttributeValue =
  | string
  | { readonly int: number }
  | { readonly float: number }
  | { readonly string: string }
  | { readonly ints: readonly number[] }
  | { readonly floats: readonly number[] }
  | { readonly strings: readonly string[] }
  | { readonly tensor: DecodedTensor };

/** One operator invocation in the graph (nodes must be listed in topological order). */
export interface NodeSpec {
  /** Operator name, e.g. 'MatMul'. */
  opType: string;
  /** Input value names; '' skips an optional input. */
  inputs: string[];
  /** Output value names. */
  outputs: string[];
  /** Node name (optional, informative). */
  name?: string;
  /** Operator set domain; '' (default) is the ONNX domain. */
  domain?: string;
  /** Attributes by name (written sorted by name). */
  attributes?: Readonly<Record<string, AttributeValue>>;
}

/** An operator set the model imports. */
export interface OpsetImport {
  /** Domain; '' is the ONNX domain. */
  domain: string;
  /** Opset version. */
  version: number;
}

/** Everything {@link encodeModel} needs to write a one-graph ONNX model. */
export interface ModelSpec {
  /** ModelProto.producer_name (default 'aiedge'). */
  producerName?: string;
  /** ModelProto.producer_version (omitted by default). */
  producerVersion?: string;
  /** Opset version of the ONNX domain (default 17). */
  opset?: number;
  /** Opsets of other domains used by nodes with a `domain`. */
  extraOpsets?: OpsetImport[];
  /** ModelProto.ir_version (default 8). */
  irVersion?: number;
  /** GraphProto.name. */
  graphName: string;
  /** Graph inputs (initializers are not repeated here). */
  inputs: ValueInfoSpec[];
  /** Graph outputs. */
  outputs: ValueInfoSpec[];
  /** Constant tensors (weights); each needs a unique name. */
  initializers: DecodedTensor[];
  /** Nodes in topological order. */
  nodes: NodeSpec[];
}

/** What {@link readModelInfo} reports about a model. */
export interface ModelInfo {
  /** ModelProto.ir_version. */
  irVersion: number;
  /** Opset version of the ONNX domain ('' or 'ai.onnx'); 0 when the model imports none. */
  opsetVersion: number;
  /** ModelProto.producer_name ('' when absent). */
  producerName: string;
  /** Graph inputs a caller must feed (inputs that are also initializers are left out). */
  inputs: ValueInfoSpec[];
  /** Graph outputs. */
  outputs: ValueInfoSpec[];
}

const utf8 = new TextEncoder();

function checkVersion(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new InputError(`${what} is ${value}, expected an integer >= 1`);
  }
  return value;
}

function checkName(value: string, what: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new InputError(`${what} is ${JSON.stringify(value)}, expected a non-empty string`);
  }
  return value;
}

function typeMessage(spec: ValueInfoSpec, what: string): TypeProtoMessage {
  if (!Object.hasOwn(onnxDataTypeOf, spec.type)) {
    throw new InputError(
      `${what}.type is ${JSON.stringify(spec.type)}, expected one of ${Object.keys(onnxDataTypeOf).join(', ')}`,
    );
  }
  const tensor: NonNullable<TypeProtoMessage['tensor_type']> = { elem_type: onnxDataTypeOf[spec.type] };
  if (spec.shape !== null) {
    tensor.shape = {
      dim: spec.shape.map((d, i): DimensionMessage => {
        if (typeof d === 'string') return d === '' ? {} : { dim_param: d };
        if (!Number.isSafeInteger(d) || d < 0) {
          throw new InputError(`${what}.shape[${i}] is ${d}, expected an integer >= 0 or a dimension name`);
        }
        return { dim_value: d };
      }),
    };
  }
  return { tensor_type: tensor };
}

function valueInfoMessage(spec: ValueInfoSpec, what: string): ValueInfoProtoMessage {
  return { name: checkName(spec.name, `${what}.name`), type: typeMessage(spec, what) };
}

function checkInt(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new InputError(`${what} is ${String(value)}, expected a safe integer`);
  }
  return value;
}

function checkFloat(value: unknown, what: string): number {
  if (typeof value !== 'number') throw new InputError(`${what} is ${String(value)}, expected a number`);
  return value;
}

function attributeMessage(name: string, value: AttributeValue, what: string): AttributeProtoMessage {
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: utf8.encode(value) };
  if (typeof value !== 'object' || value === null) {
    throw new InputError(
      `${what} is ${String(value)}, expected a string or one of {int}, {float}, {string}, {ints}, {floats}, {strings}, {tensor}`,
    );
  }
  const keys = Object.keys(value);
  if (keys.length !== 1) {
    throw new InputError(
      `${what} has keys [${keys.join(', ')}], expected exactly one tag such as "int" or "floats"`,
    );
  }
  if ('int' in value) return { name, type: AttributeType.INT, i: checkInt(value.int, `${what}.int`) };
  if ('float' in value)
    return { name, type: AttributeType.FLOAT, f: checkFloat(value.float, `${what}.float`) };
  if ('string' in value) return { name, type: AttributeType.STRING, s: utf8.encode(value.string) };
  if ('ints' in value) {
    return {
      name,
      type: AttributeType.INTS,
      ints: value.ints.map((v, i) => checkInt(v, `${what}.ints[${i}]`)),
    };
  }
  if ('floats' in value) {
    const floats = value.floats.map((v, i) => checkFloat(v, `${what}.floats[${i}]`));
    return { name, type: AttributeType.FLOATS, floats };
  }
  if ('strings' in value) {
    return { name, type: AttributeType.STRINGS, strings: value.strings.map((s) => utf8.encode(s)) };
  }
  if ('tensor' in value) {
    return { name, type: AttributeType.TENSOR, t: tensorToMessage(value.tensor, `${what}.tensor`) };
  }
  throw new InputError(`${what} has the unknown tag "${keys[0] ?? ''}"`);
}

function nodeMessage(node: NodeSpec, what: string, defined: Set<string>): NodeProtoMessage {
  checkName(node.opType, `${what}.opType`);
  node.inputs.forEach((input, i) => {
    if (input !== '' && !defined.has(input)) {
      throw new InputError(
        `${what}.inputs[${i}] is "${input}", which is not a graph input, initializer or output of an earlier node`,
      );
    }
  });
  node.outputs.forEach((output, i) => {
    checkName(output, `${what}.outputs[${i}]`);
    if (defined.has(output)) throw new InputError(`${what}.outputs[${i}] "${output}" is already defined`);
    defined.add(output);
  });
  const message: NodeProtoMessage = {
    input: [...node.inputs],
    output: [...node.outputs],
    op_type: node.opType,
  };
  if (node.name !== undefined) message.name = node.name;
  if (node.domain !== undefined && node.domain !== '') message.domain = node.domain;
  const attributes = node.attributes ?? {};
  const names = Object.keys(attributes).sort();
  if (names.length > 0) {
    message.attribute = names.map((name) =>
      attributeMessage(name, attributes[name] as AttributeValue, `${what}.attributes.${name}`),
    );
  }
  return message;
}

/** Writes `spec` as a serialized onnx.ModelProto; the same spec always gives the same bytes. */
export function encodeModel(spec: ModelSpec): Uint8Array {
  const opset = checkVersion(spec.opset ?? DEFAULT_OPSET, 'opset');
  const irVersion = checkVersion(spec.irVersion ?? DEFAULT_IR_VERSION, 'irVersion');
  checkName(spec.graphName, 'graphName');

  const defined = new Set<string>();
  const define = (name: string, what: string): void => {
    if (defined.has(name)) throw new InputError(`${what} "${name}" is already defined`);
    defined.add(name);
  };
  const inputs = spec.inputs.map((v, i) => valueInfoMessage(v, `inputs[${i}]`));
  spec.inputs.forEach((v, i) => define(v.name, `inputs[${i}].name`));
  const initializers = spec.initializers.map((t, i) => {
    const what = `initializers[${i}]`;
    define(checkName(t.name, `${what}.name`), `${what}.name`);
    return tensorToMessage(t, `${what} "${t.name}"`);
  });
  const nodes = spec.nodes.map((n, i) =>
    nodeMessage(n, `nodes[${i}]${n.name ? ` "${n.name}"` : ''}`, defined),
  );
  const outputs = spec.outputs.map((v, i) => {
    const what = `outputs[${i}]`;
    const message = valueInfoMessage(v, what);
    if (!defined.has(v.name)) {
      throw new InputError(`${what}.name is "${v.name}", which no node, input or initializer defines`);
    }
    return message;
  });

  const opsetImport = [{ domain: '', version: opset }];
  const domains = new Set(['']);
  (spec.extraOpsets ?? []).forEach((o, i) => {
    if (domains.has(o.domain))
      throw new InputError(`extraOpsets[${i}].domain "${o.domain}" is imported twice`);
    domains.add(o.domain);
    opsetImport.push({ domain: o.domain, version: checkVersion(o.version, `extraOpsets[${i}].version`) });
  });
  spec.nodes.forEach((n, i) => {
    if (n.domain !== undefined && !domains.has(n.domain) && n.domain !== 'ai.onnx') {
      throw new InputError(`nodes[${i}].domain is "${n.domain}", which extraOpsets does not import`);
    }
  });

  return encodeModelMessage({
    ir_version: irVersion,
    opset_import: opsetImport,
    producer_name: spec.producerName ?? DEFAULT_PRODUCER_NAME,
    ...(spec.producerVersion === undefined ? {} : { producer_version: spec.producerVersion }),
    graph: { node: nodes, name: spec.graphName, initializer: initializers, input: inputs, output: outputs },
  });
}

function valueInfoSpecOf(value: ValueInfoProtoMessage, what: string): ValueInfoSpec {
  const name = value.name ?? '';
  const label = `${what} "${name}"`;
  const type = value.type ?? {};
  const tensor = type.tensor_type;
  if (tensor === undefined) {
    const kind =
      type.sequence_type !== undefined
        ? 'a sequence'
        : type.map_type !== undefined
          ? 'a map'
          : type.optional_type !== undefined
            ? 'an optional'
            : type.sparse_tensor_type !== undefined
              ? 'a sparse tensor'
              : 'of no type';
    throw new InputError(`${label} is ${kind}; only dense tensors are supported`);
  }
  const elemType = tensor.elem_type ?? 0;
  const ortType = ortTensorTypeOfOnnx(elemType);
  if (ortType === undefined) {
    throw new InputError(`${label} has element type ${elemType}, which is not supported`);
  }
  const shape =
    tensor.shape === undefined
      ? null
      : (tensor.shape.dim ?? []).map((d, i) =>
          d.dim_value !== undefined
            ? int64ToNumber(d.dim_value, `${label} shape[${i}]`)
            : (d.dim_param ?? ''),
        );
  return { name, type: ortType, shape };
}

/** Reads a model's versions, producer and tensor signature without decoding its nodes or weights. */
export function readModelInfo(bytes: Uint8Array): ModelInfo {
  let model: ModelSignatureMessage;
  try {
    model = decodeModelSignature(bytes);
  } catch (error) {
    throw new InputError(`not a valid onnx.ModelProto (${bytes.byteLength} bytes): ${String(error)}`, {
      cause: error,
    });
  }
  if (model.ir_version === undefined || model.graph === undefined) {
    throw new InputError(
      `not an ONNX model (${bytes.byteLength} bytes): ${model.ir_version === undefined ? 'ir_version' : 'graph'} is missing`,
    );
  }
  const irVersion = int64ToNumber(model.ir_version, 'ir_version');
  const onnxOpset = (model.opset_import ?? []).find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  const opsetVersion =
    onnxOpset?.version === undefined ? 0 : int64ToNumber(onnxOpset.version, 'opset_import.version');
  const initializerNames = new Set((model.graph.initializer ?? []).map((t) => t.name ?? ''));
  const inputs = (model.graph.input ?? [])
    .map((v, i) => ({ v, i }))
    .filter(({ v }) => !initializerNames.has(v.name ?? ''))
    .map(({ v, i }) => valueInfoSpecOf(v, `graph input[${i}]`));
  const outputs = (model.graph.output ?? []).map((v, i) => valueInfoSpecOf(v, `graph output[${i}]`));
  return { irVersion, opsetVersion, producerName: model.producer_name ?? '', inputs, outputs };
}
