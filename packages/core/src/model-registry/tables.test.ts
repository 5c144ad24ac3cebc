import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type CompiledQuery,
} from 'kysely';
import { applyPage, pageRequestOf } from './paging.js';
import { modelRegistryMigration, type ModelRegistryTables } from './tables.js';

/** A Kysely over PostgreSQL's dialect that runs nothing and records every statement. */
function recordingPostgres(): { db: Kysely<ModelRegistryTables>; statements: CompiledQuery[] } {
  const statements: CompiledQuery[] = [];
  const db = new Kysely<ModelRegistryTables>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (k) => new PostgresIntrospector(k),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
    log: (event) => {
      if (event.level === 'query') statements.push(event.query);
    },
  });
  return { db, statements };
}

/** A statement with its parameters written in as SQL literals (for psql). */
function inline(query: CompiledQuery): string {
  return query.sql.replace(/\$(\d+)/g, (_m, n: string) => {
    const value = query.parameters[Number(n) - 1];
    if (typeof value === 'number') return String(value);
    if (typeof value === 'string') return `'${value.replace(/'/g, "''")}'`;
    throw new Error(`cannot inline parameter ${String(value)}`);
  });
}

async function migrationStatements(): Promise<string[]> {
  const { db, statements } = recordingPostgres();
  await modelRegistryMigration.up(db as unknown as Kysely<unknown>);
  return statements.map(inline);
}

function missingPostgres(): string | undefined {
  const found = ['initdb', 'postgres', 'psql'].every(
    (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0,
  );
  // PostgreSQL is not (yet) a required test component: without it this check skips, in CI too.
  if (found) return undefined;
  return 'PostgreSQL is not installed (apt-get install postgresql): the migration is checked on SQLite only';
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A throwaway PostgreSQL cluster on a unix socket in a temp dir (as user postgres when run by root). */
async function startPostgres(): Promise<{
  psql(sql: string): { status: number | null; out: string };
  stop(): Promise<void>;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'aiedge-pg-'));
  // initdb and postgres refuse to run as root: run them as the postgres user then.
  let user: { uid: number; gid: number } | Record<string, never> = {};
  if (process.getuid?.() === 0) {
    const id = (flag: string) =>
      Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
    user = { uid: id('-u'), gid: id('-g') };
    chownSync(dir, user.uid, user.gid);
  }
  const options = { ...user, cwd: dir, encoding: 'utf8' as const };
  const data = join(dir, 'data');
  const init = spawnSync('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync'], options);
  assert.equal(init.status, 0, `initdb: ${init.stderr}`);
  const port = await freePort();
  const server = spawn(
    'postgres',
    ['-D', data, '-k', dir, '-p', String(port), '-c', 'listen_addresses=', '-c', 'fsync=off'],
    { ...user, cwd: dir, stdio: 'ignore' },
  );
  const psql = (sql: string) => {
    const args = [
      '-h',
      dir,
      '-p',
      String(port),
      '-U',
      'postgres',
      '-X',
      '-q',
      '-A',
      '-t',
      '-v',
      'ON_ERROR_STOP=1',
    ];
    const run = spawnSync('psql', args, { ...options, input: sql });
    return { status: run.status, out: `${run.stdout}${run.stderr}` };
  };
  const stop = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGINT'); // fast shutdown
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; psql('select 1').status !== 0; i++) {
    if (i >= 100 || server.exitCode !== null) {
      await stop();
      assert.fail('postgres did not start');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { psql, stop };
}

describe('model registry tables', () => {
  test('the migration has no SQLite-only syntax', async () => {
    const ddl = (await migrationStatements()).join(';\n');
    assert.doesNotMatch(ddl, /autoincrement|without rowid|strict\b|pragma|insert or /i);
    assert.match(ddl, /create table "mr_registered_models"/);
  });

  test('the migration, id allocation and keyset paging run on PostgreSQL', async (t) => {
    const skip = missingPostgres();
    if (skip !== undefined) {
      t.skip(skip);
      return;
    }
    const pg = await startPostgres();
    try {
      const migrate = pg.psql(`${(await migrationStatements()).join(';\n')};`);
      assert.equal(migrate.status, 0, migrate.out);

      const { db, statements } = recordingPostgres();
      await db
        .updateTable('mr_sequences')
        .set((eb) => ({ next_id: eb('next_id', '+', 1) }))
        .where('name', '=', 'registered_model')
        .returning('next_id')
        .execute();
      const allocate = pg.psql(`${inline(statements.pop() as CompiledQuery)};`);
      assert.equal(allocate.status, 0, allocate.out);
      assert.equal(allocate.out.trim(), '2');

      const insert = (id: number, name: string, time: number) =>
        `insert into mr_registered_models (id, name, state, custom_properties, create_time, update_time) ` +
        `values (${id}, '${name}', 'LIVE', '{}', ${time}, ${time});`;
      const seeded = pg.psql(
        [insert(1, 'a', 1700000000000), insert(2, 'b', 1700000000000), insert(3, 'c', 1700000000001)].join(
          '\n',
        ),
      );
      assert.equal(seeded.status, 0, seeded.out);
      const duplicate = pg.psql(insert(4, 'a', 1));
      assert.notEqual(duplicate.status, 0, 'registered model names are unique');
      assert.match(duplicate.out, /duplicate key/);

      const page = pageRequestOf({ orderBy: 'CREATE_TIME', sortOrder: 'DESC', pageSize: '2' });
      await applyPage(db.selectFrom('mr_registered_models').select('id'), {
        ...page,
        after: { key: 1700000000000, id: 2 },
      }).execute();
      const keyset = pg.psql(`${inline(statements.pop() as CompiledQuery)};`);
      assert.equal(keyset.status, 0, keyset.out);
      assert.equal(keyset.out.trim(), '1');
    } finally {
      await pg.stop();
    }
  });
});
