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
