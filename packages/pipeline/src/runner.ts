/**
 * The DAG runner: runs a pipeline's tasks in a workspace, independent tasks in parallel, each when
 * every task it runs after succeeded; per-task retries and timeouts; cancellation through an
 * AbortSignal; after a failure nothing new starts and the tasks not reached are skipped (like
 * Tekton). The {@link RunState} is read from the workspace at the start and written after every
 * task, so `runTask` can run one task alone in a later process (a Tekton step).
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ContentStore } from '@aiedge/oci';
import { InputError, type RunLogStream, type TaskState } from '@aiedge/protocol';
import { DEFAULT_TASKS, type PipelineSpec } from './spec.js';
import { readState, writeState } from './state.js';
import type { ProgressEvent, RunState, TaskContext, TaskImplementation, TaskKind } from './types.js';

/** One task of the graph a run executes. */
export interface PlannedTask {
  readonly name: string;
  readonly uses: TaskKind;
  readonly runAfter: readonly string[];
  readonly retries: number;
  readonly timeoutSeconds?: number;
}

/** A task's change of state (the shape of the core's `TaskTransition`). */
export interface TaskTransition {
  readonly task: string;
  readonly state: TaskState;
  /** 1-based attempt that started or ended; 0 for a task skipped or cancelled before it started. */
  readonly attempt: number;
  /** Why the task failed, was skipped or was cancelled. */
  readonly reason?: string;
  /** Results the task produced (on `succeeded`). */
  readonly results?: Readonly<Record<string, string>>;
}

/** Where a run reports (structurally the core's `RunEventSink`, plus progress). */
export interface RunEvents {
  /** A task changed state. */
  task(transition: TaskTransition): void;
  /** One line of output: of a task, or of the runner itself (`task` null). */
  log(task: string | null, stream: RunLogStream, line: string): void;
  /** Progress of a long step of a task (transfers, builds). */
  progress?(task: string, event: ProgressEvent): void;
}

/** Options of {@link runPipeline} and {@link runTask}. */
export interface RunPipelineOptions {
  /** The run's workspace directory (created if missing). Default: a new temp directory (not removed). */
  readonly workspace?: string;
  /** The run id (named in the GitOps commit). Default: a random UUID. */
  readonly runId?: string;
  /** Directory relative paths of the spec resolve against. Default: the current directory. */
  readonly baseDir?: string;
  /** Where `…Env` secrets are read. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Aborting cancels the run: running tasks are aborted, nothing new starts. */
  readonly signal?: AbortSignal;
  /** Where the run reports. Default: nowhere. */
  readonly events?: RunEvents;
  /** Overrides of the built-in task implementations. */
  readonly tasks?: Partial<Record<TaskKind, TaskImplementation>>;
  /** The content store images are built into. Default `<workspace>/store`. */
  readonly store?: ContentStore;
  /** Pause between a failed attempt and the next. Default 0. */
  readonly retryDelayMs?: number;
  /** The clock (ms); tests inject one. Default `Date.now`. */
  readonly now?: () => number;
}

/** How one task of a run ended. */
export interface TaskOutcome {
  readonly name: string;
  readonly state: TaskState;
  /** Attempts made (0 when the task never started). */
  readonly attempts: number;
  /** From the first attempt's start to the end; undefined when the task never started. */
  readonly durationMs?: number;
  readonly reason?: string;
  readonly results: Readonly<Record<string, string>>;
}

/** How a run ended. */
export interface PipelineRunResult {
  readonly status: 'succeeded' | 'failed' | 'cancelled';
  /** Why the run failed or was cancelled (`task build failed: …`). */
  readonly reason?: string;
  /** Results of the succeeded tasks, named `<task>.<result>`. */
  readonly results: Readonly<Record<string, string>>;
  /** Every task in spec order. */
  readonly tasks: readonly TaskOutcome[];
  readonly workspace: string;
  /** The run state as persisted at the end. */
  readonly runState: RunState;
  readonly durationMs: number;
}

/** How {@link runTask} ended. */
export interface SingleTaskResult extends TaskOutcome {
  readonly workspace: string;
  /** The run state as persisted after the task. */
  readonly runState: RunState;
}

/** Loads each built-in task only when a run uses it (a Tekton step loads one). */
const BUILT_IN: Record<TaskKind, () => Promise<TaskImplementation>> = {
  fetch: async () => (await import('./tasks/fetch.js')).fetchTask,
  inspect: async () => (await import('./tasks/inspect.js')).inspectTask,
  build: async () => (await import('./tasks/build.js')).buildTask,
  stage: async () => (await import('./tasks/stage.js')).stageTask,
  push: async () => (await import('./tasks/push.js')).pushTask,
  gitops: async () => (await import('./tasks/gitops.js')).gitopsTask,
};

/**
 * The task graph of a pipeline (`spec.tasks`, or {@link DEFAULT_TASKS}), checked: no task runs after
 * itself, and `runAfter` forms no cycle. Errors name the path (`pipeline.spec.tasks[2].runAfter`).
 */
export function planTasks(spec: PipelineSpec, what = 'pipeline'): PlannedTask[] {
  const declared: readonly {
    readonly name: string;
    readonly uses: string;
    readonly runAfter?: readonly string[];
    readonly retries?: number;
    readonly timeoutSeconds?: number;
  }[] = spec.spec.tasks ?? DEFAULT_TASKS;
  const tasks: PlannedTask[] = declared.map((t) => ({
    name: t.name,
    uses: t.uses as TaskKind,
    runAfter: [...(t.runAfter ?? [])],
    retries: t.retries ?? 0,
    ...(t.timeoutSeconds !== undefined ? { timeoutSeconds: t.timeoutSeconds } : {}),
  }));
  const index = new Map(tasks.map((t, i) => [t.name, i]));
  tasks.forEach((t, i) =>
    t.runAfter.forEach((dep, j) => {
      if (dep === t.name)
        throw new InputError(`${what}.spec.tasks[${i}].runAfter[${j}] "${dep}" is the task itself`);
      if (!index.has(dep))
        throw new InputError(`${what}.spec.tasks[${i}].runAfter[${j}] "${dep}" is not a task`);
    }),
  );
  const cycle = findCycle(tasks);
  if (cycle !== undefined) {
    const pairs = cycle.slice(0, -1).map((name, i) => `${name} runs after ${cycle[i + 1] ?? ''}`);
    throw new InputError(`${what}.spec.tasks: runAfter forms a cycle: ${pairs.join(', ')}`);
  }
  return tasks;
}

/** A `runAfter` cycle among `tasks` as the names along it (first = last), or undefined when there is none. */
export function findCycle(
  tasks: readonly { readonly name: string; readonly runAfter?: readonly string[] | undefined }[],
): string[] | undefined {
  const deps = new Map(tasks.map((t) => [t.name, t.runAfter ?? []]));
  const marks = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    const mark = marks.get(name);
    if (mark === 'done') return undefined;
    if (mark === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    marks.set(name, 'visiting');
    stack.push(name);
    for (const dep of deps.get(name) ?? []) {
      const found = visit(dep);
      if (found !== undefined) return found;
    }
    stack.pop();
    marks.set(name, 'done');
    return undefined;
  };
  for (const t of tasks) {
    const found = visit(t.name);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Why a run was aborted: the message of the signal's reason when one was given. */
export function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error && reason.name !== 'AbortError' && reason.message !== ''
    ? reason.message
    : 'cancelled';
}

const NO_EVENTS: RunEvents = { task: () => {}, log: () => {} };

/** What every task of one run shares. */
interface RunSetup {
  readonly spec: PipelineSpec;
  readonly workspace: string;
  readonly runId: string;
  readonly baseDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly signal: AbortSignal;
  readonly events: RunEvents;
  readonly overrides: Partial<Record<TaskKind, TaskImplementation>>;
  readonly store: ContentStore;
  readonly state: RunState;
  readonly retryDelayMs: number;
  readonly now: () => number;
  /** Writes the state; calls are serialized. */
  readonly save: () => Promise<void>;
}

async function setUp(spec: PipelineSpec, options: RunPipelineOptions): Promise<RunSetup> {
  const workspace =
    options.workspace !== undefined
      ? resolve(options.workspace)
      : await mkdtemp(join(tmpdir(), `aiedge-run-${spec.metadata.name}-`));
  await mkdir(workspace, { recursive: true });
  const store = options.store ?? (await ContentStore.open(join(workspace, 'store')));
  const state = await readState(workspace);
  let saving: Promise<void> = Promise.resolve();
  const save = () => {
    saving = saving.catch(() => {}).then(() => writeState(workspace, state));
    return saving;
  };
  return {
    spec,
    workspace,
    runId: options.runId ?? randomUUID(),
    baseDir: resolve(options.baseDir ?? '.'),
    env: options.env ?? process.env,
    signal: options.signal ?? new AbortController().signal,
    events: options.events ?? NO_EVENTS,
    overrides: options.tasks ?? {},
    store,
    state,
    retryDelayMs: options.retryDelayMs ?? 0,
    now: options.now ?? Date.now,
    save,
  };
}

async function implementationOf(run: RunSetup, kind: TaskKind): Promise<TaskImplementation> {
  return run.overrides[kind] ?? (await BUILT_IN[kind]());
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message !== '' ? error.message : error.name;
  return String(error);
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

interface AttemptEnd {
  readonly ok: boolean;
  readonly reason: string;
  readonly results: Record<string, string>;
}

/** One attempt: the task gets a signal aborted on run cancel or its timeout, and is raced against it. */
async function attempt(run: RunSetup, task: PlannedTask, impl: TaskImplementation): Promise<AttemptEnd> {
  const local = new AbortController();
  let timedOut = false;
  const timer =
    task.timeoutSeconds !== undefined
      ? setTimeout(() => {
          timedOut = true;
          local.abort(new Error(`timed out after ${task.timeoutSeconds} s`));
        }, task.timeoutSeconds * 1000)
      : undefined;
  const onAbort = () => local.abort(run.signal.reason);
  run.signal.addEventListener('abort', onAbort, { once: true });
  if (run.signal.aborted) onAbort();
  const context: TaskContext = {
    spec: run.spec,
    runId: run.runId,
    state: run.state,
    store: run.store,
    workspace: run.workspace,
    baseDir: run.baseDir,
    signal: local.signal,
    env: run.env,
    log: (line) => {
      for (const part of line.split(/\r?\n/)) run.events.log(task.name, 'stdout', part);
    },
    progress: (event) => run.events.progress?.(task.name, event),
  };
  // A task that ignores its signal must not hold the run: the abort settles the attempt.
  const aborted = new Promise<never>((_, reject) => {
    const fail = () => reject(new Error('aborted'));
    if (local.signal.aborted) fail();
    else local.signal.addEventListener('abort', fail, { once: true });
  });
  aborted.catch(() => {});
  try {
    const results = await Promise.race([impl(context), aborted]);
    if (local.signal.aborted) throw new Error('aborted');
    const clean: Record<string, string> = {};
    for (const [k, v] of Object.entries(results ?? {})) clean[k] = String(v);
    return { ok: true, reason: '', results: clean };
  } catch (error) {
    if (timedOut) return { ok: false, reason: `timed out after ${task.timeoutSeconds} s`, results: {} };
    if (run.signal.aborted) return { ok: false, reason: abortReason(run.signal), results: {} };
    return { ok: false, reason: errorMessage(error), results: {} };
  } finally {
    clearTimeout(timer);
    run.signal.removeEventListener('abort', onAbort);
  }
}

/** Runs a task with its retries, reports its transitions and saves the state after it. */
async function execute(run: RunSetup, task: PlannedTask): Promise<TaskOutcome> {
  const started = run.now();
  const attempts = task.retries + 1;
  const report = (
    state: TaskState,
    n: number,
    extra: { reason?: string; results?: Record<string, string> },
  ) => run.events.task({ task: task.name, state, attempt: n, ...extra });
  let end: AttemptEnd = { ok: false, reason: 'not started', results: {} };
  let n = 0;
  let impl: TaskImplementation | undefined;
  try {
    impl = await implementationOf(run, task.uses);
  } catch (error) {
    end = { ok: false, reason: `cannot load task ${task.uses}: ${errorMessage(error)}`, results: {} };
  }
  if (impl !== undefined) {
    for (n = 1; n <= attempts; n++) {
      report('running', n, {});
      if (attempts > 1) run.events.log(task.name, 'system', `attempt ${n} of ${attempts} (${task.uses})`);
      end = await attempt(run, task, impl);
      if (end.ok || run.signal.aborted || n === attempts) break;
      run.events.log(task.name, 'system', `attempt ${n} failed: ${end.reason}; retrying`);
      await delay(run.retryDelayMs, run.signal);
      if (run.signal.aborted) break;
    }
    n = Math.min(n, attempts);
  }
  try {
    await run.save();
  } catch (error) {
    if (end.ok) end = { ok: false, reason: `cannot save the run state: ${errorMessage(error)}`, results: {} };
  }
  const state: TaskState = end.ok ? 'succeeded' : run.signal.aborted ? 'cancelled' : 'failed';
  if (end.ok) report(state, n, { results: end.results });
  else report(state, n, { reason: end.reason });
  return {
    name: task.name,
    state,
    attempts: n,
    durationMs: run.now() - started,
    ...(end.ok ? {} : { reason: end.reason }),
    results: end.results,
  };
}

/** Runs a pipeline's task graph in a workspace; resolves with how the run ended (it rejects only on setup errors). */
export async function runPipeline(
  spec: PipelineSpec,
  options: RunPipelineOptions = {},
): Promise<PipelineRunResult> {
  const tasks = planTasks(spec);
  const run = await setUp(spec, options);
  const started = run.now();
  const outcomes = new Map<string, TaskOutcome>();
  const states = new Map<string, TaskState>(tasks.map((t) => [t.name, 'pending']));
  const results: Record<string, string> = {};
  let failure: string | undefined;

  const settle = (name: string, outcome: TaskOutcome) => {
    outcomes.set(name, outcome);
    states.set(name, outcome.state);
  };
  const notRun = (task: PlannedTask, state: TaskState, reason: string) => {
    run.events.task({ task: task.name, state, attempt: 0, reason });
    settle(task.name, { name: task.name, state, attempts: 0, reason, results: {} });
  };

  run.events.log(null, 'system', `run ${run.runId} of pipeline ${spec.metadata.name} in ${run.workspace}`);
  await new Promise<void>((done) => {
    let running = 0;
    const schedule = () => {
      let progressed = true;
      // Skipping a task may make its dependents skippable: repeat until nothing changes.
      while (progressed) {
        progressed = false;
        for (const task of tasks) {
          if (states.get(task.name) !== 'pending') continue;
          const blocked = task.runAfter.find((d) => {
            const s = states.get(d);
            return s === 'failed' || s === 'skipped' || s === 'cancelled';
          });
          if (blocked !== undefined && !run.signal.aborted) {
            notRun(task, 'skipped', `runAfter task ${blocked} ${states.get(blocked) ?? ''}`);
            progressed = true;
            continue;
          }
          if (run.signal.aborted || failure !== undefined) continue;
          if (task.runAfter.every((d) => states.get(d) === 'succeeded')) {
            states.set(task.name, 'running');
            running++;
            progressed = true;
            void execute(run, task).then((outcome) => {
              running--;
              settle(task.name, outcome);
              if (outcome.state === 'succeeded')
                for (const [k, v] of Object.entries(outcome.results)) results[`${task.name}.${k}`] = v;
              else if (outcome.state === 'failed')
                failure ??= `task ${task.name} failed: ${outcome.reason ?? 'unknown'}`;
              schedule();
            });
          }
        }
      }
      if (running > 0) return;
      for (const task of tasks) {
        if (states.get(task.name) !== 'pending') continue;
        if (run.signal.aborted)
          notRun(task, 'cancelled', `${abortReason(run.signal)} before the task started`);
        else notRun(task, 'skipped', failure !== undefined ? `the run stopped: ${failure}` : 'not reached');
      }
      done();
    };
    schedule();
  });

  const status = run.signal.aborted ? 'cancelled' : failure !== undefined ? 'failed' : 'succeeded';
  const reason = status === 'cancelled' ? abortReason(run.signal) : failure;
  run.events.log(null, 'system', `run ${status}${reason !== undefined ? `: ${reason}` : ''}`);
  return {
    status,
    ...(reason !== undefined ? { reason } : {}),
    results,
    tasks: tasks.map(
      (t) => outcomes.get(t.name) ?? { name: t.name, state: 'skipped', attempts: 0, results: {} },
    ),
    workspace: run.workspace,
    runState: run.state,
    durationMs: run.now() - started,
  };
}

/**
 * Runs one task of a pipeline alone against an existing workspace (what a Tekton step does): the
 * state earlier tasks wrote is read from the workspace and the updated state written back.
 */
export async function runTask(
  spec: PipelineSpec,
  name: string,
  options: RunPipelineOptions = {},
): Promise<SingleTaskResult> {
  const tasks = planTasks(spec);
  const task = tasks.find((t) => t.name === name);
  if (task === undefined) {
    throw new InputError(
      `task "${name}" is not a task of the pipeline (${tasks.map((t) => t.name).join(', ')})`,
    );
  }
  const run = await setUp(spec, options);
  const outcome = run.signal.aborted
    ? { name, state: 'cancelled' as const, attempts: 0, reason: abortReason(run.signal), results: {} }
    : await execute(run, task);
  return { ...outcome, workspace: run.workspace, runState: run.state };
}
