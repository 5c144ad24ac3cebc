/**
 * The executor a core uses when none is given: ai-edge pipelines (package pipeline: source, build,
 * stage, push, GitOps) and, for documents whose tasks are plain commands, the minimal executor.
 */
import { createPipelineExecutor } from '@aiedge/pipeline';
import type { ExecutorRun, PipelineExecutor, PipelinePlan, RunOutcome, ValidateInput } from './executor.js';
import { MinimalPipelineExecutor } from './minimal-executor.js';

/** True when the document's tasks are commands (the minimal executor's kind of pipeline). */
function isCommandPipeline(spec: unknown): boolean {
  const tasks = (spec as { spec?: { tasks?: unknown } } | null)?.spec?.tasks;
  return Array.isArray(tasks) && tasks.some((t) => typeof t === 'object' && t !== null && 'command' in t);
}

/** Dispatches each document to the pipeline engine, or to the minimal executor for command tasks. */
export class DefaultPipelineExecutor implements PipelineExecutor {
  readonly #pipelines = createPipelineExecutor();
  readonly #commands = new MinimalPipelineExecutor();

  validate(input: ValidateInput): PipelinePlan | Promise<PipelinePlan> {
    return isCommandPipeline(input.spec) ? this.#commands.validate(input) : this.#pipelines.validate(input);
  }

  execute(run: ExecutorRun): Promise<RunOutcome> {
    return isCommandPipeline(run.spec) ? this.#commands.execute(run) : this.#pipelines.execute(run);
  }
}
