/**
 * Tables of the pipeline-runs area and their migration (Kysely schema builder; portable to
 * PostgreSQL). Times are ISO 8601 text, like the rest of the store; JSON columns are text.
 */
import type { Kysely, Migration } from 'kysely';
import type { RunLogStream, RunStatus, TaskState } from '@aiedge/protocol';

/** One pipeline run. */
export interface RunsTable {
  /** Time-ordered id (newest sorts last), so paging and FIFO order follow it. */
  id: string;
  /** `metadata.name` of the pipeline. */
  pipeline: string;
  /** JSON of the pipeline document. */
  spec: string;
  /** JSON object of params. */
  params: string;
  status: RunStatus;
  reason: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** JSON object of results; null until the run succeeds. */
  results: string | null;
  /** Id of the token that requested the run. */
  requested_by: string | null;
}

/** One task of a run. */
export interface RunTasksTable {
  run_id: string;
  name: string;
  /** Index of the task in the spec (listing order). */
  position: number;
  state: TaskState;
  attempt: number;
  started_at: string | null;
  finished_at: string | null;
  reason: string | null;
  /** JSON object of results. */
  results: string;
}

/** Log lines of a run; `seq` counts from 1 per run. */
export interface RunLogsTable {
  run_id: string;
  seq: number;
  task: string | null;
  stream: RunLogStream;
  at: string;
  line: string;
}

/** Tables of this area. */
export interface RunTables {
  runs: RunsTable;
  run_tasks: RunTasksTable;
  run_logs: RunLogsTable;
}

/** Creates this area's tables. */
export const runsMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('runs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('pipeline', 'text', (c) => c.notNull())
      .addColumn('spec', 'text', (c) => c.notNull())
      .addColumn('params', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('reason', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text')
      .addColumn('finished_at', 'text')
      .addColumn('results', 'text')
      .addColumn('requested_by', 'text')
      .execute();
    await db.schema.createIndex('runs_status').on('runs').columns(['status', 'id']).execute();
    await db.schema.createIndex('runs_pipeline').on('runs').columns(['pipeline', 'id']).execute();
    await db.schema
      .createTable('run_tasks')
      .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('position', 'integer', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('attempt', 'integer', (c) => c.notNull())
      .addColumn('started_at', 'text')
      .addColumn('finished_at', 'text')
      .addColumn('reason', 'text')
      .addColumn('results', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('run_tasks_pk', ['run_id', 'name'])
      .execute();
    await db.schema
      .createTable('run_logs')
      .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id').onDelete('cascade'))
      .addColumn('seq', 'integer', (c) => c.notNull())
      .addColumn('task', 'text')
      .addColumn('stream', 'text', (c) => c.notNull())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('line', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('run_logs_pk', ['run_id', 'seq'])
      .execute();
  },
};
