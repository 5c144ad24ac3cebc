/**
 * Tables of the model registry and their migration. Times are integer milliseconds since the
 * epoch; JSON is text. Ids come from {@link MrSequencesTable} rather than an auto-increment column,
 * so the DDL is the same on SQLite and PostgreSQL.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { ModelRegistryArtifactState, ModelRegistryArtifactType } from '@aiedge/protocol';

/** Next id of each kind of resource (`registered_model`, `model_version`, `artifact`). */
export interface MrSequencesTable {
  name: string;
  next_id: number;
}

/** Registered models: name unique in the registry. */
export interface MrRegisteredModelsTable {
  id: number;
  name: string;
  /** Unique among registered models when set. */
  external_id: string | null;
  description: string | null;
  owner: string | null;
  state: 'LIVE' | 'ARCHIVED';
  readme: string | null;
  maturity: string | null;
  /** JSON array of strings. */
  language: string | null;
  /** JSON array of strings. */
  tasks: string | null;
  provider: string | null;
  logo: string | null;
  license: string | null;
  license_link: string | null;
  library_name: string | null;
  /** JSON object of MetadataValue by name. */
  custom_properties: string;
  create_time: number;
  update_time: number;
}

/** Model versions: name unique within their registered model. */
export interface MrModelVersionsTable {
  id: number;
  registered_model_id: number;
  name: string;
  external_id: string | null;
  description: string | null;
  author: string | null;
  state: 'LIVE' | 'ARCHIVED';
  custom_properties: string;
  create_time: number;
  update_time: number;
}

/** Artifacts (model and doc): name unique within their model version; a version owns them. */
export interface MrArtifactsTable {
  id: number;
  artifact_type: ModelRegistryArtifactType;
  /** The version this artifact belongs to; null for one created on its own. */
  model_version_id: number | null;
  name: string | null;
  external_id: string | null;
  description: string | null;
  uri: string | null;
  state: ModelRegistryArtifactState;
  model_format_name: string | null;
  model_format_version: string | null;
  storage_key: string | null;
  storage_path: string | null;
  service_account_name: string | null;
  model_source_kind: string | null;
  model_source_class: string | null;
  model_source_group: string | null;
  model_source_id: string | null;
  model_source_name: string | null;
  experiment_id: string | null;
  experiment_run_id: string | null;
  custom_properties: string;
  create_time: number;
  update_time: number;
}

/** Tables of this area. */
export interface ModelRegistryTables {
  mr_sequences: MrSequencesTable;
  mr_registered_models: MrRegisteredModelsTable;
  mr_model_versions: MrModelVersionsTable;
  mr_artifacts: MrArtifactsTable;
}

/** Kinds of id in `mr_sequences`. */
export const MrSequences = ['registered_model', 'model_version', 'artifact'] as const;

/** Creates this area's tables (portable DDL: SQLite and PostgreSQL). */
export const modelRegistryMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('mr_sequences')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('next_id', 'integer', (c) => c.notNull())
      .execute();
    for (const name of MrSequences) {
      await sql`insert into mr_sequences (name, next_id) values (${name}, 1)`.execute(db);
    }

    await db.schema
      .createTable('mr_registered_models')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('external_id', 'text', (c) => c.unique())
      .addColumn('description', 'text')
      .addColumn('owner', 'text')
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('readme', 'text')
      .addColumn('maturity', 'text')
      .addColumn('language', 'text')
      .addColumn('tasks', 'text')
      .addColumn('provider', 'text')
      .addColumn('logo', 'text')
      .addColumn('license', 'text')
      .addColumn('license_link', 'text')
      .addColumn('library_name', 'text')
      .addColumn('custom_properties', 'text', (c) => c.notNull())
      .addColumn('create_time', 'bigint', (c) => c.notNull())
      .addColumn('update_time', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('mr_registered_models_create_time')
      .on('mr_registered_models')
      .columns(['create_time', 'id'])
      .execute();
    await db.schema
      .createIndex('mr_registered_models_update_time')
      .on('mr_registered_models')
      .columns(['update_time', 'id'])
      .execute();

    await db.schema
      .createTable('mr_model_versions')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('registered_model_id', 'integer', (c) => c.notNull().references('mr_registered_models.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('external_id', 'text', (c) => c.unique())
      .addColumn('description', 'text')
      .addColumn('author', 'text')
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('custom_properties', 'text', (c) => c.notNull())
      .addColumn('create_time', 'bigint', (c) => c.notNull())
      .addColumn('update_time', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('mr_model_versions_name', ['registered_model_id', 'name'])
      .execute();
    await db.schema
      .createIndex('mr_model_versions_create_time')
      .on('mr_model_versions')
      .columns(['create_time', 'id'])
      .execute();
    await db.schema
      .createIndex('mr_model_versions_update_time')
      .on('mr_model_versions')
      .columns(['update_time', 'id'])
      .execute();

    await db.schema
      .createTable('mr_artifacts')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('artifact_type', 'text', (c) => c.notNull())
      .addColumn('model_version_id', 'integer', (c) => c.references('mr_model_versions.id'))
      .addColumn('name', 'text')
      .addColumn('external_id', 'text', (c) => c.unique())
      .addColumn('description', 'text')
      .addColumn('uri', 'text')
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('model_format_name', 'text')
      .addColumn('model_format_version', 'text')
      .addColumn('storage_key', 'text')
      .addColumn('storage_path', 'text')
      .addColumn('service_account_name', 'text')
      .addColumn('model_source_kind', 'text')
      .addColumn('model_source_class', 'text')
      .addColumn('model_source_group', 'text')
      .addColumn('model_source_id', 'text')
      .addColumn('model_source_name', 'text')
      .addColumn('experiment_id', 'text')
      .addColumn('experiment_run_id', 'text')
      .addColumn('custom_properties', 'text', (c) => c.notNull())
      .addColumn('create_time', 'bigint', (c) => c.notNull())
      .addColumn('update_time', 'bigint', (c) => c.notNull())
      // Rows without a version (null) never collide: both SQLite and PostgreSQL treat nulls as distinct.
      .addUniqueConstraint('mr_artifacts_name', ['model_version_id', 'name'])
      .execute();
    await db.schema
      .createIndex('mr_artifacts_type_create_time')
      .on('mr_artifacts')
      .columns(['artifact_type', 'create_time', 'id'])
      .execute();
    await db.schema
      .createIndex('mr_artifacts_type_update_time')
      .on('mr_artifacts')
      .columns(['artifact_type', 'update_time', 'id'])
      .execute();
  },
};
