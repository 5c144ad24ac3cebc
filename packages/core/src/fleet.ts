/**
 * The fleet: enrollment, sites (list, get, label patch, revoke, delete), status pushed by agents,
 * site event history, and the desired-state long-poll agents hold open (outbound from the edge).
 */
import { Gauge } from 'prom-client';
import { Type } from '@sinclair/typebox';
import {
  ConflictError,
  DesiredStateSchema,
  EnrollRequestSchema,
  ForbiddenError,
  LabelsSchema,
  NAME_PATTERN,
  NotFoundError,
  SiteSchema,
  SiteStatusReportSchema,
  UnauthorizedError,
  type DeployedModel,
  type EnrollRequest,
  type Site,
  type SiteResources,
  type SiteStatusReport,
} from '@aiedge/protocol';
import { createToken, principalOf, requireAdmin, requireSiteOrAdmin } from './auth.js';
import type { CoreArea, CoreContext } from './context.js';
import type { GitOpsPublisher } from './gitops.js';
import { matchesSelector, parseSelector } from './selector.js';
import type { Tx } from './store/db.js';
import type { SitesTable } from './store/schema.js';

/** Events kept per site (older ones are pruned). */
const EVENTS_PER_SITE = 1000;
const SiteParams = Type.Object({ site: Type.String({ pattern: NAME_PATTERN, maxLength: 63 }) });

/** Converts a stored site to its API shape. */
export function siteView(row: SitesTable, gitops: GitOpsPublisher, context: CoreContext): Site {
  const status =
    row.status === null
      ? null
      : (JSON.parse(row.status) as { deployments: DeployedModel[]; resources?: SiteResources });
  const desiredRevision = gitops.revisionOf(row.name);
  const lastSeen = row.last_seen;
  const online =
    row.revoked_at === null &&
    lastSeen !== null &&
    context.now().getTime() - Date.parse(lastSeen) <= context.config.siteOfflineAfterSeconds * 1000;
  return {
    name: row.name,
    kind: row.kind,
    labels: JSON.parse(row.labels) as Record<string, string>,
    agentVersion: row.agent_version,
    createdAt: row.created_at,
    lastSeen,
    online,
    revoked: row.revoked_at !== null,
    desiredRevision,
    appliedRevision: row.applied_revision,
    drift: row.revoked_at === null && desiredRevision !== '' && row.applied_revision !== desiredRevision,
    deployments: status?.deployments ?? [],
    resources: status?.resources ?? null,
    statusUpdatedAt: row.status_updated_at,
  };
}

async function addEvents(
  tx: Tx,
  site: string,
  at: string,
  events: { type: string; detail: unknown }[],
): Promise<void> {
  if (events.length === 0) return;
  await tx
    .insertInto('site_events')
    .values(events.map((e) => ({ site, at, type: e.type, detail: JSON.stringify(e.detail) })))
    .execute();
  const newest = await tx
    .selectFrom('site_events')
    .select('id')
    .where('site', '=', site)
    .orderBy('id', 'desc')
    .offset(EVENTS_PER_SITE)
    .limit(1)
    .executeTakeFirst();
  if (newest !== undefined)
    await tx.deleteFrom('site_events').where('site', '=', site).where('id', '<=', newest.id).execute();
}

/** The events a status report implies, compared with the previous one. */
function stateChanges(
  previous: readonly DeployedModel[],
  next: readonly DeployedModel[],
): { type: string; detail: unknown }[] {
  const before = new Map(previous.map((d) => [d.deployment, d]));
  const out: { type: string; detail: unknown }[] = [];
  for (const d of next) {
    const old = before.get(d.deployment);
    if (old?.state === d.state && old.version === d.version && old.imageDigest === d.imageDigest) continue;
    out.push({
      type: 'deployment.state',
      detail: {
        deployment: d.deployment,
        model: d.model,
        version: d.version,
        imageDigest: d.imageDigest ?? null,
        from: old?.state ?? null,
        to: d.state,
        reason: d.reason ?? null,
        since: d.since,
      },
    });
  }
  for (const old of previous) {
    if (!next.some((d) => d.deployment === old.deployment))
      out.push({
        type: 'deployment.removed',
        detail: { deployment: old.deployment, model: old.model, version: old.version },
      });
  }
  return out;
}

/** The fleet area. */
export function fleetArea(context: CoreContext, gitops: GitOpsPublisher): CoreArea {
  const { db } = context.store;
  const publishSoon = (why: string) => {
    gitops
      .publish()
      .catch((error: unknown) => context.logger.warn('GitOps publish failed', { why, err: error }));
  };
  const getSite = async (name: string): Promise<SitesTable> => {
    const row = await db.selectFrom('sites').selectAll().where('name', '=', name).executeTakeFirst();
    if (row === undefined) throw new NotFoundError(`site ${name} does not exist`);
    return row;
  };

  new Gauge({
    name: 'aiedge_core_sites',
    help: 'Enrolled sites by state (online, offline, revoked).',
    labelNames: ['state'],
    registers: [context.metrics],
    async collect() {
      const rows = await db.selectFrom('sites').select(['last_seen', 'revoked_at']).execute();
      const cutoff = context.now().getTime() - context.config.siteOfflineAfterSeconds * 1000;
      const counts = { online: 0, offline: 0, revoked: 0 };
      for (const r of rows) {
        if (r.revoked_at !== null) counts.revoked++;
        else if (r.last_seen !== null && Date.parse(r.last_seen) >= cutoff) counts.online++;
        else counts.offline++;
      }
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'aiedge_core_desired_waiting',
    help: 'Agents holding a desired-state long-poll.',
    registers: [context.metrics],
    collect() {
      this.set(gitops.waiting);
    },
  });

  return {
    name: 'fleet',
    register: async (app) => {
      app.post<{ Body: EnrollRequest }>(
        '/api/v1/sites/enroll',
        {
          schema: {
            tags: ['sites'],
            summary: 'Enroll a site with an enrollment token; returns the site token (shown once)',
            body: EnrollRequestSchema,
            response: { 201: Type.Object({ site: SiteSchema, token: Type.String() }) },
          },
        },
        async (request, reply) => {
          const principal = principalOf(request);
          if (principal.kind !== 'enrollment') {
            throw new ForbiddenError(
              `enrollment needs an enrollment token; the token is a ${principal.kind} token`,
            );
          }
          const body = request.body;
          if (principal.site !== null && principal.site !== body.name) {
            throw new ForbiddenError(`this enrollment token is for site ${principal.site}, not ${body.name}`);
          }
          const now = context.now().toISOString();
          const { row, token } = await context.store.transaction(async (tx) => {
            // One-time: the token is consumed in the same transaction that creates the site.
            const used = await tx
              .updateTable('tokens')
              .set({ used_at: now })
              .where('id', '=', principal.tokenId)
              .where('used_at', 'is', null)
              .executeTakeFirst();
            if (Number(used.numUpdatedRows) !== 1)
              throw new UnauthorizedError('invalid, expired or revoked token');
            const existing = await tx
              .selectFrom('sites')
              .select('name')
              .where('name', '=', body.name)
              .executeTakeFirst();
            if (existing !== undefined)
              throw new ConflictError(
                `site ${body.name} is already enrolled; delete it first to enroll it again`,
              );
            const row: SitesTable = {
              name: body.name,
              kind: body.kind ?? 'cluster',
              labels: JSON.stringify(body.labels ?? {}),
              agent_version: body.agentVersion ?? '',
              created_at: now,
              last_seen: now,
              status: null,
              applied_revision: null,
              status_updated_at: null,
              revoked_at: null,
            };
            await tx.insertInto('sites').values(row).execute();
            const token = await createToken(tx, {
              kind: 'site',
              site: body.name,
              description: `site ${body.name}`,
              now: context.now(),
            });
            await addEvents(tx, body.name, now, [
              {
                type: 'site.enrolled',
                detail: { kind: row.kind, labels: body.labels ?? {}, enrollmentToken: principal.tokenId },
              },
            ]);
            return { row, token };
          });
          context.logger.info('site enrolled', { site: body.name, tokenId: token.id });
          publishSoon('enroll');
          return reply.code(201).send({ site: siteView(row, gitops, context), token: token.token });
        },
      );

      app.get<{ Querystring: { selector?: string; limit?: number; cursor?: string } }>(
        '/api/v1/sites',
        {
          schema: {
            tags: ['sites'],
            summary: 'List sites, filtered by a label selector, in name order with paging',
            querystring: Type.Object(
              {
                selector: Type.Optional(Type.String({ maxLength: 4096 })),
                limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
                cursor: Type.Optional(Type.String({ maxLength: 63 })),
              },
              { additionalProperties: false },
            ),
            response: {
              200: Type.Object({
                items: Type.Array(SiteSchema),
                nextCursor: Type.Union([Type.String(), Type.Null()]),
                counts: Type.Object({
                  total: Type.Integer(),
                  online: Type.Integer(),
                  offline: Type.Integer(),
                  drift: Type.Integer(),
                }),
              }),
            },
          },
        },
        async (request) => {
          requireAdmin(request);
          const { selector, cursor } = request.query;
          const limit = request.query.limit ?? 100;
          const requirements = parseSelector(selector ?? '', 'querystring.selector');
          const rows = await db.selectFrom('sites').selectAll().orderBy('name').execute();
          const matching = rows
            .map((r) => siteView(r, gitops, context))
            .filter((s) => matchesSelector(requirements, s.labels));
          const counts = {
            total: matching.length,
            online: matching.filter((s) => s.online).length,
            offline: matching.filter((s) => !s.online && !s.revoked).length,
            drift: matching.filter((s) => s.drift).length,
          };
          const start = cursor === undefined ? matching : matching.filter((s) => s.name > cursor);
          const items = start.slice(0, limit);
          const nextCursor = start.length > limit ? (items[items.length - 1]?.name ?? null) : null;
          return { items, nextCursor, counts };
        },
      );

      app.get<{ Params: { site: string } }>(
        '/api/v1/sites/:site',
        {
          schema: {
            tags: ['sites'],
            summary: 'Get a site',
            params: SiteParams,
            response: { 200: SiteSchema },
          },
        },
        async (request) => {
          requireSiteOrAdmin(request, request.params.site);
          return siteView(await getSite(request.params.site), gitops, context);
        },
      );

      app.patch<{ Params: { site: string }; Body: { labels: Record<string, string | null> } }>(
        '/api/v1/sites/:site',
        {
          schema: {
            tags: ['sites'],
            summary: 'Change labels (merge: a null value removes the label)',
            params: SiteParams,
            body: Type.Object(
              {
                labels: Type.Record(
                  Type.String({ pattern: Object.keys(LabelsSchema.patternProperties ?? {})[0] ?? '.*' }),
                  Type.Union([Type.String({ maxLength: 63, pattern: '^[A-Za-z0-9._-]*$' }), Type.Null()]),
                ),
              },
              { additionalProperties: false },
            ),
            response: { 200: SiteSchema },
          },
        },
        async (request) => {
          requireAdmin(request);
          const name = request.params.site;
          const row = await context.store.transaction(async (tx) => {
            const row = await tx.selectFrom('sites').selectAll().where('name', '=', name).executeTakeFirst();
            if (row === undefined) throw new NotFoundError(`site ${name} does not exist`);
            const labels = JSON.parse(row.labels) as Record<string, string>;
            for (const [k, v] of Object.entries(request.body.labels)) {
              if (v === null) delete labels[k];
              else labels[k] = v;
            }
            const text = JSON.stringify(
              Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1))),
            );
            await tx.updateTable('sites').set({ labels: text }).where('name', '=', name).execute();
            await addEvents(tx, name, context.now().toISOString(), [
              { type: 'site.labels', detail: { labels: JSON.parse(text) as unknown } },
            ]);
            return { ...row, labels: text };
          });
          publishSoon('labels');
          return siteView(row, gitops, context);
        },
      );

      app.post<{ Params: { site: string } }>(
        '/api/v1/sites/:site/revoke',
        {
          schema: {
            tags: ['sites'],
            summary: 'Revoke a site: its tokens stop working and its directory leaves the GitOps repository',
            params: SiteParams,
            response: { 200: SiteSchema },
          },
        },
        async (request) => {
          requireAdmin(request);
          const name = request.params.site;
          const now = context.now().toISOString();
          const row = await context.store.transaction(async (tx) => {
            const row = await tx.selectFrom('sites').selectAll().where('name', '=', name).executeTakeFirst();
            if (row === undefined) throw new NotFoundError(`site ${name} does not exist`);
            await tx
              .updateTable('tokens')
              .set({ revoked_at: now })
              .where('site', '=', name)
              .where('kind', '=', 'site')
              .where('revoked_at', 'is', null)
              .execute();
            await tx
              .updateTable('sites')
              .set({ revoked_at: row.revoked_at ?? now })
              .where('name', '=', name)
              .execute();
            await addEvents(tx, name, now, [{ type: 'site.revoked', detail: {} }]);
            return { ...row, revoked_at: row.revoked_at ?? now };
          });
          context.logger.info('site revoked', { site: name });
          publishSoon('revoke');
          return siteView(row, gitops, context);
        },
      );

      app.delete<{ Params: { site: string } }>(
        '/api/v1/sites/:site',
        {
          schema: {
            tags: ['sites'],
            summary: 'Delete a site, its tokens and its history',
            params: SiteParams,
          },
        },
        async (request, reply) => {
          requireAdmin(request);
          const name = request.params.site;
          await context.store.transaction(async (tx) => {
            const deleted = await tx.deleteFrom('sites').where('name', '=', name).executeTakeFirst();
            if (Number(deleted.numDeletedRows) === 0) throw new NotFoundError(`site ${name} does not exist`);
            await tx.deleteFrom('tokens').where('site', '=', name).where('kind', '=', 'site').execute();
            await tx.deleteFrom('site_events').where('site', '=', name).execute();
          });
          context.logger.info('site deleted', { site: name });
          publishSoon('delete');
          return reply.code(204).send();
        },
      );

      app.put<{ Params: { site: string }; Body: SiteStatusReport }>(
        '/api/v1/sites/:site/status',
        {
          schema: {
            tags: ['sites'],
            summary: 'Push the status of a site (its agent, on every change and as a heartbeat)',
            params: SiteParams,
            body: SiteStatusReportSchema,
            response: { 200: Type.Object({ desiredRevision: Type.String() }) },
          },
        },
        async (request) => {
          const name = request.params.site;
          requireSiteOrAdmin(request, name);
          const report = request.body;
          const seen = new Set<string>();
          report.deployments.forEach((d, i) => {
            if (seen.has(d.deployment))
              throw new ConflictError(`body.deployments[${i}].deployment "${d.deployment}" appears twice`);
            seen.add(d.deployment);
          });
          const now = context.now().toISOString();
          await context.store.transaction(async (tx) => {
            const row = await tx
              .selectFrom('sites')
              .select(['status', 'revoked_at', 'agent_version'])
              .where('name', '=', name)
              .executeTakeFirst();
            if (row === undefined) throw new NotFoundError(`site ${name} does not exist`);
            if (row.revoked_at !== null) throw new ForbiddenError(`site ${name} is revoked`);
            const previous =
              row.status === null
                ? []
                : (JSON.parse(row.status) as { deployments: DeployedModel[] }).deployments;
            const status = JSON.stringify({
              deployments: report.deployments,
              resources: report.resources ?? null,
            });
            await tx
              .updateTable('sites')
              .set({
                status,
                last_seen: now,
                status_updated_at: now,
                ...(report.appliedRevision !== undefined ? { applied_revision: report.appliedRevision } : {}),
                ...(report.agentVersion !== undefined ? { agent_version: report.agentVersion } : {}),
              })
              .where('name', '=', name)
              .execute();
            await addEvents(tx, name, now, stateChanges(previous, report.deployments));
          });
          return { desiredRevision: gitops.revisionOf(name) };
        },
      );

      app.get<{ Params: { site: string }; Querystring: { limit?: number; before?: number } }>(
        '/api/v1/sites/:site/events',
        {
          schema: {
            tags: ['sites'],
            summary:
              'History of a site (enrollment, deployment state changes, labels, revocation), newest first',
            params: SiteParams,
            querystring: Type.Object(
              {
                limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
                before: Type.Optional(Type.Integer({ minimum: 1 })),
              },
              { additionalProperties: false },
            ),
            response: {
              200: Type.Object({
                items: Type.Array(
                  Type.Object({
                    id: Type.Integer(),
                    at: Type.String(),
                    type: Type.String(),
                    detail: Type.Unknown(),
                  }),
                ),
              }),
            },
          },
        },
        async (request) => {
          requireSiteOrAdmin(request, request.params.site);
          await getSite(request.params.site);
          let q = db.selectFrom('site_events').selectAll().where('site', '=', request.params.site);
          if (request.query.before !== undefined) q = q.where('id', '<', request.query.before);
          const rows = await q
            .orderBy('id', 'desc')
            .limit(request.query.limit ?? 100)
            .execute();
          return {
            items: rows.map((r) => ({
              id: r.id,
              at: r.at,
              type: r.type,
              detail: JSON.parse(r.detail) as unknown,
            })),
          };
        },
      );

      app.get<{ Params: { site: string }; Querystring: { known?: string; waitSeconds?: number } }>(
        '/api/v1/sites/:site/desired',
        {
          schema: {
            tags: ['sites'],
            summary:
              'Desired state of a site; with known=REV, held until the revision differs (or waitSeconds pass: 304)',
            params: SiteParams,
            querystring: Type.Object(
              {
                known: Type.Optional(Type.String({ maxLength: 128 })),
                waitSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 })),
              },
              { additionalProperties: false },
            ),
            response: { 200: DesiredStateSchema, 304: Type.Null() },
          },
        },
        async (request, reply) => {
          const name = request.params.site;
          requireSiteOrAdmin(request, name);
          const site = await db
            .selectFrom('sites')
            .select(['revoked_at'])
            .where('name', '=', name)
            .executeTakeFirst();
          if (site === undefined) throw new NotFoundError(`site ${name} does not exist`);
          if (site.revoked_at !== null) throw new ForbiddenError(`site ${name} is revoked`);
          await db
            .updateTable('sites')
            .set({ last_seen: context.now().toISOString() })
            .where('name', '=', name)
            .execute();
          const known = request.query.known;
          const waitMs = Math.min(request.query.waitSeconds ?? 0, context.config.maxWaitSeconds) * 1000;
          if (known !== undefined && known === gitops.revisionOf(name) && gitops.head !== '') {
            if (waitMs === 0) return reply.code(304).header('etag', `"${known}"`).send();
            const gone = new AbortController();
            const onClose = () => gone.abort();
            request.raw.socket.once('close', onClose);
            const signal = AbortSignal.any([gone.signal, context.shutdown]);
            const revision = await gitops.waitForChange(name, known, waitMs, signal);
            request.raw.socket.off('close', onClose);
            if (revision === undefined) return reply.code(304).header('etag', `"${known}"`).send();
          }
          const desired = gitops.desiredState(name);
          return reply.header('etag', `"${desired.revision}"`).send(desired);
        },
      );
    },
  };
}
