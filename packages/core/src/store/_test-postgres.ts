// Test helper (left out of the build): PostgreSQL for migration and query portability tests.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type CompiledQuery,
} from 'kysely';

/** A Kysely over PostgreSQL's dialect that runs nothing and records every statement. */
export function recordingPostgres<DB = unknown>(): { db: Kysely<DB>; statements: CompiledQuery[] } {
  const statements: CompiledQuery[] = [];
  const db = new Kysely<DB>({
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
export function inline(query: CompiledQuery): string {
  return query.sql.replace(/\$(\d+)/g, (_m, n: string) => {
    const value = query.parameters[Number(n) - 1];
    if (typeof value === 'number') return String(value);
    if (typeof value === 'string') return `'${value.replace(/'/g, "''")}'`;
    throw new Error(`cannot inline parameter ${String(value)}`);
  });
}

export function missingPostgres(): string | undefined {
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
export async function startPostgres(): Promise<{
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
