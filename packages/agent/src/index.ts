/** The ai-edge site agent. */
export {
  DEFAULT_TELEMETRY_QUEUE_BYTES,
  startTelemetryRelay,
  type TelemetryRelay,
  type TelemetryRelayOptions,
  type TelemetryRelayStats,
} from './telemetry/index.js';
export {
  TelemetryForwarder,
  timerSleep,
  type Sleep,
  type TelemetryForwarderOptions,
  type TelemetryForwarderStats,
} from './telemetry/forwarder.js';
export {
  DEFAULT_MAX_OTLP_BODY_BYTES,
  DEFAULT_OTLP_HTTP_PORT,
  startOtlpReceiver,
  type OtlpReceiverOptions,
  type OtlpReceiverStats,
  type RunningOtlpReceiver,
} from './telemetry/receiver.js';
export { ProcessDriver, type ProcessDriverOptions } from './drivers/process.js';
export { PodmanDriver, type PodmanDriverOptions } from './drivers/podman.js';
export {
  DEFAULT_KEEP_IMAGES,
  DEFAULT_MAX_LAYER_BYTES,
  ImageCache,
  hostManifest,
  type ImageCacheOptions,
  type UnpackedImage,
} from './images.js';
export type { Driver, DriverContext, DeploymentReport, RegistryAccess } from './drivers/types.js';
export {
  AGENT_VERSION,
  DEFAULT_AGENT_DATA_DIR,
  IDENTITY_FILE,
  agentDataDir,
  enrollSite,
  loadIdentity,
  parseLabels,
  readCaFile,
  type EnrollOptions,
  type SiteIdentity,
} from './identity.js';
export { readJsonFile, writeJsonFile, type WriteJsonFileOptions } from './state-file.js';
export {
  DESIRED_FILE,
  GITOPS_CHECKOUT_DIR,
  backoffDelayMs,
  deploymentsOf,
  gitReader,
  loadDesiredSnapshot,
  runDesiredStateSync,
  type CoreRequester,
  type DesiredSnapshot,
  type DesiredStateSyncOptions,
  type DesiredUpdate,
  type GitReader,
} from './sync.js';
export {
  StatusReporter,
  measureSiteResources,
  type StatusReporterOptions,
  type StatusReporterStats,
  type StatusSnapshot,
} from './status.js';
export {
  APPLIED_FILE,
  startAgent,
  type AgentOptions,
  type AppliedState,
  type RunningAgent,
} from './agent.js';
