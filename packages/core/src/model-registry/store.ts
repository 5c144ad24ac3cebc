/**
 * The model registry's reads and writes over the core store, and the mapping between rows and API
 * resources. Writes that check and then insert run in one transaction; a unique index backs each
 * check (name, version name within its model, artifact name within its version, externalId).
 */
import {
  AiEdgeError,
  ConflictError,
  ErrorCodes,
  InputError,
  NotFoundError,
  describeValue,
  type ArtifactUpsert,
  type AiEdgeErrorOptions,
  type CustomProperties,
  type DocArtifact,
  type ModelArtifact,
  type ModelArtifactCreate,
  type ModelArtifactList,
  type ModelRegistryArtifactType,
  type ModelVersion,
  type ModelVersionCreate,
  type ModelVersionList,
  type RegisteredModel,
  type RegisteredModelCreate,
  type RegisteredModelList,
  type RegistryArtifact,
  type RegistryArtifactList,
} from '@aiedge/protocol';
import type { Store, Tx } from '../store/db.js';
import { applyPage, pageOf, pageRequestOf, type ListQuery } from './paging.js';
import type {
  FindQuery,
  ModelArtifactPatch,
  ModelVersionPatch,
  NestedModelVersionCreate,
  RegisteredModelPatch,
} from './schemas.js';
import type {
  MrArtifactsTable,
  MrModelVersionsTable,
  MrRegisteredModelsTable,
  MrSequences,
} from './tables.js';

/** A well-formed request that refers to something that does not exist (HTTP 422). */
export class UnprocessableError extends AiEdgeError {
  override readonly status: number = 422;
  constructor(message: string, options: AiEdgeErrorOptions = {}) {
    super(message, { code: ErrorCodes.INVALID_INPUT, ...options });
  }
}

type Row = Record<string, unknown>;

/** Copies the defined, non-null values: optional API fields are left out, never sent as null. */
function compact<T>(fields: Record<string, unknown>): T {
  const out: Row = {};
  for (const [key, value] of Object.entries(fields))
    if (value !== null && value !== undefined) out[key] = value;
  return out as T;
}

function parseJson<T>(text: string | null): T | undefined {
  return text === null ? undefined : (JSON.parse(text) as T);
}

/** API field → text column, for the fields stored as they come. */
const REGISTERED_MODEL_TEXT = {
  externalId: 'external_id',
  description: 'description',
  owner: 'owner',
  state: 'state',
  readme: 'readme',
  maturity: 'maturity',
  provider: 'provider',
  logo: 'logo',
  license: 'license',
  licenseLink: 'license_link',
  libraryName: 'library_name',
} as const satisfies Record<string, keyof MrRegisteredModelsTable>;
const MODEL_VERSION_TEXT = {
  externalId: 'external_id',
  description: 'description',
  author: 'author',
  state: 'state',
} as const satisfies Record<string, keyof MrModelVersionsTable>;
const ARTIFACT_TEXT = {
  externalId: 'external_id',
  description: 'description',
  uri: 'uri',
  state: 'state',
  modelFormatName: 'model_format_name',
  modelFormatVersion: 'model_format_version',
  storageKey: 'storage_key',
  storagePath: 'storage_path',
  serviceAccountName: 'service_account_name',
  modelSourceKind: 'model_source_kind',
  modelSourceClass: 'model_source_class',
  modelSourceGroup: 'model_source_group',
  modelSourceId: 'model_source_id',
  modelSourceName: 'model_source_name',
  experimentId: 'experiment_id',
  experimentRunId: 'experiment_run_id',
} as const satisfies Record<string, keyof MrArtifactsTable>;
/** API field → JSON text column. */
const REGISTERED_MODEL_JSON = {
  language: 'language',
  tasks: 'tasks',
  customProperties: 'custom_properties',
} as const;
const CUSTOM_PROPERTIES_JSON = { customProperties: 'custom_properties' } as const;

/** The column values an input sets (fields it leaves out are not touched). */
function columnsOf(
  input: object,
  text: Readonly<Record<string, string>>,
  json: Readonly<Record<string, string>>,
): Row {
  const values: Row = {};
  const given = input as Row;
  for (const [field, column] of Object.entries(text))
    if (given[field] !== undefined) values[column] = given[field];
  for (const [field, column] of Object.entries(json)) {
    if (given[field] !== undefined) values[column] = JSON.stringify(given[field]);
  }
  return values;
}

/** The API form of a registered model row. */
export function registeredModelOf(row: MrRegisteredModelsTable): RegisteredModel {
  return compact<RegisteredModel>({
    id: String(row.id),
    name: row.name,
    externalId: row.external_id,
    description: row.description,
    owner: row.owner,
    state: row.state,
    readme: row.readme,
    maturity: row.maturity,
    language: parseJson<string[]>(row.language),
    tasks: parseJson<string[]>(row.tasks),
    provider: row.provider,
    logo: row.logo,
    license: row.license,
    licenseLink: row.license_link,
    libraryName: row.library_name,
    customProperties: JSON.parse(row.custom_properties) as CustomProperties,
    createTimeSinceEpoch: String(row.create_time),
    lastUpdateTimeSinceEpoch: String(row.update_time),
  });
}

/** The API form of a model version row. */
export function modelVersionOf(row: MrModelVersionsTable): ModelVersion {
  return compact<ModelVersion>({
    id: String(row.id),
    name: row.name,
    registeredModelId: String(row.registered_model_id),
    externalId: row.external_id,
    description: row.description,
    author: row.author,
    state: row.state,
    customProperties: JSON.parse(row.custom_properties) as CustomProperties,
    createTimeSinceEpoch: String(row.create_time),
    lastUpdateTimeSinceEpoch: String(row.update_time),
  });
}

/** The API form of an artifact row (model or doc artifact). */
export function artifactOf(row: MrArtifactsTable): RegistryArtifact {
  const common = {
    id: String(row.id),
    artifactType: row.artifact_type,
    name: row.name,
    externalId: row.external_id,
    description: row.description,
    uri: row.uri,
    state: row.state,
  };
  const tail = {
    experimentId: row.experiment_id,
    experimentRunId: row.experiment_run_id,
    customProperties: JSON.parse(row.custom_properties) as CustomProperties,
    createTimeSinceEpoch: String(row.create_time),
    lastUpdateTimeSinceEpoch: String(row.update_time),
  };
  if (row.artifact_type === 'doc-artifact') return compact<DocArtifact>({ ...common, ...tail });
  return compact<ModelArtifact>({
    ...common,
    modelFormatName: row.model_format_name,
    modelFormatVersion: row.model_format_version,
    storageKey: row.storage_key,
    storagePath: row.storage_path,
    serviceAccountName: row.service_account_name,
    modelSourceKind: row.model_source_kind,
    modelSourceClass: row.model_source_class,
    modelSourceGroup: row.model_source_group,
    modelSourceId: row.model_source_id,
    modelSourceName: row.model_source_name,
    ...tail,
  });
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}

/** Refuses a change to a field that cannot change, naming the field, the given and the stored value. */
function unchanged(path: string, given: string | undefined, actual: string | null, rule: string): void {
  if (given !== undefined && given !== actual) {
    throw new InputError(`${path} is ${describeValue(given)}: ${rule} (it is ${describeValue(actual)})`);
  }
}

function quoted(value: string): string {
  return JSON.stringify(value);
}

type ArtifactInput = Omit<ModelArtifactCreate, 'artifactType'> & {
  experimentId?: string;
  experimentRunId?: string;
};

/** Reads and writes of registered models, model versions and artifacts. */
export class ModelRegistryStore {
  readonly #store: Store;
  readonly #now: () => Date;

  constructor(store: Store, now: () => Date) {
    this.#store = store;
    this.#now = now;
  }

  /** Runs `fn` in a transaction; a unique-index violation (a race the checks missed) becomes a conflict. */
  async #write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    try {
      return await this.#store.transaction(fn);
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw new ConflictError('the name or externalId is already taken (changed concurrently)', {
          cause: error,
        });
      }
      throw error;
    }
  }

  async #nextId(tx: Tx, name: (typeof MrSequences)[number]): Promise<number> {
    const row = await tx
      .updateTable('mr_sequences')
      .set((eb) => ({ next_id: eb('next_id', '+', 1) }))
      .where('name', '=', name)
      .returning('next_id')
      .executeTakeFirstOrThrow();
    return Number(row.next_id) - 1;
  }

  #nowMs(): number {
    return this.#now().getTime();
  }

  async #externalIdFree(
    tx: Tx,
    table: 'mr_registered_models' | 'mr_model_versions' | 'mr_artifacts',
    externalId: string | undefined,
    what: string,
    self?: number,
  ): Promise<void> {
    if (externalId === undefined) return;
    const taken = await tx
      .selectFrom(table)
      .select('id')
      .where('external_id', '=', externalId)
      .executeTakeFirst();
    if (taken !== undefined && taken.id !== self) {
      throw new ConflictError(`externalId ${quoted(externalId)} is already used by ${what} ${taken.id}`);
    }
  }

  // -- registered models ---------------------------------------------------------------------

  async #registeredModelRow(tx: Tx | Store['db'], id: string): Promise<MrRegisteredModelsTable> {
    const row = await tx
      .selectFrom('mr_registered_models')
      .selectAll()
      .where('id', '=', Number(id))
      .executeTakeFirst();
    if (row === undefined) throw new NotFoundError(`registered model ${id} not found`);
    return row;
  }

  /** Creates a registered model; its name must be new. */
  createRegisteredModel(input: RegisteredModelCreate): Promise<RegisteredModel> {
    return this.#write(async (tx) => {
      const taken = await tx
        .selectFrom('mr_registered_models')
        .select('id')
        .where('name', '=', input.name)
        .executeTakeFirst();
      if (taken !== undefined) {
        throw new ConflictError(`registered model ${quoted(input.name)} already exists (id ${taken.id})`);
      }
      await this.#externalIdFree(tx, 'mr_registered_models', input.externalId, 'registered model');
      const now = this.#nowMs();
      const row: MrRegisteredModelsTable = {
        id: await this.#nextId(tx, 'registered_model'),
        name: input.name,
        external_id: null,
        description: null,
        owner: null,
        state: 'LIVE',
        readme: null,
        maturity: null,
        language: null,
        tasks: null,
        provider: null,
        logo: null,
        license: null,
        license_link: null,
        library_name: null,
        custom_properties: '{}',
        ...columnsOf(input, REGISTERED_MODEL_TEXT, REGISTERED_MODEL_JSON),
        create_time: now,
        update_time: now,
      };
      await tx.insertInto('mr_registered_models').values(row).execute();
      return registeredModelOf(row);
    });
  }

  /** The registered model with this id. */
  async getRegisteredModel(id: string): Promise<RegisteredModel> {
    return registeredModelOf(await this.#registeredModelRow(this.#store.db, id));
  }

  /** The registered model with this name and/or externalId. */
  async findRegisteredModel(query: FindQuery): Promise<RegisteredModel> {
    if (query.name === undefined && query.externalId === undefined) {
      throw new InputError('query: give name or externalId to find a registered model');
    }
    let q = this.#store.db.selectFrom('mr_registered_models').selectAll();
    if (query.name !== undefined) q = q.where('name', '=', query.name);
    if (query.externalId !== undefined) q = q.where('external_id', '=', query.externalId);
    const row = await q.executeTakeFirst();
    if (row === undefined) throw new NotFoundError(`no registered model with ${describeFind(query)}`);
    return registeredModelOf(row);
  }

  /** A page of registered models. */
  async listRegisteredModels(query: ListQuery): Promise<RegisteredModelList> {
    const page = pageRequestOf(query);
    const rows = await applyPage(
      this.#store.db.selectFrom('mr_registered_models').selectAll(),
      page,
    ).execute();
    const out = pageOf(rows, page);
    return {
      items: out.rows.map(registeredModelOf),
      nextPageToken: out.nextPageToken,
      pageSize: page.pageSize,
      size: out.rows.length,
    };
  }

  /** Updates the given fields of a registered model (customProperties are replaced as a whole). */
  updateRegisteredModel(id: string, patch: RegisteredModelPatch): Promise<RegisteredModel> {
    return this.#write(async (tx) => {
      const row = await this.#registeredModelRow(tx, id);
      unchanged('body.id', patch.id, String(row.id), "must be the path's id");
      unchanged('body.name', patch.name, row.name, 'the name of a registered model cannot change');
      await this.#externalIdFree(tx, 'mr_registered_models', patch.externalId, 'registered model', row.id);
      const values = {
        ...columnsOf(patch, REGISTERED_MODEL_TEXT, REGISTERED_MODEL_JSON),
        update_time: this.#nowMs(),
      };
      await tx.updateTable('mr_registered_models').set(values).where('id', '=', row.id).execute();
      return registeredModelOf({ ...row, ...values });
    });
  }

  // -- model versions ------------------------------------------------------------------------

  async #modelVersionRow(tx: Tx | Store['db'], id: string): Promise<MrModelVersionsTable> {
    const row = await tx
      .selectFrom('mr_model_versions')
      .selectAll()
      .where('id', '=', Number(id))
      .executeTakeFirst();
    if (row === undefined) throw new NotFoundError(`model version ${id} not found`);
    return row;
  }

  /**
   * Creates a version of a registered model; its name must be new within the model. `parentFrom`
   * says where the model id came from: the path (unknown → 404) or the body (unknown → 422).
   */
  createModelVersion(
    input: ModelVersionCreate | (NestedModelVersionCreate & { registeredModelId: string }),
    parentFrom: 'path' | 'body',
  ): Promise<ModelVersion> {
    return this.#write(async (tx) => {
      const parent = await tx
        .selectFrom('mr_registered_models')
        .select(['id', 'name'])
        .where('id', '=', Number(input.registeredModelId))
        .executeTakeFirst();
      if (parent === undefined) {
        if (parentFrom === 'path')
          throw new NotFoundError(`registered model ${input.registeredModelId} not found`);
        throw new UnprocessableError(
          `body.registeredModelId is ${quoted(input.registeredModelId)}: no registered model has this id`,
        );
      }
      const taken = await tx
        .selectFrom('mr_model_versions')
        .select('id')
        .where('registered_model_id', '=', parent.id)
        .where('name', '=', input.name)
        .executeTakeFirst();
      if (taken !== undefined) {
        throw new ConflictError(
          `model version ${quoted(input.name)} of registered model ${quoted(parent.name)} (id ${parent.id}) ` +
            `already exists (id ${taken.id})`,
        );
      }
      await this.#externalIdFree(tx, 'mr_model_versions', input.externalId, 'model version');
      const now = this.#nowMs();
      const row: MrModelVersionsTable = {
        id: await this.#nextId(tx, 'model_version'),
        registered_model_id: parent.id,
        name: input.name,
        external_id: null,
        description: null,
        author: null,
        state: 'LIVE',
        custom_properties: '{}',
        ...columnsOf(input, MODEL_VERSION_TEXT, CUSTOM_PROPERTIES_JSON),
        create_time: now,
        update_time: now,
      };
      await tx.insertInto('mr_model_versions').values(row).execute();
      return modelVersionOf(row);
    });
  }

  /** The model version with this id. */
  async getModelVersion(id: string): Promise<ModelVersion> {
    return modelVersionOf(await this.#modelVersionRow(this.#store.db, id));
  }

  /** The model version with this name in registered model `parentResourceId`, and/or this externalId. */
  async findModelVersion(query: FindQuery): Promise<ModelVersion> {
    requireFindParams(query, 'model version', 'registered model');
    let q = this.#store.db.selectFrom('mr_model_versions').selectAll();
    if (query.name !== undefined) q = q.where('name', '=', query.name);
    if (query.parentResourceId !== undefined)
      q = q.where('registered_model_id', '=', Number(query.parentResourceId));
    if (query.externalId !== undefined) q = q.where('external_id', '=', query.externalId);
    const row = await q.executeTakeFirst();
    if (row === undefined) throw new NotFoundError(`no model version with ${describeFind(query)}`);
    return modelVersionOf(row);
  }

  /** A page of model versions: all, or those of one registered model (optionally by name or externalId). */
  async listModelVersions(
    query: ListQuery,
    filter: { registeredModelId?: string; name?: string; externalId?: string } = {},
  ): Promise<ModelVersionList> {
    const page = pageRequestOf(query);
    const db = this.#store.db;
    if (filter.registeredModelId !== undefined) await this.#registeredModelRow(db, filter.registeredModelId);
    let q = db.selectFrom('mr_model_versions').selectAll();
    if (filter.registeredModelId !== undefined) {
      q = q.where('registered_model_id', '=', Number(filter.registeredModelId));
    }
    if (filter.name !== undefined) q = q.where('name', '=', filter.name);
    if (filter.externalId !== undefined) q = q.where('external_id', '=', filter.externalId);
    const out = pageOf(await applyPage(q, page).execute(), page);
    return {
      items: out.rows.map(modelVersionOf),
      nextPageToken: out.nextPageToken,
      pageSize: page.pageSize,
      size: out.rows.length,
    };
  }

  /** Updates the given fields of a model version (customProperties are replaced as a whole). */
  updateModelVersion(id: string, patch: ModelVersionPatch): Promise<ModelVersion> {
    return this.#write(async (tx) => {
      const row = await this.#modelVersionRow(tx, id);
      unchanged('body.id', patch.id, String(row.id), "must be the path's id");
      unchanged('body.name', patch.name, row.name, 'the name of a model version cannot change');
      unchanged(
        'body.registeredModelId',
        patch.registeredModelId,
        String(row.registered_model_id),
        'a model version cannot move to another registered model',
      );
      await this.#externalIdFree(tx, 'mr_model_versions', patch.externalId, 'model version', row.id);
      const values = {
        ...columnsOf(patch, MODEL_VERSION_TEXT, CUSTOM_PROPERTIES_JSON),
        update_time: this.#nowMs(),
      };
      await tx.updateTable('mr_model_versions').set(values).where('id', '=', row.id).execute();
      return modelVersionOf({ ...row, ...values });
    });
  }

  // -- artifacts -----------------------------------------------------------------------------

  async #artifactRow(
    tx: Tx | Store['db'],
    id: string,
    type?: ModelRegistryArtifactType,
  ): Promise<MrArtifactsTable> {
    let q = tx.selectFrom('mr_artifacts').selectAll().where('id', '=', Number(id));
    if (type !== undefined) q = q.where('artifact_type', '=', type);
    const row = await q.executeTakeFirst();
    if (row === undefined)
      throw new NotFoundError(`${type === 'model-artifact' ? 'model artifact' : 'artifact'} ${id} not found`);
    return row;
  }

  async #artifactNameFree(
    tx: Tx,
    versionId: number | null,
    name: string | null | undefined,
    self?: number,
  ): Promise<void> {
    if (versionId === null || name === null || name === undefined) return;
    const taken = await tx
      .selectFrom('mr_artifacts')
      .select('id')
      .where('model_version_id', '=', versionId)
      .where('name', '=', name)
      .executeTakeFirst();
    if (taken !== undefined && taken.id !== self) {
      throw new ConflictError(
        `model version ${versionId} already has an artifact named ${quoted(name)} (id ${taken.id})`,
      );
    }
  }

  async #insertArtifact(
    tx: Tx,
    type: ModelRegistryArtifactType,
    input: ArtifactInput,
    versionId: number | null,
  ): Promise<MrArtifactsTable> {
    await this.#artifactNameFree(tx, versionId, input.name);
    await this.#externalIdFree(tx, 'mr_artifacts', input.externalId, 'artifact');
    const now = this.#nowMs();
    const row: MrArtifactsTable = {
      id: await this.#nextId(tx, 'artifact'),
      artifact_type: type,
      model_version_id: versionId,
      name: input.name ?? null,
      external_id: null,
      description: null,
      uri: null,
      state: 'UNKNOWN',
      model_format_name: null,
      model_format_version: null,
      storage_key: null,
      storage_path: null,
      service_account_name: null,
      model_source_kind: null,
      model_source_class: null,
      model_source_group: null,
      model_source_id: null,
      model_source_name: null,
      experiment_id: null,
      experiment_run_id: null,
      custom_properties: '{}',
      ...columnsOf(input, ARTIFACT_TEXT, CUSTOM_PROPERTIES_JSON),
      create_time: now,
      update_time: now,
    };
    await tx.insertInto('mr_artifacts').values(row).execute();
    return row;
  }

  /** Creates a model artifact that belongs to no version yet (attach it with {@link upsertVersionArtifact}). */
  createModelArtifact(input: ModelArtifactCreate): Promise<ModelArtifact> {
    return this.#write(
      async (tx) =>
        artifactOf(await this.#insertArtifact(tx, 'model-artifact', input, null)) as ModelArtifact,
    );
  }

  /** The model artifact with this id. */
  async getModelArtifact(id: string): Promise<ModelArtifact> {
    return artifactOf(await this.#artifactRow(this.#store.db, id, 'model-artifact')) as ModelArtifact;
  }

  /** The model artifact with this name in model version `parentResourceId`, and/or this externalId. */
  async findModelArtifact(query: FindQuery): Promise<ModelArtifact> {
    requireFindParams(query, 'model artifact', 'model version');
    let q = this.#store.db
      .selectFrom('mr_artifacts')
      .selectAll()
      .where('artifact_type', '=', 'model-artifact');
    if (query.name !== undefined) q = q.where('name', '=', query.name);
    if (query.parentResourceId !== undefined)
      q = q.where('model_version_id', '=', Number(query.parentResourceId));
    if (query.externalId !== undefined) q = q.where('external_id', '=', query.externalId);
    const row = await q.executeTakeFirst();
    if (row === undefined) throw new NotFoundError(`no model artifact with ${describeFind(query)}`);
    return artifactOf(row) as ModelArtifact;
  }

  /** A page of model artifacts. */
  async listModelArtifacts(query: ListQuery): Promise<ModelArtifactList> {
    const page = pageRequestOf(query);
    const q = this.#store.db
      .selectFrom('mr_artifacts')
      .selectAll()
      .where('artifact_type', '=', 'model-artifact');
    const out = pageOf(await applyPage(q, page).execute(), page);
    return {
      items: out.rows.map((r) => artifactOf(r) as ModelArtifact),
      nextPageToken: out.nextPageToken,
      pageSize: page.pageSize,
      size: out.rows.length,
    };
  }

  /** A page of the artifacts of a model version, optionally by name, externalId or type. */
  async listVersionArtifacts(
    versionId: string,
    query: ListQuery,
    filter: { name?: string; externalId?: string; artifactType?: ModelRegistryArtifactType } = {},
  ): Promise<RegistryArtifactList> {
    const page = pageRequestOf(query);
    const db = this.#store.db;
    const version = await this.#modelVersionRow(db, versionId);
    let q = db.selectFrom('mr_artifacts').selectAll().where('model_version_id', '=', version.id);
    if (filter.name !== undefined) q = q.where('name', '=', filter.name);
    if (filter.externalId !== undefined) q = q.where('external_id', '=', filter.externalId);
    if (filter.artifactType !== undefined) q = q.where('artifact_type', '=', filter.artifactType);
    const out = pageOf(await applyPage(q, page).execute(), page);
    return {
      items: out.rows.map(artifactOf),
      nextPageToken: out.nextPageToken,
      pageSize: page.pageSize,
      size: out.rows.length,
    };
  }

  async #updateArtifactRow(
    tx: Tx,
    row: MrArtifactsTable,
    patch: object,
    versionId: number | null,
  ): Promise<RegistryArtifact> {
    const values = {
      ...columnsOf(patch, ARTIFACT_TEXT, CUSTOM_PROPERTIES_JSON),
      model_version_id: versionId,
      update_time: this.#nowMs(),
    };
    await tx.updateTable('mr_artifacts').set(values).where('id', '=', row.id).execute();
    return artifactOf({ ...row, ...values });
  }

  /** Updates the given fields of a model artifact (customProperties are replaced as a whole). */
  updateModelArtifact(id: string, patch: ModelArtifactPatch): Promise<ModelArtifact> {
    return this.#write(async (tx) => {
      const row = await this.#artifactRow(tx, id, 'model-artifact');
      unchanged('body.id', patch.id, String(row.id), "must be the path's id");
      unchanged('body.name', patch.name, row.name, 'the name of an artifact cannot change');
      await this.#externalIdFree(tx, 'mr_artifacts', patch.externalId, 'artifact', row.id);
      return (await this.#updateArtifactRow(tx, row, patch, row.model_version_id)) as ModelArtifact;
    });
  }

  /**
   * Creates an artifact in a model version, or (with the `id` of an existing artifact of the same
   * type that belongs to no other version) updates it and attaches it to the version.
   */
  upsertVersionArtifact(
    versionId: string,
    body: ArtifactUpsert,
  ): Promise<{ artifact: RegistryArtifact; created: boolean }> {
    return this.#write(async (tx) => {
      const version = await this.#modelVersionRow(tx, versionId);
      const type = body.artifactType ?? 'model-artifact';
      const {
        id,
        artifactType: _type,
        createTimeSinceEpoch: _c,
        lastUpdateTimeSinceEpoch: _u,
        ...fields
      } = body;
      if (id === undefined) {
        return {
          artifact: artifactOf(await this.#insertArtifact(tx, type, fields, version.id)),
          created: true,
        };
      }
      const row = await this.#artifactRow(tx, id);
      if (row.artifact_type !== type) {
        throw new InputError(
          `body.artifactType is ${quoted(type)}: artifact ${id} is a ${row.artifact_type}` +
            (body.artifactType === undefined ? ' (artifactType defaults to model-artifact)' : ''),
        );
      }
      if (row.model_version_id !== null && row.model_version_id !== version.id) {
        throw new ConflictError(
          `artifact ${id} belongs to model version ${row.model_version_id}, not ${version.id}`,
        );
      }
      unchanged('body.name', fields.name, row.name, 'the name of an artifact cannot change');
      await this.#artifactNameFree(tx, version.id, row.name, row.id);
      await this.#externalIdFree(tx, 'mr_artifacts', fields.externalId, 'artifact', row.id);
      return { artifact: await this.#updateArtifactRow(tx, row, fields, version.id), created: false };
    });
  }
}

function requireFindParams(query: FindQuery, what: string, parent: string): void {
  const byName = query.name !== undefined && query.parentResourceId !== undefined;
  if (!byName && query.externalId === undefined) {
    throw new InputError(
      `query: give name and parentResourceId (the ${parent} id), or externalId, to find a ${what}` +
        (query.name !== undefined ? ` (name ${quoted(query.name)} needs parentResourceId)` : ''),
    );
  }
}

function describeFind(query: FindQuery): string {
  const parts: string[] = [];
  if (query.name !== undefined) parts.push(`name ${quoted(query.name)}`);
  if (query.parentResourceId !== undefined) parts.push(`parentResourceId ${quoted(query.parentResourceId)}`);
  if (query.externalId !== undefined) parts.push(`externalId ${quoted(query.externalId)}`);
  return parts.join(' and ');
}
