import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CompiledQuery, Kysely } from 'kysely';
import { inline, missingPostgres, recordingPostgres, startPostgres } from '../store/_test-postgres.js';
import { applyPage, pageRequestOf } from './paging.js';
import { modelRegistryMigration, type ModelRegistryTables } from './tables.js';

async function migrationStatements(): Promise<string[]> {
  const { db, statements } = recordingPostgres<ModelRegistryTables>();
  await modelRegistryMigration.up(db as unknown as Kysely<unknown>);
  return statements.map(inline);
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

      const { db, statements } = recordingPostgres<ModelRegistryTables>();
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
