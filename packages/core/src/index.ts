export {
  authenticate,
  createToken,
  tokenFromHeaders,
  tokenIdOf,
  type CreateTokenOptions,
  type CreatedToken,
  type Principal,
  type TokenInfo,
  type TokenKind,
} from './auth.js';
export {
  CoreConfigSchema,
  envNameOf,
  resolveCoreConfig,
  type ConfigSources,
  type CoreConfig,
  type CoreConfigInput,
} from './config.js';
export type { CoreArea, CoreContext } from './context.js';
export { GitOpsPublisher, type PublishOutcome } from './gitops.js';
export type {
  ExecutorRun,
  PipelineExecutor,
  PipelinePlan,
  RunEventSink,
  RunOutcome,
  TaskTransition,
  ValidateInput,
} from './runs/executor.js';
export { DefaultPipelineExecutor } from './runs/default-executor.js';
export {
  MinimalPipelineExecutor,
  MinimalPipelineSchema,
  parseMinimalPipeline,
  type MinimalExecutorOptions,
} from './runs/minimal-executor.js';
export { histogramQuantile } from './telemetry/quantile.js';
export { matchesSelector, parseSelector, type Requirement } from './selector.js';
export { CORE_VERSION, openCoreStore, startCore, type CoreOptions, type RunningCore } from './server.js';
export { openStore, type Db, type Store, type StoreOptions, type Tx } from './store/db.js';
