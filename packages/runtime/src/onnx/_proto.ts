// The subset of onnx/onnx `onnx/onnx.proto` (proto2, package onnx) that ai-edge reads and writes.
// Field numbers and wire types are those of the upstream file; messages and fields we do not use are
// left out (protobufjs skips unknown fields when decoding). Private to the onnx folder.
import { InputError } from '@aiedge/protocol';
import protobuf from 'protobufjs';

const PROTO_TEXT = `
syntax = "proto2";
package onnx;

message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}

message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0;
    FLOAT = 1;
    INT = 2;
    STRING = 3;
    TENSOR = 4;
    GRAPH = 5;
    FLOATS = 6;
    INTS = 7;
    STRINGS = 8;
    TENSORS = 9;
    GRAPHS = 10;
    SPARSE_TENSOR = 11;
    SPARSE_TENSORS = 12;
  }
  optional string name = 1;
  optional string ref_attr_name = 21;
  optional string doc_string = 13;
  optional AttributeType type = 20;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional GraphProto g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  optional string domain = 7;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}

message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message TensorProto {
  message Segment {
    optional int64 begin = 1;
    optional int64 end = 2;
  }
  enum DataLocation {
    DEFAULT = 0;
    EXTERNAL = 1;
  }
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  optional Segment segment = 3;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional string doc_string = 12;
  optional bytes raw_data = 9;
  repeated StringStringEntryProto external_data = 13;
  optional DataLocation data_location = 14;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  message Sequence {
    optional TypeProto elem_type = 1;
  }
  message Map {
    optional int32 key_type = 1;
    optional TypeProto value_type = 2;
  }
  message Optional {
    optional TypeProto elem_type = 1;
  }
  message SparseTensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
    Sequence sequence_type = 4;
    Map map_type = 5;
    Optional optional_type = 9;
    SparseTensor sparse_tensor_type = 8;
  }
  optional string denotation = 6;
}

// Read-side views of the same wire format that skip what model inspection does not need
// (node lists and initializer contents): decoding them never touches the weights.
message InitializerNameView {
  optional string name = 8;
}

message GraphSignatureView {
  optional string name = 2;
  repeated InitializerNameView initializer = 5;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
}

message ModelSignatureView {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional GraphSignatureView graph = 7;
}
`;

/**
 * An int64 as this module exchanges it with protobufjs: a number when writing (must be a safe
 * integer), a decimal string when reading (so no precision is lost).
 */
export type Int64 = number | string;

/** TensorProto fields used by ai-edge (snake_case as in onnx.proto). */
export interface TensorProtoMessage {
  dims?: Int64[];
  data_type?: number;
  float_data?: number[];
  int32_data?: number[];
  string_data?: Uint8Array[];
  int64_data?: Int64[];
  name?: string;
  doc_string?: string;
  raw_data?: Uint8Array;
  external_data?: { key?: string; value?: string }[];
  data_location?: number;
  double_data?: number[];
  uint64_data?: Int64[];
  segment?: { begin?: Int64; end?: Int64 };
}

/** TensorShapeProto.Dimension. */
export interface DimensionMessage {
  dim_value?: Int64;
  dim_param?: string;
  denotation?: string;
}

/** TypeProto (tensor and sequence kinds modelled; other kinds only detected). */
export interface TypeProtoMessage {
  tensor_type?: { elem_type?: number; shape?: { dim?: DimensionMessage[] } };
  sequence_type?: { elem_type?: TypeProtoMessage };
  map_type?: object;
  optional_type?: object;
  sparse_tensor_type?: object;
  denotation?: string;
}

/** ValueInfoProto. */
export interface ValueInfoProtoMessage {
  name?: string;
  type?: TypeProtoMessage;
  doc_string?: string;
}

/** AttributeProto (without subgraphs). */
export interface AttributeProtoMessage {
  name?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProtoMessage;
  floats?: number[];
  ints?: Int64[];
  strings?: Uint8Array[];
  tensors?: TensorProtoMessage[];
}

/** NodeProto. */
export interface NodeProtoMessage {
  input?: string[];
  output?: string[];
  name?: string;
  op_type?: string;
  domain?: string;
  attribute?: AttributeProtoMessage[];
  doc_string?: string;
}

/** OperatorSetIdProto. */
export interface OperatorSetIdProtoMessage {
  domain?: string;
  version?: Int64;
}

/** GraphProto. */
export interface GraphProtoMessage {
  node?: NodeProtoMessage[];
  name?: string;
  initializer?: TensorProtoMessage[];
  doc_string?: string;
  input?: ValueInfoProtoMessage[];
  output?: ValueInfoProtoMessage[];
  value_info?: ValueInfoProtoMessage[];
}

/** ModelProto. */
export interface ModelProtoMessage {
  ir_version?: Int64;
  opset_import?: OperatorSetIdProtoMessage[];
  producer_name?: string;
  producer_version?: string;
  domain?: string;
  model_version?: Int64;
  doc_string?: string;
  graph?: GraphProtoMessage;
  metadata_props?: { key?: string; value?: string }[];
}

/** ModelProto read through {@link ModelSignatureView}: everything but nodes and weights. */
export interface ModelSignatureMessage {
  ir_version?: Int64;
  opset_import?: OperatorSetIdProtoMessage[];
  producer_name?: string;
  producer_version?: string;
  graph?: {
    name?: string;
    initializer?: { name?: string }[];
    input?: ValueInfoProtoMessage[];
    output?: ValueInfoProtoMessage[];
  };
}

/** TensorProto.DataLocation.EXTERNAL. */
export const DATA_LOCATION_EXTERNAL = 1;

/** AttributeProto.AttributeType values. */
export const AttributeType = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
} as const;

const root = protobuf.parse(PROTO_TEXT, { keepCase: true }).root;
const tensorProto = root.lookupType('onnx.TensorProto');
const modelProto = root.lookupType('onnx.ModelProto');
const modelSignatureView = root.lookupType('onnx.ModelSignatureView');

/** Plain-object conversion: only fields present on the wire, int64 as decimal strings, bytes as views. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: String, defaults: false, arrays: false };

function decodeWith<T>(type: protobuf.Type, bytes: Uint8Array): T {
  return type.toObject(type.decode(bytes), TO_OBJECT) as T;
}

function encodeWith(type: protobuf.Type, message: object): Uint8Array {
  const out = type.encode(message).finish();
  // protobufjs returns a Node Buffer under Node; hand out a plain Uint8Array view of the same memory.
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Decodes one serialized onnx.TensorProto. */
export function decodeTensorMessage(bytes: Uint8Array): TensorProtoMessage {
  return decodeWith<TensorProtoMessage>(tensorProto, bytes);
}

/** Serializes one onnx.TensorProto. */
export function encodeTensorMessage(message: TensorProtoMessage): Uint8Array {
  return encodeWith(tensorProto, message);
}

/** Decodes a whole onnx.ModelProto (weights included, as views into `bytes` when raw). */
export function decodeModelMessage(bytes: Uint8Array): ModelProtoMessage {
  return decodeWith<ModelProtoMessage>(modelProto, bytes);
}

/** Serializes one onnx.ModelProto. */
export function encodeModelMessage(message: ModelProtoMessage): Uint8Array {
  return encodeWith(modelProto, message);
}

/** Decodes a model's header and graph signature without reading nodes or weights. */
export function decodeModelSignature(bytes: Uint8Array): ModelSignatureMessage {
  return decodeWith<ModelSignatureMessage>(modelSignatureView, bytes);
}

/** A wire int64 (decimal string or number) as a JS number; throws when it is not a safe integer. */
export function int64ToNumber(value: Int64, what: string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) {
    throw new InputError(`${what} is ${String(value)}, expected an integer within ±2^53`);
  }
  return n;
}
