/**
 * Versioned migrations, applied in name order at open and recorded by Kysely's migrator. A
 * migration, once released, never changes: add a new one. Each area owns its migration module.
 */
import { idColumn } from './columns.js';
import type { Kysely, Migration, MigrationProvider } from 'kysely';
import { modelRegistryMigration } from '../model-registry/tables.js';
import { runsMigration } from '../runs/tables.js';
import { telemetryMigration } from '../telemetry/tables.js';

const coreMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('tokens')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('secret_hash', 'text', (c) => c.notNull())
      .addColumn('site', 'text')
      .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text')
      .addColumn('revoked_at', 'text')
      .addColumn('used_at', 'text')
      .execute();
    await db.schema.createIndex('tokens_site').on('tokens').column('site').execute();
    await db.schema
      .createTable('sites')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('labels', 'text', (c) => c.notNull())
      .addColumn('agent_version', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_seen', 'text')
      .addColumn('status', 'text')
      .addColumn('applied_revision', 'text')
      .addColumn('status_updated_at', 'text')
      .addColumn('revoked_at', 'text')
      .execute();
    await db.schema
      .createTable('deployments')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('spec', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('commit', 'text')
      .execute();
    await db.schema
      .createTable('site_events')
      .addColumn('id', ...idColumn(db))
      .addColumn('site', 'text', (c) => c.notNull())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('detail', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('site_events_site').on('site_events').columns(['site', 'id']).execute();
    await db.schema
      .createTable('core_state')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .execute();
  },
};

/** Every migration by name; names sort in the order they apply. */
export const migrations: Readonly<Record<string, Migration>> = {
  '0001_core': coreMigration,
  '0002_model_registry': modelRegistryMigration,
  '0003_runs': runsMigration,
  '0004_telemetry': telemetryMigration,
};

/** Kysely provider over {@link migrations}. */
export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
