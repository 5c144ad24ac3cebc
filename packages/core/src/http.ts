/**
 * HTTP plumbing shared by every core route: errors as RFC 9457 problem documents (with the stable
 * ai-edge code), validation errors that name the field path, and the bearer-token hook.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  ErrorCodes,
  UnauthorizedError,
  UnavailableError,
  describeValue,
  isAiEdgeError,
  joinPath,
  type ErrorCode,
} from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';
import { Type } from '@sinclair/typebox';
import { Ajv, type Options as AjvOptions } from 'ajv';
import addFormats from 'ajv-formats';
import { authenticate, tokenFromHeaders } from './auth.js';
import type { Db } from './store/db.js';

/** Schema of a problem document (for route schemas and the OpenAPI document). */
export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String(),
    instance: Type.Optional(Type.String()),
  },
  { $id: 'Problem', description: 'An RFC 9457 problem document with the stable ai-edge error code.' },
);

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return ErrorCodes.INVALID_INPUT;
    case 401:
      return ErrorCodes.UNAUTHORIZED;
    case 403:
      return ErrorCodes.FORBIDDEN;
    case 404:
      return ErrorCodes.NOT_FOUND;
    case 409:
      return ErrorCodes.CONFLICT;
    case 413:
      return ErrorCodes.PAYLOAD_TOO_LARGE;
    case 503:
      return ErrorCodes.UNAVAILABLE;
    default:
      return status < 500 ? ErrorCodes.INVALID_INPUT : ErrorCodes.INTERNAL;
  }
}

/** Sends a problem document. */
export function sendProblem(
  reply: FastifyReply,
  status: number,
  detail: string,
  code: ErrorCode = codeForStatus(status),
): FastifyReply {
  if (status === 401) void reply.header('www-authenticate', 'Bearer realm="aiedge"');
  return reply
    .code(status)
    .type('application/problem+json')
    .send({
      type: 'about:blank',
      title: TITLES[status] ?? 'Error',
      status,
      detail,
      code,
      instance: reply.request.url.split('?')[0],
    });
}

/** The message of a fastify schema-validation error, naming `body.x.y`, the value and the rule. */
export function validationMessage(error: FastifyError, request: FastifyRequest): string {
  const first = error.validation?.[0];
  if (first === undefined) return error.message;
  const context = error.validationContext ?? 'body';
  const root: unknown =
    context === 'body'
      ? request.body
      : context === 'querystring'
        ? request.query
        : context === 'params'
          ? request.params
          : request.headers;
  const pointer = first.instancePath;
  const params = first.params as Record<string, unknown>;
  if (first.keyword === 'additionalProperties')
    return `${joinPath(context, pointer)}: unknown key '${String(params['additionalProperty'])}'`;
  if (first.keyword === 'required')
    return `${joinPath(context, pointer)}: missing required key '${String(params['missingProperty'])}'`;
  let value: unknown = root;
  for (const part of pointer.split('/').slice(1)) {
    value =
      typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[part] : undefined;
  }
  return `${joinPath(context, pointer)} is ${describeValue(value)}: ${first.message ?? 'invalid'}`;
}

/** Installs the error and not-found handlers that answer with problem documents. */
export function installProblemHandlers(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation !== undefined) return sendProblem(reply, 400, validationMessage(error, request));
    if (isAiEdgeError(error)) {
      if (error instanceof UnavailableError && error.retryAfterSeconds !== undefined)
        void reply.header('retry-after', String(Math.ceil(error.retryAfterSeconds)));
      if (error.status >= 500 && !(error instanceof UnavailableError))
        logger.error('request failed', {
          method: request.method,
          url: request.url.split('?')[0],
          err: error,
        });
      return sendProblem(reply, error.status, error.message, error.code);
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendProblem(
        reply,
        413,
        `request body is larger than the limit of ${request.routeOptions.bodyLimit} bytes`,
      );
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return sendProblem(
        reply,
        415,
        `content-type ${describeValue(request.headers['content-type'])} is not accepted here`,
      );
    }
    if (
      error instanceof SyntaxError ||
      error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
      error.code === 'FST_ERR_CTP_INVALID_JSON_BODY'
    ) {
      return sendProblem(
        reply,
        400,
        `request body is not valid JSON: ${error.message}`,
        ErrorCodes.MALFORMED_JSON,
      );
    }
    const status = error.statusCode ?? 500;
    if (status < 500) return sendProblem(reply, status, error.message);
    logger.error('request failed', { method: request.method, url: request.url.split('?')[0], err: error });
    return sendProblem(reply, 500, 'internal server error');
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, 404, `no route for ${request.method} ${request.url.split('?')[0]}`),
  );
}

/**
 * The bearer-token hook: resolves `request.principal` from the Authorization header on every route
 * whose config does not say `public: true`; refuses with 401 when there is no valid token.
 */
export function installAuthHook(app: FastifyInstance, db: Db): void {
  app.decorateRequest('principal', undefined);
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config as { public?: boolean } | undefined;
    const token = tokenFromHeaders(request.headers);
    if (config?.public === true) {
      if (token !== undefined) request.principal = await authenticate(db, token).catch(() => undefined);
      return;
    }
    if (token === undefined) {
      throw new UnauthorizedError('a bearer token is required (Authorization: Bearer <token>)');
    }
    request.principal = await authenticate(db, token);
  });
}

/**
 * Schema validators: request bodies are checked as sent (no type coercion, unknown keys refused
 * where the schema says so); query strings, params and headers are text, so numbers and booleans
 * there are coerced.
 */
export function installValidators(app: FastifyInstance): void {
  const make = (options: AjvOptions) => {
    const ajv = new Ajv({
      removeAdditional: false,
      useDefaults: true,
      allErrors: false,
      strict: false,
      ...options,
    });
    addFormats.default(ajv);
    return ajv;
  };
  const strict = make({ coerceTypes: false });
  const coercing = make({ coerceTypes: 'array' });
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? strict : coercing).compile(schema),
  );
}
