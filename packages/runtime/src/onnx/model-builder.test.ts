import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import ort from 'onnxruntime-node';
import { decodeModelMessage, encodeModelMessage } from './_proto.js';
import { encodeModel, readModelInfo, type AttributeValue, type ModelSpec } from './model-builder.js';

const MNIST = '/work/shared/fixtures/models/onnx-mnist/1/mnist.onnx';
const SEQUENCE_MODEL = '/work/shared/fixtures/onnx-backend/simple/test_sequence_model1/model.onnx';

/** x [rows, cols] → Transpose(perm) → LeakyRelu(alpha) → y [cols, rows]. */
function transposeSpec(attributes: { alpha: AttributeValue; perm: AttributeValue }): ModelSpec {
  return {
    graphName: 'transpose-leaky',
    inputs: [{ name: 'x', type: 'float32', shape: ['rows', 3] }],
    outputs: [{ name: 'y', type: 'float32', shape: [3, 'rows'] }],
    initializers: [],
    nodes: [
      { opType: 'Transpose', inputs: ['x'], outputs: ['t'], attributes: { perm: attributes.perm } },
      {
        opType: 'LeakyRelu',
        name: 'leaky',
        inputs: ['t'],
        outputs: ['y'],
        attributes: { alpha: attributes.alpha },
      },
    ],
  };
}

describe('encodeModel', () => {
  test('writes a model ONNX Runtime runs, with ints and float attributes', async () => {
    const bytes = encodeModel(transposeSpec({ alpha: { float: 0.5 }, perm: { ints: [1, 0] } }));
    const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
    const x = new ort.Tensor('float32', new Float32Array([1, -2, 3, -4, 5, -6]), [2, 3]);
    const { y } = await session.run({ x });
    assert.ok(y);
    assert.deepStrictEqual([...y.dims], [3, 2]);
    assert.deepStrictEqual([...(y.data as Float32Array)], [1, -2, -1, 5, 3, -3]);
    await session.release();
  });

  test('writes the defaults and the fields ONNX needs', () => {
    const model = decodeModelMessage(
      encodeModel(transposeSpec({ alpha: { float: 0.5 }, perm: { ints: [1, 0] } })),
    );
    assert.equal(model.ir_version, '8');
    assert.deepStrictEqual(model.opset_import, [{ domain: '', version: '17' }]);
    assert.equal(model.producer_name, 'aiedge');
    assert.equal(model.graph?.name, 'transpose-leaky');
    assert.deepStrictEqual(model.graph?.node?.[0]?.attribute, [{ name: 'perm', type: 7, ints: ['1', '0'] }]);
    assert.deepStrictEqual(model.graph?.node?.[1]?.attribute, [{ name: 'alpha', type: 1, f: 0.5 }]);
    assert.deepStrictEqual(model.graph?.input?.[0]?.type?.tensor_type?.shape?.dim, [
      { dim_param: 'rows' },
      { dim_value: '3' },
    ]);
  });

  test('encodes every attribute kind with its ONNX type', () => {
    const bytes = encodeModel({
      graphName: 'attrs',
      inputs: [{ name: 'x', type: 'float32', shape: [1] }],
      outputs: [{ name: 'y', type: 'float32', shape: [1] }],
      initializers: [],
      nodes: [
        {
          opType: 'Custom',
          domain: 'com.example',
          inputs: ['x'],
          outputs: ['y'],
          attributes: {
            s: 'text',
            s2: { string: 'more' },
            i: { int: -3 },
            f: { float: 1 },
            is: { ints: [] },
            fs: { floats: [0.25, 2] },
            ss: { strings: ['a', 'b'] },
            t: { tensor: { name: 'c', dims: [2], type: 'int64', data: new BigInt64Array([1n, 2n]) } },
          },
        },
      ],
      extraOpsets: [{ domain: 'com.example', version: 1 }],
    });
    const model = decodeModelMessage(bytes);
    assert.deepStrictEqual(model.opset_import, [
      { domain: '', version: '17' },
      { domain: 'com.example', version: '1' },
    ]);
    const node = model.graph?.node?.[0];
    assert.equal(node?.domain, 'com.example');
    const attrs = Object.fromEntries((node?.attribute ?? []).map((a) => [a.name, a]));
    assert.deepStrictEqual(
      Object.keys(attrs),
      ['f', 'fs', 'i', 'is', 's', 's2', 'ss', 't'],
      'sorted by name',
    );
    assert.equal(attrs.f?.type, 1);
    assert.equal(attrs.f?.f, 1);
    assert.equal(attrs.i?.type, 2);
    assert.equal(attrs.i?.i, '-3');
    assert.equal(attrs.s?.type, 3);
    assert.equal(new TextDecoder().decode(attrs.s?.s), 'text');
    assert.equal(new TextDecoder().decode(attrs.s2?.s), 'more');
    assert.equal(attrs.t?.type, 4);
    assert.equal(attrs.t?.t?.name, 'c');
    assert.equal(attrs.fs?.type, 6);
    assert.deepStrictEqual(attrs.fs?.floats, [0.25, 2]);
    assert.equal(attrs.is?.type, 7);
    assert.equal(attrs.ss?.type, 8);
  });

  test('is deterministic: same spec, same bytes, whatever the attribute order', () => {
    const a = encodeModel(transposeSpec({ alpha: { float: 0.5 }, perm: { ints: [1, 0] } }));
    const b = encodeModel(transposeSpec({ alpha: { float: 0.5 }, perm: { ints: [1, 0] } }));
    assert.deepStrictEqual(a, b);
    const spec = transposeSpec({ alpha: { float: 0.5 }, perm: { ints: [1, 0] } });
    const reordered: ModelSpec = {
      ...spec,
      nodes: spec.nodes.map((n) => ({
        ...n,
        attributes: Object.fromEntries(Object.entries(n.attributes ?? {}).reverse()),
      })),
    };
    assert.deepStrictEqual(encodeModel(reordered), a);
    assert.notDeepStrictEqual(
      encodeModel(transposeSpec({ alpha: { float: 0.25 }, perm: { ints: [1, 0] } })),
      a,
    );
  });

  test('rejects specs ONNX would reject, naming the path and the value', () => {
    const ok = transposeSpec({ alpha: { float: 0.5 }, perm: { ints: [1, 0] } });
    const node0 = ok.nodes[0];
    assert.ok(node0);
    assert.throws(
      () => encodeModel({ ...ok, nodes: [{ ...node0, inputs: ['nope'] }, ...ok.nodes.slice(1)] }),
      /nodes\[0\]\.inputs\[0\] is "nope", which is not a graph input, initializer or output of an earlier node/,
    );
    assert.throws(
      () => encodeModel({ ...ok, nodes: [...ok.nodes].reverse() }),
      /nodes\[0\] "leaky"\.inputs\[0\] is "t"/,
    );
    assert.throws(
      () => encodeModel({ ...ok, outputs: [{ name: 'z', type: 'float32', shape: [] }] }),
      /outputs\[0\]\.name is "z", which no node, input or initializer defines/,
    );
    assert.throws(
      () => encodeModel({ ...ok, inputs: [{ name: 'x', type: 'float32', shape: [-1] }] }),
      /inputs\[0\]\.shape\[0\] is -1/,
    );
    assert.throws(
      () => encodeModel({ ...ok, inputs: [{ name: 'x', type: 'complex64' as 'float32', shape: [1] }] }),
      /inputs\[0\]\.type is "complex64"/,
    );
    assert.throws(() => encodeModel({ ...ok, opset: 0 }), /opset is 0, expected an integer >= 1/);
    assert.throws(
      () => encodeModel(transposeSpec({ alpha: 0.5 as unknown as AttributeValue, perm: { ints: [1, 0] } })),
      /nodes\[1\] "leaky"\.attributes\.alpha is 0\.5, expected a string or one of \{int\}/,
    );
    assert.throws(
      () => encodeModel(transposeSpec({ alpha: { float: 0.5 }, perm: { ints: [1.5, 0] } })),
      /nodes\[0\]\.attributes\.perm\.ints\[0\] is 1\.5, expected a safe integer/,
    );
    assert.throws(
      () =>
        encodeModel(
          transposeSpec({ alpha: { float: 1, int: 1 } as unknown as AttributeValue, perm: { ints: [1, 0] } }),
        ),
      /attributes\.alpha has keys \[float, int\], expected exactly one tag/,
    );
    assert.throws(
      () => encodeModel({ ...ok, nodes: ok.nodes.map((n) => ({ ...n, domain: 'com.example' })) }),
      /nodes\[0\]\.domain is "com\.example", which extraOpsets does not import/,
    );
    assert.throws(
      () =>
        encodeModel({
          ...ok,
          initializers: [{ name: 'x', dims: [], type: 'float32', data: new Float32Array(1) }],
        }),
      /initializers\[0\]\.name "x" is already defined/,
    );
    assert.throws(
      () =>
        encodeModel({
          ...ok,
          initializers: [{ name: 'w', dims: [2], type: 'float32', data: new Float32Array(1) }],
        }),
      /initializers\[0\] "w": has 1 elements but dims \[2\] need 2/,
    );
  });
});

describe('readModelInfo', () => {
  test('returns versions, producer and dynamic, anonymous and unknown-rank shapes', () => {
    const bytes = encodeModel({
      producerName: 'unit-test',
      opset: 13,
      irVersion: 7,
      graphName: 'g',
      inputs: [
        { name: 'a', type: 'float16', shape: ['batch', '', 3] },
        { name: 'b', type: 'string', shape: null },
        { name: 'c', type: 'bool', shape: [] },
      ],
      outputs: [{ name: 'a_out', type: 'float16', shape: ['batch', '', 3] }],
      initializers: [],
      nodes: [{ opType: 'Identity', inputs: ['a'], outputs: ['a_out'] }],
    });
    assert.deepStrictEqual(readModelInfo(bytes), {
      irVersion: 7,
      opsetVersion: 13,
      producerName: 'unit-test',
      inputs: [
        { name: 'a', type: 'float16', shape: ['batch', '', 3] },
        { name: 'b', type: 'string', shape: null },
        { name: 'c', type: 'bool', shape: [] },
      ],
      outputs: [{ name: 'a_out', type: 'float16', shape: ['batch', '', 3] }],
    });
  });

  test('leaves out graph inputs that are initializers', () => {
    const tensorType = { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 2 }] } } };
    const bytes = encodeModelMessage({
      ir_version: 3,
      opset_import: [{ version: 8 }],
      graph: {
        name: 'g',
        node: [{ op_type: 'Add', input: ['x', 'w'], output: ['y'] }],
        initializer: [{ name: 'w', dims: [2], data_type: 1, float_data: [1, 2] }],
        input: [
          { name: 'x', type: tensorType },
          { name: 'w', type: tensorType },
        ],
        output: [{ name: 'y', type: tensorType }],
      },
    });
    const info = readModelInfo(bytes);
    assert.deepStrictEqual(
      info.inputs.map((i) => i.name),
      ['x'],
    );
    assert.equal(info.opsetVersion, 8);
    assert.equal(info.producerName, '');
  });

  test('reads real models the same way ONNX Runtime does', async (t) => {
    const models = [MNIST, SEQUENCE_MODEL].filter((m) => existsSync(m));
    if (models.length === 0) {
      t.skip(`fixtures not found at ${MNIST} or ${SEQUENCE_MODEL}; nothing to compare`);
      return;
    }
    for (const path of models) {
      const bytes = readFileSync(path);
      const info = readModelInfo(bytes);
      const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
      assert.deepStrictEqual(
        info.inputs.map((i) => i.name),
        [...session.inputNames],
        path,
      );
      assert.deepStrictEqual(
        info.outputs.map((o) => o.name),
        [...session.outputNames],
        path,
      );
      await session.release();
    }
    if (existsSync(MNIST)) {
      const mnist = readModelInfo(readFileSync(MNIST));
      assert.deepStrictEqual(mnist.inputs, [{ name: 'Input3', type: 'float32', shape: [1, 1, 28, 28] }]);
      assert.deepStrictEqual(mnist.outputs, [{ name: 'Plus214_Output_0', type: 'float32', shape: [1, 10] }]);
    }
  });

  test('names what is wrong with files that are not usable models', () => {
    assert.throws(
      () => readModelInfo(new Uint8Array([0xff, 0xff])),
      /not a valid onnx\.ModelProto \(2 bytes\)/,
    );
    assert.throws(
      () => readModelInfo(new Uint8Array(0)),
      /not an ONNX model \(0 bytes\): ir_version is missing/,
    );
    const sequenceInput = encodeModelMessage({
      ir_version: 8,
      opset_import: [{ version: 17 }],
      graph: {
        name: 'g',
        input: [{ name: 'seq', type: { sequence_type: { elem_type: { tensor_type: { elem_type: 1 } } } } }],
        output: [],
      },
    });
    assert.throws(
      () => readModelInfo(sequenceInput),
      /graph input\[0\] "seq" is a sequence; only dense tensors/,
    );
    const bfloat = encodeModelMessage({
      ir_version: 8,
      graph: { name: 'g', output: [{ name: 'o', type: { tensor_type: { elem_type: 16 } } }] },
    });
    assert.throws(
      () => readModelInfo(bfloat),
      /graph output\[0\] "o" has element type 16, which is not supported/,
    );
  });
});
