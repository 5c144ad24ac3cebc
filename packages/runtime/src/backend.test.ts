/**
 * ONNX's own backend test cases (onnx/backend/test/data/{simple,pytorch-operator}) served over the
 * Open Inference Protocol: every case's model goes into one model repository behind one server, and
 * every test data set is sent as JSON and as binary tensors and compared with ONNX's expected outputs.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatatypeByteSize, type Datatype } from '@aiedge/protocol';
import {
  FIXTURES,
  OIP_SPEC,
  OipSchemas,
  binaryBody,
  call,
  missingShared,
  startTestServer,
  tempDir,
  writeModel,
  type ReadResponse,
} from './_test-helpers.js';
import { datatypeOfOrt, fromFloat16Bits } from './datatypes.js';
import { dataToBinary } from './codec.js';
import { decodeTensorProto, type DecodedTensor } from './onnx/index.js';
import type { RunningServer } from './serve.js';

const BACKEND = join(FIXTURES, 'onnx-backend');
const SUITES = ['simple', 'pytorch-operator'] as const;
/** ONNX's backend test tolerance (onnx/backend/test/runner: rtol 1e-3, atol 1e-7). */
const RTOL = 1e-3;
const ATOL = 1e-7;
/** Most of the ~58 cases must pass; the rest are cases ONNX Runtime or OIP cannot serve. */
const MIN_PASSED = 40;

const skipReason = missingShared(BACKEND) ?? missingShared(OIP_SPEC);

interface BackendCase {
  readonly name: string;
  readonly dir: string;
  /** Each data set: input and output TensorProto files in K order. */
  readonly dataSets: ReadonlyArray<{ readonly name: string; inputs: string[]; outputs: string[] }>;
}

const numbered = (prefix: string) => (names: string[]) =>
  names
    .filter((n) => new RegExp(`^${prefix}\\d+(\\.pb)?$`).test(n))
    .sort((a, b) => Number(/\d+/.exec(a)![0]) - Number(/\d+/.exec(b)![0]));

/** The backend cases on disk, or none when the fixtures are missing. */
function listCases(): BackendCase[] {
  if (skipReason !== undefined) return [];
  const cases: BackendCase[] = [];
  for (const suite of SUITES) {
    const root = join(BACKEND, suite);
    if (!existsSync(root)) continue;
    for (const name of readdirSync(root).sort()) {
      const dir = join(root, name);
      if (!existsSync(join(dir, 'model.onnx'))) continue;
      const dataSets = numbered('test_data_set_')(readdirSync(dir)).map((set) => {
        const files = readdirSync(join(dir, set));
        return {
          name: set,
          inputs: numbered('input_')(files).map((f) => join(dir, set, f)),
          outputs: numbered('output_')(files).map((f) => join(dir, set, f)),
        };
      });
      cases.push({ name, dir, dataSets });
    }
  }
  return cases;
}

interface TensorMeta {
  name: string;
  datatype: string;
  shape: number[];
}
interface ModelMeta {
  inputs: TensorMeta[];
  outputs: TensorMeta[];
}
interface IndexRow {
  name: string;
  version?: string;
  state: string;
  reason?: string;
}
interface JsonOutput {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
  parameters?: { binary_data_size?: number };
}

function datatypeOf(tensor: DecodedTensor): Datatype {
  const datatype = datatypeOfOrt(tensor.type);
  assert.ok(datatype !== undefined, `tensor type ${tensor.type} has no OIP datatype`);
  return datatype;
}

function floatToJson(v: number): number | string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return v;
}

/** A decoded tensor's contents as OIP JSON `data`. */
function jsonDataOf(tensor: DecodedTensor): unknown[] {
  const { type, data } = tensor;
  switch (type) {
    case 'string':
      return [...(data as string[])];
    case 'bool':
      return Array.from(data as Uint8Array, (v) => v !== 0);
    case 'float16':
      return Array.from(data as Uint16Array, (bits) => floatToJson(fromFloat16Bits(bits)));
    case 'float32':
    case 'float64':
      return Array.from(data as Float32Array, floatToJson);
    case 'int64':
    case 'uint64':
      return Array.from(data as BigInt64Array, (v) => v.toString());
    default:
      return Array.from(data as Int32Array);
  }
}

/**
 * The outputs a response carries, in a comparable form: floats as numbers, 64-bit integers as decimal
 * strings, bools as 0/1, strings as strings.
 */
type Values = Array<number | string>;

function expectedValues(tensor: DecodedTensor): Values {
  const { type, data } = tensor;
  switch (type) {
    case 'string':
      return [...(data as string[])];
    case 'float16':
      return Array.from(data as Uint16Array, fromFloat16Bits);
    case 'int64':
    case 'uint64':
      return Array.from(data as BigInt64Array, (v) => v.toString());
    default:
      return Array.from(data as Float32Array);
  }
}

/** JSON text of the `data` array of the output named `name` (64-bit integers keep every digit). */
function rawDataOf(text: string, name: string): string[] {
  const at = text.indexOf(`{"name":${JSON.stringify(name)},`);
  assert.ok(at >= 0, `output ${name} is in the response text`);
  const start = text.indexOf('"data":[', at) + '"data":['.length;
  const body = text.slice(start, text.indexOf(']', start));
  return body === '' ? [] : body.split(',');
}

function jsonValues(out: JsonOutput, text: string): Values {
  const data = out.data ?? [];
  switch (out.datatype) {
    case 'INT64':
    case 'UINT64':
      return rawDataOf(text, out.name).map((s) => BigInt(s).toString());
    case 'BOOL':
      return data.map((v) => {
        assert.equal(typeof v, 'boolean', `${out.name}: BOOL data is true/false`);
        return v ? 1 : 0;
      });
    case 'BYTES':
      return data.map((v) => {
        assert.equal(typeof v, 'string', `${out.name}: BYTES data are strings`);
        return v as string;
      });
    case 'FP16':
    case 'FP32':
    case 'FP64':
      return data.map((v) => {
        if (typeof v === 'number') return v;
        assert.ok(v === 'NaN' || v === 'Infinity' || v === '-Infinity', `${out.name}: float ${String(v)}`);
        return Number(v);
      });
    default:
      return data.map((v) => {
        assert.ok(Number.isInteger(v), `${out.name}: integer data, got ${String(v)}`);
        return v as number;
      });
  }
}

/** Reads binary tensor bytes of `datatype` (little-endian; BYTES are 4-byte length-prefixed). */
function binaryValues(bytes: Uint8Array, datatype: string): Values {
  if (datatype === 'BYTES') {
    const out: string[] = [];
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let at = 0; at < bytes.length;) {
      assert.ok(at + 4 <= bytes.length, 'BYTES length prefix is complete');
      const len = view.getUint32(at, true);
      at += 4;
      assert.ok(at + len <= bytes.length, 'BYTES element is complete');
      out.push(new TextDecoder().decode(bytes.subarray(at, at + len)));
      at += len;
    }
    return out;
  }
  const size = DatatypeByteSize[datatype as Datatype];
  assert.ok(size !== undefined, `known datatype ${datatype}`);
  assert.equal(bytes.length % size, 0, `binary ${datatype} data is a whole number of elements`);
  const buffer = bytes.slice().buffer;
  switch (datatype) {
    case 'BOOL':
      return Array.from(new Uint8Array(buffer), (v) => (v ? 1 : 0));
    case 'UINT8':
      return Array.from(new Uint8Array(buffer));
    case 'INT8':
      return Array.from(new Int8Array(buffer));
    case 'UINT16':
      return Array.from(new Uint16Array(buffer));
    case 'INT16':
      return Array.from(new Int16Array(buffer));
    case 'UINT32':
      return Array.from(new Uint32Array(buffer));
    case 'INT32':
      return Array.from(new Int32Array(buffer));
    case 'UINT64':
      return Array.from(new BigUint64Array(buffer), (v) => v.toString());
    case 'INT64':
      return Array.from(new BigInt64Array(buffer), (v) => v.toString());
    case 'FP16':
      return Array.from(new Uint16Array(buffer), fromFloat16Bits);
    case 'FP32':
      return Array.from(new Float32Array(buffer));
    case 'FP64':
      return Array.from(new Float64Array(buffer));
    default:
      throw new Error(`unexpected datatype ${datatype}`);
  }
}

/** Compares values like ONNX's backend runner: floats within rtol/atol (NaN equals NaN), the rest exactly. */
function assertClose(actual: Values, expected: DecodedTensor, what: string): void {
  const want = expectedValues(expected);
  assert.equal(actual.length, want.length, `${what}: element count`);
  const isFloat = expected.type === 'float16' || expected.type === 'float32' || expected.type === 'float64';
  for (let i = 0; i < want.length; i++) {
    const a = actual[i]!;
    const e = want[i]!;
    if (isFloat) {
      const x = a as number;
      const y = e as number;
      if (Number.isNaN(y)) {
        assert.ok(Number.isNaN(x), `${what}[${i}]: ${x}, expected NaN`);
      } else if (!Number.isFinite(y)) {
        assert.equal(x, y, `${what}[${i}]`);
      } else {
        assert.ok(
          Math.abs(x - y) <= ATOL + RTOL * Math.abs(y),
          `${what}[${i}]: ${x}, expected ${y} (rtol ${RTOL}, atol ${ATOL})`,
        );
      }
    } else {
      assert.equal(a, e, `${what}[${i}]`);
    }
  }
}

/** Thrown when ONNX Runtime itself refuses to run a case's model on its data. */
class OrtRejected extends Error {}

/** Checks an error response; turns ORT's own refusal (400, `inference failed: ...`) into OrtRejected. */
function checkInferenceResponse(res: ReadResponse, oip: OipSchemas, what: string): void {
  if (res.status === 200) return;
  oip.check('inference_error_response', res.json);
  const error = (res.json as { error: string }).error;
  if (res.status === 400 && error.startsWith('inference failed:')) throw new OrtRejected(error);
  assert.fail(`${what}: status ${res.status}: ${error}`);
}

const cases = listCases();

describe('ONNX backend test cases over the Open Inference Protocol', { skip: skipReason }, () => {
  let server: RunningServer;
  let repo: { path: string; cleanup: () => Promise<void> };
  let oip: OipSchemas;
  let index: IndexRow[] = [];
  const passed: string[] = [];
  const skipped: Array<{ name: string; reason: string }> = [];

  before(async () => {
    oip = new OipSchemas(OIP_SPEC);
    repo = await tempDir('backend');
    for (const c of cases) await writeModel(repo.path, c.name, 1, readFileSync(join(c.dir, 'model.onnx')));
    server = await startTestServer({ modelRepository: repo.path, workers: 2 });
    const res = await call(server, 'POST', '/v2/repository/index');
    assert.equal(res.status, 200, res.text);
    index = res.json as IndexRow[];
  });
  after(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  const skip = (t: TestContext, name: string, reason: string): void => {
    skipped.push({ name, reason });
    t.skip(reason);
  };

  async function infer(
    name: string,
    inputs: readonly DecodedTensor[],
    meta: ModelMeta,
    binary: boolean,
  ): Promise<{ outputs: JsonOutput[]; res: ReadResponse }> {
    const path = `/v2/models/${name}/infer`;
    let res: ReadResponse;
    if (binary) {
      const chunks = inputs.map((t) => dataToBinary(datatypeOf(t), t.data));
      const { body, headers } = binaryBody(
        {
          inputs: inputs.map((t, k) => ({
            name: meta.inputs[k]!.name,
            shape: t.dims,
            datatype: datatypeOf(t),
            parameters: { binary_data_size: chunks[k]!.length },
          })),
          parameters: { binary_data_output: true },
        },
        chunks,
      );
      res = await call(server, 'POST', path, body, headers);
    } else {
      res = await call(server, 'POST', path, {
        id: `${name}-json`,
        inputs: inputs.map((t, k) => ({
          name: meta.inputs[k]!.name,
          shape: t.dims,
          datatype: datatypeOf(t),
          data: jsonDataOf(t),
        })),
      });
    }
    checkInferenceResponse(res, oip, `${name} ${binary ? 'binary' : 'JSON'}`);
    oip.check(binary ? 'binary_inference_response' : 'inference_response', res.json);
    const body = res.json as {
      model_name: string;
      model_version: string;
      id?: string;
      outputs: JsonOutput[];
    };
    assert.equal(body.model_name, name);
    assert.equal(body.model_version, '1');
    if (!binary) assert.equal(body.id, `${name}-json`);
    return { outputs: body.outputs, res };
  }

  for (const c of cases) {
    test(c.name, async (t) => {
      const row = index.find((r) => r.name === c.name);
      assert.ok(row !== undefined, `${c.name} is missing from the repository index`);
      if (row.state === 'UNAVAILABLE') {
        assert.ok(row.reason, `${c.name} is UNAVAILABLE with a reason`);
        skip(t, c.name, row.reason);
        return;
      }
      assert.equal(row.state, 'READY', `${c.name} state`);

      const metaRes = await call(server, 'GET', `/v2/models/${c.name}`);
      assert.equal(metaRes.status, 200, metaRes.text);
      oip.check('metadata_model_response', metaRes.json);
      const meta = metaRes.json as ModelMeta;
      assert.ok(c.dataSets.length > 0, `${c.name} has test data sets`);

      try {
        for (const set of c.dataSets) {
          const inputs = set.inputs.map((f) => decodeTensorProto(readFileSync(f)));
          const expected = set.outputs.map((f) => decodeTensorProto(readFileSync(f)));
          assert.equal(inputs.length, meta.inputs.length, `${set.name}: one input file per model input`);
          assert.equal(expected.length, meta.outputs.length, `${set.name}: one output file per model output`);
          inputs.forEach((tensor, k) => assert.equal(datatypeOf(tensor), meta.inputs[k]!.datatype));

          // (a) JSON in, JSON out.
          const json = await infer(c.name, inputs, meta, false);
          assert.equal(json.res.headers.get('content-type')?.split(';')[0], 'application/json');
          assert.equal(json.res.binary.length, 0);
          expected.forEach((want, k) => {
            const spec = meta.outputs[k]!;
            const out = json.outputs.find((o) => o.name === spec.name);
            const what = `${set.name} JSON output ${k} '${spec.name}'`;
            assert.ok(out !== undefined, `${what} is in the response`);
            assert.equal(out.datatype, datatypeOf(want), `${what} datatype`);
            assert.deepEqual(out.shape, want.dims, `${what} shape`);
            assertClose(jsonValues(out, json.res.text), want, what);
          });

          // (b) binary in, binary out.
          const bin = await infer(c.name, inputs, meta, true);
          assert.equal(bin.res.headers.get('content-type'), 'application/octet-stream');
          let at = 0;
          const parts = new Map<string, Uint8Array>();
          for (const out of bin.outputs) {
            const size = out.parameters?.binary_data_size;
            assert.ok(Number.isSafeInteger(size), `${out.name} has binary_data_size`);
            parts.set(out.name, bin.res.binary.subarray(at, at + size!));
            at += size!;
          }
          assert.equal(at, bin.res.binary.length, 'binary sizes add up to the binary part');
          expected.forEach((want, k) => {
            const spec = meta.outputs[k]!;
            const out = bin.outputs.find((o) => o.name === spec.name);
            const what = `${set.name} binary output ${k} '${spec.name}'`;
            assert.ok(out !== undefined, `${what} is in the response`);
            assert.equal(out.datatype, datatypeOf(want), `${what} datatype`);
            assert.deepEqual(out.shape, want.dims, `${what} shape`);
            assertClose(binaryValues(parts.get(spec.name)!, out.datatype), want, what);
          });
        }
      } catch (error) {
        if (error instanceof OrtRejected) {
          skip(t, c.name, error.message);
          return;
        }
        throw error;
      }
      passed.push(c.name);
    });
  }

  test('summary: most ONNX backend cases pass over JSON and binary', (t) => {
    const reasons = skipped.map((s) => `${s.name}: ${s.reason.replace(/\s+/g, ' ')}`).join('; ');
    const line = `ONNX backend cases: ${passed.length} passed over JSON and binary, ${skipped.length} skipped: ${reasons}`;
    t.diagnostic(line);
    assert.ok(passed.length >= MIN_PASSED, line);
  });
});
