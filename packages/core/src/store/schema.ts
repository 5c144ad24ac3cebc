/**
 * Every table of the core's store, as Kysely types. Each area owns its tables (and its migration);
 * this file joins them into the one {@link Database} type.
 */
import type { Generated } from 'kysely';
import type { ModelRegistryTables } from '../model-registry/tables.js';
import type { RunTables } from '../runs/tables.js';
import type { TelemetryTables } from '../telemetry/tables.js';

/** Bearer tokens: only the SHA-256 of the secret is kept. */
export interface TokensTable {
  /** Public part of the token (in the token string and in logs). */
  id: string;
  kind: 'admin' | 'enrollment' | 'site';
  /** hex SHA-256 of the secret part. */
  secret_hash: string;
  /** The site a site token belongs to; for an enrollment token, the only site name it may enroll (or null). */
  site: string | null;
  description: string;
  created_at: string;
  /** ISO time after which the token is refused; null = never. */
  expires_at: string | null;
  revoked_at: string | null;
  /** When an enrollment token was used (it is one-time). */
  used_at: string | null;
}

/** Near-edge sites (clusters and devices). */
export interface SitesTable {
  name: string;
  kind: 'cluster' | 'device';
  /** JSON object of labels. */
  labels: string;
  agent_version: string;
  created_at: string;
  /** Last status push or long-poll; null until the first one. */
  last_seen: string | null;
  /** JSON of the last status the agent pushed (deployments, resources); null until the first push. */
  status: string | null;
  /** GitOps revision the agent reports as applied. */
  applied_revision: string | null;
  status_updated_at: string | null;
  revoked_at: string | null;
}

/** Deployment intents: what to run where; rendered into the GitOps repository. */
export interface DeploymentsTable {
  name: string;
  /** JSON DeploymentSpec (package gitops). */
  spec: string;
  created_at: string;
  updated_at: string;
  /** GitOps commit that carries the current spec; null until published. */
  commit: string | null;
}

/** History of site events (enrolled, deployment state changes, revoked), newest last. */
export interface SiteEventsTable {
  id: Generated<number>;
  site: string;
  at: string;
  type: string;
  /** JSON details. */
  detail: string;
}

/** Small key/value facts of the core itself (e.g. the GitOps head every replica follows). */
export interface CoreStateTable {
  key: string;
  value: string;
}

/** Tables of the fleet, auth and deployments. */
export interface CoreTables {
  tokens: TokensTable;
  sites: SitesTable;
  deployments: DeploymentsTable;
  site_events: SiteEventsTable;
  core_state: CoreStateTable;
}

/** The whole store. */
export type Database = CoreTables & ModelRegistryTables & RunTables & TelemetryTables;
