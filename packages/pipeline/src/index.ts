export {
  DEFAULT_TASKS,
  ORIGINAL_PARAMS,
  PipelineSchema,
  SourceSchema,
  TaskSchema,
  TestSchema,
  parsePipeline,
  type ParsePipelineOptions,
  type PipelineSpec,
  type SourceSpec,
  type TestSpec,
} from './spec.js';
export {
  TaskKinds,
  type BuiltImage,
  type FetchedFile,
  type FetchedModel,
  type GitOpsReport,
  type InspectedModel,
  type ModelSource,
  type ProgressEvent,
  type PushedImage,
  type RunState,
  type SignatureTensor,
  type StageReport,
  type StepContext,
  type TaskContext,
  type TaskImplementation,
  type TaskKind,
} from './types.js';
export { readState, statePath, writeState } from './state.js';
export { inspectTask, locateModel, type ModelLocation } from './tasks/inspect.js';
export { buildTask } from './tasks/build.js';
export {
  DEFAULT_TOLERANCE,
  compareOutputs,
  loadTestCases,
  stageTask,
  type ExpectedOutput,
  type StageTestCase,
} from './tasks/stage.js';
export { pushTask } from './tasks/push.js';
export { PIPELINE_AUTHOR, gitopsTask } from './tasks/gitops.js';
export {
  GitSource,
  HttpSource,
  LocalSource,
  OciSource,
  RegistrySource,
  S3Source,
  chooseArtifact,
  createSource,
  lfsPointer,
  sourceForUri,
  type GitSourceSpec,
  type HttpSourceSpec,
  type LocalSourceSpec,
  type OciSourceSpec,
  type RegistrySourceSpec,
  type S3SourceSpec,
} from './sources/index.js';
export { MODEL_DIR, fetchTask, fetchedDigest } from './tasks/fetch.js';
export {
  abortReason,
  findCycle,
  planTasks,
  runPipeline,
  runTask,
  type PipelineRunResult,
  type PlannedTask,
  type RunEvents,
  type RunPipelineOptions,
  type SingleTaskResult,
  type TaskOutcome,
  type TaskTransition,
} from './runner.js';
export {
  createPipelineExecutor,
  type ExecutorRunInput,
  type ExecutorValidateInput,
  type PipelineExecutorLike,
  type PipelineExecutorOptions,
} from './executor.js';
export {
  TEKTON_PIPELINE_FILE,
  TEKTON_RESULTS_DIR,
  TEKTON_SECRET_PARAM,
  exportTekton,
  tektonResults,
  type TektonExportOptions,
} from './tekton.js';
