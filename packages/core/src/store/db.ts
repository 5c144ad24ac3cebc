/**
 * The core's store: one Kysely database over SQLite (WAL, the default) whose queries stay portable
 * to PostgreSQL. Versioned migrations run at open; every multi-row change goes through `transaction`.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type Transaction } from 'kysely';
import { InputError } from '@aiedge/protocol';
import type { Database } from './schema.js';
import { migrationProvider } from './migrations.js';

/** The typed database handle every core module queries through. */
export type Db = Kysely<Database>;
/** A transaction handle (same query API as {@link Db}). */
export type Tx = Transaction<Database>;

/** Options of {@link openStore}. */
export interface StoreOptions {
  /** SQLite file path, or `:memory:`. */
  readonly sqlitePath: string;
}

/** An open store; `close()` checkpoints and closes the database. */
export interface Store {
  readonly db: Db;
  /** The dialect in use (queries that must differ branch on it; keep them few). */
  readonly dialect: 'sqlite' | 'postgres';
  /** Runs `fn` in one transaction: all of its writes land, or none. */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Opens (creating when absent) the store and applies pending migrations. */
export async function openStore(options: StoreOptions): Promise<Store> {
  if (options.sqlitePath !== ':memory:') mkdirSync(dirname(options.sqlitePath), { recursive: true });
  let sqlite: SqliteDatabase.Database;
  try {
    sqlite = new SqliteDatabase(options.sqlitePath);
  } catch (error) {
    throw new InputError(
      `store: cannot open SQLite database ${options.sqlitePath}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  // WAL: readers never block the writer and a crash never leaves a half-written page.
  sqlite.pragma('journal_mode = WAL');
  // NORMAL is durable against process crashes (kill -9); FULL would add an fsync per commit.
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  const migrator = new Migrator({ db, provider: migrationProvider });
  // Another process (a CLI next to a starting core) may be migrating the same file: SQLite then
  // answers BUSY to the loser, or, when both read the migration table before either committed, the
  // loser's CREATE finds the winner's table; it retries and finds the migrations applied.
  let { error, results } = await migrator.migrateToLatest();
  for (let attempt = 1; error !== undefined && lostRace(error) && attempt <= 20; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    ({ error, results } = await migrator.migrateToLatest());
  }
  if (error !== undefined) {
    await db.destroy();
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`store: migration ${failed} failed: ${(error as Error).message ?? String(error)}`, {
      cause: error,
    });
  }
  let closed = false;
  return {
    db,
    dialect: 'sqlite',
    transaction: (fn) => db.transaction().execute(fn),
    close: async () => {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}

function lostRace(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) return true;
  return typeof message === 'string' && / already exists$/.test(message);
}
