/**
 * The seam between the agent's loop and what runs the inference containers at a site: a driver
 * makes the site run exactly the desired deployments (start, replace with health checks and
 * rollback, remove) and reports each deployment's state as it changes.
 */
import type { SiteDeployment } from '@aiedge/gitops';
import type { ContentStore } from '@aiedge/oci';
import type { DeployedModel } from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';

/** A deployment's state at this site, as reported to the core (`PUT /api/v1/sites/{site}/status`). */
export type DeploymentReport = DeployedModel;

/** How the driver reaches the registry images come from. */
export interface RegistryAccess {
  /** Credentials for every registry (the site token as password works with the core's registry). */
  readonly credentials?: { readonly username: string; readonly password: string };
  /** PEM CA for https registries. */
  readonly ca?: string | Buffer;
  /** Allow plain http to non-loopback registries. */
  readonly insecure?: boolean;
}

/** What every driver gets. */
export interface DriverContext {
  /** The agent's data directory; a driver keeps its state under `<dataDir>/<driver kind>/`. */
  readonly dataDir: string;
  /** The agent's content store (pulled images; only missing blobs are fetched). */
  readonly store: ContentStore;
  readonly registry: RegistryAccess;
  /**
   * OTLP/HTTP endpoint of the agent's telemetry relay: the inference servers export there
   * (`OTEL_EXPORTER_OTLP_ENDPOINT`); undefined when the agent runs no relay.
   */
  readonly telemetryUrl?: string;
  readonly logger: Logger;
  /** Called on every state change of a deployment (Pending → Pulling → Starting → Serving, Failed, RolledBack). */
  onReport(report: DeploymentReport): void;
}

/** Runs the inference containers of one site. */
export interface Driver {
  readonly kind: 'process' | 'podman';
  /**
   * Recovers after a restart (also after `kill -9` at any point of an update): whatever the state
   * on disk says was serving is serving again (adopted when still healthy, else restarted).
   */
  start(): Promise<void>;
  /**
   * Makes the site run exactly `desired`: new deployments are pulled and started, changed ones are
   * replaced only after the new version passed its checks (else rolled back, the failed digest is
   * not retried until the desired state changes), removed ones are stopped. Resolves with the
   * reports once every deployment settled; aborting `signal` stops waiting (what serves keeps serving).
   */
  reconcile(desired: readonly SiteDeployment[], signal: AbortSignal): Promise<DeploymentReport[]>;
  /** The current report of every deployment. */
  reports(): DeploymentReport[];
  /** Stops the driver's own work. Inference processes keep serving unless `stopServing`. */
  close(options?: { stopServing?: boolean }): Promise<void>;
}
