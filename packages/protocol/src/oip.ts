/**
 * Types of the Open Inference Protocol (KServe V2) REST API and of Triton's extensions that ai-edge
 * implements: binary tensor data and the model repository API.
 * Spec: kserve/open-inference-protocol `specification/protocol/inference_rest.md`.
 */

/** Every tensor datatype of the Open Inference Protocol. */
export const Datatypes = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
] as const;

/** A tensor datatype of the Open Inference Protocol. */
export type Datatype = (typeof Datatypes)[number];

/** Size in bytes of one element in the binary tensor format; undefined for BYTES (variable). */
export const DatatypeByteSize: Readonly<Record<Datatype, number | undefined>> = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  FP32: 4,
  FP64: 8,
  BYTES: undefined,
};

/** True when `value` names an OIP datatype. */
export function isDatatype(value: unknown): value is Datatype {
  return typeof value === 'string' && (Datatypes as readonly string[]).includes(value);
}

/** Free-form parameters attached to requests, tensors and responses. */
export type Parameters = Record<string, unknown>;

/** Nested or flat tensor contents in JSON. */
export type TensorData = ReadonlyArray<number | string | boolean | TensorData>;

/** `GET /v2` response. */
export interface ServerMetadataResponse {
  name: string;
  version: string;
  extensions: string[];
}

/** One input or output as described by model metadata; -1 marks a dynamic dimension. */
export interface MetadataTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
}

/** `GET /v2/models/{m}[/versions/{v}]` response. */
export interface ModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: MetadataTensor[];
  outputs: MetadataTensor[];
  properties?: Record<string, string>;
}

/** One input of an inference request. */
export interface RequestInput {
  name: string;
  shape: number[];
  datatype: Datatype;
  parameters?: Parameters;
  data?: TensorData;
}

/** One requested output of an inference request. */
export interface RequestOutput {
  name: string;
  parameters?: Parameters;
}

/** `POST .../infer` request body (the JSON part when binary data follows). */
export interface InferenceRequest {
  id?: string;
  parameters?: Parameters;
  inputs: RequestInput[];
  outputs?: RequestOutput[];
}

/** One output of an inference response. */
export interface ResponseOutput {
  name: string;
  shape: number[];
  datatype: Datatype;
  parameters?: Parameters;
  data?: TensorData;
}

/** `POST .../infer` response body (the JSON part when binary data follows). */
export interface InferenceResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Parameters;
  outputs: ResponseOutput[];
}

/** Every error response of the protocol. */
export interface ErrorResponse {
  error: string;
}

/** HTTP header carrying the length of the JSON part of a binary-extension body. */
export const INFERENCE_HEADER_CONTENT_LENGTH = 'inference-header-content-length';

/** Names of the protocol extensions ai-edge's runtime implements (advertised in `GET /v2`). */
export const ServerExtensions = ['binary_tensor_data', 'model_repository'] as const;

/** States a model version can be in, as reported by the repository index. */
export const ModelStates = ['LOADING', 'READY', 'UNLOADING', 'UNAVAILABLE'] as const;

/** State of one model version. */
export type ModelState = (typeof ModelStates)[number];

/** One row of `POST /v2/repository/index`. */
export interface RepositoryIndexEntry {
  name: string;
  version?: string;
  state?: ModelState;
  reason?: string;
}
