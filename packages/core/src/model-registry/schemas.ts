/**
 * Route schemas of the model registry: path ids, list and find query parameters, and the PATCH and
 * nested-create bodies (the protocol's resource schemas, plus the read-only fields a client that
 * sends back what it read may include).
 */
import { Type, type Static } from '@sinclair/typebox';
import {
  MODEL_REGISTRY_ID_PATTERN,
  ModelArtifactUpdateSchema,
  ModelRegistryArtifactTypes,
  ModelRegistryOrderByFields,
  ModelRegistrySortOrders,
  ModelVersionCreateSchema,
  ModelVersionUpdateSchema,
  RegisteredModelUpdateSchema,
} from '@aiedge/protocol';

const Id = Type.String({ pattern: MODEL_REGISTRY_ID_PATTERN, description: 'a decimal id such as "1"' });
const EpochMs = Type.String({
  pattern: '^[0-9]+$',
  description: 'milliseconds since the epoch as a decimal string',
});
const Printable = Type.String({
  pattern: '^[\\x20-\\x7E]+$',
  description: 'a non-empty printable ASCII string',
});
const strict = { additionalProperties: false } as const;

/** Path of `/registered_models/{registeredmodelId}…`. */
export const RegisteredModelParamsSchema = Type.Object({ registeredmodelId: Id });
/** Path of `/model_versions/{modelversionId}…`. */
export const ModelVersionParamsSchema = Type.Object({ modelversionId: Id });
/** Path of `/model_artifacts/{modelartifactId}`. */
export const ModelArtifactParamsSchema = Type.Object({ modelartifactId: Id });

const listParams = {
  pageSize: Type.Optional(
    Type.String({ pattern: '^[1-9][0-9]{0,8}$', description: 'a positive integer such as "100"' }),
  ),
  nextPageToken: Type.Optional(Type.String()),
  orderBy: Type.Optional(Type.Union(ModelRegistryOrderByFields.map((f) => Type.Literal(f)))),
  sortOrder: Type.Optional(Type.Union(ModelRegistrySortOrders.map((s) => Type.Literal(s)))),
  filterQuery: Type.Optional(Type.String()),
};

/** Query of the list endpoints (other parameters are ignored). */
export const ListQuerySchema = Type.Object(listParams);
/** Query of `/registered_models/{id}/versions`. */
export const VersionListQuerySchema = Type.Object({
  ...listParams,
  name: Type.Optional(Printable),
  externalId: Type.Optional(Printable),
});
/** Query of `/model_versions/{id}/artifacts`. */
export const ArtifactListQuerySchema = Type.Object({
  ...listParams,
  name: Type.Optional(Printable),
  externalId: Type.Optional(Printable),
  artifactType: Type.Optional(Type.Union(ModelRegistryArtifactTypes.map((t) => Type.Literal(t)))),
});
/** Query of the find endpoints (`/registered_model`, `/model_version`, `/model_artifact`). */
export const FindQuerySchema = Type.Object({
  name: Type.Optional(Printable),
  externalId: Type.Optional(Printable),
  parentResourceId: Type.Optional(Id),
});
/** Query of a find endpoint. */
export type FindQuery = Static<typeof FindQuerySchema>;

/** Read-only fields a client may send back unchanged (ids must match; times are ignored). */
const echoed = {
  id: Type.Optional(Id),
  createTimeSinceEpoch: Type.Optional(EpochMs),
  lastUpdateTimeSinceEpoch: Type.Optional(EpochMs),
};

/** `PATCH /registered_models/{id}`: RegisteredModelUpdate, plus its unchanged name and read-only fields. */
export const RegisteredModelPatchSchema = Type.Object(
  { ...RegisteredModelUpdateSchema.properties, name: Type.Optional(Type.String()), ...echoed },
  strict,
);
/** Body of `PATCH /registered_models/{id}`. */
export type RegisteredModelPatch = Static<typeof RegisteredModelPatchSchema>;

/** `PATCH /model_versions/{id}`: ModelVersionUpdate, plus its unchanged name, parent and read-only fields. */
export const ModelVersionPatchSchema = Type.Object(
  {
    ...ModelVersionUpdateSchema.properties,
    name: Type.Optional(Type.String()),
    registeredModelId: Type.Optional(Id),
    ...echoed,
  },
  strict,
);
/** Body of `PATCH /model_versions/{id}`. */
export type ModelVersionPatch = Static<typeof ModelVersionPatchSchema>;

/** `PATCH /model_artifacts/{id}`: ModelArtifactUpdate, plus its unchanged name and read-only fields. */
export const ModelArtifactPatchSchema = Type.Object(
  {
    ...ModelArtifactUpdateSchema.properties,
    name: Type.Optional(Type.String()),
    experimentId: Type.Optional(Id),
    experimentRunId: Type.Optional(Id),
    ...echoed,
  },
  strict,
);
/** Body of `PATCH /model_artifacts/{id}`. */
export type ModelArtifactPatch = Static<typeof ModelArtifactPatchSchema>;

/**
 * `POST /registered_models/{id}/versions`: a ModelVersion whose parent is the path's (a
 * `registeredModelId` in the body must name the same model); read-only times are ignored.
 */
export const NestedModelVersionCreateSchema = Type.Object(
  {
    ...ModelVersionCreateSchema.properties,
    registeredModelId: Type.Optional(Id),
    id: Type.Optional(Id),
    createTimeSinceEpoch: Type.Optional(EpochMs),
    lastUpdateTimeSinceEpoch: Type.Optional(EpochMs),
  },
  strict,
);
/** Body of `POST /registered_models/{id}/versions`. */
export type NestedModelVersionCreate = Static<typeof NestedModelVersionCreateSchema>;
