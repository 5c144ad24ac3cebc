/**
 * Deployments: the intent (model image by digest → sites by label selector) is stored, rendered into
 * the GitOps repository, and the waiting agents of the affected sites are woken. Reading a
 * deployment joins in what each matching site reports for it.
 */
import { Type } from '@sinclair/typebox';
import { parseDeploymentSpec, selectorMatches } from '@aiedge/gitops';
import {
  DeploymentRequestSchema,
  DeploymentSchema,
  NAME_PATTERN,
  NotFoundError,
  type DeployedModel,
  type Deployment,
  type DeploymentRequest,
  type DeploymentSiteStatus,
} from '@aiedge/protocol';
import { requireAdmin } from './auth.js';
import type { CoreArea, CoreContext } from './context.js';
import type { GitOpsPublisher } from './gitops.js';
import { siteView } from './fleet.js';
import type { DeploymentsTable } from './store/schema.js';

/** A stored spec without its `pipelineRun`, for comparing what would be deployed. */
function withoutRun(spec: string): string {
  const { pipelineRun: _run, ...rest } = JSON.parse(spec) as DeploymentRequest;
  return JSON.stringify(rest);
}

const DeploymentParams = Type.Object({ name: Type.String({ pattern: NAME_PATTERN, maxLength: 63 }) });

/** The deployments area. */
export function deploymentsArea(context: CoreContext, gitops: GitOpsPublisher): CoreArea {
  const { db } = context.store;

  const view = async (rows: DeploymentsTable[]): Promise<Deployment[]> => {
    const sites = (
      await db.selectFrom('sites').selectAll().where('revoked_at', 'is', null).orderBy('name').execute()
    ).map((s) => siteView(s, gitops, context));
    return rows.map((row) => {
      const spec = JSON.parse(row.spec) as DeploymentRequest;
      const digest = spec.image.slice(spec.image.indexOf('@') + 1);
      const statuses: DeploymentSiteStatus[] = sites
        .filter((s) => selectorMatches(spec.selector, s.labels))
        .map((s) => {
          const d: DeployedModel | undefined = s.deployments.find((x) => x.deployment === row.name);
          return {
            site: s.name,
            online: s.online,
            state: d?.state ?? 'Unknown',
            version: d?.version ?? null,
            imageDigest: d?.imageDigest ?? null,
            reason: d?.reason ?? null,
            since: d?.since ?? null,
            upToDate: d?.imageDigest === digest && d.state === 'Serving',
          };
        });
      return {
        name: row.name,
        spec,
        createdAt: row.created_at,
        updatedAt: row.updated_at,
        commit: row.commit,
        sites: statuses,
        summary: {
          sites: statuses.length,
          serving: statuses.filter((s) => s.upToDate).length,
          failed: statuses.filter((s) => s.state === 'Failed' || s.state === 'RolledBack').length,
          pending: statuses.filter((s) => !s.upToDate && s.state !== 'Failed' && s.state !== 'RolledBack')
            .length,
        },
      };
    });
  };

  return {
    name: 'deployments',
    register: async (app) => {
      app.post<{ Body: DeploymentRequest }>(
        '/api/v1/deployments',
        {
          schema: {
            tags: ['deployments'],
            summary: 'Create or replace a deployment; commits the rendered sites to the GitOps repository',
            body: DeploymentRequestSchema,
            response: { 200: DeploymentSchema, 201: DeploymentSchema },
          },
        },
        async (request, reply) => {
          requireAdmin(request);
          // The renderer's own rules (reserved env, digest pinning) with the body's field paths.
          parseDeploymentSpec(request.body, 'body');
          const now = context.now().toISOString();
          const spec = JSON.stringify(request.body);
          const existed = await context.store.transaction(async (tx) => {
            const existing = await tx
              .selectFrom('deployments')
              .select('spec')
              .where('name', '=', request.body.name)
              .executeTakeFirst();
            if (existing === undefined) {
              await tx
                .insertInto('deployments')
                .values({ name: request.body.name, spec, created_at: now, updated_at: now, commit: null })
                .execute();
            } else if (withoutRun(existing.spec) !== withoutRun(spec)) {
              // A new pipeline run of the same image and settings is no change (no commit).
              await tx
                .updateTable('deployments')
                .set({ spec, updated_at: now, commit: null })
                .where('name', '=', request.body.name)
                .execute();
            }
            return existing !== undefined;
          });
          // The intent is stored; Git is written now (a crash here is repaired by the publish at start).
          const outcome = await gitops.publish(request.body.pipelineRun);
          context.logger.info('deployment published', {
            deployment: request.body.name,
            image: request.body.image,
            commit: outcome.commit,
            sites: outcome.sitesChanged.length,
          });
          const row = await db
            .selectFrom('deployments')
            .selectAll()
            .where('name', '=', request.body.name)
            .executeTakeFirstOrThrow();
          const [deployment] = await view([row]);
          return reply.code(existed ? 200 : 201).send(deployment);
        },
      );
      app.get(
        '/api/v1/deployments',
        {
          schema: {
            tags: ['deployments'],
            summary: 'List deployments with per-site status',
            response: { 200: Type.Object({ items: Type.Array(DeploymentSchema) }) },
          },
        },
        async (request) => {
          requireAdmin(request);
          return {
            items: await view(await db.selectFrom('deployments').selectAll().orderBy('name').execute()),
          };
        },
      );
      app.get<{ Params: { name: string } }>(
        '/api/v1/deployments/:name',
        {
          schema: {
            tags: ['deployments'],
            summary: 'Get a deployment with per-site status',
            params: DeploymentParams,
            response: { 200: DeploymentSchema },
          },
        },
        async (request) => {
          requireAdmin(request);
          const row = await db
            .selectFrom('deployments')
            .selectAll()
            .where('name', '=', request.params.name)
            .executeTakeFirst();
          if (row === undefined) throw new NotFoundError(`deployment ${request.params.name} does not exist`);
          const [deployment] = await view([row]);
          return deployment;
        },
      );
      app.delete<{ Params: { name: string } }>(
        '/api/v1/deployments/:name',
        {
          schema: {
            tags: ['deployments'],
            summary: 'Delete a deployment (its sites stop running it)',
            params: DeploymentParams,
          },
        },
        async (request, reply) => {
          requireAdmin(request);
          const deleted = await db
            .deleteFrom('deployments')
            .where('name', '=', request.params.name)
            .executeTakeFirst();
          if (Number(deleted.numDeletedRows) === 0)
            throw new NotFoundError(`deployment ${request.params.name} does not exist`);
          await gitops.publish();
          return reply.code(204).send();
        },
      );
    },
  };
}
