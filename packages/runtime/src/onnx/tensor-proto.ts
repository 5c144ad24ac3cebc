// onnx.TensorProto <-> the typed arrays onnxruntime-node uses.
import { InputError } from '@aiedge/protocol';
import {
  DATA_LOCATION_EXTERNAL,
  decodeTensorMessage,
  encodeTensorMessage,
  int64ToNumber,
  type TensorProtoMessage,
} from './_proto.js';

/** ONNX `TensorProto.DataType` codes of the element types ai-edge supports. */
export const OnnxDataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
} as const;

/** One of the ONNX data type codes in {@link OnnxDataType}. */
export type OnnxDataType = (typeof OnnxDataType)[keyof typeof OnnxDataType];

/** Element type names of onnxruntime-node tensors. */
export type OrtTensorType =
  | 'float32'
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'string'
  | 'bool'
  | 'float16'
  | 'float64'
  | 'uint32'
  | 'uint64';

/** onnxruntime-node element type of each supported ONNX data type. */
export const ortTensorTypeOf: Readonly<Record<OnnxDataType, OrtTensorType>> = Object.freeze({
  [OnnxDataType.FLOAT]: 'float32',
  [OnnxDataType.UINT8]: 'uint8',
  [OnnxDataType.INT8]: 'int8',
  [OnnxDataType.UINT16]: 'uint16',
  [OnnxDataType.INT16]: 'int16',
  [OnnxDataType.INT32]: 'int32',
  [OnnxDataType.INT64]: 'int64',
  [OnnxDataType.STRING]: 'string',
  [OnnxDataType.BOOL]: 'bool',
  [OnnxDataType.FLOAT16]: 'float16',
  [OnnxDataType.DOUBLE]: 'float64',
  [OnnxDataType.UINT32]: 'uint32',
  [OnnxDataType.UINT64]: 'uint64',
});

/** ONNX data type code of each onnxruntime-node element type. */
export const onnxDataTypeOf: Readonly<Record<OrtTensorType, OnnxDataType>> = Object.freeze({
  float32: OnnxDataType.FLOAT,
  uint8: OnnxDataType.UINT8,
  int8: OnnxDataType.INT8,
  uint16: OnnxDataType.UINT16,
  int16: OnnxDataType.INT16,
  int32: OnnxDataType.INT32,
  int64: OnnxDataType.INT64,
  string: OnnxDataType.STRING,
  bool: OnnxDataType.BOOL,
  float16: OnnxDataType.FLOAT16,
  float64: OnnxDataType.DOUBLE,
  uint32: OnnxDataType.UINT32,
  uint64: OnnxDataType.UINT64,
});

/** The element type for an ONNX data type code, or undefined when ai-edge does not support it. */
export function ortTensorTypeOfOnnx(dataType: number): OrtTensorType | undefined {
  return Object.hasOwn(ortTensorTypeOf, dataType) ? ortTensorTypeOf[dataType as OnnxDataType] : undefined;
}

/** Tensor contents as onnxruntime-node holds them (bool as 0/1 bytes, float16 as raw half bits). */
export type DecodedTensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

/** A tensor read from or written to an onnx.TensorProto. */
export interface DecodedTensor {
  /** Tensor name ('' when the proto has none). */
  name: string;
  /** Shape; [] for a scalar. */
  dims: number[];
  /** Element type. */
  type: OrtTensorType;
  /** Elements in row-major order; the array kind follows `type` (see {@link DecodedTensorData}). */
  data: DecodedTensorData;
}

type NumericType = Exclude<OrtTensorType, 'string'>;
type NumericArrayConstructor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

const arrayClassOf: Readonly<Record<NumericType, NumericArrayConstructor>> = {
  float32: Float32Array,
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  bool: Uint8Array,
  float16: Uint16Array,
  float64: Float64Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
};

/** The typed field of TensorProto that carries each type when raw_data is not used. */
const typedFieldOf: Readonly<Record<OrtTensorType, keyof TensorProtoMessage>> = {
  float32: 'float_data',
  uint8: 'int32_data',
  int8: 'int32_data',
  uint16: 'int32_data',
  int16: 'int32_data',
  int32: 'int32_data',
  int64: 'int64_data',
  string: 'string_data',
  bool: 'int32_data',
  float16: 'int32_data',
  float64: 'double_data',
  uint32: 'uint64_data',
  uint64: 'uint64_data',
};

const DATA_FIELDS = [
  'raw_data',
  'float_data',
  'int32_data',
  'string_data',
  'int64_data',
  'double_data',
  'uint64_data',
] as const satisfies readonly (keyof TensorProtoMessage)[];

/** Names of the ONNX data types ai-edge does not support, for error messages. */
const unsupportedTypeNames: Readonly<Record<number, string>> = {
  0: 'UNDEFINED',
  14: 'COMPLEX64',
  15: 'COMPLEX128',
  16: 'BFLOAT16',
  17: 'FLOAT8E4M3FN',
  18: 'FLOAT8E4M3FNUZ',
  19: 'FLOAT8E5M2',
  20: 'FLOAT8E5M2FNUZ',
  21: 'UINT4',
  22: 'INT4',
  23: 'FLOAT4E2M1',
};

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

function label(name: string | undefined): string {
  return name ? `tensor "${name}"` : 'unnamed tensor';
}

/** Number of elements of a shape; a scalar ([]) has one. */
export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Reverses the bytes of each `size`-byte element in place (little- <-> big-endian). */
function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

function fromRawData(raw: Uint8Array, type: NumericType, what: string): Exclude<DecodedTensorData, string[]> {
  const Ctor = arrayClassOf[type];
  const size = Ctor.BYTES_PER_ELEMENT;
  if (raw.byteLength % size !== 0) {
    throw new InputError(
      `${what}: raw_data has ${raw.byteLength} bytes, not a multiple of the ${size}-byte ${type} element`,
    );
  }
  // Copy into a fresh, aligned buffer: the proto's bytes may sit at any offset of a larger buffer.
  const copy = new Uint8Array(raw.byteLength);
  copy.set(raw);
  if (!LITTLE_ENDIAN) swapBytes(copy, size);
  const out = new Ctor(copy.buffer, 0, raw.byteLength / size);
  if (type === 'bool') normalizeBool(out as Uint8Array);
  return out;
}

function normalizeBool(values: Uint8Array): void {
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) values[i] = 1;
}

function toBigInts(values: readonly (number | string)[]): bigint[] {
  return values.map((v) => BigInt(v));
}

function fromTypedField(message: TensorProtoMessage, type: OrtTensorType, what: string): DecodedTensorData {
  switch (type) {
    case 'float32':
      return Float32Array.from(message.float_data ?? []);
    case 'float64':
      return Float64Array.from(message.double_data ?? []);
    case 'int64':
      return BigInt64Array.from(toBigInts(message.int64_data ?? []));
    case 'uint64':
      return BigUint64Array.from(toBigInts(message.uint64_data ?? []));
    case 'uint32':
      return Uint32Array.from(message.uint64_data ?? [], (v) => Number(v));
    case 'bool':
      return Uint8Array.from(message.int32_data ?? [], (v) => (v === 0 ? 0 : 1));
    case 'string':
      return (message.string_data ?? []).map((bytes, i) => {
        try {
          return utf8Decoder.decode(bytes);
        } catch (error) {
          throw new InputError(`${what}: string_data[${i}] is not valid UTF-8`, { cause: error });
        }
      });
    default:
      // int32, int16, int8, uint16, uint8 and float16 (raw half bits) all travel in int32_data.
      return (arrayClassOf[type] as Int32ArrayConstructor).from(message.int32_data ?? []);
  }
}

function isPresent(message: TensorProtoMessage, field: (typeof DATA_FIELDS)[number]): boolean {
  const value = message[field];
  return value !== undefined && value.length > 0;
}

/** Converts a decoded TensorProto message to a {@link DecodedTensor}; `what` prefixes error messages. */
export function tensorFromMessage(message: TensorProtoMessage, what = label(message.name)): DecodedTensor {
  if (message.data_location === DATA_LOCATION_EXTERNAL || (message.external_data?.length ?? 0) > 0) {
    const location = message.external_data?.find((e) => e.key === 'location')?.value;
    throw new InputError(
      `${what}: data is stored externally${location === undefined ? '' : ` in "${location}"`}, ` +
        'which is not supported; embed the data in the proto',
    );
  }
  if (message.segment !== undefined) {
    throw new InputError(`${what}: segmented tensors (TensorProto.segment) are not supported`);
  }
  const dataType = message.data_type ?? 0;
  const type = ortTensorTypeOfOnnx(dataType);
  if (type === undefined) {
    const known = unsupportedTypeNames[dataType];
    throw new InputError(
      `${what}: data_type ${dataType}${known === undefined ? '' : ` (${known})`} is not supported; ` +
        `expected one of ${Object.values(OnnxDataType).join(', ')}`,
    );
  }
  const dims = (message.dims ?? []).map((d, i) => {
    const n = int64ToNumber(d, `${what}: dims[${i}]`);
    if (n < 0) throw new InputError(`${what}: dims[${i}] is ${n}, expected a size >= 0`);
    return n;
  });
  const present = DATA_FIELDS.filter((f) => isPresent(message, f));
  if (present.length > 1) {
    throw new InputError(`${what}: data is in several fields (${present.join(', ')}), expected one`);
  }
  const field = present[0];
  const expected = typedFieldOf[type];
  let data: DecodedTensorData;
  if (field === 'raw_data') {
    if (type === 'string') {
      throw new InputError(`${what}: string tensors must use string_data, not raw_data`);
    }
    data = fromRawData(message.raw_data as Uint8Array, type, what);
  } else {
    if (field !== undefined && field !== expected) {
      throw new InputError(
        `${what}: ${type} data is in ${field}, expected ${expected}` +
          (type === 'string' ? '' : ' or raw_data'),
      );
    }
    data = fromTypedField(message, type, what);
  }
  const count = elementCount(dims);
  if (data.length !== count) {
    throw new InputError(`${what}: has ${data.length} elements but dims [${dims.join(', ')}] need ${count}`);
  }
  return { name: message.name ?? '', dims, type, data };
}

/** Decodes one serialized onnx.TensorProto into the arrays onnxruntime-node uses. */
export function decodeTensorProto(bytes: Uint8Array): DecodedTensor {
  let message: TensorProtoMessage;
  try {
    message = decodeTensorMessage(bytes);
  } catch (error) {
    throw new InputError(`not a valid onnx.TensorProto (${bytes.byteLength} bytes): ${String(error)}`, {
      cause: error,
    });
  }
  return tensorFromMessage(message);
}

function isArrayOfKind(data: DecodedTensorData, type: OrtTensorType): boolean {
  if (type === 'string') return Array.isArray(data) && data.every((s) => typeof s === 'string');
  const Ctor = arrayClassOf[type];
  return data instanceof Ctor;
}

function arrayKindName(data: unknown): string {
  if (Array.isArray(data)) return 'Array';
  return (data as { constructor?: { name?: string } } | null)?.constructor?.name ?? typeof data;
}

/** Little-endian bytes of a typed array: a view when the host is little-endian, else a swapped copy. */
function rawBytesOf(data: Exclude<DecodedTensorData, string[]>): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN || data.BYTES_PER_ELEMENT === 1) return view;
  const copy = Uint8Array.from(view);
  swapBytes(copy, data.BYTES_PER_ELEMENT);
  return copy;
}

/**
 * Checks a {@link DecodedTensor} and converts it to a TensorProto message (numbers in raw_data,
 * strings in string_data); `what` prefixes error messages. Numeric data is not copied.
 */
export function tensorToMessage(tensor: DecodedTensor, what = label(tensor.name)): TensorProtoMessage {
  const { name, dims, type, data } = tensor;
  if (!Object.hasOwn(onnxDataTypeOf, type)) {
    throw new InputError(
      `${what}: type is ${JSON.stringify(type)}, expected one of ${Object.keys(onnxDataTypeOf).join(', ')}`,
    );
  }
  dims.forEach((d, i) => {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new InputError(`${what}: dims[${i}] is ${d}, expected an integer >= 0`);
    }
  });
  if (!isArrayOfKind(data, type)) {
    const expected = type === 'string' ? 'an array of strings' : arrayClassOf[type].name;
    throw new InputError(`${what}: ${type} data is ${arrayKindName(data)}, expected ${expected}`);
  }
  const count = elementCount(dims);
  if (data.length !== count) {
    throw new InputError(`${what}: has ${data.length} elements but dims [${dims.join(', ')}] need ${count}`);
  }
  const message: TensorProtoMessage = { dims: [...dims], data_type: onnxDataTypeOf[type] };
  if (name !== '') message.name = name;
  if (Array.isArray(data)) {
    message.string_data = data.map((s) => utf8Encoder.encode(s));
  } else {
    if (type === 'bool') {
      const bytes = data as Uint8Array;
      const bad = bytes.findIndex((v) => v > 1);
      if (bad >= 0) throw new InputError(`${what}: bool data[${bad}] is ${bytes[bad]}, expected 0 or 1`);
    }
    message.raw_data = rawBytesOf(data);
  }
  return message;
}

/** Serializes a tensor as onnx.TensorProto (raw_data for numbers, string_data for strings). */
export function encodeTensorProto(tensor: DecodedTensor): Uint8Array {
  return encodeTensorMessage(tensorToMessage(tensor));
}
