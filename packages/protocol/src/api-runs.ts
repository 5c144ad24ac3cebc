/**
 * Resources of the core's pipeline-runs API (runs, their tasks, log lines and the event stream), as
 * TypeBox schemas with the types inferred from them; shared by core, CLI and dashboard.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const Timestamp = Type.String({ format: 'date-time', description: 'RFC 3339 time' });
const StringMap = Type.Record(Type.String(), Type.String());

/** Statuses of a run: `queued` → `running` → one of the finished ones. */
export const RunStatuses = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
/** Status of a run. */
export type RunStatus = (typeof RunStatuses)[number];
/** Statuses a run never leaves. */
export const FinishedRunStatuses = [
  'succeeded',
  'failed',
  'cancelled',
] as const satisfies readonly RunStatus[];

/** True when a run with this status is over. */
export function isRunFinished(status: RunStatus): boolean {
  return (FinishedRunStatuses as readonly RunStatus[]).includes(status);
}

/** States of a task within a run. */
export const TaskStates = ['pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled'] as const;
/** State of a task. */
export type TaskState = (typeof TaskStates)[number];
/** Task states a task never leaves. */
export const FinishedTaskStates = [
  'succeeded',
  'failed',
  'skipped',
  'cancelled',
] as const satisfies readonly TaskState[];

/** Where a log line came from: a task's stdout or stderr, or the executor itself (`system`). */
export const RunLogStreams = ['stdout', 'stderr', 'system'] as const;
/** Source of a log line. */
export type RunLogStream = (typeof RunLogStreams)[number];

/** Schema of a run status. */
export const RunStatusSchema = Type.Union(RunStatuses.map((s) => Type.Literal(s)));
/** Schema of a task state. */
export const TaskStateSchema = Type.Union(TaskStates.map((s) => Type.Literal(s)));
/** Schema of a log stream name. */
export const RunLogStreamSchema = Type.Union(RunLogStreams.map((s) => Type.Literal(s)));

/** One task of a run: its state, attempts, timings and results. */
export const RunTaskSchema = Type.Object({
  name: Type.String(),
  state: TaskStateSchema,
  /** 1-based attempt now running or last run; 0 when the task never started. */
  attempt: Type.Integer({ minimum: 0 }),
  startedAt: Nullable(Timestamp),
  finishedAt: Nullable(Timestamp),
  /** From the first attempt's start to the end; null until the task finishes. */
  durationMs: Nullable(Type.Integer({ minimum: 0 })),
  /** Why the task failed, was skipped or was cancelled. */
  reason: Nullable(Type.String()),
  results: StringMap,
  /** The tasks this one runs after: its edges in the task graph (when the executor tells them). */
  runAfter: Type.Optional(Type.Array(Type.String())),
});
/** One task of a run. */
export type RunTask = Static<typeof RunTaskSchema>;

/** A run without its spec and tasks (what lists and status events carry). */
export const PipelineRunSummarySchema = Type.Object({
  id: Type.String(),
  /** `metadata.name` of the pipeline. */
  pipeline: Type.String(),
  status: RunStatusSchema,
  /** Why the run failed or was cancelled (or how a restart treated it). */
  reason: Nullable(Type.String()),
  params: StringMap,
  /** Results of the run (`<task>.<result>`), once it succeeded. */
  results: StringMap,
  /** Id of the token that requested the run. */
  requestedBy: Nullable(Type.String()),
  createdAt: Timestamp,
  startedAt: Nullable(Timestamp),
  finishedAt: Nullable(Timestamp),
  /** Time spent queued; null until the run starts (or when it never did). */
  queuedMs: Nullable(Type.Integer({ minimum: 0 })),
  /** Time spent running; null until the run finishes (or when it never started). */
  durationMs: Nullable(Type.Integer({ minimum: 0 })),
});
/** A run without its spec and tasks. */
export type PipelineRunSummary = Static<typeof PipelineRunSummarySchema>;

/** A run with its spec and tasks (tasks in spec order). */
export const PipelineRunSchema = Type.Intersect([
  PipelineRunSummarySchema,
  Type.Object({
    /** The pipeline document the run executes. */
    spec: Type.Unknown(),
    tasks: Type.Array(RunTaskSchema),
  }),
]);
/** A run with its spec and tasks. */
export type PipelineRun = Static<typeof PipelineRunSchema>;

/** `POST /api/v1/pipelines/runs`: a pipeline document (object, or YAML/JSON text) and its params. */
export const CreateRunRequestSchema = Type.Object(
  {
    spec: Type.Union([Type.Object({}, { additionalProperties: true }), Type.String({ minLength: 1 })], {
      description:
        'The pipeline document (`apiVersion: aiedge.io/v1alpha1`, `kind: Pipeline`), or its YAML/JSON text',
    }),
    params: Type.Optional(StringMap),
  },
  { additionalProperties: false },
);
/** Request to start a run. */
export type CreateRunRequest = Static<typeof CreateRunRequestSchema>;

/** `GET /api/v1/pipelines/runs`: one page of runs, newest first. */
export const RunListSchema = Type.Object({
  items: Type.Array(PipelineRunSummarySchema),
  /** Pass as `cursor` to get the next page; null on the last page. */
  nextCursor: Nullable(Type.String()),
});
/** One page of runs. */
export type RunList = Static<typeof RunListSchema>;

/** One stored log line of a run; `seq` counts from 1 per run and is the SSE event id. */
export const RunLogLineSchema = Type.Object({
  seq: Type.Integer({ minimum: 1 }),
  /** The task that wrote it; null for lines of the run itself. */
  task: Nullable(Type.String()),
  stream: RunLogStreamSchema,
  at: Timestamp,
  line: Type.String(),
});
/** One stored log line of a run. */
export type RunLogLine = Static<typeof RunLogLineSchema>;

/** Names of the Server-Sent Events of `GET /api/v1/pipelines/runs/{id}/logs`. */
export const RunStreamEventNames = ['log', 'task', 'status', 'end'] as const;

/**
 * One event of a run's log stream: `log` (a line; its SSE id is `seq`), `task` (a task's new
 * state), `status` (the run's new status) and `end` (the run is over; the stream closes).
 */
export type RunStreamEvent =
  | { readonly event: 'log'; readonly data: RunLogLine }
  | { readonly event: 'task'; readonly data: RunTask }
  | { readonly event: 'status'; readonly data: PipelineRunSummary }
  | { readonly event: 'end'; readonly data: PipelineRunSummary };
