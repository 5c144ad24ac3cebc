/**
 * `aiedge core`: one fastify server over one store. Public: `/healthz`. Everything else needs a
 * bearer token: the ai-edge API, the Kubeflow-compatible model registry, the OCI registry at `/v2/`
 * (which checks tokens through its own authorizer so OCI clients get registry-style challenges),
 * the OTLP receiver and `/metrics`. The web dashboard's static files at `/` are public (the app
 * sends the token to the API itself).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { ContentStore, registryRoutes } from '@aiedge/oci';
import { ForbiddenError, UnauthorizedError } from '@aiedge/protocol';
import { createLogger, type Logger } from '@aiedge/telemetry';
import { authenticate, requireAdmin, requireAdminOrSite, tokenFromHeaders } from './auth.js';
import type { CoreConfig } from './config.js';
import type { CoreArea, CoreContext } from './context.js';
import { registerDashboard } from './dashboard.js';
import { deploymentsArea } from './deployments.js';
import { fleetArea } from './fleet.js';
import { GitOpsPublisher } from './gitops.js';
import { ProblemSchema, installAuthHook, installProblemHandlers, installValidators } from './http.js';
import { modelRegistryArea } from './model-registry/routes.js';
import { runsArea, type PipelineExecutor } from './runs/routes.js';
import { openStore, type Store } from './store/db.js';
import { telemetryArea } from './telemetry/routes.js';
import { tokensArea } from './tokens.js';

/** Version of the core's API and server. */
export const CORE_VERSION = '0.1.0';

/** Options of {@link startCore}. */
export interface CoreOptions {
  readonly config: CoreConfig;
  /** Logger; default JSON lines on stdout at the configured level. */
  readonly logger?: Logger;
  /** Executes pipeline runs; default: ai-edge pipelines (package pipeline), and command tasks (minimal executor). */
  readonly pipelineExecutor?: PipelineExecutor;
  /** Clock, for tests. */
  readonly now?: () => Date;
}

/** A running core. */
export interface RunningCore {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly port: number;
  readonly app: FastifyInstance;
  readonly context: CoreContext;
  readonly gitops: GitOpsPublisher;
  /** Stops accepting, ends long-polls and streams, closes the store. Idempotent. */
  close(): Promise<void>;
}

/** Opens the store under `<data>/core.db` (creating the data directory). */
export async function openCoreStore(config: CoreConfig): Promise<Store> {
  mkdirSync(config.data, { recursive: true });
  return openStore({ sqlitePath: join(config.data, 'core.db') });
}

/** Starts the core: opens the store, starts every area, listens. */
export async function startCore(options: CoreOptions): Promise<RunningCore> {
  const { config } = options;
  const logger = options.logger ?? createLogger({ component: 'core', level: config.logLevel });
  const store = await openCoreStore(config);
  const abort = new AbortController();
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics, prefix: 'aiedge_core_' });
  const context: CoreContext = {
    store,
    config,
    logger,
    now: options.now ?? (() => new Date()),
    shutdown: abort.signal,
    metrics,
  };
  const https =
    config.tlsCert !== undefined && config.tlsKey !== undefined
      ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) }
      : undefined;
  const app = Fastify({
    logger: false,
    bodyLimit: config.maxBodyBytes,
    forceCloseConnections: true,
    // Long-polls are held up to maxWaitSeconds; keep sockets open a little longer than that.
    requestTimeout: 0,
    ...(https !== undefined ? { https } : {}),
  });
  installValidators(app);
  installProblemHandlers(app, logger);
  app.addSchema(ProblemSchema);
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ai-edge core API',
        version: CORE_VERSION,
        description: 'Sites, enrollment, desired state, deployments, pipeline runs and telemetry of ai-edge.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    hideUntagged: false,
    transform: ({ schema, url }) => ({
      schema: url.startsWith('/v2') ? { ...(schema ?? {}), hide: true } : schema,
      url,
    }),
  });

  const gitops = new GitOpsPublisher(context);
  const areas: CoreArea[] = [
    tokensArea(context),
    fleetArea(context, gitops),
    deploymentsArea(context, gitops),
    modelRegistryArea(context),
    runsArea(context, options.pipelineExecutor),
    telemetryArea(context),
  ];

  app.get('/healthz', { config: { public: true }, schema: { hide: true } }, async () => ({ status: 'ok' }));
  await registerDashboard(app, { dir: config.dashboardDir, logger });

  // The OCI registry: admin tokens push and pull, site tokens pull.
  const blobs = await ContentStore.open(join(config.data, 'registry'));
  await app.register(registryRoutes, {
    store: blobs,
    logger,
    wwwAuthenticate: 'Basic realm="aiedge"',
    authorize: async (request) => {
      const token = tokenFromHeaders(request.headers);
      if (token === undefined)
        throw new UnauthorizedError(
          'a token is required (docker login with any user name and the token as password)',
        );
      const principal = await authenticate(store.db, token);
      if (principal.kind === 'admin') return;
      if (principal.kind === 'site' && request.action === 'pull') return;
      throw new ForbiddenError(`a ${principal.kind} token may not ${request.action} in the registry`);
    },
  });

  await app.register(async (api) => {
    installAuthHook(api, store.db);
    api.get('/api/v1/openapi.json', { schema: { hide: true } }, async (request) => {
      requireAdminOrSite(request);
      return app.swagger();
    });
    api.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
      requireAdmin(request);
      const text = await metrics.metrics();
      return reply.type(metrics.contentType).send(text);
    });
    for (const area of areas) await area.register(api);
  });

  const started: CoreArea[] = [];
  try {
    await gitops.start();
    for (const area of areas) {
      await area.start?.();
      started.push(area);
    }
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    abort.abort();
    for (const area of started.reverse()) await area.close?.().catch(() => undefined);
    await gitops.close();
    await app.close().catch(() => undefined);
    await store.close();
    throw error;
  }
  const { port } = app.server.address() as AddressInfo;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `${https !== undefined ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info('core listening', { url, data: config.data });

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    app,
    context,
    gitops,
    close: () =>
      (closing ??= (async () => {
        abort.abort();
        await app.close();
        for (const area of [...started].reverse()) {
          await area
            .close?.()
            .catch((error: unknown) => logger.warn('area close failed', { area: area.name, err: error }));
        }
        await gitops.close();
        await store.close();
      })()),
  };
}
