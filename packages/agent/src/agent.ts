/**
 * The agent's main loop: desired-state sync → driver reconcile → applied revision, status
 * reporting, and the telemetry relay. `startAgent` runs it until `stop()` (or `signal`).
 */
import { join } from 'node:path';
import type { SiteDeployment } from '@aiedge/gitops';
import { ContentStore } from '@aiedge/oci';
import { InputError } from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';
import { CoreClient } from './_core-client.js';
import type { Driver, DriverContext, DeploymentReport } from './drivers/types.js';
import { AGENT_VERSION, type SiteIdentity } from './identity.js';
import { readJsonFile, writeJsonFile } from './state-file.js';
import { StatusReporter, measureSiteResources } from './status.js';
import { runDesiredStateSync, type DesiredUpdate, type GitReader } from './sync.js';
import { startTelemetryRelay, type TelemetryRelay } from './telemetry/index.js';
import type { Sleep } from './telemetry/forwarder.js';

/** File name of the applied state in the data directory. */
export const APPLIED_FILE = 'applied.json';

/** What `<data>/applied.json` holds: the revision the driver last settled on. */
export interface AppliedState {
  readonly revision: string;
  readonly commit: string;
  readonly appliedAt: string;
}

/** Options of {@link startAgent}. */
export interface AgentOptions {
  /** The agent's data directory (identity, state, store, driver state, telemetry queue). */
  readonly dataDir: string;
  readonly identity: SiteIdentity;
  /** Makes the driver (e.g. a ProcessDriver) from the context the agent provides. */
  createDriver(context: DriverContext): Driver;
  readonly logger: Logger;
  /** Reported to the core; default {@link AGENT_VERSION}. */
  readonly agentVersion?: string;
  /** Loopback OTLP receiver of the telemetry relay; `false` runs none. Default `{ port: 4318 }`. */
  readonly telemetry?: false | { readonly host?: string; readonly port?: number };
  /** Heartbeat period of the status; default 30 000. */
  readonly statusIntervalMs?: number;
  /** Debounce of status reports after changes; default 200. */
  readonly statusDebounceMs?: number;
  /** How long the core may hold a desired-state long-poll; default 60. */
  readonly waitSeconds?: number;
  /** First retry delay of the sync; default 1 000. */
  readonly initialBackoffMs?: number;
  /** Longest retry delay of the sync; default 60 000. */
  readonly maxBackoffMs?: number;
  /** Stops the agent (like `stop()`). */
  readonly signal?: AbortSignal;
  /** Injected for tests: the delay function. */
  readonly sleep?: Sleep;
  /** Injected for tests: the Git fallback. */
  readonly readGit?: GitReader;
}

/** A running agent. */
export interface RunningAgent {
  /** The telemetry relay's receiver URL (for the runtimes), when one runs. */
  readonly telemetryUrl: string | undefined;
  /** The revision the driver last settled on. */
  appliedRevision(): string | undefined;
  /** The desired revision last received. */
  desiredRevision(): string | undefined;
  /** Stops the loop; inference servers keep serving unless `stopServing`. */
  stop(options?: { stopServing?: boolean }): Promise<void>;
}

async function loadApplied(dataDir: string, logger: Logger): Promise<AppliedState | undefined> {
  try {
    const value = (await readJsonFile(join(dataDir, APPLIED_FILE))) as AppliedState | undefined;
    if (value === undefined || typeof value.revision !== 'string') return undefined;
    return value;
  } catch (error) {
    logger.warn('ignoring the applied state file', { err: error });
    return undefined;
  }
}

/** Starts the agent (see the module comment). */
export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const { dataDir, identity } = options;
  if (typeof options.createDriver !== 'function')
    throw new InputError('agent: createDriver must be a function');
  const logger = options.logger.child({ component: 'agent', site: identity.site });
  const agentVersion = options.agentVersion ?? AGENT_VERSION;
  const stopController = new AbortController();
  const signal = options.signal
    ? AbortSignal.any([options.signal, stopController.signal])
    : stopController.signal;
  const client = new CoreClient({
    url: identity.core,
    token: () => identity.token,
    ...(identity.ca !== undefined ? { ca: identity.ca } : {}),
  });
  const store = await ContentStore.open(join(dataDir, 'store'));
  let applied = await loadApplied(dataDir, logger);
  let desired: DesiredUpdate | undefined;

  const status = new StatusReporter({
    client,
    site: identity.site,
    agentVersion,
    logger,
    collect: () => ({
      ...(applied !== undefined ? { appliedRevision: applied.revision } : {}),
      deployments: driver.reports(),
    }),
    resources: () => measureSiteResources(dataDir, store),
    ...(options.statusIntervalMs !== undefined ? { intervalMs: options.statusIntervalMs } : {}),
    ...(options.statusDebounceMs !== undefined ? { debounceMs: options.statusDebounceMs } : {}),
    ...(options.sleep !== undefined ? { sleep: options.sleep } : {}),
  });

  let relay: TelemetryRelay | undefined;
  if (options.telemetry !== false) {
    try {
      relay = await startTelemetryRelay({
        dir: join(dataDir, 'telemetry'),
        listen: { host: options.telemetry?.host ?? '127.0.0.1', port: options.telemetry?.port ?? 4318 },
        endpoint: identity.core,
        token: () => identity.token,
        logger,
        ...(identity.ca !== undefined ? { ca: identity.ca } : {}),
      });
    } catch (error) {
      client.close();
      throw error;
    }
  }
  const driver = options.createDriver({
    dataDir,
    store,
    registry: {
      credentials: { username: identity.site, password: identity.token },
      ...(identity.ca !== undefined ? { ca: identity.ca } : {}),
    },
    ...(relay !== undefined ? { telemetryUrl: relay.url } : {}),
    logger,
    onReport: (_report: DeploymentReport) => status.changed(),
  });
  try {
    await driver.start();
  } catch (error) {
    await relay?.close();
    client.close();
    throw error;
  }
  status.start();

  // Reconcile worker: always works on the newest desired state; a newer one aborts the wait on
  // the current reconcile (what serves keeps serving) and starts over.
  let wanted: DesiredUpdate | undefined;
  let reconcileAbort: AbortController | undefined;
  let working: Promise<void> | undefined;
  const reconcileLoop = async () => {
    while (wanted !== undefined && !signal.aborted) {
      const target = wanted;
      wanted = undefined;
      reconcileAbort = new AbortController();
      const abort = AbortSignal.any([signal, reconcileAbort.signal]);
      try {
        const deployments: readonly SiteDeployment[] = target.deployments;
        await driver.reconcile(deployments, abort);
        if (abort.aborted) continue;
        applied = {
          revision: target.snapshot.revision,
          commit: target.snapshot.commit,
          appliedAt: new Date().toISOString(),
        };
        await writeJsonFile(join(dataDir, APPLIED_FILE), applied);
        logger.info('desired state applied', { revision: applied.revision });
        status.changed();
      } catch (error) {
        if (abort.aborted) continue;
        logger.error('reconcile failed; retrying on the next desired state or restart', {
          revision: target.snapshot.revision,
          err: error,
        });
        status.changed();
      }
    }
  };
  const onDesired = (update: DesiredUpdate) => {
    desired = update;
    wanted = update;
    reconcileAbort?.abort();
    working ??= reconcileLoop().finally(() => {
      working = undefined;
      if (wanted !== undefined && !signal.aborted) onDesired(wanted);
    });
  };

  const sync = runDesiredStateSync({
    client,
    site: identity.site,
    dataDir,
    logger,
    signal,
    onDesired,
    onCoreReachable: (reachable) => {
      if (reachable) status.reconnected();
    },
    ...(options.waitSeconds !== undefined ? { waitSeconds: options.waitSeconds } : {}),
    ...(options.initialBackoffMs !== undefined ? { initialBackoffMs: options.initialBackoffMs } : {}),
    ...(options.maxBackoffMs !== undefined ? { maxBackoffMs: options.maxBackoffMs } : {}),
    ...(options.sleep !== undefined ? { sleep: options.sleep } : {}),
    ...(options.readGit !== undefined ? { readGit: options.readGit } : {}),
  }).catch((error: unknown) => {
    logger.error('desired-state sync stopped', { err: error });
  });
  logger.info('agent started', { core: identity.core, driver: driver.kind, telemetry: relay?.url });

  let stopping: Promise<void> | undefined;
  const stop = (stopOptions: { stopServing?: boolean } = {}) => {
    stopping ??= (async () => {
      stopController.abort();
      reconcileAbort?.abort();
      await sync;
      await working;
      await status.close();
      // The servers stop before the relay: their last telemetry export (on SIGTERM) is queued, and
      // their shutdown does not wait on an OTLP endpoint that is gone.
      await driver.close(stopOptions.stopServing === true ? { stopServing: true } : {});
      await relay?.close();
      client.close();
      logger.info('agent stopped', { stopServing: stopOptions.stopServing === true });
    })();
    return stopping;
  };
  options.signal?.addEventListener('abort', () => void stop(), { once: true });
  return {
    telemetryUrl: relay?.url,
    appliedRevision: () => applied?.revision,
    desiredRevision: () => desired?.snapshot.revision,
    stop,
  };
}
