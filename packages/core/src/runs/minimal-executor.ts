/**
 * The minimal pipeline executor: what the core runs until package `pipeline` lands. A pipeline is a
 * DAG of tasks, each one command (argv, no shell) run in the run's workspace:
 *
 * ```yaml
 * apiVersion: aiedge.io/v1alpha1
 * kind: Pipeline
 * metadata: { name: hello }
 * spec:
 *   tasks:
 *     - { name: fetch, command: [sh, -c, 'echo fetched; echo "::result digest=sha256:…"'] }
 *     - { name: build, runAfter: [fetch], command: [make], timeoutSeconds: 600, retries: 1 }
 * ```
 *
 * Tasks get a minimal environment (`PATH`, `HOME` = workspace, `LANG`, `AIEDGE_RUN_ID`,
 * `AIEDGE_TASK`, `AIEDGE_WORKSPACE`) plus each param as `AIEDGE_PARAM_<NAME>`. A stdout line
 * `::result name=value` sets a task result; the run's results are `<task>.<name>`. When a task fails
 * the run schedules nothing new (like Tekton): running tasks finish, the rest are skipped.
 */
import { findCycle } from '@aiedge/pipeline';
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';
import { Type, type Static } from '@sinclair/typebox';
import {
  InputError,
  NAME_PATTERN,
  describeValue,
  validateWith,
  type RunLogStream,
  type TaskState,
} from '@aiedge/protocol';
import type { ExecutorRun, PipelineExecutor, PipelinePlan, RunOutcome, ValidateInput } from './executor.js';

const Name = Type.String({ pattern: NAME_PATTERN, maxLength: 63 });

/** Schema of one task of a minimal pipeline. */
export const MinimalTaskSchema = Type.Object(
  {
    name: Name,
    runAfter: Type.Optional(Type.Array(Type.String(), { maxItems: 100 })),
    command: Type.Array(Type.String(), { minItems: 1, maxItems: 1000 }),
    timeoutSeconds: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 604_800 })),
    retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
  },
  { additionalProperties: false },
);

/** Schema of a pipeline document the minimal executor accepts. */
export const MinimalPipelineSchema = Type.Object(
  {
    apiVersion: Type.Literal('aiedge.io/v1alpha1'),
    kind: Type.Literal('Pipeline'),
    metadata: Type.Object(
      {
        name: Name,
        labels: Type.Optional(Type.Record(Type.String(), Type.String())),
        annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
      },
      { additionalProperties: false },
    ),
    spec: Type.Object(
      { tasks: Type.Array(MinimalTaskSchema, { minItems: 1, maxItems: 100 }) },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

/** A pipeline document the minimal executor accepts. */
export type MinimalPipeline = Static<typeof MinimalPipelineSchema>;
type Task = Static<typeof MinimalTaskSchema>;

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESULT_LINE = /^::result ([A-Za-z0-9_.-]+)=(.*)$/;
/** Longest log line; longer output is split into lines of this many characters. */
const MAX_LINE_CHARS = 16 * 1024;

/** Options of {@link MinimalPipelineExecutor}. */
export interface MinimalExecutorOptions {
  /** Between SIGTERM and SIGKILL of a cancelled or timed-out task's process group. Default 5000. */
  readonly killGraceMs?: number;
  /** `PATH` of tasks. Default the core's own `PATH`. */
  readonly path?: string;
}

/** Validates a minimal pipeline and its params; errors name the path (`spec.tasks[1].runAfter[0]`). */
export function parseMinimalPipeline(input: ValidateInput): MinimalPipeline {
  const at = input.specPath ?? 'pipeline';
  const pipeline = validateWith(MinimalPipelineSchema, input.spec, at, 'field');
  const tasks = pipeline.spec.tasks;
  const index = new Map<string, number>();
  tasks.forEach((task, i) => {
    const first = index.get(task.name);
    if (first !== undefined) {
      throw new InputError(
        `${at}.spec.tasks[${i}].name "${task.name}" is already the name of ${at}.spec.tasks[${first}]`,
      );
    }
    index.set(task.name, i);
  });
  tasks.forEach((task, i) => {
    if (task.command[0] === '')
      throw new InputError(`${at}.spec.tasks[${i}].command[0] is "": expected a program`);
    task.command.forEach((arg, j) => {
      if (arg.includes('\0'))
        throw new InputError(`${at}.spec.tasks[${i}].command[${j}] contains a NUL character`);
    });
    (task.runAfter ?? []).forEach((dep, j) => {
      if (!index.has(dep))
        throw new InputError(`${at}.spec.tasks[${i}].runAfter[${j}] ${describeValue(dep)} is not a task`);
      if (dep === task.name)
        throw new InputError(`${at}.spec.tasks[${i}].runAfter[${j}] "${dep}" is the task itself`);
    });
  });
  const cycle = findCycle(tasks);
  if (cycle !== undefined) {
    const pairs = cycle.slice(0, -1).map((name, i) => `${name} runs after ${cycle[i + 1] ?? ''}`);
    throw new InputError(`${at}.spec.tasks: runAfter forms a cycle: ${pairs.join(', ')}`);
  }

  const paramsAt = input.paramsPath ?? 'params';
  const envNames = new Map<string, string>();
  for (const [name, value] of Object.entries(input.params)) {
    if (!PARAM_NAME.test(name)) {
      throw new InputError(
        `${paramsAt}: ${describeValue(name)} is not a valid param name (letters, digits and _, not starting with a digit)`,
      );
    }
    const envName = paramEnvName(name);
    const other = envNames.get(envName);
    if (other !== undefined)
      throw new InputError(`${paramsAt}.${name}: same environment name ${envName} as ${paramsAt}.${other}`);
    envNames.set(envName, name);
    if (typeof value !== 'string')
      throw new InputError(`${paramsAt}.${name} is ${describeValue(value)}: expected a string`);
    if (value.includes('\0')) throw new InputError(`${paramsAt}.${name} contains a NUL character`);
  }
  return pipeline;
}

/** Environment variable of a param: `AIEDGE_PARAM_` + the name in upper case. */
export function paramEnvName(name: string): string {
  return `AIEDGE_PARAM_${name.toUpperCase()}`;
}

interface AttemptEnd {
  readonly ok: boolean;
  readonly reason: string;
  readonly results: Record<string, string>;
}

/** Splits a byte stream into lines (also cutting lines longer than {@link MAX_LINE_CHARS}). */
function forEachLine(stream: Readable, onLine: (line: string) => void): void {
  const decoder = new StringDecoder('utf8');
  let buffered = '';
  const drain = (final: boolean) => {
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      emit(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
    while (buffered.length > MAX_LINE_CHARS) {
      emit(buffered.slice(0, MAX_LINE_CHARS));
      buffered = buffered.slice(MAX_LINE_CHARS);
    }
    if (final && buffered !== '') {
      emit(buffered);
      buffered = '';
    }
  };
  const emit = (line: string) => {
    for (let i = 0; i < line.length || i === 0; i += MAX_LINE_CHARS)
      onLine(line.slice(i, i + MAX_LINE_CHARS));
  };
  stream.on('data', (chunk: Buffer) => {
    buffered += decoder.write(chunk);
    drain(false);
  });
  stream.on('end', () => {
    buffered += decoder.end();
    drain(true);
  });
}

/** Why a run was aborted: the message of the signal's reason when the core gave one. */
function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error && reason.name !== 'AbortError' && reason.message !== ''
    ? reason.message
    : 'cancelled';
}

function quoteArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** Executes minimal pipelines (see the module comment): real processes, a DAG, retries, timeouts. */
export class MinimalPipelineExecutor implements PipelineExecutor {
  readonly #killGraceMs: number;
  readonly #path: string;

  constructor(options: MinimalExecutorOptions = {}) {
    this.#killGraceMs = options.killGraceMs ?? 5000;
    this.#path = options.path ?? process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin';
  }

  /** Checks the document and params; see {@link parseMinimalPipeline}. */
  validate(input: ValidateInput): PipelinePlan {
    const pipeline = parseMinimalPipeline(input);
    return {
      name: pipeline.metadata.name,
      tasks: pipeline.spec.tasks.map((t) => t.name),
      runAfter: Object.fromEntries(pipeline.spec.tasks.map((t) => [t.name, [...(t.runAfter ?? [])]])),
    };
  }

  /** Runs the task graph; rejects with the first failure as the reason. */
  async execute(run: ExecutorRun): Promise<RunOutcome> {
    const pipeline = parseMinimalPipeline({ spec: run.spec, params: run.params });
    const tasks = pipeline.spec.tasks;
    const states = new Map<string, TaskState>(tasks.map((t) => [t.name, 'pending']));
    const results: Record<string, string> = {};
    let failure: string | undefined;

    const report = (
      task: string,
      state: TaskState,
      attempt: number,
      extra: { reason?: string; results?: Record<string, string> } = {},
    ) => {
      states.set(task, state);
      run.events.task({ task, state, attempt, ...extra });
    };

    await new Promise<void>((resolve) => {
      let running = 0;
      const schedule = () => {
        let progressed = true;
        // Skipping a task may make its dependents skippable: repeat until nothing changes.
        while (progressed) {
          progressed = false;
          for (const task of tasks) {
            if (states.get(task.name) !== 'pending') continue;
            const deps = task.runAfter ?? [];
            const blocked = deps.find((d) => {
              const s = states.get(d);
              return s === 'failed' || s === 'skipped' || s === 'cancelled';
            });
            if (blocked !== undefined) {
              report(task.name, 'skipped', 0, {
                reason: `runAfter task ${blocked} ${states.get(blocked) ?? ''}`,
              });
              progressed = true;
              continue;
            }
            if (run.signal.aborted || failure !== undefined) continue;
            if (deps.every((d) => states.get(d) === 'succeeded')) {
              running++;
              progressed = true;
              void this.#runTask(run, task, report).then((end) => {
                running--;
                if (end.ok)
                  for (const [k, v] of Object.entries(end.results)) results[`${task.name}.${k}`] = v;
                else if (!run.signal.aborted) failure ??= `task ${task.name} failed: ${end.reason}`;
                schedule();
              });
            }
          }
        }
        if (running > 0) return;
        for (const task of tasks) {
          if (states.get(task.name) !== 'pending') continue;
          if (run.signal.aborted)
            report(task.name, 'cancelled', 0, {
              reason: `${abortReason(run.signal)} before the task started`,
            });
          else
            report(task.name, 'skipped', 0, {
              reason: failure !== undefined ? `the run stopped: ${failure}` : 'not reached',
            });
        }
        resolve();
      };
      schedule();
    });

    if (run.signal.aborted) throw new Error(abortReason(run.signal));
    if (failure !== undefined) throw new Error(failure);
    return { results };
  }

  async #runTask(
    run: ExecutorRun,
    task: Task,
    report: (
      task: string,
      state: TaskState,
      attempt: number,
      extra?: { reason?: string; results?: Record<string, string> },
    ) => void,
  ): Promise<AttemptEnd> {
    const attempts = (task.retries ?? 0) + 1;
    let end: AttemptEnd = { ok: false, reason: 'not started', results: {} };
    for (let attempt = 1; attempt <= attempts; attempt++) {
      report(task.name, 'running', attempt);
      run.events.log(task.name, 'system', `attempt ${attempt} of ${attempts}: ${quoteArgv(task.command)}`);
      end = await this.#attempt(run, task);
      if (end.ok) {
        report(task.name, 'succeeded', attempt, { results: end.results });
        return end;
      }
      if (run.signal.aborted) {
        report(task.name, 'cancelled', attempt, { reason: end.reason, results: end.results });
        return end;
      }
      if (attempt < attempts)
        run.events.log(task.name, 'system', `attempt ${attempt} failed: ${end.reason}; retrying`);
      else report(task.name, 'failed', attempt, { reason: end.reason, results: end.results });
    }
    return end;
  }

  #attempt(run: ExecutorRun, task: Task): Promise<AttemptEnd> {
    const env: Record<string, string> = {
      PATH: this.#path,
      HOME: run.workspace,
      LANG: 'C.UTF-8',
      AIEDGE_RUN_ID: run.id,
      AIEDGE_TASK: task.name,
      AIEDGE_WORKSPACE: run.workspace,
    };
    for (const [name, value] of Object.entries(run.params)) env[paramEnvName(name)] = value;
    const [program, ...args] = task.command as [string, ...string[]];
    const results: Record<string, string> = {};

    return new Promise<AttemptEnd>((resolve) => {
      let settled = false;
      let why: 'timeout' | 'cancelled' | undefined;
      let graceTimer: NodeJS.Timeout | undefined;
      const child = spawn(program, args, {
        cwd: run.workspace,
        env,
        // Own process group, so a cancel or timeout can kill everything the task started.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const killGroup = (signal: NodeJS.Signals) => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, signal);
        } catch {
          // Already gone.
        }
      };
      const stop = (reason: 'timeout' | 'cancelled') => {
        if (why !== undefined || settled) return;
        why = reason;
        killGroup('SIGTERM');
        graceTimer = setTimeout(() => killGroup('SIGKILL'), this.#killGraceMs);
        graceTimer.unref();
      };
      const timeoutTimer =
        task.timeoutSeconds !== undefined
          ? setTimeout(() => stop('timeout'), task.timeoutSeconds * 1000)
          : undefined;
      const onAbort = () => stop('cancelled');
      run.signal.addEventListener('abort', onAbort, { once: true });
      if (run.signal.aborted) onAbort();

      const finish = (end: AttemptEnd) => {
        if (settled) return;
        settled = true;
        clearTimeout(timeoutTimer);
        clearTimeout(graceTimer);
        run.signal.removeEventListener('abort', onAbort);
        // Nothing a task started outlives it.
        killGroup('SIGKILL');
        resolve(end);
      };
      const onLine = (stream: RunLogStream) => (line: string) => {
        if (stream === 'stdout') {
          const m = RESULT_LINE.exec(line);
          if (m !== null) results[m[1] as string] = m[2] as string;
        }
        run.events.log(task.name, stream, line);
      };
      forEachLine(child.stdout, onLine('stdout'));
      forEachLine(child.stderr, onLine('stderr'));
      child.on('error', (error: NodeJS.ErrnoException) => {
        finish({ ok: false, reason: `cannot run ${program}: ${error.code ?? error.message}`, results });
      });
      child.on('close', (code, signal) => {
        if (why === 'timeout')
          return finish({ ok: false, reason: `timed out after ${task.timeoutSeconds} s`, results });
        if (why === 'cancelled') return finish({ ok: false, reason: abortReason(run.signal), results });
        if (code === 0) return finish({ ok: true, reason: '', results });
        finish({
          ok: false,
          reason: code !== null ? `exit code ${code}` : `killed by ${signal ?? 'a signal'}`,
          results,
        });
      });
    });
  }
}
