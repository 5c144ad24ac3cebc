export {
  DEFAULT_NAMESPACE,
  DEFAULT_OTLP_ENDPOINT,
  DEFAULT_PORT,
  DEFAULT_RESOURCES,
  DeploymentSpecSchema,
  SiteSpecSchema,
  parseDeploymentSpec,
  parseInputs,
  parseSiteSpec,
  sanitizeLabelValue,
  selectorMatches,
  type DeploymentSpec,
  type SiteSpec,
} from './model.js';
export { CONTAINER_NAME, renderRepository, toYaml, type RenderInput } from './render.js';
export { readSiteDir, readSiteState, type FileReader, type SiteDeployment, type SiteState } from './read.js';
export {
  checkout,
  commitAndPush,
  commitFiles,
  fileRemoteUrl,
  initBareRepository,
  listFilesAt,
  readFileAt,
  subtreeIds,
} from './git.js';
export type {
  GitRemote,
  FileChange,
  CheckoutOptions,
  CommitAndPushOptions,
  CommitAndPushResult,
  CommitFilesOptions,
  CommitFilesResult,
} from './git.js';
export {
  commitMessage,
  diffRendered,
  publishRepository,
  type PublishOptions,
  type PublishResult,
} from './publish.js';
