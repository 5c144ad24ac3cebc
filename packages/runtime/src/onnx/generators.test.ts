import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import ort from 'onnxruntime-node';
import { decodeModelMessage } from './_proto.js';
import {
  BENCH_MLP_SIZES,
  EXAMPLE_MODEL_NAME,
  exampleModel,
  exampleReference,
  mlpModel,
  writeExampleModelRepository,
} from './generators.js';
import { readModelInfo } from './model-builder.js';
import { tensorFromMessage } from './tensor-proto.js';

const QUIET = { logSeverityLevel: 3 } as const;

/** Runs a one-input model on `x` and returns its outputs. */
async function run(
  model: Uint8Array | string,
  inputName: string,
  x: Float32Array,
  dims: number[],
): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session =
    typeof model === 'string'
      ? await ort.InferenceSession.create(model, QUIET)
      : await ort.InferenceSession.create(model, QUIET);
  try {
    return await session.run({ [inputName]: new ort.Tensor('float32', x, dims) });
  } finally {
    await session.release();
  }
}

function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    assert.ok(
      Math.abs(a - e) <= tolerance * Math.max(1, Math.abs(e)),
      `${what}[${i}]: got ${a}, expected ${e}`,
    );
  }
}

describe('example classifier', () => {
  // Three rows whose labels differ between rows and between versions.
  const features = new Float32Array([1, 2, 3, 4, 0, -1, 0, 0, 0.5, -1.25, 2.75, 0.1]);

  for (const version of [1, 2]) {
    test(`v${version} in ONNX Runtime matches exampleReference`, async () => {
      const out = await run(exampleModel(version), 'features', features, [3, 4]);
      const expected = exampleReference(version, features);
      assert.deepStrictEqual([...(out.scores?.dims ?? [])], [3, 3]);
      assert.equal(out.scores?.type, 'float32');
      assertClose(out.scores?.data as Float32Array, expected.scores, 1e-5, 'scores');
      assert.deepStrictEqual([...(out.label?.dims ?? [])], [3]);
      assert.equal(out.label?.type, 'int64');
      assert.deepStrictEqual(out.label?.data, expected.label);
      assert.ok(new Set(expected.label).size > 1, 'the rows should not all get the same label');
    });
  }

  test('the README example gives round scores and a unique winner that changes with the version', () => {
    const x = new Float32Array([1, 2, 3, 4]);
    assert.deepStrictEqual(exampleReference(1, x), {
      scores: new Float32Array([10, 20, 30]),
      label: new BigInt64Array([2n]),
    });
    assert.deepStrictEqual(exampleReference(2, x), {
      scores: new Float32Array([40, 20, 10]),
      label: new BigInt64Array([0n]),
    });
  });

  test('has the declared signature and is deterministic per version', () => {
    assert.deepStrictEqual(readModelInfo(exampleModel(1)), {
      irVersion: 8,
      opsetVersion: 17,
      producerName: 'aiedge',
      inputs: [{ name: 'features', type: 'float32', shape: ['batch', 4] }],
      outputs: [
        { name: 'scores', type: 'float32', shape: ['batch', 3] },
        { name: 'label', type: 'int64', shape: ['batch'] },
      ],
    });
    assert.deepStrictEqual(exampleModel(1), exampleModel(1));
    assert.notDeepStrictEqual(exampleModel(1), exampleModel(2));
  });

  test('rejects versions it cannot build and features that are not rows of 4', () => {
    assert.throws(() => exampleModel(0), /example model version is 0, expected an integer from 1 to 1000/);
    assert.throws(() => exampleModel(1.5), /version is 1\.5/);
    assert.throws(
      () => exampleReference(1, new Float32Array(5)),
      /features has 5 elements, expected a multiple of 4/,
    );
  });

  test('writeExampleModelRepository writes each version atomically where a server looks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'aiedge-example-'));
    try {
      const paths = await writeExampleModelRepository(dir, [1, 2]);
      assert.deepStrictEqual(paths, [
        join(dir, EXAMPLE_MODEL_NAME, '1', 'model.onnx'),
        join(dir, EXAMPLE_MODEL_NAME, '2', 'model.onnx'),
      ]);
      for (const [i, version] of [1, 2].entries()) {
        const path = paths[i] as string;
        assert.deepStrictEqual(new Uint8Array(await readFile(path)), exampleModel(version));
        assert.deepStrictEqual(await readdir(join(dir, EXAMPLE_MODEL_NAME, String(version))), ['model.onnx']);
      }
      // Rewriting replaces the files in place; the default is version 1 only.
      assert.deepStrictEqual(await writeExampleModelRepository(dir), [paths[0]]);
      const out = await run(paths[1] as string, 'features', new Float32Array([1, 2, 3, 4]), [1, 4]);
      assert.deepStrictEqual([...(out.scores?.data as Float32Array)], [40, 20, 10]);
      await assert.rejects(writeExampleModelRepository(dir, [3, 3]), /versions lists 3 twice/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('mlpModel', () => {
  const sizes = [8, 16, 4];

  test('runs in ONNX Runtime with the right shape, finite values and the encoded weights', async () => {
    const bytes = mlpModel({ sizes, seed: 42 });
    const batch = 5;
    const x = Float32Array.from({ length: batch * 8 }, (_, i) => Math.sin(i));
    const out = await run(bytes, 'input', x, [batch, 8]);
    const y = out.output;
    assert.ok(y);
    assert.deepStrictEqual([...y.dims], [batch, 4]);
    const data = y.data as Float32Array;
    assert.ok(data.every(Number.isFinite));
    assert.ok(data.some((v) => v !== 0));

    // Recompute the forward pass from the initializers the model carries.
    const graph = decodeModelMessage(bytes).graph;
    const weights = new Map(
      (graph?.initializer ?? []).map((t) => [t.name, tensorFromMessage(t).data as Float32Array]),
    );
    let h = Array.from(x);
    for (let l = 0; l < sizes.length - 1; l++) {
      const [n, m] = [sizes[l] as number, sizes[l + 1] as number];
      const w = weights.get(`layer${l}.weight`);
      const b = weights.get(`layer${l}.bias`);
      assert.ok(w && b, `layer ${l} weights`);
      const next: number[] = [];
      for (let r = 0; r < batch; r++) {
        for (let j = 0; j < m; j++) {
          let acc = b[j] as number;
          for (let i = 0; i < n; i++) acc += (h[r * n + i] as number) * (w[i * m + j] as number);
          next.push(l < sizes.length - 2 ? Math.max(0, acc) : acc);
        }
      }
      h = next;
    }
    assertClose(data, h, 1e-4, 'output');
  });

  test('has the declared signature, depends only on sizes and seed, and validates them', () => {
    assert.deepStrictEqual(readModelInfo(mlpModel({ sizes, seed: 1 })).inputs, [
      { name: 'input', type: 'float32', shape: ['batch', 8] },
    ]);
    assert.deepStrictEqual(readModelInfo(mlpModel({ sizes, seed: 1 })).outputs, [
      { name: 'output', type: 'float32', shape: ['batch', 4] },
    ]);
    assert.deepStrictEqual(mlpModel({ sizes, seed: 1 }), mlpModel({ sizes, seed: 1 }));
    assert.notDeepStrictEqual(mlpModel({ sizes, seed: 1 }), mlpModel({ sizes, seed: 2 }));
    assert.throws(() => mlpModel({ sizes: [8], seed: 1 }), /sizes has 1 entries, expected at least 2/);
    assert.throws(() => mlpModel({ sizes: [8, 0], seed: 1 }), /sizes\[1\] is 0, expected an integer >= 1/);
  });

  test('BENCH_MLP_SIZES gives a model of 45 to 55 MB that ONNX Runtime loads', async () => {
    const bytes = mlpModel({ sizes: BENCH_MLP_SIZES, seed: 7 });
    const mb = bytes.byteLength / 1e6;
    assert.ok(mb >= 45 && mb <= 55, `model is ${mb.toFixed(1)} MB`);
    const info = readModelInfo(bytes);
    assert.deepStrictEqual(info.inputs[0]?.shape, ['batch', 1024]);
    assert.deepStrictEqual(info.outputs[0]?.shape, ['batch', 16]);
    const out = await run(bytes, 'input', new Float32Array(2 * 1024).fill(0.5), [2, 1024]);
    assert.deepStrictEqual([...(out.output?.dims ?? [])], [2, 16]);
    assert.ok((out.output?.data as Float32Array).every(Number.isFinite));
  });
});
