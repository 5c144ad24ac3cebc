/**
 * Keyset paging of the list endpoints. The opaque `nextPageToken` carries the order it was made
 * for and the sort key and id of the last item sent, so the next page starts strictly after it:
 * no duplicates and no gaps while rows are added, whatever the page size.
 */
import { sql, type SelectQueryBuilder, type SqlBool } from 'kysely';
import {
  InputError,
  ModelRegistryOrderByFields,
  ModelRegistrySortOrders,
  describeValue,
  type ModelRegistryOrderBy,
  type ModelRegistrySortOrder,
} from '@aiedge/protocol';

/** Items per page when the request names none. */
export const DEFAULT_PAGE_SIZE = 100;
/** Most items per page; a larger `pageSize` is capped (the response's `pageSize` tells). */
export const MAX_PAGE_SIZE = 1000;

/** The list query parameters, as validated strings. */
export interface ListQuery {
  readonly pageSize?: string;
  readonly nextPageToken?: string;
  readonly orderBy?: ModelRegistryOrderBy;
  readonly sortOrder?: ModelRegistrySortOrder;
  readonly filterQuery?: string;
}

/** One page to read. */
export interface PageRequest {
  readonly pageSize: number;
  readonly orderBy: ModelRegistryOrderBy;
  readonly sortOrder: ModelRegistrySortOrder;
  /** Sort key and id of the last item of the previous page. */
  readonly after: { readonly key: number; readonly id: number } | undefined;
}

/** The columns every paged table has. */
export interface PagedRow {
  id: number;
  create_time: number;
  update_time: number;
}

const COLUMNS = {
  CREATE_TIME: 'create_time',
  LAST_UPDATE_TIME: 'update_time',
  ID: 'id',
} as const satisfies Record<ModelRegistryOrderBy, keyof PagedRow>;

interface TokenBody {
  o: ModelRegistryOrderBy;
  s: ModelRegistrySortOrder;
  k: number;
  i: number;
}

function decodeToken(token: string): TokenBody {
  const refused = () =>
    new InputError(
      `query.nextPageToken is ${describeValue(token)}: not a token this registry issued (list again without it)`,
    );
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw refused();
  }
  if (typeof body !== 'object' || body === null) throw refused();
  const { o, s, k, i } = body as Record<string, unknown>;
  if (
    !ModelRegistryOrderByFields.includes(o as ModelRegistryOrderBy) ||
    !ModelRegistrySortOrders.includes(s as ModelRegistrySortOrder) ||
    !Number.isSafeInteger(k) ||
    !Number.isSafeInteger(i)
  ) {
    throw refused();
  }
  return { o, s, k, i } as TokenBody;
}

/**
 * The page a list query asks for. Without `orderBy`/`sortOrder`, a token continues in its own order;
 * given ones must match the token's. Default: ID ascending, {@link DEFAULT_PAGE_SIZE} items.
 */
export function pageRequestOf(query: ListQuery): PageRequest {
  if (query.filterQuery !== undefined && query.filterQuery.trim() !== '') {
    throw new InputError(
      `query.filterQuery is ${describeValue(query.filterQuery)}: filter queries are not supported by this registry; ` +
        'use the name and externalId parameters or the find endpoints',
    );
  }
  const pageSize = Math.min(
    query.pageSize === undefined ? DEFAULT_PAGE_SIZE : Number(query.pageSize),
    MAX_PAGE_SIZE,
  );
  const token =
    query.nextPageToken === undefined || query.nextPageToken === ''
      ? undefined
      : decodeToken(query.nextPageToken);
  const orderBy = query.orderBy ?? token?.o ?? 'ID';
  const sortOrder = query.sortOrder ?? token?.s ?? 'ASC';
  if (token !== undefined && (token.o !== orderBy || token.s !== sortOrder)) {
    throw new InputError(
      `query.nextPageToken continues a list ordered by ${token.o} ${token.s}, not ${orderBy} ${sortOrder}: ` +
        "repeat the first request's orderBy and sortOrder, or list again without the token",
    );
  }
  return {
    pageSize,
    orderBy,
    sortOrder,
    after: token === undefined ? undefined : { key: token.k, id: token.i },
  };
}

/** Applies the order, the start after the previous page and the limit (one more row, to see whether a next page exists). */
export function applyPage<DB, TB extends keyof DB, O>(
  query: SelectQueryBuilder<DB, TB, O>,
  page: PageRequest,
): SelectQueryBuilder<DB, TB, O> {
  const column = sql.ref(COLUMNS[page.orderBy]);
  const id = sql.ref('id');
  const direction = page.sortOrder === 'ASC' ? 'asc' : 'desc';
  let q = query;
  if (page.after !== undefined) {
    const op = sql.raw(page.sortOrder === 'ASC' ? '>' : '<');
    const { key, id: lastId } = page.after;
    q = q.where(sql<SqlBool>`(${column} ${op} ${key} or (${column} = ${key} and ${id} ${op} ${lastId}))`);
  }
  q = q.orderBy(column, direction);
  if (page.orderBy !== 'ID') q = q.orderBy(id, direction);
  return q.limit(page.pageSize + 1);
}

/** Splits the rows read by {@link applyPage} into the page and the token of the next one ('' when none). */
export function pageOf<R extends PagedRow>(
  rows: R[],
  page: PageRequest,
): { rows: R[]; nextPageToken: string } {
  if (rows.length <= page.pageSize) return { rows, nextPageToken: '' };
  const kept = rows.slice(0, page.pageSize);
  const last = kept[kept.length - 1] as R;
  const body: TokenBody = {
    o: page.orderBy,
    s: page.sortOrder,
    k: Number(last[COLUMNS[page.orderBy]]),
    i: Number(last.id),
  };
  return { rows: kept, nextPageToken: Buffer.from(JSON.stringify(body)).toString('base64url') };
}
