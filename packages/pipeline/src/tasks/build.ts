/**
 * `build`: the inference image (host base or `spec.image.base`, the bundled `aiedge serve` runtime,
 * the inspected model) built into the run's content store, as `aiedge image build` does.
 */
import { isAbsolute, resolve } from 'node:path';
import {
  RegistryClient,
  buildInferenceImage,
  parsePlatform,
  parseReference,
  readArchive,
  readLayout,
  type Descriptor,
} from '@aiedge/oci';
import { InputError } from '@aiedge/protocol';
import { bundleRuntime } from '@aiedge/runtime';
import type { BuiltImage, TaskContext, TaskImplementation } from '../types.js';

function splitName(rest: string): { path: string; name: string | undefined } {
  const at = rest.lastIndexOf(':');
  const hasName = at > 0 && !rest.slice(at + 1).includes('/');
  return { path: hasName ? rest.slice(0, at) : rest, name: hasName ? rest.slice(at + 1) : undefined };
}

/** Loads the base image named by `spec.image.base` (`oci:DIR[:NAME]`, `oci-archive:FILE[:NAME]` or a registry reference) into the store. */
async function loadBase(context: TaskContext, base: string): Promise<Descriptor> {
  const local = (rest: string): { path: string; name: string | undefined } => {
    const { path, name } = splitName(rest);
    if (path === '') throw new InputError(`spec.image.base ${base}: give a path`);
    return { path: isAbsolute(path) ? path : resolve(context.baseDir, path), name };
  };
  if (base.startsWith('oci-archive:')) {
    const { path, name } = local(base.slice('oci-archive:'.length));
    return readArchive(context.store, path, name);
  }
  if (base.startsWith('oci:')) {
    const { path, name } = local(base.slice('oci:'.length));
    return readLayout(context.store, path, name);
  }
  const client = new RegistryClient({
    env: context.env,
    ...(context.spec.spec.image.insecure === true ? { insecure: true } : {}),
  });
  try {
    const pulled = await client.pull(parseReference(base.replace(/^docker:\/\//, '')), context.store, {
      signal: context.signal,
    });
    return pulled.root;
  } finally {
    await client.close();
  }
}

/** The `build` task. */
export const buildTask: TaskImplementation = async (context: TaskContext) => {
  const inspected = context.state.inspected;
  if (inspected === undefined) throw new InputError('build needs an inspected model: run inspect first');
  const spec = context.spec.spec;
  const baseName = spec.image.base;
  let base: { root: Descriptor; name: string } | undefined;
  if (baseName !== undefined && baseName !== 'host') {
    context.log(`base ${baseName}`);
    base = { root: await loadBase(context, baseName), name: baseName };
  }
  const platforms = spec.image.platforms?.map((p, i) => {
    try {
      return parsePlatform(p);
    } catch (error) {
      throw new InputError(`spec.image.platforms[${i}]: ${(error as Error).message}`, { cause: error });
    }
  });
  const started = performance.now();
  context.log(`building ${spec.model.name} version ${spec.model.version} from ${inspected.modelPath}`);
  context.signal.throwIfAborted();
  const built = await buildInferenceImage({
    store: context.store,
    modelPath: inspected.modelPath,
    name: spec.model.name,
    version: spec.model.version,
    runtime: (architecture) => bundleRuntime({ architecture }),
    ...(base !== undefined ? { base } : {}),
    ...(platforms !== undefined ? { platforms } : {}),
    labels: { ...(spec.image.labels ?? {}) },
  });
  for (const m of built.manifests) {
    const p = m.descriptor.platform;
    context.log(
      `  ${p?.os ?? '?'}/${p?.architecture ?? '?'} ${m.descriptor.digest} (runtime ${m.runtime.size} B, model ${m.model.size} B)`,
    );
  }
  context.log(`built ${built.root.digest} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const result: BuiltImage = {
    digest: built.root.digest,
    mediaType: built.root.mediaType,
    size: built.root.size,
    store: context.store.root,
  };
  context.state.built = result;
  return { digest: result.digest };
};
