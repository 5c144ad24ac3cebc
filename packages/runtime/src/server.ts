/** The Open Inference Protocol REST server (fastify) over the model repository and worker pool. */
import { performance } from 'node:perf_hooks';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { SpanKind, SpanStatusCode, type Tracer } from '@opentelemetry/api';
import {
  INFERENCE_HEADER_CONTENT_LENGTH,
  InputError,
  ServerExtensions,
  UnavailableError,
  describeValue,
  httpStatusOf,
  isAiEdgeError,
  type ModelMetadataResponse,
  type ServerMetadataResponse,
} from '@aiedge/protocol';
import { extractTraceContext, type Logger } from '@aiedge/telemetry';
import { parseHeaderLength } from './codec.js';
import type { RuntimeMetrics } from './metrics.js';
import type { WorkerPool } from './pool.js';
import type { ModelRepository } from './repository.js';
import { RUNTIME_NAME, RUNTIME_VERSION } from './version.js';

/** What the HTTP layer needs. */
export interface AppDependencies {
  readonly repository: ModelRepository;
  readonly pool: WorkerPool;
  readonly metrics: RuntimeMetrics;
  readonly tracer: Tracer;
  readonly logger: Logger;
  readonly maxBodyBytes: number;
}

interface ModelParams {
  model: string;
  version?: string;
}

const EMPTY = Buffer.alloc(0);

function sendError(
  reply: FastifyReply,
  status: number,
  message: string,
  retryAfterSeconds?: number,
): FastifyReply {
  if (retryAfterSeconds !== undefined) void reply.header('retry-after', String(retryAfterSeconds));
  return reply.code(status).type('application/json').send({ error: message });
}

/** Builds the fastify app with every OIP route, Triton's repository extension and /metrics. */
export function buildApp(deps: AppDependencies): FastifyInstance {
  const { repository, pool, metrics, tracer, logger } = deps;
  const app = Fastify({
    logger: false,
    bodyLimit: deps.maxBodyBytes,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 256 },
    // Errors fastify raises before routing (bad URL encoding, bad content-type) get the protocol's body too.
    frameworkErrors: (error, request, reply) => {
      const status = error.statusCode ?? 400;
      const url = describeValue(request.url, 120);
      const message =
        error.code === 'FST_ERR_BAD_URL'
          ? `the URL ${url} is not validly percent-encoded`
          : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
            ? `a path segment of ${url} is longer than 256 characters`
            : error.message;
      void sendError(reply, status, message);
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  // Bodies arrive as raw bytes; the workers parse them (JSON or binary tensors) off the event loop.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (isAiEdgeError(error)) {
      const retry = error instanceof UnavailableError ? error.retryAfterSeconds : undefined;
      if (error.status >= 500 && !(error instanceof UnavailableError)) {
        logger.error('request failed', { method: request.method, url: request.url, err: error });
      }
      return sendError(reply, error.status, error.message, retry);
    }
    if (
      error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ||
      error.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH'
    ) {
      const header = error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'content-type' : 'content-length';
      return sendError(
        reply,
        error.statusCode ?? 400,
        `${header} ${describeValue(request.headers[header])} is invalid: ${error.message}`,
      );
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendError(reply, 413, `request body is larger than the limit of ${deps.maxBodyBytes} bytes`);
    }
    const status = error.statusCode ?? 500;
    if (status < 500) return sendError(reply, status, error.message);
    logger.error('request failed', { method: request.method, url: request.url, err: error });
    return sendError(reply, 500, 'internal server error');
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, 404, `no route for ${request.method} ${request.url.split('?')[0]}`),
  );

  app.get('/v2', async (): Promise<ServerMetadataResponse> => ({
    name: RUNTIME_NAME,
    version: RUNTIME_VERSION,
    extensions: [...ServerExtensions],
  }));
  app.get('/v2/health/live', async () => ({ live: true }));
  app.get('/v2/health/ready', async (_request, reply) => {
    if (repository.isReady()) return { ready: true };
    const waiting = repository
      .index()
      .filter((row) => row.state !== 'READY')
      .map((row) => `${row.name}${row.version ? `/${row.version}` : ''} ${row.state}`);
    return sendError(reply, 503, `not ready: ${waiting.join(', ') || 'loading the model repository'}`);
  });

  const metadata = async (
    request: FastifyRequest<{ Params: ModelParams }>,
  ): Promise<ModelMetadataResponse> => {
    const { model, version } = request.params;
    const view = repository.describe(model, version);
    return {
      name: model,
      versions: view.versions,
      platform: 'onnxruntime_onnx',
      inputs: view.io.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: [...t.shape] })),
      outputs: view.io.outputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: [...t.shape] })),
    };
  };
  app.get('/v2/models/:model', metadata);
  app.get('/v2/models/:model/versions/:version', metadata);

  // describe() throws 404 for an unknown model or version and 503 with the reason when not ready.
  const ready = async (request: FastifyRequest<{ Params: ModelParams }>) => {
    const { model, version } = request.params;
    repository.describe(model, version);
    return { name: model, ready: true };
  };
  app.get('/v2/models/:model/ready', ready);
  app.get('/v2/models/:model/versions/:version/ready', ready);

  const infer = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
    const started = performance.now();
    const { model, version } = request.params;
    const acquired = repository.acquire(model, version);
    const span = tracer.startSpan(
      `infer ${model}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'aiedge.model.name': model,
          'aiedge.model.version': acquired.version,
          'http.request.method': 'POST',
          'url.path': request.url,
        },
      },
      extractTraceContext(request.headers),
    );
    try {
      const body = Buffer.isBuffer(request.body) ? request.body : EMPTY;
      const headerLength = parseHeaderLength(request.headers[INFERENCE_HEADER_CONTENT_LENGTH], body.length);
      const result = await pool.infer({
        key: acquired.key,
        modelName: model,
        modelVersion: acquired.version,
        body,
        headerLength,
      });
      const outcome = result.status < 400 ? 'success' : result.status < 500 ? 'client_error' : 'server_error';
      metrics.recordInference(
        model,
        acquired.version,
        outcome,
        (performance.now() - started) / 1000,
        result.queueMs / 1000,
      );
      span.setAttribute('http.response.status_code', result.status);
      if (result.status >= 400) span.setStatus({ code: SpanStatusCode.ERROR });
      if (result.headerLength !== undefined) {
        void reply.header(INFERENCE_HEADER_CONTENT_LENGTH, String(result.headerLength));
      }
      return reply
        .code(result.status)
        .type(result.contentType)
        .send(Buffer.from(result.body.buffer, result.body.byteOffset, result.body.byteLength));
    } catch (error) {
      const status = httpStatusOf(error);
      const outcome =
        error instanceof UnavailableError ? 'rejected' : status < 500 ? 'client_error' : 'server_error';
      metrics.recordInference(model, acquired.version, outcome, (performance.now() - started) / 1000);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      acquired.release();
      span.end();
    }
  };
  app.post('/v2/models/:model/infer', infer);
  app.post('/v2/models/:model/versions/:version/infer', infer);

  app.post('/v2/repository/index', async (request) => {
    let readyOnly = false;
    const body = Buffer.isBuffer(request.body) ? request.body : EMPTY;
    if (body.length > 0) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch (error) {
        throw new InputError(`request body is not valid JSON: ${(error as Error).message}`);
      }
      const flag = (parsed as Record<string, unknown> | null)?.['ready'];
      if (flag !== undefined && typeof flag !== 'boolean') {
        throw new InputError(`ready is ${describeValue(flag)}, expected true or false`);
      }
      readyOnly = flag === true;
    }
    const rows = repository.index();
    return readyOnly ? rows.filter((r) => r.state === 'READY') : rows;
  });
  app.post('/v2/repository/models/:model/load', async (request: FastifyRequest<{ Params: ModelParams }>) => {
    await repository.load(request.params.model);
    return {};
  });
  app.post(
    '/v2/repository/models/:model/unload',
    async (request: FastifyRequest<{ Params: ModelParams }>) => {
      await repository.unload(request.params.model);
      return {};
    },
  );

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });

  return app;
}
