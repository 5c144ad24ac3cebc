import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Datatypes, type Datatype } from '@aiedge/protocol';
import {
  OipSchemas,
  OIP_SPEC,
  binaryBody,
  bytesOf,
  call,
  missingShared,
  startTestServer,
  tempDir,
  writeModel,
  identityModel,
} from './_test-helpers.js';
import { toFloat16Bits, fromFloat16Bits } from './datatypes.js';
import { dataToBinary } from './codec.js';
import { exampleModel, exampleReference, mlpModel } from './onnx/index.js';
import type { RunningServer } from './serve.js';

/** Sample values of each datatype in JSON form, including the edges of each range. */
const samples: Record<Datatype, unknown[]> = {
  BOOL: [true, false, true],
  UINT8: [0, 1, 255],
  UINT16: [0, 65535, 7],
  UINT32: [0, 4294967295, 12345],
  UINT64: [0, '18446744073709551615', 9007199254740991],
  INT8: [-128, 127, 0],
  INT16: [-32768, 32767, -1],
  INT32: [-2147483648, 2147483647, 42],
  INT64: ['-9223372036854775808', '9223372036854775807', -5],
  FP16: [0.5, -2, 65504],
  FP32: [1.5, -0.25, 'NaN'],
  FP64: [Math.PI, -1e300, 'Infinity'],
  BYTES: ['hello', '', 'ünïcødé ✓'],
};

/** The same values as the binary tensor format carries them. */
function binaryOf(datatype: Datatype, values: unknown[]): Uint8Array {
  const numbers = values.map((v) => (typeof v === 'string' && datatype !== 'BYTES' ? v : v));
  switch (datatype) {
    case 'BYTES':
      return dataToBinary('BYTES', numbers as string[]);
    case 'BOOL':
      return Uint8Array.from(numbers as boolean[], (b) => (b ? 1 : 0));
    case 'FP16':
      return bytesOf(Uint16Array.from(numbers as number[], (n) => toFloat16Bits(n)));
    case 'INT64':
      return bytesOf(BigInt64Array.from(numbers, (n) => BigInt(n as string)));
    case 'UINT64':
      return bytesOf(BigUint64Array.from(numbers, (n) => BigInt(n as string)));
    case 'FP32':
      return bytesOf(Float32Array.from(numbers, (n) => Number(n)));
    case 'FP64':
      return bytesOf(Float64Array.from(numbers, (n) => Number(n)));
    default: {
      const ctor = {
        UINT8: Uint8Array,
        UINT16: Uint16Array,
        UINT32: Uint32Array,
        INT8: Int8Array,
        INT16: Int16Array,
        INT32: Int32Array,
      }[datatype];
      return bytesOf(ctor.from(numbers as number[]));
    }
  }
}

/** Numbers in a JSON response text, compared as text so 64-bit integers keep every digit. */
function rawDataOf(text: string, output: string): string {
  const at = text.indexOf(`"name":"${output}"`);
  const data = text.indexOf('"data":[', at) + '"data":['.length;
  return text.slice(data, text.indexOf(']', data));
}

const skipSpec = missingShared(OIP_SPEC);

describe('aiedge serve: Open Inference Protocol REST', { skip: skipSpec }, () => {
  let server: RunningServer;
  let repo: { path: string; cleanup: () => Promise<void> };
  let oip: OipSchemas;

  before(async () => {
    oip = new OipSchemas(OIP_SPEC);
    repo = await tempDir('server');
    await writeModel(repo.path, 'example', 1, exampleModel(1));
    await writeModel(repo.path, 'identity', 1, identityModel());
    await writeModel(repo.path, 'mlp', 1, mlpModel({ sizes: [256, 1024, 1024, 256], seed: 7 }));
    server = await startTestServer({ modelRepository: repo.path, workers: 2 });
  });
  after(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  test('server metadata, liveness and readiness', async () => {
    const meta = await call(server, 'GET', '/v2');
    assert.equal(meta.status, 200);
    oip.check('metadata_server_response', meta.json);
    assert.ok((meta.json as { extensions: string[] }).extensions.includes('binary_tensor_data'));
    assert.equal((await call(server, 'GET', '/v2/')).status, 200);
    assert.equal((await call(server, 'GET', '/v2/health/live')).status, 200);
    assert.equal((await call(server, 'GET', '/v2/health/ready')).status, 200);
  });

  test('model metadata comes from the model, with -1 for dynamic dims', async () => {
    for (const path of ['/v2/models/example', '/v2/models/example/versions/1']) {
      const res = await call(server, 'GET', path);
      assert.equal(res.status, 200);
      oip.check('metadata_model_response', res.json);
      assert.deepEqual(res.json, {
        name: 'example',
        versions: ['1'],
        platform: 'onnxruntime_onnx',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 4] }],
        outputs: [
          { name: 'scores', datatype: 'FP32', shape: [-1, 3] },
          { name: 'label', datatype: 'INT64', shape: [-1] },
        ],
      });
    }
    for (const path of ['/v2/models/example/ready', '/v2/models/example/versions/1/ready']) {
      assert.equal((await call(server, 'GET', path)).status, 200);
    }
    const missing = await call(server, 'GET', '/v2/models/nope');
    assert.equal(missing.status, 404);
    oip.check('metadata_model_error_response', missing.json);
    assert.match((missing.json as { error: string }).error, /nope/);
    assert.equal((await call(server, 'GET', '/v2/models/example/versions/9')).status, 404);
    assert.equal((await call(server, 'GET', '/v2/models/nope/ready')).status, 404);
  });

  test('JSON inference matches the reference, echoes id, accepts nested data', async () => {
    const rows = [
      [1, 2, 3, 4],
      [0.5, -1, 2, 0],
    ];
    const expected = exampleReference(1, Float32Array.from(rows.flat()));
    for (const path of ['/v2/models/example/infer', '/v2/models/example/versions/1/infer']) {
      const res = await call(server, 'POST', path, {
        id: 'req-1',
        parameters: { anything: 'goes' },
        inputs: [{ name: 'features', shape: [2, 4], datatype: 'FP32', data: rows }],
      });
      assert.equal(res.status, 200, res.text);
      oip.check('inference_response', res.json);
      const body = res.json as {
        id: string;
        model_name: string;
        model_version: string;
        outputs: Array<{ name: string; shape: number[]; data: number[] }>;
      };
      assert.equal(body.id, 'req-1');
      assert.equal(body.model_name, 'example');
      assert.equal(body.model_version, '1');
      const scores = body.outputs.find((o) => o.name === 'scores')!;
      assert.deepEqual(scores.shape, [2, 3]);
      scores.data.forEach((v, i) => assert.ok(Math.abs(v - expected.scores[i]!) < 1e-5, `scores[${i}]`));
      const label = body.outputs.find((o) => o.name === 'label')!;
      assert.deepEqual(label.data, Array.from(expected.label, Number));
    }
  });

  test('outputs selection returns only the asked outputs', async () => {
    const res = await call(server, 'POST', '/v2/models/example/infer', {
      inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
      outputs: [{ name: 'label' }],
    });
    assert.equal(res.status, 200, res.text);
    oip.check('inference_response', res.json);
    assert.deepEqual(
      (res.json as { outputs: Array<{ name: string }> }).outputs.map((o) => o.name),
      ['label'],
    );
  });

  test('every OIP datatype round-trips through ONNX Runtime as JSON', async () => {
    const inputs = Datatypes.map((d) => ({ name: `in_${d}`, shape: [3], datatype: d, data: samples[d] }));
    const res = await call(server, 'POST', '/v2/models/identity/infer', { inputs });
    assert.equal(res.status, 200, res.text);
    oip.check('inference_response', res.json);
    const outputs = (res.json as { outputs: Array<{ name: string; datatype: string; data: unknown[] }> })
      .outputs;
    for (const d of Datatypes) {
      const out = outputs.find((o) => o.name === `out_${d}`)!;
      assert.equal(out.datatype, d);
      if (d === 'INT64' || d === 'UINT64') {
        assert.equal(rawDataOf(res.text, `out_${d}`), samples[d].map(String).join(','), d);
      } else if (d === 'FP16') {
        assert.deepEqual(out.data, samples.FP16);
      } else {
        assert.deepEqual(out.data, samples[d], d);
      }
    }
  });

  test('every OIP datatype round-trips as binary tensors, mixed with JSON inputs', async () => {
    const binaryTypes = Datatypes.filter((_, i) => i % 2 === 0);
    const chunks = binaryTypes.map((d) => binaryOf(d, samples[d]));
    const inputs = Datatypes.map((d) => {
      const k = binaryTypes.indexOf(d);
      return k >= 0
        ? { name: `in_${d}`, shape: [3], datatype: d, parameters: { binary_data_size: chunks[k]!.length } }
        : { name: `in_${d}`, shape: [3], datatype: d, data: samples[d] };
    });
    const { body, headers } = binaryBody(
      {
        inputs,
        parameters: { binary_data_output: true },
        outputs: Datatypes.map((d) => ({ name: `out_${d}` })),
      },
      chunks,
    );
    const res = await call(server, 'POST', '/v2/models/identity/infer', body, headers);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    oip.check('binary_inference_response', res.json);
    const outputs = (
      res.json as { outputs: Array<{ name: string; parameters: { binary_data_size: number } }> }
    ).outputs;
    let at = 0;
    for (const d of Datatypes) {
      const out = outputs.find((o) => o.name === `out_${d}`)!;
      const size = out.parameters.binary_data_size;
      const got = res.binary.subarray(at, at + size);
      at += size;
      const want = binaryOf(d, samples[d]);
      if (d === 'FP32' || d === 'FP64') {
        // NaN payloads may differ; compare as numbers.
        const arr =
          d === 'FP32' ? new Float32Array(got.slice().buffer) : new Float64Array(got.slice().buffer);
        const ref =
          d === 'FP32' ? new Float32Array(want.slice().buffer) : new Float64Array(want.slice().buffer);
        assert.deepEqual(Array.from(arr), Array.from(ref), d);
      } else {
        assert.deepEqual(Buffer.from(got), Buffer.from(want), d);
      }
    }
    assert.equal(at, res.binary.length);
    assert.equal(fromFloat16Bits(toFloat16Bits(65504)), 65504);
  });

  test('per-output binary_data chooses binary for one output and JSON for another', async () => {
    const res = await call(server, 'POST', '/v2/models/example/infer', {
      inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
      outputs: [{ name: 'scores', parameters: { binary_data: true } }, { name: 'label' }],
    });
    assert.equal(res.status, 200, res.text);
    oip.check('binary_inference_response', res.json);
    const [scores, label] = (
      res.json as { outputs: Array<{ parameters?: { binary_data_size: number }; data?: number[] }> }
    ).outputs;
    assert.equal(scores!.parameters!.binary_data_size, 12);
    assert.equal(res.binary.length, 12);
    const expected = exampleReference(1, Float32Array.from([1, 2, 3, 4]));
    assert.deepEqual(Array.from(new Float32Array(res.binary.slice().buffer)), Array.from(expected.scores));
    assert.deepEqual(label!.data, [Number(expected.label[0])]);
  });

  test('health and metadata answer while every worker is busy; a full queue gets 503 with Retry-After', async () => {
    // One worker holding 2 requests plus a queue of 1: at most 3 accepted at once, and each of these
    // requests (a batch of 256 through the MLP) takes far longer than the burst takes to arrive.
    const busy = await startTestServer({ modelRepository: repo.path, workers: 1, maxQueue: 1 });
    try {
      const batch = 256;
      const input = new Float32Array(batch * 256).fill(0.01);
      const { body, headers } = binaryBody(
        {
          inputs: [
            {
              name: 'input',
              shape: [batch, 256],
              datatype: 'FP32',
              parameters: { binary_data_size: input.byteLength },
            },
          ],
        },
        [bytesOf(input)],
      );
      let pending = 20;
      const inferences = Array.from({ length: 20 }, () =>
        call(busy, 'POST', '/v2/models/mlp/infer', body.slice(), headers).finally(() => pending--),
      );
      await new Promise((r) => setTimeout(r, 20));
      const probes = [];
      for (let i = 0; i < 5; i++) {
        const live = await call(busy, 'GET', '/v2/health/live');
        const meta = await call(busy, 'GET', '/v2/models/mlp');
        probes.push({ live: live.status, meta: meta.status, pendingAfter: pending });
      }
      const results = await Promise.all(inferences);
      assert.ok(probes.every((p) => p.live === 200 && p.meta === 200));
      assert.ok(
        probes.some((p) => p.pendingAfter > 0),
        `probes answered only after the burst: ${JSON.stringify(probes)}`,
      );
      const statuses = results.map((r) => r.status);
      assert.ok(statuses.includes(200), `some inferences succeed: ${statuses}`);
      const rejected = results.filter((r) => r.status === 503);
      assert.ok(rejected.length > 0, `a burst of 20 overflows 3 places: ${statuses}`);
      for (const r of rejected) {
        assert.equal(r.headers.get('retry-after'), '1');
        oip.check('inference_error_response', r.json);
        assert.match((r.json as { error: string }).error, /inference queue is full/);
      }
      assert.ok(
        statuses.every((s) => s === 200 || s === 503),
        `${statuses}`,
      );
      const metrics = await call(busy, 'GET', '/metrics');
      assert.match(
        metrics.text,
        new RegExp(
          `aiedge_inference_requests_total\\{model="mlp",version="1",outcome="rejected"\\} ${rejected.length}\\b`,
        ),
      );
    } finally {
      await busy.close();
    }
  });

  test('/metrics exposes requests by model, version and outcome, latency, queue and loads', async () => {
    await call(server, 'POST', '/v2/models/example/infer', { inputs: [] });
    const res = await call(server, 'GET', '/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    assert.match(
      res.text,
      /aiedge_inference_requests_total\{model="example",version="1",outcome="success"\} \d+/,
    );
    assert.match(
      res.text,
      /aiedge_inference_requests_total\{model="example",version="1",outcome="client_error"\} \d+/,
    );
    assert.match(
      res.text,
      /aiedge_inference_request_duration_seconds_bucket\{le="0.005",model="example",version="1"\}/,
    );
    assert.match(res.text, /aiedge_inference_queue_depth 0/);
    assert.match(res.text, /aiedge_inference_in_flight 0/);
    assert.match(
      res.text,
      /aiedge_model_load_duration_seconds_count\{model="identity",version="1",outcome="success"\} 1/,
    );
    assert.match(res.text, /aiedge_model_ready\{model="example",version="1"\} 1/);
    assert.match(res.text, /process_resident_memory_bytes/);
  });

  test('the repository index lists every model version with its state', async () => {
    const res = await call(server, 'POST', '/v2/repository/index');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, [
      { name: 'example', version: '1', state: 'READY' },
      { name: 'identity', version: '1', state: 'READY' },
      { name: 'mlp', version: '1', state: 'READY' },
    ]);
    const ready = await call(server, 'POST', '/v2/repository/index', { ready: true });
    assert.equal((ready.json as unknown[]).length, 3);
  });
});
