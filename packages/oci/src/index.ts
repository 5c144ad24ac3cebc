export { Digester, digestOf, hexOf, isDigest, parseDigest, type Digest } from './digest.js';
export {
  MANIFEST_ACCEPT,
  MediaTypes,
  allManifestMediaTypes,
  indexMediaTypes,
  isGzipLayer,
  manifestMediaTypes,
} from './media-types.js';
export {
  BlobWriter,
  ContentStore,
  DigestMismatchError,
  checkRefKey,
  writeFileAtomic,
  type Expectation,
  type GcOptions,
  type GcResult,
  type StoredBlob,
} from './store.js';
export type {
  ContainerConfig,
  Descriptor,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  Platform,
} from './types.js';
export {
  buildLayer,
  writeImage,
  writeIndex,
  type BuiltLayer,
  type ImageParts,
  type LayerSource,
} from './image.js';
export {
  IMAGE_USER,
  ImagePaths,
  buildInferenceImage,
  defaultCreated,
  hostBase,
  hostPlatform,
  inferenceContainerConfig,
  modelLayer,
  parsePlatform,
  type InferenceImage,
  type InferenceImageOptions,
  type RuntimeFile,
  type RuntimeFiles,
} from './inference-image.js';
export {
  REF_NAME_ANNOTATION,
  imageBlobs,
  readArchive,
  readLayout,
  writeArchive,
  writeLayout,
} from './layout.js';
export {
  RegistryError,
  registryGc,
  registryRoutes,
  startRegistry,
  type RegistryAccessRequest,
  type RegistryAction,
  type RegistryAuthorizer,
  type RegistryErrorCode,
  type RegistryGcOptions,
  type RegistryLogger,
  type RegistryRoutesOptions,
  type RegistryServerOptions,
  type RunningRegistry,
} from './registry-server.js';
export {
  DEFAULT_REGISTRY,
  DEFAULT_TAG,
  formatReference,
  parseReference,
  referenceTarget,
  type ImageReference,
} from './reference.js';
export {
  RegistryAuth,
  authFilePaths,
  findCredentials,
  isLoopbackHost,
  parseWwwAuthenticate,
  repositoryScope,
  type AuthChallenge,
  type CredentialLookupOptions,
  type CredentialProvider,
  type FoundCredentials,
  type RegistryAuthOptions,
  type RegistryCredentials,
  type RepositoryAction,
} from './auth.js';
export {
  RegistryClient,
  type PullOptions,
  type PullResult,
  type PushOptions,
  type PushResult,
  type RegistryClientOptions,
  type RegistryProgressEvent,
  type SignalOptions,
} from './registry-client.js';
export { sortEntries, tarStream, withParents, type TarEntry, type TarStreamOptions } from './tar.js';
export { writeLayer, type WriteLayerOptions, type WrittenLayer } from './layer.js';
export { UnsafeArchiveError, unpackLayer, type UnpackLayerOptions, type UnpackResult } from './unpack.js';
