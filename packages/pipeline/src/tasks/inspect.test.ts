import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exampleModel } from '@aiedge/runtime';
import { inspectTask } from './inspect.js';
import { exampleFetched, fetchedModel, testContext, testSpec } from './_test-helpers.js';

describe('inspectTask', () => {
  it('inspects a single .onnx file: signature, size, sha256, opset', async () => {
    const context = await testContext({ spec: testSpec(), state: { fetched: await exampleFetched() } });
    const results = await inspectTask(context);
    const inspected = context.state.inspected!;
    assert.equal(inspected.layout, 'file');
    assert.equal(inspected.bytes, exampleModel(1).byteLength);
    assert.match(results['sha256']!, /^[0-9a-f]{64}$/);
    assert.deepEqual(inspected.inputs, [{ name: 'features', datatype: 'FP32', shape: [-1, 4] }]);
    assert.deepEqual(inspected.outputs, [
      { name: 'scores', datatype: 'FP32', shape: [-1, 3] },
      { name: 'label', datatype: 'INT64', shape: [-1] },
    ]);
    assert.ok((inspected.opset ?? 0) > 0);
  });

  it('picks the version of spec.model.version from the OVMS/Triton layout', async () => {
    const fetched = await fetchedModel({
      'example/1/model.onnx': exampleModel(1),
      'example/2/model.onnx': exampleModel(2),
    });
    const context = await testContext({
      spec: testSpec({ model: { name: 'example', version: '2' } }),
      state: { fetched },
    });
    await inspectTask(context);
    assert.equal(context.state.inspected!.layout, 'triton');
    assert.ok(context.state.inspected!.modelPath.endsWith('example/2/model.onnx'));
  });

  it('reads an MLflow model: flavors.onnx.data names the file', async () => {
    const fetched = await fetchedModel({
      MLmodel: 'flavors:\n  onnx:\n    data: model/classifier.onnx\n    onnx_version: 1.16.0\n',
      'model/classifier.onnx': exampleModel(1),
      'requirements.txt': 'onnx\n',
    });
    const context = await testContext({ spec: testSpec(), state: { fetched } });
    await inspectTask(context);
    assert.equal(context.state.inspected!.layout, 'mlflow');
    assert.ok(context.state.inspected!.modelPath.endsWith('model/classifier.onnx'));
  });

  it('fails with ONNX Runtime’s message for a model it cannot load', async () => {
    const fetched = await fetchedModel({ 'model.onnx': new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]) });
    const context = await testContext({ spec: testSpec(), state: { fetched } });
    await assert.rejects(inspectTask(context), (error: Error) => {
      assert.match(error.message, /ONNX Runtime cannot load model\.onnx: .+/);
      return true;
    });
  });
});
