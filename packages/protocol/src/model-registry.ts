/**
 * Resources of the Kubeflow Model Registry REST API (`v1alpha3`) subset that ai-edge core serves
 * and the CLI and dashboard talk to: registered models, model versions and their artifacts, with
 * custom properties as `MetadataValue`s. TypeBox schemas with the types inferred from them; request
 * schemas reject unknown keys. Field names follow the upstream OpenAPI document.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

/** Path prefix of the API on a server, e.g. `http://host:8080` + this. */
export const MODEL_REGISTRY_API_PATH = '/api/model_registry/v1alpha3';

/** Pattern of a resource id: a decimal integer as a string, as the upstream registry issues them. */
export const MODEL_REGISTRY_ID_PATTERN = '^[1-9][0-9]{0,8}$';
const Id = Type.String({ pattern: MODEL_REGISTRY_ID_PATTERN, description: 'a decimal id such as "1"' });
/** Milliseconds since the epoch, as a decimal string. */
const EpochMs = Type.String({
  pattern: '^[0-9]+$',
  description: 'milliseconds since the epoch as a decimal string',
});
/** Names and external ids: non-empty, at most 255 characters (what the store indexes). */
const Name = Type.String({ minLength: 1, maxLength: 255 });
const ExternalId = Type.String({ minLength: 1, maxLength: 255 });
const Text = Type.String();
const BASE64_PATTERN = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$';

function literals<const T extends readonly string[]>(values: T) {
  return Type.Union(values.map((v) => Type.Literal(v)));
}

/** States of a registered model. */
export const RegisteredModelStates = ['LIVE', 'ARCHIVED'] as const;
/** A registered model's state. */
export type RegisteredModelState = (typeof RegisteredModelStates)[number];
/** States of a model version. */
export const ModelVersionStates = ['LIVE', 'ARCHIVED'] as const;
/** A model version's state. */
export type ModelVersionState = (typeof ModelVersionStates)[number];
/** States of an artifact (ml-metadata's Artifact.State). */
export const ModelRegistryArtifactStates = [
  'UNKNOWN',
  'PENDING',
  'LIVE',
  'MARKED_FOR_DELETION',
  'DELETED',
  'ABANDONED',
  'REFERENCE',
] as const;
/** An artifact's state. */
export type ModelRegistryArtifactState = (typeof ModelRegistryArtifactStates)[number];
/** Artifact types this registry stores (the `artifactType` discriminator). */
export const ModelRegistryArtifactTypes = ['model-artifact', 'doc-artifact'] as const;
/** One artifact type. */
export type ModelRegistryArtifactType = (typeof ModelRegistryArtifactTypes)[number];
/** Fields a list can be ordered by (`orderBy`). */
export const ModelRegistryOrderByFields = ['CREATE_TIME', 'LAST_UPDATE_TIME', 'ID'] as const;
/** One `orderBy` value. */
export type ModelRegistryOrderBy = (typeof ModelRegistryOrderByFields)[number];
/** Directions of a list (`sortOrder`). */
export const ModelRegistrySortOrders = ['ASC', 'DESC'] as const;
/** One `sortOrder` value. */
export type ModelRegistrySortOrder = (typeof ModelRegistrySortOrders)[number];

// ---------------------------------------------------------------------------------------------
// Custom properties

/** A 32-bit integer property; the value is a decimal string. */
export const MetadataIntValueSchema = Type.Object(
  {
    metadataType: Type.Literal('MetadataIntValue'),
    int_value: Type.String({
      pattern: '^-?([1-9][0-9]{0,8}|0)$',
      description: 'a decimal int32 string such as "42"',
    }),
  },
  { additionalProperties: false },
);
/** A double property. */
export const MetadataDoubleValueSchema = Type.Object(
  { metadataType: Type.Literal('MetadataDoubleValue'), double_value: Type.Number() },
  { additionalProperties: false },
);
/** A string property. */
export const MetadataStringValueSchema = Type.Object(
  { metadataType: Type.Literal('MetadataStringValue'), string_value: Type.String() },
  { additionalProperties: false },
);
/** A struct property: base64 of a serialized `google.protobuf.Struct`. */
export const MetadataStructValueSchema = Type.Object(
  {
    metadataType: Type.Literal('MetadataStructValue'),
    struct_value: Type.String({ pattern: BASE64_PATTERN, description: 'a base64 string' }),
  },
  { additionalProperties: false },
);
/** A proto property: a type URL and base64 of the serialized message. */
export const MetadataProtoValueSchema = Type.Object(
  {
    metadataType: Type.Literal('MetadataProtoValue'),
    type: Type.String(),
    proto_value: Type.String({ pattern: BASE64_PATTERN, description: 'a base64 string' }),
  },
  { additionalProperties: false },
);
/** A boolean property. */
export const MetadataBoolValueSchema = Type.Object(
  { metadataType: Type.Literal('MetadataBoolValue'), bool_value: Type.Boolean() },
  { additionalProperties: false },
);
/** A custom property value, discriminated by `metadataType`. */
export const MetadataValueSchema = Type.Union([
  MetadataIntValueSchema,
  MetadataDoubleValueSchema,
  MetadataStringValueSchema,
  MetadataStructValueSchema,
  MetadataProtoValueSchema,
  MetadataBoolValueSchema,
]);
/** A custom property value. */
export type MetadataValue = Static<typeof MetadataValueSchema>;
/** The `metadataType` names. */
export const MetadataValueTypes = [
  'MetadataIntValue',
  'MetadataDoubleValue',
  'MetadataStringValue',
  'MetadataStructValue',
  'MetadataProtoValue',
  'MetadataBoolValue',
] as const;
/** Custom properties of a resource, by name. */
export const CustomPropertiesSchema = Type.Record(Type.String(), MetadataValueSchema);
/** Custom properties of a resource. */
export type CustomProperties = Static<typeof CustomPropertiesSchema>;

// ---------------------------------------------------------------------------------------------
// Field groups

const baseUpdate = {
  customProperties: Type.Optional(CustomPropertiesSchema),
  description: Type.Optional(Text),
  externalId: Type.Optional(ExternalId),
};
const output = {
  id: Id,
  createTimeSinceEpoch: EpochMs,
  lastUpdateTimeSinceEpoch: EpochMs,
};
const registeredModelFields = {
  ...baseUpdate,
  readme: Type.Optional(Text),
  maturity: Type.Optional(Text),
  language: Type.Optional(Type.Array(Text)),
  tasks: Type.Optional(Type.Array(Text)),
  provider: Type.Optional(Text),
  logo: Type.Optional(Text),
  license: Type.Optional(Text),
  licenseLink: Type.Optional(Text),
  libraryName: Type.Optional(Text),
  owner: Type.Optional(Text),
  state: Type.Optional(literals(RegisteredModelStates)),
};
const modelVersionFields = {
  ...baseUpdate,
  state: Type.Optional(literals(ModelVersionStates)),
  author: Type.Optional(Text),
};
const docArtifactFields = {
  ...baseUpdate,
  uri: Type.Optional(Text),
  state: Type.Optional(literals(ModelRegistryArtifactStates)),
};
const modelArtifactFields = {
  ...docArtifactFields,
  modelFormatName: Type.Optional(Text),
  modelFormatVersion: Type.Optional(Text),
  storageKey: Type.Optional(Text),
  storagePath: Type.Optional(Text),
  serviceAccountName: Type.Optional(Text),
  modelSourceKind: Type.Optional(Text),
  modelSourceClass: Type.Optional(Text),
  modelSourceGroup: Type.Optional(Text),
  modelSourceId: Type.Optional(Text),
  modelSourceName: Type.Optional(Text),
};
const artifactOutput = {
  experimentId: Type.Optional(Id),
  experimentRunId: Type.Optional(Id),
};
const strict = { additionalProperties: false } as const;

// ---------------------------------------------------------------------------------------------
// Registered models

/** `POST /registered_models`. */
export const RegisteredModelCreateSchema = Type.Object({ name: Name, ...registeredModelFields }, strict);
/** Body of `POST /registered_models`. */
export type RegisteredModelCreate = Static<typeof RegisteredModelCreateSchema>;
/** `PATCH /registered_models/{id}` (the name cannot change). */
export const RegisteredModelUpdateSchema = Type.Object(registeredModelFields, strict);
/** Body of `PATCH /registered_models/{id}`. */
export type RegisteredModelUpdate = Static<typeof RegisteredModelUpdateSchema>;
/** A registered model: a logical model with versions. */
export const RegisteredModelSchema = Type.Object(
  {
    ...output,
    name: Name,
    ...registeredModelFields,
    customProperties: CustomPropertiesSchema,
    state: literals(RegisteredModelStates),
  },
  strict,
);
/** A registered model. */
export type RegisteredModel = Static<typeof RegisteredModelSchema>;

// ---------------------------------------------------------------------------------------------
// Model versions

/** `POST /model_versions`. */
export const ModelVersionCreateSchema = Type.Object(
  { name: Name, registeredModelId: Id, ...modelVersionFields },
  strict,
);
/** Body of `POST /model_versions`. */
export type ModelVersionCreate = Static<typeof ModelVersionCreateSchema>;
/** `PATCH /model_versions/{id}` (name and registered model cannot change). */
export const ModelVersionUpdateSchema = Type.Object(modelVersionFields, strict);
/** Body of `PATCH /model_versions/{id}`. */
export type ModelVersionUpdate = Static<typeof ModelVersionUpdateSchema>;
/** A version of a registered model. */
export const ModelVersionSchema = Type.Object(
  {
    ...output,
    name: Name,
    registeredModelId: Id,
    ...modelVersionFields,
    customProperties: CustomPropertiesSchema,
    state: literals(ModelVersionStates),
  },
  strict,
);
/** A model version. */
export type ModelVersion = Static<typeof ModelVersionSchema>;

// ---------------------------------------------------------------------------------------------
// Artifacts

/** `POST /model_artifacts`. */
export const ModelArtifactCreateSchema = Type.Object(
  {
    artifactType: Type.Optional(Type.Literal('model-artifact')),
    name: Type.Optional(Name),
    ...modelArtifactFields,
  },
  strict,
);
/** Body of `POST /model_artifacts`. */
export type ModelArtifactCreate = Static<typeof ModelArtifactCreateSchema>;
/** `PATCH /model_artifacts/{id}` (the name cannot change). */
export const ModelArtifactUpdateSchema = Type.Object(
  { artifactType: Type.Optional(Type.Literal('model-artifact')), ...modelArtifactFields },
  strict,
);
/** Body of `PATCH /model_artifacts/{id}`. */
export type ModelArtifactUpdate = Static<typeof ModelArtifactUpdateSchema>;
/** A model artifact: where the model's files are and in which format. */
export const ModelArtifactSchema = Type.Object(
  {
    ...output,
    artifactType: Type.Literal('model-artifact'),
    name: Type.Optional(Name),
    ...modelArtifactFields,
    ...artifactOutput,
    customProperties: CustomPropertiesSchema,
    state: literals(ModelRegistryArtifactStates),
  },
  strict,
);
/** A model artifact. */
export type ModelArtifact = Static<typeof ModelArtifactSchema>;
/** A document artifact (model card, notes) attached to a model version. */
export const DocArtifactSchema = Type.Object(
  {
    ...output,
    artifactType: Type.Literal('doc-artifact'),
    name: Type.Optional(Name),
    ...docArtifactFields,
    ...artifactOutput,
    customProperties: CustomPropertiesSchema,
    state: literals(ModelRegistryArtifactStates),
  },
  strict,
);
/** A document artifact. */
export type DocArtifact = Static<typeof DocArtifactSchema>;
/** Any artifact of a model version, discriminated by `artifactType`. */
export type RegistryArtifact = ModelArtifact | DocArtifact;

/**
 * Body of `POST /model_versions/{id}/artifacts` (upsert): an artifact to create, or one with the
 * `id` of an existing artifact to update and attach. `artifactType` defaults to `model-artifact`.
 */
export const ArtifactUpsertSchema = Type.Union([
  Type.Object(
    {
      id: Type.Optional(Id),
      artifactType: Type.Optional(Type.Literal('model-artifact')),
      name: Type.Optional(Name),
      ...modelArtifactFields,
      ...artifactOutput,
      createTimeSinceEpoch: Type.Optional(EpochMs),
      lastUpdateTimeSinceEpoch: Type.Optional(EpochMs),
    },
    strict,
  ),
  Type.Object(
    {
      id: Type.Optional(Id),
      artifactType: Type.Literal('doc-artifact'),
      name: Type.Optional(Name),
      ...docArtifactFields,
      ...artifactOutput,
      createTimeSinceEpoch: Type.Optional(EpochMs),
      lastUpdateTimeSinceEpoch: Type.Optional(EpochMs),
    },
    strict,
  ),
]);
/** Body of `POST /model_versions/{id}/artifacts`. */
export type ArtifactUpsert = Static<typeof ArtifactUpsertSchema>;

// ---------------------------------------------------------------------------------------------
// Lists and errors

function listOf<T extends TSchema>(item: T) {
  return Type.Object(
    {
      items: Type.Array(item),
      nextPageToken: Type.String({ description: 'empty when this is the last page' }),
      pageSize: Type.Integer(),
      size: Type.Integer(),
    },
    strict,
  );
}
/** A page of registered models. */
export const RegisteredModelListSchema = listOf(RegisteredModelSchema);
/** A page of registered models. */
export type RegisteredModelList = Static<typeof RegisteredModelListSchema>;
/** A page of model versions. */
export const ModelVersionListSchema = listOf(ModelVersionSchema);
/** A page of model versions. */
export type ModelVersionList = Static<typeof ModelVersionListSchema>;
/** A page of model artifacts. */
export const ModelArtifactListSchema = listOf(ModelArtifactSchema);
/** A page of model artifacts. */
export type ModelArtifactList = Static<typeof ModelArtifactListSchema>;
/** A page of artifacts of any type. */
export const RegistryArtifactListSchema = listOf(Type.Union([ModelArtifactSchema, DocArtifactSchema]));
/** A page of artifacts of any type. */
export type RegistryArtifactList = Static<typeof RegistryArtifactListSchema>;

/** The error body of every failed request: `code` is the HTTP status as a string. */
export const ModelRegistryErrorSchema = Type.Object({ code: Type.String(), message: Type.String() });
/** The error body of a failed request. */
export type ModelRegistryErrorBody = Static<typeof ModelRegistryErrorSchema>;

/** Query parameters of the list endpoints. */
export interface ModelRegistryListOptions {
  /** Items per page (the server caps it). */
  readonly pageSize?: number;
  /** Token of the next page from a previous response. */
  readonly nextPageToken?: string;
  readonly orderBy?: ModelRegistryOrderBy;
  readonly sortOrder?: ModelRegistrySortOrder;
}
