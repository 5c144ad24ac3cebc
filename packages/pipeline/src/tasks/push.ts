/**
 * `push`: the built image from the run's content store to `spec.image.repository` under every tag,
 * then (when `spec.registry` is set) its registration as a model artifact of the model version.
 */
import { RegistryClient, formatReference, parseReference, type Descriptor } from '@aiedge/oci';
import { InputError } from '@aiedge/protocol';
import type { PushedImage, TaskContext, TaskImplementation } from '../types.js';
import { ModelRegistryClient } from './_registry-client.js';

function secret(context: TaskContext, name: string | undefined, what: string): string | undefined {
  if (name === undefined) return undefined;
  const value = context.env[name];
  if (value === undefined || value === '') {
    throw new InputError(`${what} names the environment variable ${name}, which is not set`);
  }
  return value;
}

/** The `push` task. */
export const pushTask: TaskImplementation = async (context: TaskContext) => {
  const built = context.state.built;
  if (built === undefined) throw new InputError('push needs a built image: run build first');
  const spec = context.spec.spec;
  const image = spec.image;
  const tags = image.tags ?? [spec.model.version];
  const base = parseReference(image.repository);
  if (base.tag !== undefined || base.digest !== undefined) {
    throw new InputError(
      `spec.image.repository ${image.repository} names a tag or digest; give the repository and list tags in spec.image.tags`,
    );
  }
  const username = secret(context, image.usernameEnv, 'spec.image.usernameEnv');
  const password = secret(context, image.passwordEnv, 'spec.image.passwordEnv');
  const root: Descriptor = {
    mediaType: built.mediaType,
    digest: built.digest as Descriptor['digest'],
    size: built.size,
  };
  const client = new RegistryClient({
    env: context.env,
    ...(image.insecure === true ? { insecure: true } : {}),
    ...(password !== undefined ? { credentials: { username: username ?? 'aiedge', password } } : {}),
  });
  try {
    for (const tag of tags) {
      const dst = { ...base, tag };
      const result = await client.push(context.store, root, dst, { signal: context.signal });
      context.log(
        `pushed ${formatReference(dst)}: ${result.uploadedBytes} bytes uploaded, ${result.skippedBlobs} blobs already there`,
      );
    }
  } finally {
    await client.close();
  }
  const repository = `${base.registry}/${base.repository}`;
  const reference = `${repository}@${built.digest}`;
  let artifactId: string | undefined;
  if (spec.registry !== undefined) {
    const registry = new ModelRegistryClient({
      baseUrl: spec.registry.url,
      token: secret(context, spec.registry.tokenEnv, 'spec.registry.tokenEnv'),
      signal: context.signal,
    });
    const artifact = await registry.registerArtifact({
      model: spec.model.name,
      version: spec.model.version,
      artifact: {
        artifactType: 'model-artifact',
        uri: `oci://${reference}`,
        modelFormatName: 'onnx',
        ...(context.state.inspected !== undefined
          ? { description: `ai-edge inference image; model sha256 ${context.state.inspected.sha256}` }
          : {}),
      },
    });
    artifactId = artifact.id;
    context.log(`registered model artifact ${artifact.id} (oci://${reference}) in ${registry.root}`);
  }
  const pushed: PushedImage = {
    reference,
    digest: built.digest,
    tags,
    ...(artifactId !== undefined ? { artifactId } : {}),
  };
  context.state.pushed = pushed;
  return { reference, digest: built.digest, tags: tags.join(',') };
};
