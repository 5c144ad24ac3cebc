/** Tokens API: admins create admin and enrollment tokens, list them (never secrets) and revoke them. */
import { Type } from '@sinclair/typebox';
import { NotFoundError, TokenRequestSchema, type TokenRequest } from '@aiedge/protocol';
import { createToken, requireAdmin, tokenInfo } from './auth.js';
import type { CoreArea, CoreContext } from './context.js';

const TokenInfoSchema = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  site: Type.Union([Type.String(), Type.Null()]),
  description: Type.String(),
  createdAt: Type.String(),
  expiresAt: Type.Union([Type.String(), Type.Null()]),
  revokedAt: Type.Union([Type.String(), Type.Null()]),
  usedAt: Type.Union([Type.String(), Type.Null()]),
});

/** The tokens area. */
export function tokensArea(context: CoreContext): CoreArea {
  const { db } = context.store;
  return {
    name: 'tokens',
    register: async (app) => {
      app.post<{ Body: TokenRequest }>(
        '/api/v1/tokens',
        {
          schema: {
            tags: ['tokens'],
            summary: 'Create an admin or enrollment token (the token string is shown once)',
            body: TokenRequestSchema,
            response: { 201: Type.Intersect([TokenInfoSchema, Type.Object({ token: Type.String() })]) },
          },
        },
        async (request, reply) => {
          requireAdmin(request);
          const body = request.body;
          const ttlSeconds =
            body.ttlSeconds ??
            (body.kind === 'enrollment' ? context.config.enrollmentTokenTtlSeconds : undefined);
          const created = await createToken(db, {
            kind: body.kind,
            site: body.kind === 'enrollment' ? (body.site ?? null) : null,
            description: body.description ?? '',
            now: context.now(),
            ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
          });
          context.logger.info('token created', { tokenId: created.id, kind: created.kind });
          return reply.code(201).send(created);
        },
      );
      app.get(
        '/api/v1/tokens',
        {
          schema: {
            tags: ['tokens'],
            summary: 'List tokens (ids and metadata only)',
            response: { 200: Type.Object({ items: Type.Array(TokenInfoSchema) }) },
          },
        },
        async (request) => {
          requireAdmin(request);
          const rows = await db
            .selectFrom('tokens')
            .selectAll()
            .orderBy('created_at')
            .orderBy('id')
            .execute();
          return { items: rows.map(tokenInfo) };
        },
      );
      app.delete<{ Params: { id: string } }>(
        '/api/v1/tokens/:id',
        {
          schema: {
            tags: ['tokens'],
            summary: 'Revoke a token',
            params: Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{16}$' }) }),
          },
        },
        async (request, reply) => {
          requireAdmin(request);
          const result = await db
            .updateTable('tokens')
            .set({ revoked_at: context.now().toISOString() })
            .where('id', '=', request.params.id)
            .where('revoked_at', 'is', null)
            .executeTakeFirst();
          if (Number(result.numUpdatedRows) === 0) {
            const exists = await db
              .selectFrom('tokens')
              .select('id')
              .where('id', '=', request.params.id)
              .executeTakeFirst();
            if (exists === undefined) throw new NotFoundError(`token ${request.params.id} does not exist`);
          }
          context.logger.info('token revoked', { tokenId: request.params.id });
          return reply.code(204).send();
        },
      );
    },
  };
}
