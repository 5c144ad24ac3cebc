/** Model sources: one module per kind behind {@link ModelSource}, and the factory the `fetch` task uses. */
import type { SourceSpec } from '../spec.js';
import type { ModelSource } from '../types.js';
import { GitSource } from './git.js';
import { HttpSource } from './http.js';
import { LocalSource } from './local.js';
import { OciSource } from './oci.js';
import { RegistrySource } from './registry.js';
import { S3Source } from './s3.js';

export { GitSource, LFS_POINTER_PREFIX, lfsPointer, type GitSourceSpec } from './git.js';
export { HttpSource, type HttpSourceSpec } from './http.js';
export { LocalSource, type LocalSourceSpec } from './local.js';
export { OciSource, type OciSourceSpec } from './oci.js';
export {
  RegistrySource,
  chooseArtifact,
  parseGitUri,
  sourceForUri,
  type RegistrySourceSpec,
} from './registry.js';
export { S3Source, S3_CONCURRENCY, type S3SourceSpec } from './s3.js';

/** The source for a validated `spec.source` block. */
export function createSource(spec: SourceSpec): ModelSource {
  if ('s3' in spec) return new S3Source(spec.s3);
  if ('git' in spec) return new GitSource(spec.git);
  if ('registry' in spec) return new RegistrySource(spec.registry);
  if ('http' in spec) return new HttpSource(spec.http);
  if ('oci' in spec) return new OciSource(spec.oci);
  return new LocalSource(spec.local);
}
