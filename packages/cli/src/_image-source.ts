/** Where an image comes from or goes to on the command line: oci:DIR, oci-archive:FILE, or a registry reference. */
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  ContentStore,
  formatReference,
  parseReference,
  readArchive,
  readLayout,
  writeArchive,
  writeLayout,
  type Descriptor,
  type ImageReference,
  type RegistryClient,
} from '@aiedge/oci';
import { InputError } from '@aiedge/protocol';

/** A parsed image location. */
export type ImageLocation =
  | { readonly kind: 'oci'; readonly path: string; readonly refName: string | undefined }
  | { readonly kind: 'oci-archive'; readonly path: string; readonly refName: string | undefined }
  | { readonly kind: 'registry'; readonly reference: ImageReference };

/** Parses `oci:DIR[:NAME]`, `oci-archive:FILE[:NAME]`, `docker://REF` or `REF`. */
export function parseLocation(value: string): ImageLocation {
  for (const kind of ['oci-archive', 'oci'] as const) {
    if (value.startsWith(`${kind}:`)) {
      const rest = value.slice(kind.length + 1);
      if (rest === '') throw new InputError(`${value}: give a path after ${kind}:`);
      const at = rest.lastIndexOf(':');
      const hasName = at > 0 && !rest.slice(at + 1).includes('/');
      return {
        kind,
        path: resolve(hasName ? rest.slice(0, at) : rest),
        refName: hasName ? rest.slice(at + 1) : undefined,
      };
    }
  }
  return { kind: 'registry', reference: parseReference(value.replace(/^docker:\/\//, '')) };
}

/** The local content store: --store, AIEDGE_STORE, or ~/.local/share/aiedge/store. */
export async function openStore(flag: string | undefined): Promise<ContentStore> {
  const dataHome = process.env['XDG_DATA_HOME'] ?? join(homedir(), '.local', 'share');
  return ContentStore.open(resolve(flag ?? process.env['AIEDGE_STORE'] ?? join(dataHome, 'aiedge', 'store')));
}

/** The store ref that remembers which image a registry reference was built or pulled as. */
export function localRefKey(reference: ImageReference): string {
  return `local/${createHash('sha256').update(formatReference(reference)).digest('hex')}`;
}

/** Remembers `root` under `reference` in the store (a local tag). */
export async function tagLocally(
  store: ContentStore,
  reference: ImageReference,
  root: Descriptor,
): Promise<void> {
  await store.put(JSON.stringify(root));
  const record = await store.put(JSON.stringify({ reference: formatReference(reference), root }));
  await store.setRef(localRefKey(reference), record.digest);
}

/** The image a local tag points at, if any. */
export async function localImage(
  store: ContentStore,
  reference: ImageReference,
): Promise<Descriptor | undefined> {
  const record = await store.getRef(localRefKey(reference));
  if (record === undefined || !(await store.has(record))) return undefined;
  const { root } = await store.readJson<{ root: Descriptor }>(record);
  return (await store.has(root.digest)) ? root : undefined;
}

/** Loads an image into the store from a layout, an archive, a local tag, or (pulling) a registry. */
export async function loadImage(
  store: ContentStore,
  location: ImageLocation,
  client: () => RegistryClient,
  options: { readonly preferLocal: boolean } = { preferLocal: true },
): Promise<Descriptor> {
  switch (location.kind) {
    case 'oci':
      return readLayout(store, location.path, location.refName);
    case 'oci-archive':
      return readArchive(store, location.path, location.refName);
    case 'registry': {
      if (options.preferLocal) {
        const local = await localImage(store, location.reference);
        if (local !== undefined) return local;
      }
      const pulled = await client().pull(location.reference, store);
      await tagLocally(store, location.reference, pulled.root);
      return pulled.root;
    }
  }
}

/** Writes an image from the store to a layout, an archive or a registry. */
export async function storeImage(
  store: ContentStore,
  root: Descriptor,
  location: ImageLocation,
  client: () => RegistryClient,
): Promise<string> {
  switch (location.kind) {
    case 'oci':
      await writeLayout(store, root, location.path, location.refName);
      return `oci:${location.path}`;
    case 'oci-archive':
      await writeArchive(store, root, location.path, location.refName);
      return `oci-archive:${location.path}`;
    case 'registry': {
      const result = await client().push(store, root, location.reference);
      await tagLocally(store, location.reference, root);
      return `${formatReference(location.reference)} (${result.uploadedBytes} bytes uploaded)`;
    }
  }
}
