/** What every core route module gets: the store, the resolved config, a logger and the clock. */
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Logger } from '@aiedge/telemetry';
import type { CoreConfig } from './config.js';
import type { Store } from './store/db.js';

/** Shared services of one core process. */
export interface CoreContext {
  readonly store: Store;
  readonly config: CoreConfig;
  readonly logger: Logger;
  /** The clock (tests inject one). */
  readonly now: () => Date;
  /** Aborted when the core shuts down: long-polls and event streams end on it. */
  readonly shutdown: AbortSignal;
  /** Prometheus registry served at `/metrics` (fleet aggregates). */
  readonly metrics: Registry;
}

/**
 * One area of the core (fleet, model registry, runs, telemetry, …): registers its routes inside the
 * authenticated API context, may start background work, and stops it on close.
 */
export interface CoreArea {
  readonly name: string;
  /** Adds the area's routes (called inside the authenticated context). */
  register(app: FastifyInstance): Promise<void>;
  /** Starts background work after the store is open and before the server listens. */
  start?(): Promise<void>;
  /** Stops background work; called once on shutdown, in reverse order of start. */
  close?(): Promise<void>;
}
