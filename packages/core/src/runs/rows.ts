/** Conversions between the runs tables and their API shapes. */
import type { PipelineRun, PipelineRunSummary, RunLogLine, RunTask } from '@aiedge/protocol';
import type { RunLogsTable, RunTasksTable, RunsTable } from './tables.js';

/** A run row without its spec (what lists read). */
export type RunSummaryRow = Omit<RunsTable, 'spec'>;

/** The columns of a {@link RunSummaryRow}. */
export const RUN_SUMMARY_COLUMNS = [
  'id',
  'pipeline',
  'params',
  'status',
  'reason',
  'created_at',
  'started_at',
  'finished_at',
  'results',
  'requested_by',
] as const satisfies readonly (keyof RunSummaryRow)[];

function parseMap(json: string | null): Record<string, string> {
  if (json === null) return {};
  const value: unknown = JSON.parse(json);
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, string>)
    : {};
}

function between(from: string | null, to: string | null): number | null {
  if (from === null || to === null) return null;
  return Math.max(0, Date.parse(to) - Date.parse(from));
}

/** API shape of a run row (without spec and tasks). */
export function toRunSummary(row: RunSummaryRow): PipelineRunSummary {
  return {
    id: row.id,
    pipeline: row.pipeline,
    status: row.status,
    reason: row.reason,
    params: parseMap(row.params),
    results: parseMap(row.results),
    requestedBy: row.requested_by,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    queuedMs: between(row.created_at, row.started_at),
    durationMs: between(row.started_at, row.finished_at),
  };
}

/** API shape of a run row with its tasks. */
export function toRun(row: RunsTable, tasks: readonly RunTasksTable[]): PipelineRun {
  return { ...toRunSummary(row), spec: JSON.parse(row.spec) as unknown, tasks: tasks.map(toRunTask) };
}

/** API shape of a task row. */
export function toRunTask(row: RunTasksTable): RunTask {
  return {
    name: row.name,
    state: row.state,
    attempt: row.attempt,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    durationMs: between(row.started_at, row.finished_at),
    reason: row.reason,
    results: parseMap(row.results),
  };
}

/** API shape of a log row. */
export function toRunLogLine(row: Omit<RunLogsTable, 'run_id'>): RunLogLine {
  return { seq: row.seq, task: row.task, stream: row.stream, at: row.at, line: row.line };
}
