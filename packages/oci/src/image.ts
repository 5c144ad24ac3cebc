/** Writing images into the content store: layers (cached by input), configs, manifests, indexes. */
import { createHash } from 'node:crypto';
import type { Digest } from './digest.js';
import { writeLayer } from './layer.js';
import { MediaTypes } from './media-types.js';
import type { ContentStore } from './store.js';
import { sortEntries, withParents, type TarEntry } from './tar.js';
import type {
  ContainerConfig,
  Descriptor,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  Platform,
} from './types.js';

/** A layer in the store with what an image config needs to list it. */
export interface BuiltLayer {
  readonly descriptor: Descriptor;
  readonly diffId: Digest;
  /** The history line of this layer. */
  readonly createdBy: string;
}

/** How to make one layer. */
export interface LayerSource {
  readonly entries: TarEntry[];
  readonly createdBy: string;
  /** Same key → the layer built earlier is reused without reading its inputs again. */
  readonly cacheKey?: string;
  readonly gzipLevel?: number;
  readonly gzipStrategy?: 'default' | 'huffman-only';
  /** Fixed mtime (seconds) of every entry. */
  readonly mtime?: number;
}

interface CachedLayer {
  readonly descriptor: Descriptor;
  readonly diffId: Digest;
}

/** Builds a layer into the store, or reuses the one cached under `source.cacheKey`. */
export async function buildLayer(store: ContentStore, source: LayerSource): Promise<BuiltLayer> {
  const cacheRef =
    source.cacheKey === undefined
      ? undefined
      : `cache/layers/${createHash('sha256').update(source.cacheKey).digest('hex')}`;
  if (cacheRef !== undefined) {
    const recordDigest = await store.getRef(cacheRef);
    if (recordDigest !== undefined && (await store.has(recordDigest))) {
      const record = await store.readJson<CachedLayer>(recordDigest);
      if (await store.has(record.descriptor.digest)) return { ...record, createdBy: source.createdBy };
    }
  }
  // Parents before children, byte-wise path order: the same files always give the same tar.
  const layer = await writeLayer(store, sortEntries(withParents(source.entries)), {
    ...(source.mtime !== undefined ? { mtime: source.mtime } : {}),
    ...(source.gzipLevel !== undefined ? { gzipLevel: source.gzipLevel } : {}),
    ...(source.gzipStrategy !== undefined ? { gzipStrategy: source.gzipStrategy } : {}),
  });
  if (cacheRef !== undefined) {
    const record = await store.put(JSON.stringify({ descriptor: layer.descriptor, diffId: layer.diffId }));
    await store.setRef(cacheRef, record.digest);
  }
  return { descriptor: layer.descriptor, diffId: layer.diffId, createdBy: source.createdBy };
}

/** Canonical JSON bytes of a document (stable key order as written). */
function jsonBytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** Everything an image manifest for one platform is made of. */
export interface ImageParts {
  readonly platform: Platform;
  /** Layers of the base image (already in the store) and their config, when building on a base. */
  readonly base?: { readonly layers: readonly Descriptor[]; readonly config: ImageConfig };
  readonly layers: readonly BuiltLayer[];
  readonly config: ContainerConfig;
  /** RFC 3339 creation time written in the config (fixed for reproducible builds). */
  readonly created: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** Writes the config and manifest of one platform's image; returns the manifest descriptor. */
export async function writeImage(store: ContentStore, parts: ImageParts): Promise<Descriptor> {
  const baseConfig = parts.base?.config;
  const env = new Map<string, string>();
  for (const kv of [...(baseConfig?.config?.Env ?? []), ...(parts.config.Env ?? [])]) {
    const at = kv.indexOf('=');
    env.set(at < 0 ? kv : kv.slice(0, at), kv);
  }
  const config: ImageConfig = {
    created: parts.created,
    architecture: parts.platform.architecture,
    os: parts.platform.os,
    ...(parts.platform.variant !== undefined ? { variant: parts.platform.variant } : {}),
    config: {
      ...(baseConfig?.config ?? {}),
      ...parts.config,
      Env: [...env.values()],
      Labels: { ...(baseConfig?.config?.Labels ?? {}), ...(parts.config.Labels ?? {}) },
    },
    rootfs: {
      type: 'layers',
      diff_ids: [...(baseConfig?.rootfs.diff_ids ?? []), ...parts.layers.map((l) => l.diffId)],
    },
    history: [
      ...(baseConfig?.history ?? []),
      ...parts.layers.map((l) => ({ created: parts.created, created_by: l.createdBy })),
    ],
  };
  const configBlob = await store.put(jsonBytes(config));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: configBlob.digest, size: configBlob.size },
    layers: [...(parts.base?.layers ?? []), ...parts.layers.map((l) => l.descriptor)],
    ...(parts.annotations !== undefined ? { annotations: { ...parts.annotations } } : {}),
  };
  const manifestBlob = await store.put(jsonBytes(manifest));
  return {
    mediaType: MediaTypes.ociManifest,
    digest: manifestBlob.digest,
    size: manifestBlob.size,
    platform: parts.platform,
  };
}

/** Writes an image index over per-platform manifests; returns its descriptor. */
export async function writeIndex(
  store: ContentStore,
  manifests: readonly Descriptor[],
  annotations?: Readonly<Record<string, string>>,
): Promise<Descriptor> {
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: [...manifests],
    ...(annotations !== undefined ? { annotations: { ...annotations } } : {}),
  };
  const blob = await store.put(jsonBytes(index));
  return { mediaType: MediaTypes.ociIndex, digest: blob.digest, size: blob.size };
}
