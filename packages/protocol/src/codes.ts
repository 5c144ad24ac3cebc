/**
 * Every stable machine code an ai-edge error can carry. A code, once published, keeps its meaning;
 * a retired code is never reused. Add new codes at the end of their group.
 */
export const ErrorCodes = {
  /** A request or configuration value is malformed or out of range. */
  INVALID_INPUT: 'AIEDGE_ERR_INVALID_INPUT',
  /** A request body is not valid JSON. */
  MALFORMED_JSON: 'AIEDGE_ERR_MALFORMED_JSON',
  /** A request body exceeds the configured size limit. */
  PAYLOAD_TOO_LARGE: 'AIEDGE_ERR_PAYLOAD_TOO_LARGE',
  /** The addressed resource does not exist. */
  NOT_FOUND: 'AIEDGE_ERR_NOT_FOUND',
  /** The request conflicts with the current state. */
  CONFLICT: 'AIEDGE_ERR_CONFLICT',
  /** No or invalid credentials. */
  UNAUTHORIZED: 'AIEDGE_ERR_UNAUTHORIZED',
  /** Valid credentials without the right to this resource. */
  FORBIDDEN: 'AIEDGE_ERR_FORBIDDEN',
  /** The server cannot take the request now (queue full, model not ready, shutting down). */
  UNAVAILABLE: 'AIEDGE_ERR_UNAVAILABLE',
  /** An unexpected failure inside the server. */
  INTERNAL: 'AIEDGE_ERR_INTERNAL',

  /** An inference input does not match the model (name, datatype, shape, element count). */
  TENSOR_MISMATCH: 'AIEDGE_ERR_TENSOR_MISMATCH',
  /** A model failed to load. */
  MODEL_LOAD_FAILED: 'AIEDGE_ERR_MODEL_LOAD_FAILED',
  /** The model runtime rejected or failed an inference. */
  INFERENCE_FAILED: 'AIEDGE_ERR_INFERENCE_FAILED',
  /** A model repository or model configuration is invalid. */
  INVALID_MODEL_CONFIG: 'AIEDGE_ERR_INVALID_MODEL_CONFIG',
} as const;

/** One of the stable machine codes in {@link ErrorCodes}. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];
