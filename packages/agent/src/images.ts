/**
 * Images at a site: pulled into the agent's content store (only missing blobs, digest-verified, by
 * the registry client), unpacked once per image into `<dir>/<digest-hex>/rootfs` with a completion
 * marker written atomically, and garbage-collected down to the last K used (plus those in use).
 */
import { fork } from 'node:child_process';
import { readdir, rm, stat, utimes, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  RegistryClient,
  hexOf,
  hostPlatform,
  indexMediaTypes,
  isDigest,
  parseReference,
  unpackLayer,
  writeFileAtomic,
  type ContentStore,
  type Descriptor,
  type Digest,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from '@aiedge/oci';
import { InputError, NotFoundError, describeValue } from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';
import type { RegistryAccess } from './drivers/types.js';

/** Images kept by default (the serving ones count), for rollback. */
export const DEFAULT_KEEP_IMAGES = 3;
/** Content bytes one layer may unpack to by default. */
export const DEFAULT_MAX_LAYER_BYTES = 16 * 1024 ** 3;
const MARKER = 'complete.json';
const REF_PREFIX = 'agent/images';

/** Options of {@link ImageCache}. */
export interface ImageCacheOptions {
  readonly store: ContentStore;
  /** Directory of the unpacked images (`<dataDir>/process/images`). */
  readonly dir: string;
  readonly registry: RegistryAccess;
  readonly logger: Logger;
  /** Images kept by {@link ImageCache.gc}, in-use ones included; default {@link DEFAULT_KEEP_IMAGES}. */
  readonly keep?: number;
  /** Content bytes one layer may unpack to; default {@link DEFAULT_MAX_LAYER_BYTES}. */
  readonly maxLayerBytes?: number;
  /** A registry client to use instead of one made from `registry` (tests; implies `isolate: false`). */
  readonly client?: RegistryClient;
  /**
   * Pull and unpack in a short-lived child process (default true unless `client` is given), so
   * their memory is returned to the system when they are done; false runs them in this process.
   */
  readonly isolate?: boolean;
}

/** An image unpacked for this machine's platform. */
export interface UnpackedImage {
  /** The digest the deployment pins (an index or a manifest). */
  readonly digest: Digest;
  /** The host platform's manifest. */
  readonly manifestDigest: Digest;
  readonly manifest: ImageManifest;
  readonly config: ImageConfig;
  /** `<dir>/<hex>/rootfs`. */
  readonly rootfs: string;
}

interface Marker {
  readonly digest: Digest;
  readonly manifestDigest: Digest;
}

/** A job for the image worker (`_image-worker.ts`). */
export type ImageWorkerJob = {
  readonly storeDir: string;
  readonly dir: string;
  readonly registry: RegistryAccess;
  readonly maxLayerBytes: number;
} & (
  | { readonly kind: 'pull' | 'ensure'; readonly image: string; readonly digest: string }
  | { readonly kind: 'unpack'; readonly digest: Digest }
);

/** What the image worker sends back. */
export type ImageWorkerMessage =
  | {
      readonly log: {
        level: 'debug' | 'info' | 'warn' | 'error';
        msg: string;
        fields: Record<string, unknown>;
      };
    }
  | { readonly pulled: Descriptor }
  | { readonly unpacked: Digest }
  | { readonly error: { name: string; message: string } };

const WORKER = new URL(`./_image-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** Runs one job in a child process (see _image-worker.ts); killed when `signal` aborts. */
function inChild(
  job: ImageWorkerJob,
  logger: Logger,
  signal: AbortSignal | undefined,
): Promise<Descriptor | Digest> {
  signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(WORKER), [], {
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    let result: Descriptor | Digest | undefined;
    let failure: Error | undefined;
    const abort = () => child.kill('SIGKILL');
    signal?.addEventListener('abort', abort, { once: true });
    child.on('message', (message: ImageWorkerMessage) => {
      if ('log' in message) logger[message.log.level](message.log.msg, message.log.fields);
      else if ('pulled' in message) result = message.pulled;
      else if ('unpacked' in message) result = message.unpacked;
      else {
        const { name, message: text } = message.error;
        failure =
          name === 'InputError'
            ? new InputError(text)
            : name === 'NotFoundError'
              ? new NotFoundError(text)
              : new Error(text);
      }
    });
    child.once('error', reject);
    child.once('exit', (code, killedBy) => {
      signal?.removeEventListener('abort', abort);
      if (signal?.aborted) reject(signal.reason as Error);
      else if (result !== undefined) resolve(result);
      else reject(failure ?? new Error(`the image worker exited with ${killedBy ?? `code ${code}`}`));
    });
    child.send(job);
  });
}

/** Pulls, unpacks and garbage-collects the images of a driver. */
export class ImageCache {
  readonly #options: ImageCacheOptions;
  readonly #client: RegistryClient;
  readonly #ownsClient: boolean;
  readonly #isolate: boolean;
  readonly #unpacking = new Map<string, Promise<UnpackedImage>>();

  constructor(options: ImageCacheOptions) {
    const keep = options.keep ?? DEFAULT_KEEP_IMAGES;
    if (!Number.isInteger(keep) || keep < 1) {
      throw new InputError(`keep is ${describeValue(keep)}: expected an integer of at least 1`);
    }
    this.#options = options;
    this.#isolate = options.isolate ?? options.client === undefined;
    this.#ownsClient = options.client === undefined;
    this.#client =
      options.client ??
      new RegistryClient({
        ...(options.registry.credentials !== undefined ? { credentials: options.registry.credentials } : {}),
        ...(options.registry.ca !== undefined ? { ca: options.registry.ca } : {}),
        ...(options.registry.insecure !== undefined ? { insecure: options.registry.insecure } : {}),
      });
  }

  async #unpackedOrThrow(digest: Digest): Promise<UnpackedImage> {
    const unpacked = await this.unpacked(digest);
    if (unpacked === undefined) throw new Error(`the image worker left ${digest} without its marker`);
    return unpacked;
  }

  #inChild(
    job: { kind: 'pull' | 'ensure'; image: string; digest: string } | { kind: 'unpack'; digest: Digest },
    signal: AbortSignal | undefined,
  ): Promise<Descriptor | Digest> {
    return inChild(
      {
        ...job,
        storeDir: this.#options.store.root,
        dir: this.#options.dir,
        registry: this.#options.registry,
        maxLayerBytes: this.#options.maxLayerBytes ?? DEFAULT_MAX_LAYER_BYTES,
      },
      this.#options.logger,
      signal,
    );
  }

  /** The directory an image unpacks into. */
  imageDir(digest: Digest): string {
    return join(this.#options.dir, hexOf(digest));
  }

  /**
   * Pulls `image` (a reference pinned by `digest`) into the store for the host platform; only
   * missing blobs are fetched. Returns the root descriptor.
   */
  async pull(image: string, digest: string, signal?: AbortSignal): Promise<Descriptor> {
    if (this.#isolate) return (await this.#inChild({ kind: 'pull', image, digest }, signal)) as Descriptor;
    const ref = parseReference(image);
    if (!isDigest(digest))
      throw new InputError(`imageDigest ${describeValue(digest)} is not a sha256 digest`);
    if (ref.digest !== undefined && ref.digest !== digest) {
      throw new InputError(`image ${image} is pinned to ${ref.digest}, but imageDigest is ${digest}`);
    }
    const pinned = { ...ref, digest };
    const result = await this.#client.pull(pinned, this.#options.store, {
      platforms: [hostPlatform()],
      signal,
    });
    if (result.root.digest !== digest) {
      throw new InputError(`pulled ${image} has digest ${result.root.digest}, expected ${digest}`);
    }
    await this.#options.store.setRef(`${REF_PREFIX}/${hexOf(digest)}`, digest);
    this.#options.logger.info('image pulled', {
      image,
      digest,
      downloadedBytes: result.downloadedBytes,
      skippedBlobs: result.skippedBlobs,
    });
    return result.root;
  }

  /** The unpacked image when its completion marker exists (and marks it used), else undefined. */
  async unpacked(digest: Digest): Promise<UnpackedImage | undefined> {
    const dir = this.imageDir(digest);
    let marker: Marker;
    try {
      marker = JSON.parse(await readFile(join(dir, MARKER), 'utf8')) as Marker;
    } catch {
      return undefined;
    }
    if (marker.digest !== digest || !isDigest(marker.manifestDigest)) return undefined;
    const store = this.#options.store;
    if (!(await store.has(marker.manifestDigest))) return undefined;
    const manifest = await store.readJson<ImageManifest>(marker.manifestDigest);
    const config = await store.readJson<ImageConfig>(manifest.config.digest);
    const now = new Date();
    await utimes(join(dir, MARKER), now, now).catch(() => undefined);
    return { digest, manifestDigest: marker.manifestDigest, manifest, config, rootfs: join(dir, 'rootfs') };
  }

  /** Pulls (when not already unpacked) and unpacks an image; at most one unpack per digest at a time. */
  async ensure(
    image: string,
    digest: string,
    options: { signal?: AbortSignal; onPull?: () => void } = {},
  ): Promise<UnpackedImage> {
    if (!isDigest(digest))
      throw new InputError(`imageDigest ${describeValue(digest)} is not a sha256 digest`);
    const done = await this.unpacked(digest);
    if (done !== undefined) return done;
    const running = this.#unpacking.get(digest);
    if (running !== undefined) return running;
    const task = (async () => {
      options.onPull?.();
      if (this.#isolate) {
        // One child for both steps.
        await this.#inChild({ kind: 'ensure', image, digest }, options.signal);
        return this.#unpackedOrThrow(digest);
      }
      await this.pull(image, digest, options.signal);
      return this.unpack(digest, options.signal);
    })();
    this.#unpacking.set(digest, task);
    try {
      return await task;
    } finally {
      this.#unpacking.delete(digest);
    }
  }

  /** Unpacks a stored image's host-platform layers in order; skipped when already complete. */
  async unpack(digest: Digest, signal?: AbortSignal): Promise<UnpackedImage> {
    const done = await this.unpacked(digest);
    if (done !== undefined) return done;
    if (this.#isolate) {
      await this.#inChild({ kind: 'unpack', digest }, signal);
      return this.#unpackedOrThrow(digest);
    }
    const store = this.#options.store;
    const manifestDigest = await hostManifest(store, digest);
    const manifest = await store.readJson<ImageManifest>(manifestDigest);
    const config = await store.readJson<ImageConfig>(manifest.config.digest);
    const dir = this.imageDir(digest);
    const rootfs = join(dir, 'rootfs');
    // A partial unpack (crash) is thrown away: whiteouts make re-applying layers order-dependent.
    await rm(dir, { recursive: true, force: true });
    for (const layer of manifest.layers) {
      signal?.throwIfAborted();
      await unpackLayer(await store.read(layer.digest), rootfs, {
        maxBytes: this.#options.maxLayerBytes ?? DEFAULT_MAX_LAYER_BYTES,
      });
    }
    const marker: Marker = { digest, manifestDigest };
    await writeFileAtomic(join(dir, MARKER), `${JSON.stringify(marker)}\n`);
    this.#options.logger.info('image unpacked', { digest, rootfs, layers: manifest.layers.length });
    return { digest, manifestDigest, manifest, config, rootfs };
  }

  /**
   * Keeps the `keep` most recently used unpacked images and every digest in `inUse`; removes the
   * other directories and their store refs, then the store blobs no ref reaches.
   */
  async gc(inUse: Iterable<string>): Promise<{ removed: Digest[] }> {
    const keepCount = this.#options.keep ?? DEFAULT_KEEP_IMAGES;
    const protectedSet = new Set<string>(inUse);
    for (const d of this.#unpacking.keys()) protectedSet.add(d);
    let names: string[];
    try {
      names = await readdir(this.#options.dir);
    } catch {
      names = [];
    }
    const images: Array<{ digest: Digest; usedMs: number }> = [];
    const removed: Digest[] = [];
    for (const name of names) {
      const digest = `sha256:${name}`;
      if (!isDigest(digest)) continue;
      let usedMs: number;
      try {
        usedMs = (await stat(join(this.#options.dir, name, MARKER))).mtimeMs;
      } catch {
        usedMs = -1; // incomplete: first to go unless being unpacked
      }
      images.push({ digest, usedMs });
    }
    images.sort((a, b) => b.usedMs - a.usedMs);
    let kept = [...images].filter((i) => protectedSet.has(i.digest)).length;
    for (const image of images) {
      if (protectedSet.has(image.digest)) continue;
      if (image.usedMs >= 0 && kept < keepCount) {
        kept++;
        continue;
      }
      await rm(this.imageDir(image.digest), { recursive: true, force: true });
      await this.#options.store.deleteRef(`${REF_PREFIX}/${hexOf(image.digest)}`);
      removed.push(image.digest);
    }
    // Pulled but never unpacked (a failed unpack): their refs go too unless protected.
    const present = new Set(images.map((i) => i.digest));
    for (const hex of await this.#options.store.listRefs(REF_PREFIX)) {
      const digest = `sha256:${hex}`;
      if (!present.has(digest as Digest) && !protectedSet.has(digest)) {
        await this.#options.store.deleteRef(`${REF_PREFIX}/${hex}`);
      }
    }
    // The store is shared with the rest of the agent: every ref in it is a root.
    const store = this.#options.store;
    const freed = await store.gc({ roots: await allRefs(store) });
    if (removed.length > 0 || freed.removed.length > 0) {
      this.#options.logger.info('images garbage-collected', {
        images: removed,
        blobs: freed.removed.length,
        freedBytes: freed.freedBytes,
      });
    }
    return { removed };
  }

  /** Closes the registry client this cache made. */
  async close(): Promise<void> {
    if (this.#ownsClient) await this.#client.close();
  }
}

/** Every digest some ref of the store points at. */
async function allRefs(store: ContentStore): Promise<Digest[]> {
  const roots: Digest[] = [];
  const walk = async (prefix: string): Promise<void> => {
    if (prefix !== '') {
      for (const name of await store.listRefs(prefix)) {
        const digest = await store.getRef(`${prefix}/${name}`);
        if (digest !== undefined) roots.push(digest);
      }
    }
    for (const sub of await store.listRefPrefixes(prefix))
      await walk(prefix === '' ? sub : `${prefix}/${sub}`);
  };
  await walk('');
  return roots;
}

/** The host platform's manifest of a stored image (index or manifest). */
export async function hostManifest(store: ContentStore, digest: Digest): Promise<Digest> {
  if (!(await store.has(digest))) throw new NotFoundError(`image ${digest} is not in the agent's store`);
  const doc = await store.readJson<{ mediaType?: string; manifests?: unknown }>(digest);
  const isIndex =
    (doc.mediaType !== undefined && indexMediaTypes.includes(doc.mediaType)) || Array.isArray(doc.manifests);
  if (!isIndex) return digest;
  const host = hostPlatform();
  const index = doc as unknown as ImageIndex;
  const match = index.manifests.find(
    (m) => m.platform?.os === host.os && m.platform.architecture === host.architecture,
  );
  if (match === undefined) {
    const have = index.manifests.map((m) => `${m.platform?.os ?? '?'}/${m.platform?.architecture ?? '?'}`);
    throw new InputError(
      `image ${digest} has no ${host.os}/${host.architecture} manifest (it has ${have.join(', ') || 'none'})`,
    );
  }
  return match.digest;
}
