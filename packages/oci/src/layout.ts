/**
 * OCI image layouts (`oci:DIR`) and archives (`oci-archive:FILE`, a tar of a layout): writing an
 * image from the store, and reading one back into the store with every blob digest-verified.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Parser, type ReadEntry } from 'tar';
import { InputError, describeValue } from '@aiedge/protocol';
import { hexOf, isDigest, type Digest } from './digest.js';
import { writeFileAtomic, type ContentStore } from './store.js';
import { tarStream, type TarEntry } from './tar.js';
import type { Descriptor, ImageIndex } from './types.js';
import { MediaTypes } from './media-types.js';

/** The `oci-layout` file's content. */
const OCI_LAYOUT = '{"imageLayoutVersion":"1.0.0"}';
/** Annotation that names an image inside a layout. */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/** Every blob an image needs, root first (manifests, configs, layers). */
export async function imageBlobs(store: ContentStore, root: Descriptor): Promise<Digest[]> {
  return [...(await store.reachable([root.digest]))];
}

function layoutIndex(root: Descriptor, refName: string | undefined): string {
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: [
      {
        ...root,
        ...(refName !== undefined
          ? { annotations: { ...(root.annotations ?? {}), [REF_NAME_ANNOTATION]: refName } }
          : {}),
      },
    ],
  };
  return JSON.stringify(index);
}

/** Writes an image from the store as an OCI layout directory (other images in it are replaced). */
export async function writeLayout(
  store: ContentStore,
  root: Descriptor,
  dir: string,
  refName?: string,
): Promise<void> {
  const blobsDir = join(dir, 'blobs', 'sha256');
  await mkdir(blobsDir, { recursive: true });
  for (const digest of await imageBlobs(store, root)) {
    const target = join(blobsDir, hexOf(digest));
    const temp = `${target}.tmp`;
    await copyFile(store.blobPath(digest), temp);
    await rename(temp, target);
  }
  await writeSmall(join(dir, 'oci-layout'), OCI_LAYOUT);
  await writeSmall(join(dir, 'index.json'), layoutIndex(root, refName));
}

async function writeSmall(path: string, text: string): Promise<void> {
  await writeFileAtomic(path, text);
}

/** Writes an image from the store as an oci-archive tar file (deterministic bytes). */
export async function writeArchive(
  store: ContentStore,
  root: Descriptor,
  file: string,
  refName?: string,
): Promise<void> {
  const digests = (await imageBlobs(store, root)).sort();
  const entries: TarEntry[] = [
    { path: 'oci-layout', type: 'file', mode: 0o644, content: new TextEncoder().encode(OCI_LAYOUT) },
    {
      path: 'index.json',
      type: 'file',
      mode: 0o644,
      content: new TextEncoder().encode(layoutIndex(root, refName)),
    },
    { path: 'blobs', type: 'dir', mode: 0o755 },
    { path: 'blobs/sha256', type: 'dir', mode: 0o755 },
  ];
  for (const digest of digests) {
    const info = await store.stat(digest);
    if (info === undefined) throw new InputError(`blob ${digest} of the image is missing from the store`);
    entries.push({
      path: `blobs/sha256/${hexOf(digest)}`,
      type: 'file',
      mode: 0o644,
      content: { file: store.blobPath(digest), size: info.size },
    });
  }
  await mkdir(dirname(file), { recursive: true });
  const temp = `${file}.tmp`;
  try {
    await pipeline(tarStream(entries), createWriteStream(temp));
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Picks the image of a layout's index.json: by ref name, or the only one. */
function pickImage(indexText: string, where: string, refName: string | undefined): Descriptor {
  let index: ImageIndex;
  try {
    index = JSON.parse(indexText) as ImageIndex;
  } catch (error) {
    throw new InputError(`${where}/index.json is not valid JSON: ${(error as Error).message}`);
  }
  const manifests = Array.isArray(index.manifests) ? index.manifests : [];
  const candidates =
    refName === undefined
      ? manifests
      : manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] === refName);
  if (candidates.length !== 1) {
    const names = manifests.map((m) => m.annotations?.[REF_NAME_ANNOTATION] ?? m.digest);
    throw new InputError(
      refName === undefined
        ? `${where} holds ${manifests.length} images (${names.join(', ')}); name one (e.g. oci:${where}:${names[0] ?? 'latest'})`
        : `${where} has no image named ${describeValue(refName)}; it has ${names.join(', ') || 'none'}`,
    );
  }
  const root = candidates[0]!;
  if (!isDigest(root.digest))
    throw new InputError(`${where}/index.json names an invalid digest ${describeValue(root.digest)}`);
  return root;
}

/** Imports an image from an OCI layout directory into the store (every blob verified). */
export async function readLayout(store: ContentStore, dir: string, refName?: string): Promise<Descriptor> {
  const root = pickImage(await readFile(join(dir, 'index.json'), 'utf8'), dir, refName);
  const missing = [root.digest as Digest];
  const done = new Set<Digest>();
  while (missing.length > 0) {
    const digest = missing.pop()!;
    if (done.has(digest)) continue;
    done.add(digest);
    if (!(await store.has(digest))) {
      await store.putStream(createReadStream(join(dir, 'blobs', 'sha256', hexOf(digest))), { digest });
    }
    for (const child of await store.reachable([digest])) if (!done.has(child)) missing.push(child);
  }
  return root;
}

/** Imports an image from an oci-archive file into the store, streaming; blobs are verified. */
export async function readArchive(store: ContentStore, file: string, refName?: string): Promise<Descriptor> {
  let indexText: string | undefined;
  const pending: Promise<unknown>[] = [];
  const parser = new Parser({
    onReadEntry: (entry: ReadEntry) => {
      const path = entry.path.replace(/^\.\//, '');
      const blob = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(path);
      if (path === 'index.json') {
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => chunks.push(c));
        pending.push(
          new Promise<void>((resolve) =>
            entry.on('end', () => resolve(void (indexText = Buffer.concat(chunks).toString('utf8')))),
          ),
        );
      } else if (blob !== null && entry.type === 'File') {
        const digest = `sha256:${blob[1]}` as Digest;
        pending.push(store.putStream(entry as AsyncIterable<Uint8Array>, { digest, size: entry.size }));
      } else {
        entry.resume();
      }
    },
  });
  await pipeline(createReadStream(file), parser);
  await Promise.all(pending);
  if (indexText === undefined) throw new InputError(`${file} is not an OCI archive: it has no index.json`);
  const root = pickImage(indexText, file, refName);
  const needed = await store.reachable([root.digest]);
  for (const digest of needed) {
    if (!(await store.has(digest))) throw new InputError(`${file} lacks blob ${digest} that its image needs`);
  }
  return root;
}
