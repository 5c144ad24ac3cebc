export { ErrorCodes, type ErrorCode } from './codes.js';
export {
  AiEdgeError,
  ConflictError,
  ForbiddenError,
  InputError,
  NotFoundError,
  PayloadTooLargeError,
  UnauthorizedError,
  UnavailableError,
  httpStatusOf,
  isAiEdgeError,
  type AiEdgeErrorOptions,
  type UnavailableErrorOptions,
} from './errors.js';
export {
  DatatypeByteSize,
  Datatypes,
  INFERENCE_HEADER_CONTENT_LENGTH,
  ModelStates,
  ServerExtensions,
  isDatatype,
  type Datatype,
  type ErrorResponse,
  type InferenceRequest,
  type InferenceResponse,
  type MetadataTensor,
  type ModelMetadataResponse,
  type ModelState,
  type Parameters,
  type RepositoryIndexEntry,
  type RequestInput,
  type RequestOutput,
  type ResponseOutput,
  type ServerMetadataResponse,
  type TensorData,
} from './oip.js';
export { describeValue } from './values.js';
export { joinPath, validateWith, type PathStyle } from './validate.js';
export * from './api-fleet.js';
export * from './api-runs.js';
export * from './api-telemetry.js';
export * from './model-registry.js';
