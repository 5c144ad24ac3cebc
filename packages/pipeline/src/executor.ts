/**
 * The pipeline executor the core runs: structurally the core's `PipelineExecutor` (this package may
 * not import the core): `validate` checks a document and its params before the run is stored,
 * `execute` runs it with {@link runPipeline}, reporting through the core's event sink.
 */
import { ContentStore } from '@aiedge/oci';
import type { PipelineSpec } from './spec.js';
import { parsePipeline } from './spec.js';
import { planTasks, runPipeline, type RunEvents, type RunPipelineOptions } from './runner.js';
import type { TaskImplementation, TaskKind } from './types.js';

/** Input of {@link PipelineExecutorLike.validate} (the core's `ValidateInput`). */
export interface ExecutorValidateInput {
  readonly spec: unknown;
  readonly params: Readonly<Record<string, string>>;
  readonly specPath?: string;
  readonly paramsPath?: string;
}

/** One run handed to {@link PipelineExecutorLike.execute} (the core's `ExecutorRun`). */
export interface ExecutorRunInput {
  readonly id: string;
  readonly spec: unknown;
  readonly params: Readonly<Record<string, string>>;
  readonly workspace: string;
  readonly signal: AbortSignal;
  readonly events: RunEvents;
}

/** The executor's shape (the core's `PipelineExecutor`). */
export interface PipelineExecutorLike {
  /** Checks a document and its params; throws an InputError naming the failing path. */
  validate(input: ExecutorValidateInput): {
    name: string;
    tasks: readonly string[];
    /** For each task, the tasks it runs after. */
    runAfter: Readonly<Record<string, readonly string[]>>;
  };
  /** Runs the pipeline; resolves with its `<task>.<result>` results, rejects with the failure reason. */
  execute(run: ExecutorRunInput): Promise<{ results: Readonly<Record<string, string>> }>;
}

/** Options of {@link createPipelineExecutor}. */
export interface PipelineExecutorOptions {
  /** Where `…Env` secrets are read. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Directory relative paths of specs resolve against. Default: the current directory. */
  readonly baseDir?: string;
  /** Overrides of the built-in tasks (tests). */
  readonly tasks?: Partial<Record<TaskKind, TaskImplementation>>;
  /** Pause between a failed attempt and the next. Default 0. */
  readonly retryDelayMs?: number;
  /** Content store shared by every run (cached base and runtime layers); default one per run. */
  readonly storeDir?: string;
}

function parse(input: ExecutorValidateInput): PipelineSpec {
  const what = input.specPath ?? 'pipeline';
  const spec = parsePipeline(input.spec, input.params, {
    what,
    paramsWhat: input.paramsPath ?? 'params',
  });
  planTasks(spec, what);
  return spec;
}

/** Creates the executor the core runs pipeline runs with. */
export function createPipelineExecutor(options: PipelineExecutorOptions = {}): PipelineExecutorLike {
  let store: Promise<ContentStore> | undefined;
  return {
    validate(input) {
      const spec = parse(input);
      const planned = planTasks(spec);
      return {
        name: spec.metadata.name,
        tasks: planned.map((t) => t.name),
        runAfter: Object.fromEntries(planned.map((t) => [t.name, [...t.runAfter]])),
      };
    },
    async execute(run) {
      const spec = parse({ spec: run.spec, params: run.params });
      const runOptions: RunPipelineOptions = {
        workspace: run.workspace,
        runId: run.id,
        signal: run.signal,
        events: run.events,
        env: options.env ?? process.env,
        ...(options.baseDir !== undefined ? { baseDir: options.baseDir } : {}),
        ...(options.tasks !== undefined ? { tasks: options.tasks } : {}),
        ...(options.retryDelayMs !== undefined ? { retryDelayMs: options.retryDelayMs } : {}),
        ...(options.storeDir !== undefined
          ? { store: await (store ??= ContentStore.open(options.storeDir)) }
          : {}),
      };
      const result = await runPipeline(spec, runOptions);
      if (result.status !== 'succeeded') throw new Error(result.reason ?? result.status);
      return { results: result.results };
    },
  };
}
