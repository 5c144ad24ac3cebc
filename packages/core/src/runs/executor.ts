/**
 * The seam between the core's run pool and what executes a pipeline. The core owns queueing,
 * persistence, the workspace directory, cancellation and the log stream; an executor (package
 * `pipeline` once it lands, {@link MinimalPipelineExecutor} until then) owns the spec format, the
 * task graph and running the tasks.
 *
 * Lifecycle of one run: `validate` when the run is requested (bad input is refused before anything
 * is stored) → the run is queued → `execute` when a pool slot frees up, with a fresh workspace and an
 * AbortSignal → the core records the outcome and removes the workspace.
 */
import type { RunLogStream, TaskState } from '@aiedge/protocol';

/** What the core needs to know of a pipeline before running it. */
export interface PipelinePlan {
  /** The pipeline's name (`metadata.name`). */
  readonly name: string;
  /** Task names in spec order; the core lists them as `pending` until the executor reports on them. */
  readonly tasks: readonly string[];
  /** The task graph: for each task, the tasks it runs after (shown with the run's tasks). */
  readonly runAfter?: Readonly<Record<string, readonly string[]>>;
}

/** Input of {@link PipelineExecutor.validate}. */
export interface ValidateInput {
  /** The pipeline document, parsed from JSON or YAML (untrusted). */
  readonly spec: unknown;
  /** Run parameters (untrusted names). */
  readonly params: Readonly<Record<string, string>>;
  /** How error messages name the document, e.g. `body.spec` → `body.spec.spec.tasks[0].command`. Default `pipeline`. */
  readonly specPath?: string;
  /** How error messages name the parameters, e.g. `body.params`. Default `params`. */
  readonly paramsPath?: string;
}

/** A task's change of state, as an executor reports it. */
export interface TaskTransition {
  readonly task: string;
  readonly state: TaskState;
  /** 1-based attempt that started or ended; 0 for a task skipped or cancelled before it started. */
  readonly attempt: number;
  /** Why the task failed, was skipped or was cancelled. */
  readonly reason?: string;
  /** Results the task produced (on `succeeded`; what there was on `failed`). */
  readonly results?: Readonly<Record<string, string>>;
}

/**
 * Where an executor reports progress. Calls are cheap and synchronous: the core stamps each event
 * with its clock, batches the writes and fans them out to log followers.
 */
export interface RunEventSink {
  /** A task changed state. */
  task(transition: TaskTransition): void;
  /** One line of output, without its line break: of a task, or of the executor itself (`task` null). */
  log(task: string | null, stream: RunLogStream, line: string): void;
}

/** One run handed to {@link PipelineExecutor.execute}. */
export interface ExecutorRun {
  readonly id: string;
  /** The document {@link PipelineExecutor.validate} accepted. */
  readonly spec: unknown;
  readonly params: Readonly<Record<string, string>>;
  /** An empty directory of this run only; removed by the core after the run. */
  readonly workspace: string;
  /** Aborted when the run is cancelled or the core shuts down: stop every task and settle soon. */
  readonly signal: AbortSignal;
  readonly events: RunEventSink;
}

/** What a successful run produced. */
export interface RunOutcome {
  /** Results of the run, named `<task>.<result>` by convention. */
  readonly results: Readonly<Record<string, string>>;
}

/** Executes pipeline runs; implemented by package `pipeline` (and by the core's minimal executor). */
export interface PipelineExecutor {
  /**
   * Checks a document and its params before the run is stored and queued. Throws an InputError
   * that names the failing path (`body.spec.spec.tasks[1].runAfter[0] "x" is not a task`).
   */
  validate(input: ValidateInput): PipelinePlan | Promise<PipelinePlan>;
  /**
   * Runs every task, reporting through `run.events`; resolves when the run succeeded. Rejects when
   * it failed, with the run's reason as the error message (`task build failed: exit code 2`). When
   * `run.signal` is aborted, it stops the tasks (their processes included) and settles promptly.
   */
  execute(run: ExecutorRun): Promise<RunOutcome>;
}
