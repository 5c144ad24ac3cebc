/**
 * The executor a core uses when none is given: ai-edge pipelines (package pipeline: source, build,
 * stage, push, GitOps) and, for documents whose tasks are plain commands, the minimal executor.
 */
import { createPipelineExecutor } from '@aiedge/pipeline';
import type { ExecutorRun, PipelineExecutor, PipelinePlan, RunOutcome, ValidateInput } from './executor.js';
import { MinimalPipelineExecutor } from './minimal-executor.js';

/**
 * True for the minimal executor's kind of document: a task list and no model source (ai-edge
 * pipelines always name their model and source).
 */
function isCommandPipeline(spec: unknown): boolean {
  const body = (spec as { spec?: Record<string, unknown> } | null)?.spec;
  if (typeof body !== 'object' || body === null) return false;
  return Array.isArray(body['tasks']) && !('source' in body) && !('model' in body);
}

/** Dispatches each document to the pipeline engine, or to the minimal executor for command tasks. */
export class DefaultPipelineExecutor implements PipelineExecutor {
  readonly #pipelines;
  readonly #commands = new MinimalPipelineExecutor();

  /**
   * `storeDir`: the content store every run builds into (base and runtime layers are built once).
   * `env`: where the pipelines' `…Env` secrets are read; default `process.env`.
   */
  constructor(storeDir?: string, env?: Readonly<Record<string, string | undefined>>) {
    this.#pipelines = createPipelineExecutor({
      ...(storeDir !== undefined ? { storeDir } : {}),
      ...(env !== undefined ? { env } : {}),
    });
  }

  validate(input: ValidateInput): PipelinePlan | Promise<PipelinePlan> {
    return isCommandPipeline(input.spec) ? this.#commands.validate(input) : this.#pipelines.validate(input);
  }

  execute(run: ExecutorRun): Promise<RunOutcome> {
    return isCommandPipeline(run.spec) ? this.#commands.execute(run) : this.#pipelines.execute(run);
  }
}
