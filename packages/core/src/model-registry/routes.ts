/**
 * The Kubeflow Model Registry REST API subset (`/api/model_registry/v1alpha3`): registered models,
 * model versions and model artifacts (list, get, create, update, find), the versions of a model and
 * the artifacts of a version. Errors are the upstream `{code, message}` shape with the HTTP status
 * as `code`. Site and admin tokens may read; only admin tokens may write.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  ArtifactUpsertSchema,
  InputError,
  MODEL_REGISTRY_API_PATH,
  ModelArtifactCreateSchema,
  ModelVersionCreateSchema,
  RegisteredModelCreateSchema,
  UnavailableError,
  describeValue,
  isAiEdgeError,
  type ArtifactUpsert,
  type ModelArtifactCreate,
  type ModelRegistryArtifactType,
  type ModelRegistryErrorBody,
  type ModelVersionCreate,
  type RegisteredModelCreate,
} from '@aiedge/protocol';
import { requireAdmin, requireAdminOrSite } from '../auth.js';
import type { CoreArea, CoreContext } from '../context.js';
import type { ListQuery } from './paging.js';
import {
  ArtifactListQuerySchema,
  FindQuerySchema,
  ListQuerySchema,
  ModelArtifactParamsSchema,
  ModelArtifactPatchSchema,
  ModelVersionParamsSchema,
  ModelVersionPatchSchema,
  NestedModelVersionCreateSchema,
  RegisteredModelParamsSchema,
  RegisteredModelPatchSchema,
  VersionListQuerySchema,
  type FindQuery,
  type ModelArtifactPatch,
  type ModelVersionPatch,
  type NestedModelVersionCreate,
  type RegisteredModelPatch,
} from './schemas.js';
import { ModelRegistryStore } from './store.js';
import { validatorCompiler } from './validation.js';

const READ_METHODS = new Set(['GET', 'HEAD']);

function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  if (status === 401) void reply.header('www-authenticate', 'Bearer realm="aiedge"');
  const body: ModelRegistryErrorBody = { code: String(status), message };
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}

/** Status and message of any error raised while serving a request. */
function statusAndMessage(error: FastifyError, bodyLimit: number): { status: number; message: string } {
  if (isAiEdgeError(error)) return { status: error.status, message: error.message };
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, message: `request body is larger than the limit of ${bodyLimit} bytes` };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, message: 'request body must be JSON (content-type: application/json)' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, message: 'request body is empty: expected a JSON object' };
  }
  if (error instanceof SyntaxError || error.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return { status: 400, message: `request body is not valid JSON: ${error.message}` };
  }
  const status = error.statusCode ?? 500;
  return status < 500 ? { status, message: error.message } : { status, message: 'internal server error' };
}

/** The model registry area. */
export function modelRegistryArea(context: CoreContext): CoreArea {
  const registry = new ModelRegistryStore(context.store, context.now);
  const { logger } = context;

  async function routes(scope: FastifyInstance): Promise<void> {
    scope.setValidatorCompiler(validatorCompiler);
    scope.setErrorHandler((error: FastifyError, request, reply) => {
      const { status, message } = statusAndMessage(
        error,
        request.routeOptions.bodyLimit ?? context.config.maxBodyBytes,
      );
      if (status >= 500 && !(error instanceof UnavailableError)) {
        logger.error('model registry request failed', {
          method: request.method,
          url: request.url.split('?')[0],
          err: error,
        });
      }
      if (error instanceof UnavailableError && error.retryAfterSeconds !== undefined) {
        void reply.header('retry-after', String(Math.ceil(error.retryAfterSeconds)));
      }
      return sendError(reply, status, message);
    });
    const notFound = (request: FastifyRequest, reply: FastifyReply) =>
      sendError(
        reply,
        404,
        `no route for ${request.method} ${request.url.split('?')[0]}: this registry serves registered_models, ` +
          'model_versions and model_artifacts (with their find endpoints, /versions and /artifacts)',
      );
    scope.setNotFoundHandler(notFound);
    // The dashboard's catch-all GET route at / would otherwise answer (with the core's 404 shape).
    scope.all('/*', { schema: { hide: true } }, notFound);
    // Reading needs an admin or site token, writing an admin token (the parent's hook authenticated).
    scope.addHook('onRequest', async (request) => {
      if (READ_METHODS.has(request.method)) requireAdminOrSite(request);
      else requireAdmin(request);
    });

    const hide = { hide: true } as const;

    // -- registered models -------------------------------------------------------------------
    scope.get<{ Querystring: ListQuery }>(
      '/registered_models',
      { schema: { ...hide, querystring: ListQuerySchema } },
      async (request) => registry.listRegisteredModels(request.query),
    );
    scope.post<{ Body: RegisteredModelCreate }>(
      '/registered_models',
      { schema: { ...hide, body: RegisteredModelCreateSchema } },
      async (request, reply) => reply.code(201).send(await registry.createRegisteredModel(request.body)),
    );
    scope.get<{ Params: { registeredmodelId: string } }>(
      '/registered_models/:registeredmodelId',
      { schema: { ...hide, params: RegisteredModelParamsSchema } },
      async (request) => registry.getRegisteredModel(request.params.registeredmodelId),
    );
    scope.patch<{ Params: { registeredmodelId: string }; Body: RegisteredModelPatch }>(
      '/registered_models/:registeredmodelId',
      { schema: { ...hide, params: RegisteredModelParamsSchema, body: RegisteredModelPatchSchema } },
      async (request) => registry.updateRegisteredModel(request.params.registeredmodelId, request.body),
    );
    scope.get<{
      Params: { registeredmodelId: string };
      Querystring: ListQuery & { name?: string; externalId?: string };
    }>(
      '/registered_models/:registeredmodelId/versions',
      { schema: { ...hide, params: RegisteredModelParamsSchema, querystring: VersionListQuerySchema } },
      async (request) =>
        registry.listModelVersions(request.query, {
          registeredModelId: request.params.registeredmodelId,
          ...pick(request.query, 'name', 'externalId'),
        }),
    );
    scope.post<{ Params: { registeredmodelId: string }; Body: NestedModelVersionCreate }>(
      '/registered_models/:registeredmodelId/versions',
      { schema: { ...hide, params: RegisteredModelParamsSchema, body: NestedModelVersionCreateSchema } },
      async (request, reply) => {
        const parent = request.params.registeredmodelId;
        const { id, createTimeSinceEpoch: _c, lastUpdateTimeSinceEpoch: _u, ...body } = request.body;
        if (id !== undefined) {
          throw new InputError(`body.id is ${describeValue(id)}: a new model version must not carry an id`);
        }
        if (body.registeredModelId !== undefined && body.registeredModelId !== parent) {
          throw new InputError(
            `body.registeredModelId is ${describeValue(body.registeredModelId)}: must be the path's registered model id ${JSON.stringify(parent)} (or left out)`,
          );
        }
        const created = await registry.createModelVersion({ ...body, registeredModelId: parent }, 'path');
        return reply.code(201).send(created);
      },
    );
    scope.get<{ Querystring: FindQuery }>(
      '/registered_model',
      { schema: { ...hide, querystring: FindQuerySchema } },
      async (request) => registry.findRegisteredModel(request.query),
    );

    // -- model versions ----------------------------------------------------------------------
    scope.get<{ Querystring: ListQuery }>(
      '/model_versions',
      { schema: { ...hide, querystring: ListQuerySchema } },
      async (request) => registry.listModelVersions(request.query),
    );
    scope.post<{ Body: ModelVersionCreate }>(
      '/model_versions',
      { schema: { ...hide, body: ModelVersionCreateSchema } },
      async (request, reply) => reply.code(201).send(await registry.createModelVersion(request.body, 'body')),
    );
    scope.get<{ Params: { modelversionId: string } }>(
      '/model_versions/:modelversionId',
      { schema: { ...hide, params: ModelVersionParamsSchema } },
      async (request) => registry.getModelVersion(request.params.modelversionId),
    );
    scope.patch<{ Params: { modelversionId: string }; Body: ModelVersionPatch }>(
      '/model_versions/:modelversionId',
      { schema: { ...hide, params: ModelVersionParamsSchema, body: ModelVersionPatchSchema } },
      async (request) => registry.updateModelVersion(request.params.modelversionId, request.body),
    );
    scope.get<{
      Params: { modelversionId: string };
      Querystring: ListQuery & {
        name?: string;
        externalId?: string;
        artifactType?: ModelRegistryArtifactType;
      };
    }>(
      '/model_versions/:modelversionId/artifacts',
      { schema: { ...hide, params: ModelVersionParamsSchema, querystring: ArtifactListQuerySchema } },
      async (request) =>
        registry.listVersionArtifacts(
          request.params.modelversionId,
          request.query,
          pick(request.query, 'name', 'externalId', 'artifactType'),
        ),
    );
    scope.post<{ Params: { modelversionId: string }; Body: ArtifactUpsert }>(
      '/model_versions/:modelversionId/artifacts',
      { schema: { ...hide, params: ModelVersionParamsSchema, body: ArtifactUpsertSchema } },
      async (request, reply) => {
        const { artifact, created } = await registry.upsertVersionArtifact(
          request.params.modelversionId,
          request.body,
        );
        return reply.code(created ? 201 : 200).send(artifact);
      },
    );
    scope.get<{ Querystring: FindQuery }>(
      '/model_version',
      { schema: { ...hide, querystring: FindQuerySchema } },
      async (request) => registry.findModelVersion(request.query),
    );

    // -- model artifacts ---------------------------------------------------------------------
    scope.get<{ Querystring: ListQuery }>(
      '/model_artifacts',
      { schema: { ...hide, querystring: ListQuerySchema } },
      async (request) => registry.listModelArtifacts(request.query),
    );
    scope.post<{ Body: ModelArtifactCreate }>(
      '/model_artifacts',
      { schema: { ...hide, body: ModelArtifactCreateSchema } },
      async (request, reply) => reply.code(201).send(await registry.createModelArtifact(request.body)),
    );
    scope.get<{ Params: { modelartifactId: string } }>(
      '/model_artifacts/:modelartifactId',
      { schema: { ...hide, params: ModelArtifactParamsSchema } },
      async (request) => registry.getModelArtifact(request.params.modelartifactId),
    );
    scope.patch<{ Params: { modelartifactId: string }; Body: ModelArtifactPatch }>(
      '/model_artifacts/:modelartifactId',
      { schema: { ...hide, params: ModelArtifactParamsSchema, body: ModelArtifactPatchSchema } },
      async (request) => registry.updateModelArtifact(request.params.modelartifactId, request.body),
    );
    scope.get<{ Querystring: FindQuery }>(
      '/model_artifact',
      { schema: { ...hide, querystring: FindQuerySchema } },
      async (request) => registry.findModelArtifact(request.query),
    );
  }

  return {
    name: 'model-registry',
    register: async (app) => {
      await app.register(routes, { prefix: MODEL_REGISTRY_API_PATH });
    },
  };
}

/** The named keys of `source` that are set. */
function pick<T extends object, K extends keyof T>(
  source: T,
  ...keys: K[]
): { [P in K]?: Exclude<T[P], undefined> } {
  const out: Partial<Record<K, unknown>> = {};
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  return out as { [P in K]?: Exclude<T[P], undefined> };
}
