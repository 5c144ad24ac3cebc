import { ErrorCodes, type ErrorCode } from './codes.js';

/** Options every ai-edge error accepts. */
export interface AiEdgeErrorOptions {
  /** The error that caused this one. */
  readonly cause?: unknown;
  /** Overrides the class's default machine code. */
  readonly code?: ErrorCode;
}

/** Base of every error ai-edge raises on purpose; carries a stable machine code and an HTTP status. */
export class AiEdgeError extends Error {
  /** Stable machine code (see ErrorCodes). */
  readonly code: ErrorCode;
  /** HTTP status this error maps to. */
  readonly status: number = 500;

  constructor(message: string, options: AiEdgeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? ErrorCodes.INTERNAL;
  }
}

/** Bad input from a client or an operator: names the path, the value and what was expected. */
export class InputError extends AiEdgeError {
  override readonly status: number = 400;
  constructor(message: string, options: AiEdgeErrorOptions = {}) {
    super(message, { code: ErrorCodes.INVALID_INPUT, ...options });
  }
}

/** The addressed thing does not exist. */
export class NotFoundError extends AiEdgeError {
  override readonly status: number = 404;
  constructor(message: string, options: AiEdgeErrorOptions = {}) {
    super(message, { code: ErrorCodes.NOT_FOUND, ...options });
  }
}

/** The request conflicts with the current state. */
export class ConflictError extends AiEdgeError {
  override readonly status: number = 409;
  constructor(message: string, options: AiEdgeErrorOptions = {}) {
    super(message, { code: ErrorCodes.CONFLICT, ...options });
  }
}

/** Missing or invalid credentials. */
export class UnauthorizedError extends AiEdgeError {
  override readonly status: number = 401;
  constructor(message: string, options: AiEdgeErrorOptions = {}) {
    super(message, { code: ErrorCodes.UNAUTHORIZED, ...options });
  }
}

/** Valid credentials without the right to do this. */
export class ForbiddenError extends AiEdgeError {
  override readonly status: number = 403;
  constructor(message: string, options: AiEdgeErrorOptions = {}) {
    super(message, { code: ErrorCodes.FORBIDDEN, ...options });
  }
}

/** A request body larger than the configured limit. */
export class PayloadTooLargeError extends AiEdgeError {
  override readonly status: number = 413;
  constructor(message: string, options: AiEdgeErrorOptions = {}) {
    super(message, { code: ErrorCodes.PAYLOAD_TOO_LARGE, ...options });
  }
}

/** Options of {@link UnavailableError}. */
export interface UnavailableErrorOptions extends AiEdgeErrorOptions {
  /** Seconds after which a retry may succeed (sent as `Retry-After`). */
  readonly retryAfterSeconds?: number;
}

/** The server cannot take the request now; a retry later may succeed. */
export class UnavailableError extends AiEdgeError {
  override readonly status: number = 503;
  /** Seconds after which a retry may succeed, when known. */
  readonly retryAfterSeconds: number | undefined;
  constructor(message: string, options: UnavailableErrorOptions = {}) {
    super(message, { code: ErrorCodes.UNAVAILABLE, ...options });
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** True when `value` is an ai-edge error (also across realms, by shape). */
export function isAiEdgeError(value: unknown): value is AiEdgeError {
  return value instanceof AiEdgeError;
}

/** The HTTP status for any thrown value: the error's own for ai-edge errors, 500 otherwise. */
export function httpStatusOf(error: unknown): number {
  return isAiEdgeError(error) ? error.status : 500;
}
