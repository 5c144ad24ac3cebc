/**
 * The `oci` model source: a model image or a KitOps/ORAS-style artifact in an OCI registry. The
 * manifest (this machine's platform from an index) is pulled into a content store in the workspace,
 * its tar layers are unpacked safely and raw-file layers (with an `org.opencontainers.image.title`)
 * written by name; then `path`, or else the single `.onnx` file found, is copied into the model dir.
 */
import { lstat, mkdir, readdir, realpath, rm } from 'node:fs/promises';
import { join, sep } from 'node:path';
import {
  ContentStore,
  RegistryClient,
  formatReference,
  hostPlatform,
  indexMediaTypes,
  parseReference,
  unpackLayer,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  type ImageReference,
} from '@aiedge/oci';
import { InputError, NotFoundError, UnavailableError } from '@aiedge/protocol';
import type { FetchedModel, ModelSource, StepContext } from '../types.js';
import { copyTree, inside, safeRelativePath, sortFiles, streamToFile } from './_files.js';

/** Settings of {@link OciSource} (the `spec.source.oci` block). */
export interface OciSourceSpec {
  /** Image or artifact reference, e.g. `registry.example.com/models/mnist:1`. */
  readonly ref: string;
  /** File or directory inside the image; default: the single `.onnx` file in it. */
  readonly path?: string;
}

/** Largest total file content one layer may unpack to. */
const MAX_LAYER_BYTES = 64 * 1024 * 1024 * 1024;
const TITLE_ANNOTATION = 'org.opencontainers.image.title';
/** `.onnx` files listed in an error when there are several. */
const LIST_LIMIT = 10;

/** Pulls a model out of an OCI image or artifact. */
export class OciSource implements ModelSource {
  readonly kind = 'oci';
  readonly #spec: OciSourceSpec;
  readonly #field: string;
  readonly #ref: ImageReference;

  constructor(spec: OciSourceSpec, field = 'spec.source.oci') {
    this.#spec = spec;
    this.#field = field;
    try {
      this.#ref = parseReference(spec.ref);
    } catch (error) {
      throw new InputError(`${field}.ref: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Pulls, unpacks into a scratch directory in the workspace and copies the model into `dir`. */
  async fetch(context: StepContext, dir: string): Promise<FetchedModel> {
    const scratch = join(context.workspace, '.fetch', 'oci');
    const store = await ContentStore.open(join(scratch, 'store'));
    const client = new RegistryClient({
      env: context.env,
      onProgress: (e) => {
        if (e.action === 'download')
          context.progress({ item: `blob ${e.digest}`, bytes: e.bytes, total: e.total });
      },
    });
    const shown = formatReference(this.#ref);
    let manifest: ImageManifest;
    let pinned: ImageReference;
    try {
      const { descriptor, bytes } = await client.getManifest(this.#ref, { signal: context.signal });
      let chosen: Descriptor = descriptor;
      if (indexMediaTypes.includes(descriptor.mediaType)) {
        chosen = pickManifest(JSON.parse(bytes.toString('utf8')) as ImageIndex, shown);
      }
      pinned = { registry: this.#ref.registry, repository: this.#ref.repository, digest: chosen.digest };
      await client.pull(pinned, store, { signal: context.signal });
      manifest = await store.readJson<ImageManifest>(chosen.digest);
    } finally {
      await client.close();
    }
    const rootfs = join(scratch, 'rootfs');
    await rm(rootfs, { recursive: true, force: true });
    await mkdir(rootfs, { recursive: true });
    for (const layer of manifest.layers) {
      context.signal.throwIfAborted();
      const title = layer.annotations?.[TITLE_ANNOTATION];
      if (/\btar\b|\.tar|tar\+|\.rootfs\./.test(layer.mediaType)) {
        if (/zstd/.test(layer.mediaType)) {
          throw new UnavailableError(
            `${shown}: layer ${layer.digest} is zstd-compressed, which is not supported`,
          );
        }
        await unpackLayer(await store.read(layer.digest), rootfs, { maxBytes: MAX_LAYER_BYTES });
      } else if (title !== undefined) {
        const rel = safeRelativePath(title, `${shown} layer ${layer.digest} title`);
        await streamToFile(await store.read(layer.digest), inside(rootfs, rel), { signal: context.signal });
      }
    }
    const root = await realpath(rootfs);
    let selected: string;
    let what: string;
    if (this.#spec.path !== undefined && this.#spec.path.replace(/^\/+|\/+$/g, '') !== '') {
      what = safeRelativePath(this.#spec.path.replace(/\/+$/, ''), `${this.#field}.path`);
      selected = inside(root, what);
      const real = await realpath(selected).catch(() => undefined);
      const found = real === undefined ? undefined : await lstat(real);
      if (real === undefined || (real !== root && !real.startsWith(root + sep)) || found === undefined) {
        throw new NotFoundError(`${this.#field}.path ${what} does not exist in ${shown}`);
      }
      if (!found.isFile() && !found.isDirectory()) {
        throw new InputError(`${this.#field}.path ${what} in ${shown} is not a file or directory`);
      }
      selected = real;
    } else {
      const onnx = await findOnnx(root);
      if (onnx.length === 0) {
        throw new NotFoundError(
          `${shown} holds no .onnx file; set ${this.#field}.path to the model inside it`,
        );
      }
      if (onnx.length > 1) {
        const listed = onnx.slice(0, LIST_LIMIT).join(', ') + (onnx.length > LIST_LIMIT ? ', …' : '');
        throw new InputError(
          `${shown} holds ${onnx.length} .onnx files (${listed}); set ${this.#field}.path`,
        );
      }
      what = onnx[0] as string;
      selected = join(root, ...what.split('/'));
    }
    const files = await copyTree(selected, dir, context, { followSymlinks: false });
    await rm(scratch, { recursive: true, force: true });
    context.log(`${shown}: ${files.length} file(s) from ${what}`);
    return { dir, files: sortFiles(files), origin: `oci://${formatReference(pinned)}#${what}` };
  }
}

/** This machine's platform's manifest from an index, else its only manifest. */
function pickManifest(index: ImageIndex, shown: string): Descriptor {
  const host = hostPlatform();
  const manifests = index.manifests.filter((m) => !indexMediaTypes.includes(m.mediaType));
  const match =
    manifests.find((m) => m.platform?.os === host.os && m.platform.architecture === host.architecture) ??
    (manifests.length === 1 ? manifests[0] : undefined);
  if (match === undefined) {
    throw new NotFoundError(`${shown} is an index with no manifest for ${host.os}/${host.architecture}`);
  }
  return match;
}

/** Relative paths of the regular `.onnx` files under `root`, sorted. */
async function findOnnx(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(join(dir, entry.name), relPath);
      else if (entry.isFile() && entry.name.toLowerCase().endsWith('.onnx')) out.push(relPath);
    }
  };
  await walk(root, '');
  return out.sort();
}
