/** Column helpers for migrations that must read the same on SQLite and PostgreSQL. */
import { PostgresAdapter, type ColumnDataType, type ColumnDefinitionBuilder, type Kysely } from 'kysely';

/** True when `db` talks to PostgreSQL. */
export function isPostgres(db: Kysely<unknown>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/**
 * A generated integer primary key: `integer primary key autoincrement` on SQLite, an identity
 * column on PostgreSQL. Use as `.addColumn('id', ...idColumn(db))`.
 */
export function idColumn(
  db: Kysely<unknown>,
): [ColumnDataType, (column: ColumnDefinitionBuilder) => ColumnDefinitionBuilder] {
  return isPostgres(db)
    ? ['bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity()]
    : ['integer', (c) => c.primaryKey().autoIncrement()];
}
