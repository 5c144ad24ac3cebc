import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import ort from 'onnxruntime-node';
import {
  decodeModelSignature,
  encodeTensorMessage,
  type TensorProtoMessage,
  type TypeProtoMessage,
} from './_proto.js';
import {
  OnnxDataType,
  decodeTensorProto,
  elementCount,
  encodeTensorProto,
  onnxDataTypeOf,
  ortTensorTypeOf,
  ortTensorTypeOfOnnx,
  type DecodedTensor,
} from './tensor-proto.js';

const FIXTURES = '/work/shared/fixtures/onnx-backend';

function roundTrip(t: DecodedTensor): DecodedTensor {
  return decodeTensorProto(encodeTensorProto(t));
}

describe('OnnxDataType mapping', () => {
  test('every ONNX code maps to an ORT type and back', () => {
    for (const code of Object.values(OnnxDataType)) {
      const type = ortTensorTypeOf[code];
      assert.equal(onnxDataTypeOf[type], code);
      assert.equal(ortTensorTypeOfOnnx(code), type);
    }
    assert.equal(ortTensorTypeOfOnnx(16), undefined);
    assert.equal(ortTensorTypeOfOnnx(0), undefined);
  });
});

describe('encodeTensorProto / decodeTensorProto', () => {
  const samples: DecodedTensor[] = [
    {
      name: 'f32',
      dims: [2, 2],
      type: 'float32',
      data: new Float32Array([1.5, -0, NaN, 3.4028234663852886e38]),
    },
    { name: 'f64', dims: [3], type: 'float64', data: new Float64Array([Math.PI, -1e300, Infinity]) },
    { name: 'i8', dims: [3], type: 'int8', data: new Int8Array([-128, 0, 127]) },
    { name: 'u8', dims: [3], type: 'uint8', data: new Uint8Array([0, 128, 255]) },
    { name: 'i16', dims: [2], type: 'int16', data: new Int16Array([-32768, 32767]) },
    { name: 'u16', dims: [2], type: 'uint16', data: new Uint16Array([0, 65535]) },
    { name: 'i32', dims: [2], type: 'int32', data: new Int32Array([-2147483648, 2147483647]) },
    { name: 'u32', dims: [2], type: 'uint32', data: new Uint32Array([0, 4294967295]) },
    { name: 'i64', dims: [2], type: 'int64', data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]) },
    { name: 'u64', dims: [2], type: 'uint64', data: new BigUint64Array([0n, 2n ** 64n - 1n]) },
    { name: 'b', dims: [4], type: 'bool', data: new Uint8Array([1, 0, 0, 1]) },
    { name: 'f16', dims: [3], type: 'float16', data: new Uint16Array([0x3c00, 0xc000, 0x7c00]) },
    { name: 's', dims: [1, 3], type: 'string', data: ['', 'grüße', '日本語 🎉'] },
    { name: 'scalar', dims: [], type: 'float32', data: new Float32Array([42]) },
    { name: 'empty', dims: [2, 0], type: 'int64', data: new BigInt64Array(0) },
    { name: '', dims: [1], type: 'int32', data: new Int32Array([7]) },
  ];
  for (const t of samples) {
    test(`round-trips ${t.type} ${t.name || '(unnamed)'} [${t.dims.join(', ')}]`, () => {
      assert.deepStrictEqual(roundTrip(t), t);
    });
  }

  test('decoded raw_data is an aligned copy even when the proto bytes sit at an odd offset', () => {
    const bytes = encodeTensorProto({
      name: 'x',
      dims: [3],
      type: 'float64',
      data: new Float64Array([1, 2, 3]),
    });
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const decoded = decodeTensorProto(shifted.subarray(1));
    assert.ok(decoded.data instanceof Float64Array);
    assert.equal(decoded.data.byteOffset, 0);
    assert.deepStrictEqual([...decoded.data], [1, 2, 3]);
    shifted.fill(0);
    assert.deepStrictEqual([...decoded.data], [1, 2, 3], 'decoded data must not alias the input bytes');
  });

  test('encodes typed arrays that are views into a larger buffer', () => {
    const backing = new Float32Array([9, 1, 2, 9]);
    const t: DecodedTensor = { name: 'v', dims: [2], type: 'float32', data: backing.subarray(1, 3) };
    assert.deepStrictEqual([...(roundTrip(t).data as Float32Array)], [1, 2]);
  });

  test('decodes the typed fields of every type', () => {
    const cases: { message: TensorProtoMessage; expected: DecodedTensor['data'] }[] = [
      { message: { data_type: 1, float_data: [1.5, -2] }, expected: new Float32Array([1.5, -2]) },
      { message: { data_type: 11, double_data: [0.1, 1e-300] }, expected: new Float64Array([0.1, 1e-300]) },
      { message: { data_type: 6, int32_data: [-5, 5] }, expected: new Int32Array([-5, 5]) },
      { message: { data_type: 3, int32_data: [-128, 127] }, expected: new Int8Array([-128, 127]) },
      { message: { data_type: 2, int32_data: [0, 255] }, expected: new Uint8Array([0, 255]) },
      { message: { data_type: 5, int32_data: [-300, 300] }, expected: new Int16Array([-300, 300]) },
      { message: { data_type: 4, int32_data: [0, 65535] }, expected: new Uint16Array([0, 65535]) },
      { message: { data_type: 9, int32_data: [0, 1] }, expected: new Uint8Array([0, 1]) },
      {
        message: { data_type: 10, int32_data: [0x3c00, 0xbc00] },
        expected: new Uint16Array([0x3c00, 0xbc00]),
      },
      {
        message: { data_type: 7, int64_data: ['-9223372036854775808', '9007199254740993'] },
        expected: new BigInt64Array([-(2n ** 63n), 9007199254740993n]),
      },
      {
        message: { data_type: 12, uint64_data: [0, 4294967295] },
        expected: new Uint32Array([0, 4294967295]),
      },
      {
        message: { data_type: 13, uint64_data: ['18446744073709551615', 1] },
        expected: new BigUint64Array([2n ** 64n - 1n, 1n]),
      },
      {
        message: { data_type: 8, string_data: [new TextEncoder().encode('héllo'), new Uint8Array(0)] },
        expected: ['héllo', ''],
      },
    ];
    for (const { message, expected } of cases) {
      const decoded = decodeTensorProto(encodeTensorMessage({ name: 't', dims: [2], ...message }));
      assert.deepStrictEqual(decoded.data, expected, `data_type ${message.data_type}`);
      assert.deepStrictEqual(decoded.dims, [2]);
    }
  });

  test('bool data is normalised to 0/1', () => {
    const fromInt32 = decodeTensorProto(
      encodeTensorMessage({ name: 'b', dims: [2], data_type: 9, int32_data: [0, 5] }),
    );
    assert.deepStrictEqual(fromInt32.data, new Uint8Array([0, 1]));
    const fromRaw = decodeTensorProto(
      encodeTensorMessage({ name: 'b', dims: [2], data_type: 9, raw_data: new Uint8Array([2, 0]) }),
    );
    assert.deepStrictEqual(fromRaw.data, new Uint8Array([1, 0]));
  });

  test('rejects external data, naming the tensor and the file', () => {
    const bytes = encodeTensorMessage({
      name: 'weights',
      dims: [2],
      data_type: 1,
      data_location: 1,
      external_data: [{ key: 'location', value: 'weights.bin' }],
    });
    assert.throws(() => decodeTensorProto(bytes), /tensor "weights".*externally.*"weights\.bin"/);
  });

  test('rejects unsupported data types, naming the tensor and the type', () => {
    const bytes = encodeTensorMessage({ name: 'bf', dims: [1], data_type: 16, raw_data: new Uint8Array(2) });
    assert.throws(() => decodeTensorProto(bytes), /tensor "bf": data_type 16 \(BFLOAT16\) is not supported/);
    const none = encodeTensorMessage({ name: 'u', dims: [1], float_data: [1] });
    assert.throws(() => decodeTensorProto(none), /tensor "u": data_type 0 \(UNDEFINED\)/);
  });

  test('rejects an element count that does not match dims, naming both numbers', () => {
    const bytes = encodeTensorMessage({ name: 'x', dims: [2, 3], data_type: 1, float_data: [1, 2, 3, 4, 5] });
    assert.throws(() => decodeTensorProto(bytes), /tensor "x": has 5 elements but dims \[2, 3\] need 6/);
    const scalar = encodeTensorMessage({ name: 's', data_type: 1 });
    assert.throws(() => decodeTensorProto(scalar), /tensor "s": has 0 elements but dims \[\] need 1/);
  });

  test('rejects malformed data fields', () => {
    const odd = encodeTensorMessage({ name: 'r', dims: [1], data_type: 1, raw_data: new Uint8Array(3) });
    assert.throws(
      () => decodeTensorProto(odd),
      /tensor "r": raw_data has 3 bytes, not a multiple of the 4-byte/,
    );
    const wrongField = encodeTensorMessage({ name: 'w', dims: [1], data_type: 6, float_data: [1] });
    assert.throws(
      () => decodeTensorProto(wrongField),
      /tensor "w": int32 data is in float_data, expected int32_data/,
    );
    const both = encodeTensorMessage({
      name: 'd',
      dims: [1],
      data_type: 1,
      float_data: [1],
      raw_data: new Uint8Array(4),
    });
    assert.throws(() => decodeTensorProto(both), /tensor "d": data is in several fields/);
    const rawString = encodeTensorMessage({
      name: 'str',
      dims: [1],
      data_type: 8,
      raw_data: new Uint8Array(1),
    });
    assert.throws(() => decodeTensorProto(rawString), /tensor "str": string tensors must use string_data/);
    const badUtf8 = encodeTensorMessage({
      name: 'u8',
      dims: [1],
      data_type: 8,
      string_data: [new Uint8Array([0xff])],
    });
    assert.throws(() => decodeTensorProto(badUtf8), /tensor "u8": string_data\[0\] is not valid UTF-8/);
    assert.throws(
      () => decodeTensorProto(new Uint8Array([0xff, 0xff, 0xff])),
      /not a valid onnx.TensorProto/,
    );
  });

  test('encode rejects data that does not fit the declared type or dims', () => {
    const f = { name: 'x', dims: [2], type: 'float32' as const };
    assert.throws(
      () => encodeTensorProto({ ...f, data: new Float64Array(2) }),
      /float32 data is Float64Array, expected Float32Array/,
    );
    assert.throws(
      () => encodeTensorProto({ ...f, data: new Float32Array(3) }),
      /has 3 elements but dims \[2\] need 2/,
    );
    assert.throws(
      () => encodeTensorProto({ ...f, dims: [-1], data: new Float32Array(0) }),
      /dims\[0\] is -1/,
    );
    assert.throws(
      () => encodeTensorProto({ name: 'b', dims: [1], type: 'bool', data: new Uint8Array([2]) }),
      /bool data\[0\] is 2, expected 0 or 1/,
    );
    assert.throws(
      () => encodeTensorProto({ name: 's', dims: [1], type: 'string', data: new Uint8Array(1) }),
      /string data is Uint8Array, expected an array of strings/,
    );
  });
});

/** A graph value as the backend tests use it: input_K.pb / output_K.pb follow these lists. */
interface DeclaredValue {
  name: string;
  type: TypeProtoMessage;
}

function declaredValues(modelPath: string): { inputs: DeclaredValue[]; outputs: DeclaredValue[] } {
  const graph = decodeModelSignature(readFileSync(modelPath)).graph ?? {};
  const initializers = new Set((graph.initializer ?? []).map((i) => i.name));
  const toValue = (v: { name?: string; type?: TypeProtoMessage }): DeclaredValue => ({
    name: v.name ?? '',
    type: v.type ?? {},
  });
  return {
    inputs: (graph.input ?? []).filter((v) => !initializers.has(v.name)).map(toValue),
    outputs: (graph.output ?? []).map(toValue),
  };
}

interface FixtureCase {
  dir: string;
  model: string;
  dataSets: string[];
}

function fixtureCases(): FixtureCase[] {
  const cases: FixtureCase[] = [];
  for (const suite of readdirSync(FIXTURES).sort()) {
    for (const name of readdirSync(join(FIXTURES, suite)).sort()) {
      const dir = join(FIXTURES, suite, name);
      const dataSets = readdirSync(dir)
        .filter((d) => d.startsWith('test_data_set_'))
        .sort()
        .map((d) => join(dir, d));
      cases.push({ dir, model: join(dir, 'model.onnx'), dataSets });
    }
  }
  return cases;
}

function pbFiles(dataSet: string, prefix: 'input' | 'output'): string[] {
  return readdirSync(dataSet)
    .filter((f) => f.startsWith(`${prefix}_`) && f.endsWith('.pb'))
    .sort((a, b) => Number(/\d+/.exec(a)?.[0]) - Number(/\d+/.exec(b)?.[0]))
    .map((f) => join(dataSet, f));
}

describe('ONNX backend test data', () => {
  test('every tensor input_*.pb / output_*.pb decodes, matches its model and round-trips', (t) => {
    if (!existsSync(FIXTURES)) {
      t.skip(`ONNX backend fixtures not found at ${FIXTURES}; nothing to decode`);
      return;
    }
    let checked = 0;
    for (const c of fixtureCases()) {
      const declared = declaredValues(c.model);
      for (const dataSet of c.dataSets) {
        for (const [prefix, values] of [
          ['input', declared.inputs],
          ['output', declared.outputs],
        ] as const) {
          pbFiles(dataSet, prefix).forEach((file, k) => {
            const value = values[k];
            assert.ok(value, `${file}: the model declares no ${prefix} #${k}`);
            const tensorType = value.type.tensor_type;
            if (tensorType === undefined) return; // a SequenceProto/MapProto file: not a TensorProto
            const decoded = decodeTensorProto(readFileSync(file));
            assert.equal(decoded.data.length, elementCount(decoded.dims), file);
            assert.equal(
              decoded.type,
              ortTensorTypeOfOnnx(tensorType.elem_type ?? 0),
              `${file}: element type`,
            );
            const declaredDims = tensorType.shape?.dim;
            if (declaredDims !== undefined) {
              assert.equal(decoded.dims.length, declaredDims.length, `${file}: rank`);
              declaredDims.forEach((d, i) => {
                if (d.dim_value !== undefined)
                  assert.equal(decoded.dims[i], Number(d.dim_value), `${file}: dims[${i}]`);
              });
            }
            assert.deepStrictEqual(roundTrip(decoded), decoded, `${file}: round trip`);
            checked++;
          });
        }
      }
    }
    t.diagnostic(`${checked} tensor files checked`);
    assert.ok(checked >= 100, `only ${checked} tensor files checked`);
  });

  test('decoded inputs reproduce the decoded outputs in ONNX Runtime', async (t) => {
    if (!existsSync(FIXTURES)) {
      t.skip(`ONNX backend fixtures not found at ${FIXTURES}; nothing to run`);
      return;
    }
    let ran = 0;
    for (const c of fixtureCases()) {
      let session: ort.InferenceSession;
      try {
        session = await ort.InferenceSession.create(c.model, { logSeverityLevel: 4 });
      } catch {
        continue; // old opsets, training ops or missing locales: the runtime cannot load it here
      }
      try {
        for (const dataSet of c.dataSets) {
          const feeds: Record<string, ort.Tensor> = {};
          pbFiles(dataSet, 'input').forEach((file, k) => {
            const x = decodeTensorProto(readFileSync(file));
            feeds[session.inputNames[k] as string] = new ort.Tensor(x.type, x.data, x.dims);
          });
          const results = await session.run(feeds);
          pbFiles(dataSet, 'output').forEach((file, k) => {
            const expected = decodeTensorProto(readFileSync(file));
            const actual = results[session.outputNames[k] as string];
            assert.ok(actual, `${file}: no output #${k}`);
            assert.deepStrictEqual([...actual.dims], expected.dims, `${file}: dims`);
            assert.equal(actual.type, expected.type, `${file}: type`);
            const a = [...(actual.data as Iterable<number | bigint | string>)];
            const e = [...(expected.data as Iterable<number | bigint | string>)];
            e.forEach((ev, i) => {
              const av = a[i];
              if (typeof ev === 'number' && typeof av === 'number') {
                const tolerance = 1e-4 * Math.max(1, Math.abs(ev));
                assert.ok(
                  Object.is(av, ev) || Math.abs(av - ev) <= tolerance,
                  `${file}[${i}]: got ${av}, expected ${ev}`,
                );
              } else {
                assert.equal(av, ev, `${file}[${i}]`);
              }
            });
          });
          ran++;
        }
      } finally {
        await session.release();
      }
    }
    t.diagnostic(`${ran} data sets ran in ONNX Runtime`);
    assert.ok(ran >= 20, `only ${ran} data sets ran`);
  });
});
