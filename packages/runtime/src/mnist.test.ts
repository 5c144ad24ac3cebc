import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import {
  FIXTURES,
  OIP_SPEC,
  OipSchemas,
  binaryBody,
  bytesOf,
  call,
  missingShared,
  startTestServer,
  tempDir,
} from './_test-helpers.js';

/**
 * The request of the original repository's README (opendatahub-io/ai-edge
 * examples/models/onnx-mnist/README.md): 784 FP32 values, each an 8-bit pixel / 255. Stored here as
 * those 8-bit pixels (base64) to keep the file small; the test rebuilds the exact float values.
 * The image is MNIST's training image 0, a handwritten 5: the README calls it a test call without
 * naming the digit, and the model (like any MNIST classifier) answers 5.
 */
const README_PIXELS =
  'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADEhISfoivGqb/938AAAAAAAAAAAAAAAAeJF6aqv39/f394az98sNAAAAAAAAAAAAAAAAx7v39/f39/f39+11SUjgnAAAAAAAAAAAAAAAAEtv9/f39/ca29/EAAAAAAAAAAAAAAAAAAAAAAABQnGv9/c0LACuaAAAAAAAAAAAAAAAAAAAAAAAAAA4Bmv1aAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIv9vgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAALvv1GAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACPx4aBsAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAUfD9/XcZAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAtuv39lhsAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABBd/P27AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAPn9+UAAAAAAAAAAAAAAAAAAAAAAAAAAAAAugrf9/c8CAAAAAAAAAAAAAAAAAAAAAAAAACeU5f39/fq2AAAAAAAAAAAAAAAAAAAAAAAAGHLd/f39/clOAAAAAAAAAAAAAAAAAAAAAAAXQtX9/f39xlECAAAAAAAAAAAAAAAAAAAAABKr2/39/f3DUAkAAAAAAAAAAAAAAAAAAAAAN6zi/f39/fSFCwAAAAAAAAAAAAAAAAAAAAAAAIj9/f3Uh4QQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==';

/** The README's request data: pixel / 255 as FP32, as the README lists it. */
function readmeInput(): Float32Array {
  const pixels = Buffer.from(README_PIXELS, 'base64');
  assert.equal(pixels.length, 784);
  return Float32Array.from(pixels, (p) => p / 255);
}

function argmax(values: readonly number[]): number {
  return values.reduce((best, v, i) => (v > values[best]! ? i : best), 0);
}

const mnistDir = join(FIXTURES, 'models/onnx-mnist');
const skip = missingShared(mnistDir) ?? missingShared(OIP_SPEC);

test(
  "the original repository's mnist request is classified as the digit it shows, over JSON and binary",
  { skip },
  async () => {
    const oip = new OipSchemas(OIP_SPEC);
    const repo = await tempDir('mnist');
    // The fixture is in the OVMS/Triton layout (onnx-mnist/1/mnist.onnx), served as-is under the README's name.
    await cp(mnistDir, join(repo.path, 'onnx-mnist'), { recursive: true });
    const server = await startTestServer({ modelRepository: repo.path });
    try {
      const input = readmeInput();
      assert.ok(Math.abs(input[152]! - 0.01176471) < 1e-8, 'first non-zero pixel as the README prints it');
      const json = await call(server, 'POST', '/v2/models/onnx-mnist/infer', {
        model_name: 'example-onnx-mnist',
        inputs: [{ name: 'Input3', shape: [1, 1, 28, 28], datatype: 'FP32', data: Array.from(input) }],
      });
      assert.equal(json.status, 200, json.text);
      oip.check('inference_response', json.json);
      const out = (json.json as { outputs: Array<{ name: string; shape: number[]; data: number[] }> })
        .outputs[0]!;
      assert.equal(out.name, 'Plus214_Output_0');
      assert.deepEqual(out.shape, [1, 10]);
      assert.equal(argmax(out.data), 5);

      const { body, headers } = binaryBody(
        {
          inputs: [
            {
              name: 'Input3',
              shape: [1, 1, 28, 28],
              datatype: 'FP32',
              parameters: { binary_data_size: 3136 },
            },
          ],
          parameters: { binary_data_output: true },
        },
        [bytesOf(input)],
      );
      const bin = await call(server, 'POST', '/v2/models/onnx-mnist/infer', body, headers);
      assert.equal(bin.status, 200, bin.text);
      oip.check('binary_inference_response', bin.json);
      const logits = Array.from(new Float32Array(bin.binary.slice().buffer));
      assert.equal(logits.length, 10);
      assert.equal(argmax(logits), 5);
      logits.forEach((v, i) =>
        assert.ok(Math.abs(v - out.data[i]!) < 1e-6, `logit ${i} equal over JSON and binary`),
      );
    } finally {
      await server.close();
      await repo.cleanup();
    }
  },
);
