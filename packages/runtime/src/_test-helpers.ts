/**
 * Helpers shared by the runtime's tests (not part of the build): fixture paths, the Open Inference
 * Protocol schemas from ../shared/specs, test servers on 127.0.0.1, and binary-extension bodies.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { Datatypes } from '@aiedge/protocol';
import { silentLogger } from '@aiedge/telemetry';
import { ortTypeOf } from './datatypes.js';
import { encodeModel } from './onnx/index.js';
import { resolveServeOptions, type ServeOptionsInput } from './options.js';
import { startServer, type RunningServer } from './serve.js';

/** The repository root (packages/runtime/src → ../../..). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** ../shared beside the checkout, where CI keeps fixtures and specs. */
export const SHARED = resolve(REPO_ROOT, '../shared');
export const FIXTURES = join(SHARED, 'fixtures');
export const OIP_SPEC = join(SHARED, 'specs/open_inference_rest.yaml');

/** Why a test that needs ../shared is skipped, or undefined when the path exists. */
export function missingShared(path: string): string | undefined {
  if (existsSync(path)) return undefined;
  const why = `${path} not found (the shared fixtures and specs live beside the checkout in ../shared)`;
  if (process.env['CI'] === 'true') throw new Error(`${why}; CI must provide them`);
  return why;
}

type SchemaName =
  | 'metadata_server_response'
  | 'metadata_model_response'
  | 'inference_request'
  | 'inference_response'
  | 'inference_error_response'
  | 'metadata_model_error_response';

/** Validators for the component schemas of the OIP REST OpenAPI document. */
export class OipSchemas {
  readonly #ajv = new Ajv({ strict: false, allErrors: true });
  readonly #cache = new Map<string, ValidateFunction>();

  constructor(specPath: string) {
    const spec = parseYaml(readFileSync(specPath, 'utf8')) as {
      components: { schemas: Record<string, Record<string, unknown>> };
    };
    const schemas = structuredClone(spec.components.schemas);
    // Triton's binary tensor extension: an output sent as binary carries
    // parameters.binary_data_size instead of data in the JSON header.
    const output = schemas['response_output']!;
    schemas['binary_response_output'] = {
      ...output,
      required: ['name', 'shape', 'datatype'],
      anyOf: [
        { required: ['data'] },
        { required: ['parameters'], properties: { parameters: { required: ['binary_data_size'] } } },
      ],
    };
    schemas['binary_inference_response'] = {
      ...schemas['inference_response'],
      properties: {
        ...(schemas['inference_response']!['properties'] as object),
        outputs: { type: 'array', items: { $ref: '#/components/schemas/binary_response_output' } },
      },
    };
    this.#ajv.addSchema({ $id: 'oip', components: { schemas } });
  }

  /** Throws when `value` does not match the named component schema. */
  check(name: SchemaName | 'binary_inference_response', value: unknown): void {
    let validate = this.#cache.get(name);
    if (validate === undefined) {
      validate = this.#ajv.getSchema(`oip#/components/schemas/${name}`)!;
      this.#cache.set(name, validate);
    }
    if (!validate(value)) {
      throw new Error(
        `response does not match OIP schema ${name}: ${this.#ajv.errorsText(validate.errors)}\n${JSON.stringify(value).slice(0, 500)}`,
      );
    }
  }
}

/** A response read whole: status, headers, JSON header and the binary part if any. */
export interface ReadResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly json: unknown;
  readonly binary: Uint8Array;
  readonly text: string;
}

/** Reads a fetch response, splitting a binary-extension body into JSON header and binary part. */
export async function readResponse(response: Response): Promise<ReadResponse> {
  const bytes = new Uint8Array(await response.arrayBuffer());
  const headerLength = response.headers.get('inference-header-content-length');
  const jsonEnd = headerLength === null ? bytes.length : Number(headerLength);
  const text = new TextDecoder().decode(bytes.subarray(0, jsonEnd));
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, json, binary: bytes.subarray(jsonEnd), text };
}

/** Sends a request to a test server and reads the response. */
export async function call(
  server: { url: string },
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ReadResponse> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body instanceof Uint8Array) init.body = body;
  else if (typeof body === 'string') init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  return readResponse(await fetch(`${server.url}${path}`, init));
}

/** Builds a binary-extension request body: JSON header then the binary chunks. */
export function binaryBody(
  header: unknown,
  chunks: readonly Uint8Array[],
): { body: Uint8Array; headers: Record<string, string> } {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const total = chunks.reduce((n, c) => n + c.length, json.length);
  const body = new Uint8Array(total);
  body.set(json);
  let at = json.length;
  for (const c of chunks) {
    body.set(c, at);
    at += c.length;
  }
  return {
    body,
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(json.length),
    },
  };
}

/** Bytes of a typed array (little-endian as in memory). */
export function bytesOf(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** A temporary directory removed by the returned cleanup. */
export async function tempDir(prefix: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `aiedge-${prefix}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Writes model bytes to `root/<name>/<version>/model.onnx`. */
export async function writeModel(
  root: string,
  name: string,
  version: number,
  bytes: Uint8Array,
): Promise<string> {
  const dir = join(root, name, String(version));
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'model.onnx');
  await writeFile(file, bytes);
  return file;
}

/** Starts a server on 127.0.0.1 with a free port and a silent logger. */
export async function startTestServer(input: ServeOptionsInput): Promise<RunningServer> {
  const options = resolveServeOptions({
    host: '127.0.0.1',
    port: 0,
    workers: 1,
    intraOpThreads: 1,
    ...input,
  });
  return startServer(options, { logger: silentLogger });
}

/** A model whose output `out_<T>` is Identity(`in_<T>`) for every OIP datatype T (shape [n]). */
export function identityModel(): Uint8Array {
  return encodeModel({
    graphName: 'identity-all',
    inputs: Datatypes.map((d) => ({ name: `in_${d}`, type: ortTypeOf[d], shape: ['n'] })),
    outputs: Datatypes.map((d) => ({ name: `out_${d}`, type: ortTypeOf[d], shape: ['n'] })),
    initializers: [],
    nodes: Datatypes.map((d) => ({ opType: 'Identity', inputs: [`in_${d}`], outputs: [`out_${d}`] })),
  });
}
