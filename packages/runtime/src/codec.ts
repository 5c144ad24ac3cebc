/**
 * Decoding of Open Inference Protocol requests (JSON and Triton's binary tensor extension) into
 * tensors checked against the model, and encoding of responses. Runs in the worker threads.
 */
import {
  DatatypeByteSize,
  ErrorCodes,
  InputError,
  describeValue,
  isDatatype,
  type Datatype,
} from '@aiedge/protocol';
import {
  arrayClassOf,
  bigintRange,
  fromFloat16Bits,
  integerRange,
  toFloat16Bits,
  type TensorArray,
} from './datatypes.js';

/** One input or output of a model; -1 marks a dynamic dimension. */
export interface TensorSpec {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
}

/** The inputs and outputs of a loaded model. */
export interface ModelIO {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

/** A tensor with its contents in the array kind onnxruntime-node uses. */
export interface Tensor {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly data: TensorArray;
}

/** An output the client asked for and whether it wants it in binary form. */
export interface RequestedOutput {
  readonly name: string;
  readonly binary: boolean;
}

/** An inference request decoded and checked against the model. */
export interface DecodedRequest {
  readonly id: string | undefined;
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly RequestedOutput[];
}

/** A response body ready to send. */
export interface EncodedBody {
  readonly body: Uint8Array;
  readonly contentType: string;
  /** Length of the JSON header when binary data follows it. */
  readonly headerLength: number | undefined;
}

/** An output tensor and the form the client asked for. */
export interface ResponseTensor extends Tensor {
  readonly binary: boolean;
}

/** Upper bound of elements one tensor may declare; far above what any body limit lets through. */
const MAX_ELEMENTS = 2 ** 32;

const utf8 = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

const show = (value: unknown): string => describeValue(value);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses the `Inference-Header-Content-Length` header; undefined when absent. */
export function parseHeaderLength(
  value: string | string[] | undefined,
  bodyLength: number,
): number | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || !/^\d{1,15}$/.test(text.trim())) {
    throw new InputError(`Inference-Header-Content-Length is ${show(text)}, expected a non-negative integer`);
  }
  const n = Number(text.trim());
  if (n > bodyLength) {
    throw new InputError(`Inference-Header-Content-Length is ${n} but the body has only ${bodyLength} bytes`);
  }
  return n;
}

/** Parses the JSON part of a request body. */
export function parseJsonBody(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw new InputError('request body is empty, expected a JSON object');
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch (error) {
    throw new InputError(`request body is not valid JSON: ${(error as Error).message}`, {
      code: ErrorCodes.MALFORMED_JSON,
    });
  }
}

/** Checks a request shape against the model's and returns its element count. */
function checkShape(path: string, shape: unknown, spec: TensorSpec): number {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new InputError(`${path}.shape is ${show(shape)}, expected an array of non-negative integers`, {
      code: ErrorCodes.TENSOR_MISMATCH,
    });
  }
  const dims = shape as number[];
  // ONNX Runtime reports an input without shape information as rank 0; it checks the rank itself.
  if (spec.shape.length > 0) {
    if (dims.length !== spec.shape.length) {
      throw new InputError(
        `${path}.shape ${show(dims)} has ${dims.length} dims, input '${spec.name}' expects ${spec.shape.length} (${show(spec.shape)})`,
        { code: ErrorCodes.TENSOR_MISMATCH },
      );
    }
    for (let i = 0; i < dims.length; i++) {
      const want = spec.shape[i] ?? -1;
      if (want >= 0 && dims[i] !== want) {
        throw new InputError(
          `${path}.shape ${show(dims)} does not match input '${spec.name}' shape ${show(spec.shape)} at dim ${i}: ${dims[i]} vs ${want}`,
          { code: ErrorCodes.TENSOR_MISMATCH },
        );
      }
    }
  }
  let count = 1;
  for (const d of dims) {
    count *= d;
    if (count > MAX_ELEMENTS) {
      throw new InputError(`${path}.shape ${show(dims)} declares more than ${MAX_ELEMENTS} elements`, {
        code: ErrorCodes.TENSOR_MISMATCH,
      });
    }
  }
  return count;
}

/** Flattens nested JSON tensor data without recursion (deep nesting cannot overflow the stack). */
function flatten(data: unknown[], path: string): unknown[] {
  let nested = false;
  for (const v of data) {
    if (Array.isArray(v)) {
      nested = true;
      break;
    }
  }
  if (!nested) return data;
  const out: unknown[] = [];
  const stack: Array<{ items: unknown[]; index: number }> = [{ items: data, index: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.index >= top.items.length) {
      stack.pop();
      continue;
    }
    const v = top.items[top.index++];
    if (Array.isArray(v)) {
      if (stack.length > 64) throw new InputError(`${path}.data is nested more than 64 levels deep`);
      stack.push({ items: v, index: 0 });
    } else {
      out.push(v);
    }
  }
  return out;
}

const specialFloats: Readonly<Record<string, number>> = {
  NaN: NaN,
  Infinity: Infinity,
  '-Infinity': -Infinity,
  inf: Infinity,
  '-inf': -Infinity,
  nan: NaN,
};

function toFloat(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return specialFloats[v];
  return undefined;
}

function toBigInt(v: unknown): bigint | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) return BigInt(v);
  return undefined;
}

/** Converts flat JSON values into the typed contents of `datatype`. */
function fromJson(values: readonly unknown[], datatype: Datatype, path: string): TensorArray {
  const n = values.length;
  const bad = (i: number, expected: string): InputError =>
    new InputError(`${path}.data[${i}] is ${show(values[i])}, expected ${expected} for ${datatype}`, {
      code: ErrorCodes.TENSOR_MISMATCH,
    });
  switch (datatype) {
    case 'BYTES': {
      const out: string[] = new Array<string>(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (typeof v !== 'string') throw bad(i, 'a string');
        out[i] = v;
      }
      return out;
    }
    case 'BOOL': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (typeof v !== 'boolean') throw bad(i, 'true or false');
        out[i] = v ? 1 : 0;
      }
      return out;
    }
    case 'FP16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        const v = toFloat(values[i]);
        if (v === undefined) throw bad(i, 'a number');
        const bits = toFloat16Bits(v);
        if ((bits & 0x7fff) === 0x7c00 && Number.isFinite(v)) throw bad(i, 'a number within ±65504');
        out[i] = bits;
      }
      return out;
    }
    case 'FP32':
    case 'FP64': {
      const out = datatype === 'FP32' ? new Float32Array(n) : new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = toFloat(values[i]);
        if (v === undefined) throw bad(i, 'a number');
        if (datatype === 'FP32' && Number.isFinite(v) && !Number.isFinite(Math.fround(v))) {
          throw bad(i, 'a number within ±3.4028234663852886e38');
        }
        out[i] = v;
      }
      return out;
    }
    case 'INT64':
    case 'UINT64': {
      const [lo, hi] = bigintRange[datatype]!;
      const out = datatype === 'INT64' ? new BigInt64Array(n) : new BigUint64Array(n);
      for (let i = 0; i < n; i++) {
        const raw = values[i];
        if (typeof raw === 'number' && Number.isInteger(raw) && !Number.isSafeInteger(raw)) {
          throw bad(i, 'an integer within ±2^53 as a JSON number; send larger values as decimal strings');
        }
        const v = toBigInt(raw);
        if (v === undefined || v < lo || v > hi) throw bad(i, `an integer in ${lo}..${hi}`);
        out[i] = v;
      }
      return out;
    }
    default: {
      const [lo, hi] = integerRange[datatype]!;
      const out = new arrayClassOf[datatype](n) as Exclude<
        TensorArray,
        string[] | BigInt64Array | BigUint64Array
      >;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
          throw bad(i, `an integer in ${lo}..${hi}`);
        }
        out[i] = v;
      }
      return out;
    }
  }
}

/** Reads `count` elements of `datatype` from the binary tensor format. */
function fromBinary(bytes: Uint8Array, datatype: Datatype, count: number, path: string): TensorArray {
  if (datatype === 'BYTES') {
    const out: string[] = [];
    let at = 0;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    while (at < bytes.length) {
      if (at + 4 > bytes.length) {
        throw new InputError(`${path} binary BYTES data is truncated: a 4-byte length prefix is cut off`);
      }
      const len = view.getUint32(at, true);
      at += 4;
      if (at + len > bytes.length) {
        throw new InputError(
          `${path} binary BYTES element ${out.length} declares ${len} bytes but only ${bytes.length - at} remain`,
        );
      }
      out.push(utf8.decode(bytes.subarray(at, at + len)));
      at += len;
      if (out.length > count) break;
    }
    if (out.length !== count) {
      throw new InputError(
        `${path} binary data holds ${out.length === count + 1 ? 'more than ' + count : out.length} BYTES elements, its shape needs ${count}`,
        { code: ErrorCodes.TENSOR_MISMATCH },
      );
    }
    return out;
  }
  const size = DatatypeByteSize[datatype]!;
  if (bytes.length !== count * size) {
    throw new InputError(
      `${path}.parameters.binary_data_size is ${bytes.length} but its shape needs ${count} × ${size} = ${count * size} bytes of ${datatype}`,
      { code: ErrorCodes.TENSOR_MISMATCH },
    );
  }
  const out = new arrayClassOf[datatype](count);
  new Uint8Array(out.buffer).set(bytes);
  if (datatype === 'BOOL') {
    for (let i = 0; i < count; i++) if (out[i] !== 0) out[i] = 1;
  }
  return out;
}

/**
 * Decodes an inference request body (JSON, or JSON header + binary tensors when `headerLength` is
 * set) and checks every input against the model. Throws InputError naming the offending field.
 */
export function decodeRequest(
  body: Uint8Array,
  headerLength: number | undefined,
  io: ModelIO,
): DecodedRequest {
  const jsonPart = headerLength === undefined ? body : body.subarray(0, headerLength);
  const binary = headerLength === undefined ? new Uint8Array(0) : body.subarray(headerLength);
  const request = parseJsonBody(jsonPart);
  if (!isRecord(request)) throw new InputError(`request body is ${show(request)}, expected a JSON object`);

  const { id, inputs, outputs, parameters } = request;
  if (id !== undefined && typeof id !== 'string')
    throw new InputError(`id is ${show(id)}, expected a string`);
  if (parameters !== undefined && !isRecord(parameters)) {
    throw new InputError(`parameters is ${show(parameters)}, expected an object`);
  }
  if (!Array.isArray(inputs)) throw new InputError(`inputs is ${show(inputs)}, expected an array`);

  const specs = new Map(io.inputs.map((s) => [s.name, s]));
  const seen = new Set<string>();
  const decoded: Tensor[] = [];
  let binaryOffset = 0;
  inputs.forEach((input: unknown, i) => {
    const path = `inputs[${i}]`;
    if (!isRecord(input)) throw new InputError(`${path} is ${show(input)}, expected an object`);
    const { name, datatype, shape, data } = input;
    if (typeof name !== 'string') throw new InputError(`${path}.name is ${show(name)}, expected a string`);
    const spec = specs.get(name);
    if (spec === undefined) {
      throw new InputError(
        `${path}.name '${name}' is not an input of this model; expected one of: ${[...specs.keys()].join(', ')}`,
        { code: ErrorCodes.TENSOR_MISMATCH },
      );
    }
    if (seen.has(name)) throw new InputError(`${path}.name '${name}' appears more than once`);
    seen.add(name);
    if (!isDatatype(datatype)) {
      throw new InputError(`${path}.datatype is ${show(datatype)}, expected an OIP datatype such as FP32`);
    }
    if (datatype !== spec.datatype) {
      throw new InputError(`${path}.datatype is ${datatype}, input '${name}' expects ${spec.datatype}`, {
        code: ErrorCodes.TENSOR_MISMATCH,
      });
    }
    const count = checkShape(path, shape, spec);
    const params = input['parameters'];
    if (params !== undefined && !isRecord(params)) {
      throw new InputError(`${path}.parameters is ${show(params)}, expected an object`);
    }
    const binarySize = params?.['binary_data_size'];
    let contents: TensorArray;
    if (binarySize !== undefined) {
      if (headerLength === undefined) {
        throw new InputError(
          `${path}.parameters.binary_data_size is set but the request has no Inference-Header-Content-Length header`,
        );
      }
      if (!Number.isSafeInteger(binarySize) || (binarySize as number) < 0) {
        throw new InputError(
          `${path}.parameters.binary_data_size is ${show(binarySize)}, expected a non-negative integer`,
        );
      }
      if (data !== undefined) throw new InputError(`${path} has both data and binary_data_size; send one`);
      const size = binarySize as number;
      if (binaryOffset + size > binary.length) {
        throw new InputError(
          `${path}.parameters.binary_data_size is ${size} but only ${binary.length - binaryOffset} bytes of binary data remain`,
        );
      }
      contents = fromBinary(binary.subarray(binaryOffset, binaryOffset + size), datatype, count, path);
      binaryOffset += size;
    } else {
      if (!Array.isArray(data)) {
        throw new InputError(`${path}.data is ${show(data)}, expected an array (or binary_data_size)`);
      }
      const flat = flatten(data, path);
      if (flat.length !== count) {
        throw new InputError(
          `${path}.data has ${flat.length} elements but shape ${show(shape)} needs ${count}`,
          { code: ErrorCodes.TENSOR_MISMATCH },
        );
      }
      contents = fromJson(flat, datatype, path);
    }
    decoded.push({ name, datatype, shape: shape as number[], data: contents });
  });
  if (binaryOffset !== binary.length) {
    throw new InputError(
      `the binary part of the body is ${binary.length} bytes but the inputs' binary_data_size add up to ${binaryOffset}`,
    );
  }
  for (const spec of io.inputs) {
    if (!seen.has(spec.name)) {
      throw new InputError(`inputs lacks '${spec.name}', which the model requires`, {
        code: ErrorCodes.TENSOR_MISMATCH,
      });
    }
  }

  const binaryDefault = parameters?.['binary_data_output'];
  if (binaryDefault !== undefined && typeof binaryDefault !== 'boolean') {
    throw new InputError(`parameters.binary_data_output is ${show(binaryDefault)}, expected true or false`);
  }
  const wantBinary = binaryDefault === true;
  let requested: RequestedOutput[];
  if (outputs === undefined) {
    requested = io.outputs.map((o) => ({ name: o.name, binary: wantBinary }));
  } else {
    if (!Array.isArray(outputs)) throw new InputError(`outputs is ${show(outputs)}, expected an array`);
    const names = new Set(io.outputs.map((o) => o.name));
    const chosen = new Set<string>();
    requested = outputs.map((output: unknown, i) => {
      const path = `outputs[${i}]`;
      if (!isRecord(output)) throw new InputError(`${path} is ${show(output)}, expected an object`);
      const { name } = output;
      if (typeof name !== 'string') throw new InputError(`${path}.name is ${show(name)}, expected a string`);
      if (!names.has(name)) {
        throw new InputError(
          `${path}.name '${name}' is not an output of this model; expected one of: ${[...names].join(', ')}`,
        );
      }
      if (chosen.has(name)) throw new InputError(`${path}.name '${name}' appears more than once`);
      chosen.add(name);
      const params = output['parameters'];
      if (params !== undefined && !isRecord(params)) {
        throw new InputError(`${path}.parameters is ${show(params)}, expected an object`);
      }
      const flag = params?.['binary_data'];
      if (flag !== undefined && typeof flag !== 'boolean') {
        throw new InputError(`${path}.parameters.binary_data is ${show(flag)}, expected true or false`);
      }
      return { name, binary: flag ?? wantBinary };
    });
  }
  return { id, inputs: decoded, outputs: requested };
}

function floatJson(v: number): string {
  if (Number.isFinite(v)) return String(v);
  return Number.isNaN(v) ? '"NaN"' : v > 0 ? '"Infinity"' : '"-Infinity"';
}

/** JSON text of a tensor's flat contents. Non-finite floats become "NaN", "Infinity", "-Infinity". */
export function dataToJson(datatype: Datatype, data: TensorArray): string {
  const n = data.length;
  const parts = new Array<string>(n);
  switch (datatype) {
    case 'BYTES':
      for (let i = 0; i < n; i++) parts[i] = JSON.stringify((data as string[])[i]);
      break;
    case 'BOOL':
      for (let i = 0; i < n; i++) parts[i] = (data as Uint8Array)[i] ? 'true' : 'false';
      break;
    case 'FP16':
      for (let i = 0; i < n; i++) parts[i] = floatJson(fromFloat16Bits((data as Uint16Array)[i]!));
      break;
    case 'FP32':
    case 'FP64':
      for (let i = 0; i < n; i++) parts[i] = floatJson((data as Float32Array)[i]!);
      break;
    default:
      for (let i = 0; i < n; i++) parts[i] = String(data[i]);
  }
  return `[${parts.join(',')}]`;
}

/** Bytes of a tensor in the binary tensor format (little-endian; BYTES length-prefixed). */
export function dataToBinary(datatype: Datatype, data: TensorArray): Uint8Array {
  if (datatype !== 'BYTES') {
    const typed = data as Exclude<TensorArray, string[]>;
    return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  }
  const encoded = (data as string[]).map((s) => utf8Encoder.encode(s));
  const total = encoded.reduce((sum, b) => sum + 4 + b.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const b of encoded) {
    view.setUint32(at, b.length, true);
    out.set(b, at + 4);
    at += 4 + b.length;
  }
  return out;
}

/** Encodes an inference response, as JSON or as JSON header + binary tensors. */
export function encodeResponse(response: {
  readonly modelName: string;
  readonly modelVersion: string;
  readonly id: string | undefined;
  readonly outputs: readonly ResponseTensor[];
}): EncodedBody {
  const chunks: Uint8Array[] = [];
  const outputs = response.outputs.map((o) => {
    const head = `{"name":${JSON.stringify(o.name)},"datatype":"${o.datatype}","shape":${JSON.stringify(o.shape)}`;
    if (!o.binary) return `${head},"data":${dataToJson(o.datatype, o.data)}}`;
    const bytes = dataToBinary(o.datatype, o.data);
    chunks.push(bytes);
    return `${head},"parameters":{"binary_data_size":${bytes.length}}}`;
  });
  const id = response.id === undefined ? '' : `,"id":${JSON.stringify(response.id)}`;
  const json = utf8Encoder.encode(
    `{"model_name":${JSON.stringify(response.modelName)},"model_version":${JSON.stringify(response.modelVersion)}${id},"outputs":[${outputs.join(',')}]}`,
  );
  if (chunks.length === 0) return { body: json, contentType: 'application/json', headerLength: undefined };
  const total = chunks.reduce((sum, c) => sum + c.length, json.length);
  const body = new Uint8Array(total);
  body.set(json, 0);
  let at = json.length;
  for (const c of chunks) {
    body.set(c, at);
    at += c.length;
  }
  return { body, contentType: 'application/octet-stream', headerLength: json.length };
}

/** The protocol's error body `{"error": message}`. */
export function errorBody(message: string): Uint8Array {
  return utf8Encoder.encode(JSON.stringify({ error: message }));
}
