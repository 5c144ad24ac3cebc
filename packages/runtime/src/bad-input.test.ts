/**
 * Malformed inference requests get a 4xx with a JSON error that names the field and value at fault,
 * and never crash or wedge the server: after each one (and after the whole table, sent one by one
 * and all at once) the server is ready and still answers a valid inference correctly.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Datatypes } from '@aiedge/protocol';
import {
  OIP_SPEC,
  OipSchemas,
  binaryBody,
  bytesOf,
  call,
  missingShared,
  startTestServer,
  tempDir,
  writeModel,
  type ReadResponse,
  identityModel,
} from './_test-helpers.js';
import { dataToBinary } from './codec.js';
import { exampleModel, exampleReference } from './onnx/index.js';
import type { RunningServer } from './serve.js';

const MAX_BODY_BYTES = 65536;

/** One malformed request and the answer it must get. */
interface BadCase {
  readonly name: string;
  /** Default POST. */
  readonly method?: string;
  /** Default /v2/models/example/infer. */
  readonly path?: string;
  /** An object is sent as JSON; a string or bytes as they are; undefined sends no body. */
  readonly body?: object | string | Uint8Array;
  readonly headers?: Record<string, string>;
  readonly status: number;
  readonly errorMatches: RegExp;
}

const EXAMPLE = '/v2/models/example/infer';
const IDENTITY = '/v2/models/identity/infer';

const features = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  name: 'features',
  shape: [1, 4],
  datatype: 'FP32',
  data: [1, 2, 3, 4],
  ...extra,
});
const withInput = (input: unknown): object => ({ inputs: [input] });
/** An identity-model request with one input of `datatype`, shape [n] and `data`. */
const identity = (datatype: string, data: unknown[], shape: unknown = [data.length]): object => ({
  inputs: [{ name: `in_${datatype}`, datatype, shape, data }],
});

/** A binary-extension body with the given JSON header, binary chunks and header overrides. */
function binary(
  header: unknown,
  chunks: Uint8Array[],
  headerOverride?: Record<string, string>,
): Pick<BadCase, 'body' | 'headers'> {
  const { body, headers } = binaryBody(header, chunks);
  return { body, headers: { ...headers, ...headerOverride } };
}

const fp32 = (n: number): Uint8Array => bytesOf(new Float32Array(n).fill(0.5));
const deep = (levels: number, inner: string): string => '['.repeat(levels) + inner + ']'.repeat(levels);

const cases: readonly BadCase[] = [
  // The body as a whole.
  { name: 'malformed JSON', body: '{"inputs": [', status: 400, errorMatches: /not valid JSON/ },
  {
    name: 'malformed JSON sent as application/json',
    body: '{inputs: []}',
    headers: { 'content-type': 'application/json' },
    status: 400,
    errorMatches: /not valid JSON/,
  },
  { name: 'empty body', body: '', status: 400, errorMatches: /body is empty/ },
  { name: 'no body at all', status: 400, errorMatches: /body is empty/ },
  {
    name: 'body is an array',
    body: [1, 2],
    status: 400,
    errorMatches: /request body is \[1,2\], expected a JSON object/,
  },
  {
    name: 'body is a number',
    body: '42',
    status: 400,
    errorMatches: /request body is 42, expected a JSON object/,
  },
  {
    name: 'body is null',
    body: 'null',
    status: 400,
    errorMatches: /request body is null, expected a JSON object/,
  },
  {
    name: 'body is a string',
    body: '"hi"',
    status: 400,
    errorMatches: /request body is "hi", expected a JSON object/,
  },
  {
    name: 'body over the limit',
    body: JSON.stringify({ inputs: [features()], pad: 'x'.repeat(MAX_BODY_BYTES) }),
    status: 413,
    errorMatches: new RegExp(`larger than the limit of ${MAX_BODY_BYTES} bytes`),
  },

  // Top-level fields.
  { name: 'inputs missing', body: {}, status: 400, errorMatches: /inputs is missing, expected an array/ },
  {
    name: 'inputs not an array',
    body: { inputs: { name: 'features' } },
    status: 400,
    errorMatches: /inputs is \{"name":"features"\}, expected an array/,
  },
  {
    name: 'id not a string',
    body: { id: 7, inputs: [features()] },
    status: 400,
    errorMatches: /^id is 7, expected a string/,
  },
  {
    name: 'parameters not an object',
    body: { parameters: [1], inputs: [features()] },
    status: 400,
    errorMatches: /^parameters is \[1\], expected an object/,
  },
  {
    name: 'parameters null',
    body: { parameters: null, inputs: [features()] },
    status: 400,
    errorMatches: /^parameters is null, expected an object/,
  },
  {
    name: 'outputs not an array',
    body: { inputs: [features()], outputs: 'scores' },
    status: 400,
    errorMatches: /^outputs is "scores", expected an array/,
  },
  {
    name: 'output not an object',
    body: { inputs: [features()], outputs: ['scores'] },
    status: 400,
    errorMatches: /^outputs\[0\] is "scores", expected an object/,
  },
  {
    name: 'unknown output name',
    body: { inputs: [features()], outputs: [{ name: 'probs' }] },
    status: 400,
    errorMatches:
      /^outputs\[0\]\.name 'probs' is not an output of this model; expected one of: scores, label/,
  },
  {
    name: 'duplicate output',
    body: { inputs: [features()], outputs: [{ name: 'label' }, { name: 'label' }] },
    status: 400,
    errorMatches: /^outputs\[1\]\.name 'label' appears more than once/,
  },
  {
    name: 'binary_data not a boolean',
    body: { inputs: [features()], outputs: [{ name: 'label', parameters: { binary_data: 'yes' } }] },
    status: 400,
    errorMatches: /^outputs\[0\]\.parameters\.binary_data is "yes", expected true or false/,
  },
  {
    name: 'binary_data_output not a boolean',
    body: { inputs: [features()], parameters: { binary_data_output: 1 } },
    status: 400,
    errorMatches: /^parameters\.binary_data_output is 1, expected true or false/,
  },

  // Inputs.
  {
    name: 'input not an object',
    body: { inputs: ['features'] },
    status: 400,
    errorMatches: /^inputs\[0\] is "features", expected an object/,
  },
  {
    name: 'input name missing',
    body: withInput({ shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }),
    status: 400,
    errorMatches: /^inputs\[0\]\.name is missing, expected a string/,
  },
  {
    name: 'unknown input name',
    body: withInput(features({ name: 'featurez' })),
    status: 400,
    errorMatches: /^inputs\[0\]\.name 'featurez' is not an input of this model; expected one of: features/,
  },
  {
    name: 'duplicate input',
    body: { inputs: [features(), features()] },
    status: 400,
    errorMatches: /^inputs\[1\]\.name 'features' appears more than once/,
  },
  {
    name: 'missing required input',
    body: { inputs: [] },
    status: 400,
    errorMatches: /^inputs lacks 'features', which the model requires/,
  },
  {
    name: 'wrong datatype',
    body: withInput(features({ datatype: 'FP64' })),
    status: 400,
    errorMatches: /^inputs\[0\]\.datatype is FP64, input 'features' expects FP32/,
  },
  {
    name: 'unknown datatype string',
    body: withInput(features({ datatype: 'FLOAT32' })),
    status: 400,
    errorMatches: /^inputs\[0\]\.datatype is "FLOAT32", expected an OIP datatype/,
  },
  {
    name: 'datatype missing',
    body: withInput(features({ datatype: undefined })),
    status: 400,
    errorMatches: /^inputs\[0\]\.datatype is missing/,
  },
  {
    name: 'input parameters not an object',
    body: withInput(features({ parameters: 'x' })),
    status: 400,
    errorMatches: /^inputs\[0\]\.parameters is "x", expected an object/,
  },

  // Shapes.
  {
    name: 'shape wrong rank',
    body: withInput(features({ shape: [4] })),
    status: 400,
    errorMatches: /^inputs\[0\]\.shape \[4\] has 1 dims, input 'features' expects 2 \(\[-1,4\]\)/,
  },
  {
    name: 'shape wrong fixed dim',
    body: withInput(features({ shape: [2, 2] })),
    status: 400,
    errorMatches:
      /^inputs\[0\]\.shape \[2,2\] does not match input 'features' shape \[-1,4\] at dim 1: 2 vs 4/,
  },
  {
    name: 'negative dim',
    body: withInput(features({ shape: [-1, 4] })),
    status: 400,
    errorMatches: /^inputs\[0\]\.shape is \[-1,4\], expected an array of non-negative integers/,
  },
  {
    name: 'non-integer dim',
    body: withInput(features({ shape: [1.5, 4] })),
    status: 400,
    errorMatches: /^inputs\[0\]\.shape is \[1\.5,4\], expected an array of non-negative integers/,
  },
  {
    name: 'string dim',
    body: withInput(features({ shape: ['1', 4] })),
    status: 400,
    errorMatches: /^inputs\[0\]\.shape is \["1",4\], expected an array of non-negative integers/,
  },
  {
    name: 'shape not an array',
    body: withInput(features({ shape: 4 })),
    status: 400,
    errorMatches: /^inputs\[0\]\.shape is 4, expected an array of non-negative integers/,
  },
  {
    name: 'shape missing',
    body: withInput(features({ shape: undefined })),
    status: 400,
    errorMatches: /^inputs\[0\]\.shape is missing, expected an array/,
  },
  {
    name: 'huge dims [1e9, 1e9] on [-1, 4]',
    body: withInput(features({ shape: [1e9, 1e9] })),
    status: 400,
    errorMatches: /^inputs\[0\]\.shape \[1000000000,1000000000\] does not match .* at dim 1: 1000000000 vs 4/,
  },
  {
    name: 'huge dims [1e9, 1e9] on a rank-1 input',
    path: IDENTITY,
    body: identity('FP32', [1], [1e9, 1e9]),
    status: 400,
    errorMatches: /^inputs\[0\]\.shape \[1000000000,1000000000\] has 2 dims, input 'in_FP32' expects 1/,
  },
  {
    name: 'huge dims [2**40, 4]',
    body: withInput(features({ shape: [2 ** 40, 4] })),
    status: 400,
    errorMatches: /^inputs\[0\]\.shape \[1099511627776,4\] declares more than 4294967296 elements/,
  },
  {
    name: 'huge dim [2**32] with one element of JSON data',
    path: IDENTITY,
    body: identity('FP32', [1], [2 ** 32]),
    status: 400,
    errorMatches: /^inputs\[0\]\.data has 1 elements but shape \[4294967296\] needs 4294967296/,
  },
  {
    name: 'huge dim [2**32] with 4 bytes of binary data',
    path: IDENTITY,
    ...binary(
      {
        inputs: [
          { name: 'in_FP32', datatype: 'FP32', shape: [2 ** 32], parameters: { binary_data_size: 4 } },
        ],
      },
      [fp32(1)],
    ),
    status: 400,
    errorMatches:
      /^inputs\[0\]\.parameters\.binary_data_size is 4 but its shape needs 4294967296 × 4 = 17179869184 bytes of FP32/,
  },
  {
    name: 'huge dim [2**32] of BYTES with 4 bytes of binary data',
    path: IDENTITY,
    ...binary(
      {
        inputs: [
          { name: 'in_BYTES', datatype: 'BYTES', shape: [2 ** 32], parameters: { binary_data_size: 4 } },
        ],
      },
      [new Uint8Array(4)],
    ),
    status: 400,
    errorMatches: /^inputs\[0\] binary data holds 1 BYTES elements, its shape needs 4294967296/,
  },

  // JSON data.
  {
    name: 'data missing',
    body: withInput(features({ data: undefined })),
    status: 400,
    errorMatches: /^inputs\[0\]\.data is missing, expected an array \(or binary_data_size\)/,
  },
  {
    name: 'data not an array',
    body: withInput(features({ data: { a: 1 } })),
    status: 400,
    errorMatches: /^inputs\[0\]\.data is \{"a":1\}, expected an array/,
  },
  {
    name: 'element count mismatch',
    body: withInput(features({ data: [1, 2, 3] })),
    status: 400,
    errorMatches: /^inputs\[0\]\.data has 3 elements but shape \[1,4\] needs 4/,
  },
  {
    name: 'nested data with the wrong count',
    body: withInput(
      features({
        shape: [2, 4],
        data: [
          [1, 2, 3, 4],
          [5, 6, 7],
        ],
      }),
    ),
    status: 400,
    errorMatches: /^inputs\[0\]\.data has 7 elements but shape \[2,4\] needs 8/,
  },
  {
    name: 'string in FP32 data',
    body: withInput(features({ data: [1, 'two', 3, 4] })),
    status: 400,
    errorMatches: /^inputs\[0\]\.data\[1\] is "two", expected a number for FP32/,
  },
  {
    name: 'null in data',
    body: withInput(features({ data: [1, 2, null, 4] })),
    status: 400,
    errorMatches: /^inputs\[0\]\.data\[2\] is null, expected a number for FP32/,
  },
  {
    name: 'object in data',
    body: withInput(features({ data: [1, 2, 3, {}] })),
    status: 400,
    errorMatches: /^inputs\[0\]\.data\[3\] is \{\}, expected a number for FP32/,
  },
  {
    name: 'UINT8 300',
    path: IDENTITY,
    body: identity('UINT8', [1, 300]),
    status: 400,
    errorMatches: /^inputs\[0\]\.data\[1\] is 300, expected an integer in 0\.\.255 for UINT8/,
  },
  {
    name: 'INT8 -129',
    path: IDENTITY,
    body: identity('INT8', [-129]),
    status: 400,
    errorMatches: /^inputs\[0\]\.data\[0\] is -129, expected an integer in -128\.\.127 for INT8/,
  },
  {
    name: 'INT32 1.5',
    path: IDENTITY,
    body: identity('INT32', [1, 1.5]),
    status: 400,
    errorMatches:
      /^inputs\[0\]\.data\[1\] is 1\.5, expected an integer in -2147483648\.\.2147483647 for INT32/,
  },
  {
    name: 'UINT32 -1',
    path: IDENTITY,
    body: identity('UINT32', [-1]),
    status: 400,
    errorMatches: /^inputs\[0\]\.data\[0\] is -1, expected an integer in 0\.\.4294967295 for UINT32/,
  },
  {
    name: 'BOOL given 1',
    path: IDENTITY,
    body: identity('BOOL', [true, 1]),
    status: 400,
    errorMatches: /^inputs\[0\]\.data\[1\] is 1, expected true or false for BOOL/,
  },
  {
    name: 'BOOL given "true"',
    path: IDENTITY,
    body: identity('BOOL', ['true']),
    status: 400,
    errorMatches: /^inputs\[0\]\.data\[0\] is "true", expected true or false for BOOL/,
  },
  {
    name: 'BYTES given a number',
    path: IDENTITY,
    body: identity('BYTES', ['a', 5]),
    status: 400,
    errorMatches: /^inputs\[0\]\.data\[1\] is 5, expected a string for BYTES/,
  },
  {
    name: 'INT64 given an unsafe number 2**60',
    path: IDENTITY,
    body: identity('INT64', [2 ** 60]),
    status: 400,
    // The value is in INT64's range; what is wrong is that a JSON number cannot carry it exactly.
    errorMatches: /^inputs\[0\]\.data\[0\] is 1152921504606847000, expected .*string.* for INT64/,
  },
  {
    name: 'INT64 string out of range',
    path: IDENTITY,
    body: identity('INT64', ['9223372036854775808']),
    status: 400,
    errorMatches:
      /^inputs\[0\]\.data\[0\] is "9223372036854775808", expected an integer in -9223372036854775808\.\.9223372036854775807 for INT64/,
  },
  {
    name: 'UINT64 given "-1"',
    path: IDENTITY,
    body: identity('UINT64', ['-1']),
    status: 400,
    errorMatches:
      /^inputs\[0\]\.data\[0\] is "-1", expected an integer in 0\.\.18446744073709551615 for UINT64/,
  },
  {
    name: 'INT64 given "1e3"',
    path: IDENTITY,
    body: identity('INT64', ['1e3']),
    status: 400,
    errorMatches: /^inputs\[0\]\.data\[0\] is "1e3", expected .*INT64/,
  },
  {
    name: 'FP16 given "abc"',
    path: IDENTITY,
    body: identity('FP16', ['abc']),
    status: 400,
    errorMatches: /^inputs\[0\]\.data\[0\] is "abc", expected a number for FP16/,
  },
  {
    name: 'data nested 5000 levels deep',
    body: `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":${deep(5000, '1,2,3,4')}}]}`,
    status: 400,
    errorMatches: /^inputs\[0\]\.data is nested more than 64 levels deep/,
  },
  {
    name: 'shape nested 5000 levels deep',
    body: `{"inputs":[{"name":"features","shape":${deep(5000, '1')},"datatype":"FP32","data":[1,2,3,4]}]}`,
    status: 400,
    errorMatches: /^inputs\[0\]\.shape is \[\[\[\[.*expected an array of non-negative integers/,
  },
  {
    name: 'id nested 25000 levels deep',
    body: `{"id":${deep(25000, '')},"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`,
    status: 400,
    errorMatches: /^id is \[\[\[\[.*expected a string/,
  },
  {
    name: 'repository index with `ready` nested 10000 levels deep',
    path: '/v2/repository/index',
    body: `{"ready":${deep(10000, '')}}`,
    status: 400,
    errorMatches: /^ready is .*expected true or false/,
  },

  // The binary tensor extension.
  {
    name: 'Inference-Header-Content-Length non-numeric',
    ...binary(withInput(features()), [], { 'inference-header-content-length': 'abc' }),
    status: 400,
    errorMatches: /^Inference-Header-Content-Length is "abc", expected a non-negative integer/,
  },
  {
    name: 'Inference-Header-Content-Length negative',
    ...binary(withInput(features()), [], { 'inference-header-content-length': '-5' }),
    status: 400,
    errorMatches: /^Inference-Header-Content-Length is "-5", expected a non-negative integer/,
  },
  {
    name: 'Inference-Header-Content-Length larger than the body',
    ...binary(withInput(features()), [], { 'inference-header-content-length': '100000' }),
    status: 400,
    errorMatches: /^Inference-Header-Content-Length is 100000 but the body has only \d+ bytes/,
  },
  {
    name: 'Inference-Header-Content-Length cuts the JSON header',
    ...binary(withInput(features()), [], { 'inference-header-content-length': '5' }),
    status: 400,
    errorMatches: /not valid JSON/,
  },
  {
    name: 'binary_data_size without the header',
    body: withInput(features({ data: undefined, parameters: { binary_data_size: 16 } })),
    status: 400,
    errorMatches:
      /^inputs\[0\]\.parameters\.binary_data_size is set but the request has no Inference-Header-Content-Length header/,
  },
  {
    name: 'binary_data_size not an integer',
    ...binary(withInput(features({ data: undefined, parameters: { binary_data_size: '16' } })), [fp32(4)]),
    status: 400,
    errorMatches: /^inputs\[0\]\.parameters\.binary_data_size is "16", expected a non-negative integer/,
  },
  {
    name: 'binary_data_size negative',
    ...binary(withInput(features({ data: undefined, parameters: { binary_data_size: -16 } })), [fp32(4)]),
    status: 400,
    errorMatches: /^inputs\[0\]\.parameters\.binary_data_size is -16, expected a non-negative integer/,
  },
  {
    name: 'binary_data_size larger than the remaining bytes',
    ...binary(withInput(features({ data: undefined, parameters: { binary_data_size: 32 } })), [fp32(4)]),
    status: 400,
    errorMatches: /^inputs\[0\]\.parameters\.binary_data_size is 32 but only 16 bytes of binary data remain/,
  },
  {
    name: 'binary sizes leave extra trailing bytes',
    ...binary(withInput(features({ data: undefined, parameters: { binary_data_size: 16 } })), [fp32(5)]),
    status: 400,
    errorMatches: /the binary part of the body is 20 bytes but the inputs' binary_data_size add up to 16/,
  },
  {
    name: 'binary part without any binary input',
    ...binary(withInput(features()), [fp32(1)]),
    status: 400,
    errorMatches: /the binary part of the body is 4 bytes but the inputs' binary_data_size add up to 0/,
  },
  {
    name: 'binary size does not match shape × element size',
    ...binary(withInput(features({ data: undefined, parameters: { binary_data_size: 12 } })), [fp32(3)]),
    status: 400,
    errorMatches:
      /^inputs\[0\]\.parameters\.binary_data_size is 12 but its shape needs 4 × 4 = 16 bytes of FP32/,
  },
  {
    name: 'both data and binary_data_size',
    ...binary(withInput(features({ parameters: { binary_data_size: 16 } })), [fp32(4)]),
    status: 400,
    errorMatches: /^inputs\[0\] has both data and binary_data_size/,
  },
  {
    name: 'BYTES binary with a truncated length prefix',
    path: IDENTITY,
    ...binary(
      { inputs: [{ name: 'in_BYTES', datatype: 'BYTES', shape: [2], parameters: { binary_data_size: 8 } }] },
      [Uint8Array.of(...dataToBinary('BYTES', ['ab']), 1, 0)],
    ),
    status: 400,
    errorMatches: /^inputs\[0\] binary BYTES data is truncated: a 4-byte length prefix is cut off/,
  },
  {
    name: 'BYTES binary with a length beyond the end',
    path: IDENTITY,
    ...binary(
      { inputs: [{ name: 'in_BYTES', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 5 } }] },
      [Uint8Array.of(10, 0, 0, 0, 97)],
    ),
    status: 400,
    errorMatches: /^inputs\[0\] binary BYTES element 0 declares 10 bytes but only 1 remain/,
  },
  {
    name: 'BYTES binary with more elements than the shape',
    path: IDENTITY,
    ...binary(
      { inputs: [{ name: 'in_BYTES', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 10 } }] },
      [dataToBinary('BYTES', ['a', 'b'])],
    ),
    status: 400,
    errorMatches: /^inputs\[0\] binary data holds more than 1 BYTES elements, its shape needs 1/,
  },

  // Routes, models and versions.
  {
    name: 'unknown model',
    path: '/v2/models/nope/infer',
    body: withInput(features()),
    status: 404,
    errorMatches: /^model 'nope' is not in the model repository/,
  },
  {
    name: 'unknown version',
    path: '/v2/models/example/versions/9/infer',
    body: withInput(features()),
    status: 404,
    errorMatches: /^model 'example' has no version '9'; versions: 1/,
  },
  {
    name: 'non-numeric version',
    path: '/v2/models/example/versions/latest/infer',
    body: withInput(features()),
    status: 404,
    errorMatches: /^model 'example' has no version 'latest'/,
  },
  {
    name: 'unknown route',
    path: '/v2/models/example/predict',
    body: withInput(features()),
    status: 404,
    errorMatches: /^no route for POST \/v2\/models\/example\/predict/,
  },
  {
    name: 'model name longer than a path parameter may be',
    path: `/v2/models/${'m'.repeat(300)}/infer`,
    body: withInput(features()),
    status: 414,
    errorMatches: /longer than|too long|256/,
  },
  {
    name: 'malformed percent-encoding in the path',
    path: '/v2/models/%E0%A4%A/infer',
    body: withInput(features()),
    status: 400,
    errorMatches: /%E0%A4%A/,
  },
  {
    name: 'unparseable content-type',
    body: JSON.stringify(withInput(features())),
    headers: { 'content-type': ';;;' },
    status: 415,
    errorMatches: /^content-type ";;;" is invalid/,
  },
  {
    name: 'GET on /infer',
    method: 'GET',
    path: EXAMPLE,
    status: 404,
    errorMatches: /^no route for GET \/v2\/models\/example\/infer/,
  },
];

/** Sends one case. */
function send(server: RunningServer, c: BadCase): Promise<ReadResponse> {
  return call(server, c.method ?? 'POST', c.path ?? EXAMPLE, c.body, c.headers);
}

const skipSpec = missingShared(OIP_SPEC);

describe('aiedge serve: malformed requests never crash the server', { skip: skipSpec }, () => {
  let server: RunningServer;
  let repo: { path: string; cleanup: () => Promise<void> };
  let oip: OipSchemas;

  before(async () => {
    oip = new OipSchemas(OIP_SPEC);
    repo = await tempDir('bad-input');
    await writeModel(repo.path, 'example', 1, exampleModel(1));
    await writeModel(repo.path, 'identity', 1, identityModel());
    server = await startTestServer({
      modelRepository: repo.path,
      workers: 2,
      maxBodyBytes: MAX_BODY_BYTES,
      maxQueue: 4096,
    });
  });
  after(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  /** Checks an error answer: status, `{"error": "..."}` per the OIP schema, and the message. */
  function checkError(c: BadCase, res: ReadResponse): void {
    assert.equal(res.status, c.status, `${c.name}: status (body ${res.text.slice(0, 300)})`);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/, `${c.name}: content-type`);
    oip.check('inference_error_response', res.json);
    assert.deepEqual(Object.keys(res.json as object), ['error'], `${c.name}: only an error field`);
    assert.match((res.json as { error: string }).error, c.errorMatches, c.name);
  }

  /** The server is ready and answers a valid inference with the right result. */
  async function assertHealthy(after: string): Promise<void> {
    const ready = await call(server, 'GET', '/v2/health/ready');
    assert.equal(ready.status, 200, `ready after ${after}: ${ready.text}`);
    const rows = [
      [1, 2, 3, 4],
      [-0.5, 0.25, 8, -3],
    ];
    const res = await call(server, 'POST', EXAMPLE, {
      id: 'health',
      inputs: [{ name: 'features', shape: [2, 4], datatype: 'FP32', data: rows }],
    });
    assert.equal(res.status, 200, `a valid inference after ${after}: ${res.text}`);
    oip.check('inference_response', res.json);
    const expected = exampleReference(1, Float32Array.from(rows.flat()));
    const outputs = (res.json as { outputs: Array<{ name: string; shape: number[]; data: number[] }> })
      .outputs;
    const scores = outputs.find((o) => o.name === 'scores')!;
    assert.deepEqual(scores.shape, [2, 3]);
    scores.data.forEach((v, i) => assert.ok(Math.abs(v - expected.scores[i]!) < 1e-5, `scores[${i}]`));
    assert.deepEqual(outputs.find((o) => o.name === 'label')!.data, Array.from(expected.label, Number));
  }

  test('case names are unique', () => {
    assert.equal(new Set(cases.map((c) => c.name)).size, cases.length);
  });

  /** The status each case got when sent alone, for comparison with the concurrent rounds. */
  const statuses = new Map<string, number>();

  describe('each case, one at a time, then a health check', () => {
    for (const c of cases) {
      test(c.name, async () => {
        const res = await send(server, c);
        statuses.set(c.name, res.status);
        checkError(c, res);
        await assertHealthy(c.name);
      });
    }
  });

  test('after the whole table the server is healthy', async () => {
    await assertHealthy('the whole table');
  });

  test('the whole table sent concurrently, several rounds at once, gets the same answers', async () => {
    const rounds = 4;
    const all = await Promise.all(
      Array.from({ length: rounds }, () =>
        Promise.all(cases.map(async (c) => ({ c, res: await send(server, c) }))),
      ),
    );
    for (const round of all) {
      for (const { c, res } of round) {
        checkError(c, res);
      }
    }
    await assertHealthy('the concurrent rounds');
  });

  test('valid JSON and binary requests to the identity model still round-trip', async () => {
    const chunk = dataToBinary('BYTES', ['ok', '']);
    const inputs = Datatypes.map((d) =>
      d === 'BYTES'
        ? { name: 'in_BYTES', datatype: d, shape: [2], parameters: { binary_data_size: chunk.length } }
        : { name: `in_${d}`, datatype: d, shape: [2], data: d === 'BOOL' ? [true, false] : [1, 0] },
    );
    const { body, headers } = binaryBody({ inputs, outputs: [{ name: 'out_BYTES' }, { name: 'out_INT8' }] }, [
      chunk,
    ]);
    const res = await call(server, 'POST', IDENTITY, body, headers);
    assert.equal(res.status, 200, res.text);
    oip.check('inference_response', res.json);
    assert.deepEqual((res.json as { outputs: unknown[] }).outputs, [
      { name: 'out_BYTES', datatype: 'BYTES', shape: [2], data: ['ok', ''] },
      { name: 'out_INT8', datatype: 'INT8', shape: [2], data: [1, 0] },
    ]);
  });
});
