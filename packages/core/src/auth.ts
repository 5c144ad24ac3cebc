/**
 * Bearer tokens. A token is `aie_<id>_<secret>`: the id finds the row, only the SHA-256 of the
 * secret is stored, and secrets are compared in constant time. Kinds: `admin` (everything),
 * `enrollment` (one-time, expiring; exchanged for a site token), `site` (its own site only).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ForbiddenError, InputError, UnauthorizedError } from '@aiedge/protocol';
import type { Db, Tx } from './store/db.js';
import type { TokensTable } from './store/schema.js';

/** Kinds of token. */
export const TokenKinds = ['admin', 'enrollment', 'site'] as const;
/** One kind of token. */
export type TokenKind = (typeof TokenKinds)[number];

const TOKEN_PATTERN = /^aie_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/** Who is calling: resolved from a valid token. */
export type Principal =
  | { readonly kind: 'admin'; readonly tokenId: string }
  | { readonly kind: 'site'; readonly tokenId: string; readonly site: string }
  | { readonly kind: 'enrollment'; readonly tokenId: string; readonly site: string | null };

/** A token as the API shows it (never the secret or its hash). */
export interface TokenInfo {
  readonly id: string;
  readonly kind: TokenKind;
  readonly site: string | null;
  readonly description: string;
  readonly createdAt: string;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
  readonly usedAt: string | null;
}

/** A newly created token: `token` is shown once and never stored. */
export interface CreatedToken extends TokenInfo {
  readonly token: string;
}

function sha256Hex(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The public id of a token string, when it has the token shape (safe to log). */
export function tokenIdOf(token: string): string | undefined {
  return TOKEN_PATTERN.exec(token)?.[1];
}

/** Converts a row to its API shape. */
export function tokenInfo(row: TokensTable): TokenInfo {
  return {
    id: row.id,
    kind: row.kind,
    site: row.site,
    description: row.description,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    usedAt: row.used_at,
  };
}

/** Options of {@link createToken}. */
export interface CreateTokenOptions {
  readonly kind: TokenKind;
  readonly site?: string | null;
  readonly description?: string;
  /** Lifetime; default: no expiry (enrollment tokens default to 24 h at the API). */
  readonly ttlSeconds?: number;
  /** Clock, for tests. */
  readonly now?: Date;
}

/** Creates a token and stores its hash; returns the token string once. */
export async function createToken(db: Db | Tx, options: CreateTokenOptions): Promise<CreatedToken> {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const now = options.now ?? new Date();
  if (options.ttlSeconds !== undefined && !(options.ttlSeconds > 0)) {
    throw new InputError(`ttlSeconds is ${options.ttlSeconds}: expected a positive number of seconds`);
  }
  const row: TokensTable = {
    id,
    kind: options.kind,
    secret_hash: sha256Hex(secret),
    site: options.site ?? null,
    description: options.description ?? '',
    created_at: now.toISOString(),
    expires_at:
      options.ttlSeconds === undefined
        ? null
        : new Date(now.getTime() + options.ttlSeconds * 1000).toISOString(),
    revoked_at: null,
    used_at: null,
  };
  await db.insertInto('tokens').values(row).execute();
  return { ...tokenInfo(row), token: `aie_${id}_${secret}` };
}

/**
 * Resolves a token string to its principal; throws UnauthorizedError for a malformed, unknown,
 * expired, revoked or used token (one message for all, so a caller learns nothing about which).
 */
export async function authenticate(db: Db | Tx, token: string, now = new Date()): Promise<Principal> {
  const match = TOKEN_PATTERN.exec(token);
  const refused = () => new UnauthorizedError('invalid, expired or revoked token');
  if (match === null) throw refused();
  const [, id, secret] = match as unknown as [string, string, string];
  const row = await db.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst();
  // Hash even when the row is missing, so timing does not tell whether an id exists.
  const given = Buffer.from(sha256Hex(secret), 'hex');
  const stored = Buffer.from(row?.secret_hash ?? '0'.repeat(64), 'hex');
  const equal = timingSafeEqual(given, stored);
  if (row === undefined || !equal) throw refused();
  if (row.revoked_at !== null || row.used_at !== null) throw refused();
  if (row.expires_at !== null && Date.parse(row.expires_at) <= now.getTime()) throw refused();
  switch (row.kind) {
    case 'admin':
      return { kind: 'admin', tokenId: id };
    case 'site':
      if (row.site === null) throw refused();
      return { kind: 'site', tokenId: id, site: row.site };
    case 'enrollment':
      return { kind: 'enrollment', tokenId: id, site: row.site };
  }
}

/**
 * The token of a request: `Authorization: Bearer <token>`, or Basic with the token as password
 * (what OCI clients such as podman and skopeo send). Undefined when there is none.
 */
export function tokenFromHeaders(headers: Record<string, string | string[] | undefined>): string | undefined {
  const header = headers['authorization'];
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const space = value.indexOf(' ');
  const scheme = value.slice(0, space < 0 ? value.length : space).toLowerCase();
  const rest = space < 0 ? '' : value.slice(space + 1).trim();
  if (scheme === 'bearer') return rest;
  if (scheme === 'basic') {
    const decoded = Buffer.from(rest, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller, set by the auth hook; undefined on public routes. */
    principal: Principal | undefined;
  }
}

/** The caller of an authenticated route (the auth hook guarantees one). */
export function principalOf(request: FastifyRequest): Principal {
  const principal = request.principal;
  if (principal === undefined) throw new UnauthorizedError('a bearer token is required');
  return principal;
}

/** Allows admins only. */
export function requireAdmin(request: FastifyRequest): void {
  const p = principalOf(request);
  if (p.kind !== 'admin')
    throw new ForbiddenError(`this operation needs an admin token; the token is a ${p.kind} token`);
}

/** Allows admins and the token of `site` itself. */
export function requireSiteOrAdmin(request: FastifyRequest, site: string): Principal {
  const p = principalOf(request);
  if (p.kind === 'admin') return p;
  if (p.kind === 'site' && p.site === site) return p;
  throw new ForbiddenError(
    p.kind === 'site'
      ? `a token of site ${p.site} may not act for site ${site}`
      : `a ${p.kind} token may not do this`,
  );
}

/** Allows admins and site tokens (any site); the handler scopes what a site may see. */
export function requireAdminOrSite(request: FastifyRequest): Principal {
  const p = principalOf(request);
  if (p.kind === 'enrollment')
    throw new ForbiddenError('an enrollment token may only be used to enroll a site');
  return p;
}
