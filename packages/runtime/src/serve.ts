/** `aiedge serve`: start the inference server on a model repository and stop it cleanly. */
import { createLogger, startTelemetry, type Logger, type Telemetry } from '@aiedge/telemetry';
import { RuntimeMetrics } from './metrics.js';
import type { ServeOptions } from './options.js';
import { WorkerPool } from './pool.js';
import { ModelRepository } from './repository.js';
import { buildApp } from './server.js';
import { RUNTIME_NAME, RUNTIME_VERSION } from './version.js';

/** A running inference server. */
export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly port: number;
  readonly repository: ModelRepository;
  /** Stops accepting, finishes in-flight requests, stops workers and flushes telemetry. */
  close(): Promise<void>;
}

/** Injected collaborators (tests pass their own logger or telemetry). */
export interface ServeDependencies {
  readonly logger?: Logger;
  readonly telemetry?: Telemetry;
}

/** Starts the server: listens first (liveness), then loads the repository (readiness), then resolves. */
export async function startServer(
  options: ServeOptions,
  deps: ServeDependencies = {},
): Promise<RunningServer> {
  const logger = deps.logger ?? createLogger({ component: 'serve', level: options.logLevel });
  const telemetry =
    deps.telemetry ?? startTelemetry({ serviceName: RUNTIME_NAME, serviceVersion: RUNTIME_VERSION, logger });
  const pool = new WorkerPool({
    workers: options.workers,
    intraOpThreads: options.intraOpThreads,
    maxQueue: options.maxQueue,
    logger,
  });
  const repository = new ModelRepository({
    root: options.modelRepository,
    models: options.models,
    pool,
    logger,
    onLoad: (model, version, outcome, seconds) => metrics.recordLoad(model, version, outcome, seconds),
  });
  const metrics = new RuntimeMetrics(telemetry.meter, {
    queueDepth: () => pool.queueDepth,
    inFlight: () => pool.inFlight,
    readyVersions: () =>
      repository
        .index()
        .filter((r) => r.version !== undefined)
        .map((r) => ({ model: r.name, version: r.version!, ready: r.state === 'READY' })),
  });
  const app = buildApp({
    repository,
    pool,
    metrics,
    tracer: telemetry.tracer,
    logger,
    maxBodyBytes: options.maxBodyBytes,
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      logger.info('shutting down: finishing in-flight requests');
      await app.close();
      await repository.stop();
      await pool.close();
      if (deps.telemetry === undefined) await telemetry.shutdown();
      logger.info('stopped');
    })());

  try {
    await app.listen({ host: options.host, port: options.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : options.port;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${port}`;
    logger.info('listening', {
      url,
      workers: options.workers,
      intraOpThreads: options.intraOpThreads,
      modelRepository: options.modelRepository,
    });
    await repository.refresh();
    repository.startPolling(options.repositoryPollSeconds);
    logger.info('model repository loaded', { models: repository.index() });
    return { url, port, repository, close };
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}
