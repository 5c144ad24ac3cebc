/**
 * A local content-addressed blob store: `ROOT/blobs/sha256/<hex>`. Writes go to a temp file,
 * are verified and fsynced, then renamed into place, so a crash never leaves a partial blob under
 * its digest and concurrent writers of the same content are harmless. Named refs (tags, kept
 * manifests) live under `ROOT/refs/` and are written the same way.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ConflictError, InputError, NotFoundError, describeValue } from '@aiedge/protocol';
import { Digester, digestOf, hexOf, isDigest, parseDigest, type Digest } from './digest.js';

/** A blob that was written: its digest and size. */
export interface StoredBlob {
  readonly digest: Digest;
  readonly size: number;
}

/** What a writer expects the content to be; a mismatch rejects the blob and keeps nothing. */
export interface Expectation {
  readonly digest?: Digest;
  readonly size?: number;
}

/** The content did not match the digest (or size) it was announced with. */
export class DigestMismatchError extends InputError {
  constructor(message: string) {
    super(message);
  }
}

/** A temp file untouched this long belongs to a writer that died. */
const STALE_TEMP_MS = 15 * 60_000;

const REF_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._:-]*)*$/;

/** Checks a ref key (`a/b/c`, no `..`, no empty segments). */
export function checkRefKey(key: string): string {
  if (!REF_KEY.test(key) || key.length > 1024) {
    throw new InputError(`ref key ${describeValue(key, 90)} is not a path of [A-Za-z0-9._-] segments`);
  }
  return key;
}

/** Writes `data` to `path` atomically: temp file, fsync, rename, fsync of the directory. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${randomUUID()}.tmp`;
  const handle = await open(temp, 'w', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDir(dirname(path));
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await handle.close();
  }
}

/** Writes one blob incrementally; `commit` verifies and moves it into the store. */
export class BlobWriter {
  readonly #store: ContentStore;
  readonly #temp: string;
  readonly #digester = new Digester();
  #handle: Awaited<ReturnType<typeof open>> | undefined;
  #done = false;

  /** @internal use ContentStore.writer() */
  constructor(store: ContentStore, temp: string) {
    this.#store = store;
    this.#temp = temp;
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#digester.size;
  }

  /** Appends bytes. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#done) throw new Error('BlobWriter is already committed or aborted');
    this.#handle ??= await open(this.#temp, 'w', 0o644);
    this.#digester.update(chunk);
    let at = 0;
    while (at < chunk.length) {
      const { bytesWritten } = await this.#handle.write(chunk, at, chunk.length - at);
      at += bytesWritten;
    }
  }

  /** Verifies the content against `expected` and stores it under its digest. */
  async commit(expected: Expectation = {}): Promise<StoredBlob> {
    if (this.#done) throw new Error('BlobWriter is already committed or aborted');
    this.#done = true;
    try {
      this.#handle ??= await open(this.#temp, 'w', 0o644);
      await this.#handle.sync();
      await this.#handle.close();
      this.#handle = undefined;
      const digest = this.#digester.digest();
      const size = this.#digester.size;
      if (expected.size !== undefined && expected.size !== size) {
        throw new DigestMismatchError(
          `blob ${expected.digest ?? digest} is ${size} bytes, expected ${expected.size}`,
        );
      }
      if (expected.digest !== undefined && expected.digest !== digest) {
        throw new DigestMismatchError(`content digest is ${digest}, expected ${expected.digest}`);
      }
      const target = this.#store.blobPath(digest);
      await mkdir(dirname(target), { recursive: true });
      await rename(this.#temp, target);
      await syncDir(dirname(target));
      return { digest, size };
    } catch (error) {
      await this.#cleanup();
      throw error;
    }
  }

  /** Drops everything written. */
  async abort(): Promise<void> {
    this.#done = true;
    await this.#cleanup();
  }

  async #cleanup(): Promise<void> {
    if (this.#handle !== undefined) await this.#handle.close().catch(() => undefined);
    this.#handle = undefined;
    await rm(this.#temp, { force: true });
  }
}

/** Options of {@link ContentStore.gc}. */
export interface GcOptions {
  /** Digests to keep, with everything their manifests and indexes reference. */
  readonly roots: Iterable<Digest>;
  /** Blobs written within this many ms are kept even when unreferenced (uploads in progress). Default 1 h. */
  readonly graceMs?: number;
}

/** What {@link ContentStore.gc} removed. */
export interface GcResult {
  readonly removed: Digest[];
  readonly freedBytes: number;
}

/** A content-addressed blob store on the local filesystem. */
export class ContentStore {
  /** The store's directory. */
  readonly root: string;

  private constructor(root: string) {
    this.root = root;
  }

  /**
   * Opens (creating if needed) a store at `root` and removes temp files a crash left behind.
   * Several processes may share a store, so only temp files untouched for STALE_TEMP_MS go.
   */
  static async open(root: string): Promise<ContentStore> {
    const store = new ContentStore(root);
    await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
    await mkdir(join(root, 'ingest'), { recursive: true });
    await mkdir(join(root, 'refs'), { recursive: true });
    await store.removeStaleTemps();
    return store;
  }

  /** Removes temp files of writes that have not progressed for `olderThanMs` (a crashed writer's). */
  async removeStaleTemps(olderThanMs = STALE_TEMP_MS): Promise<number> {
    let removed = 0;
    const cutoff = Date.now() - olderThanMs;
    for (const name of await readdir(this.ingestDir)) {
      if (!name.endsWith('.tmp')) continue;
      const path = join(this.ingestDir, name);
      try {
        if ((await stat(path)).mtimeMs > cutoff) continue;
        await rm(path, { force: true });
        removed++;
      } catch {
        // finished or removed concurrently
      }
    }
    return removed;
  }

  /** Path of a blob's file (which may not exist). */
  blobPath(digest: Digest): string {
    return join(this.root, 'blobs', 'sha256', hexOf(parseDigest(digest)));
  }

  /** Directory for in-progress writes (temp files ending in `.tmp` are removed at open). */
  get ingestDir(): string {
    return join(this.root, 'ingest');
  }

  /** Size of a stored blob, or undefined when absent. */
  async stat(digest: Digest): Promise<StoredBlob | undefined> {
    try {
      const s = await stat(this.blobPath(digest));
      return { digest, size: s.size };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** Whether a blob is stored. */
  async has(digest: Digest): Promise<boolean> {
    return (await this.stat(digest)) !== undefined;
  }

  /** Starts writing a blob. */
  writer(): BlobWriter {
    return new BlobWriter(this, join(this.ingestDir, `${randomUUID()}.tmp`));
  }

  /** Stores bytes (verifying them when `expected` is given). */
  async put(data: Uint8Array | string, expected: Expectation = {}): Promise<StoredBlob> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const digest = digestOf(bytes);
    if (expected.digest !== undefined && expected.digest !== digest) {
      throw new DigestMismatchError(`content digest is ${digest}, expected ${expected.digest}`);
    }
    if (expected.size !== undefined && expected.size !== bytes.length) {
      throw new DigestMismatchError(`blob ${digest} is ${bytes.length} bytes, expected ${expected.size}`);
    }
    const existing = await this.stat(digest);
    if (existing !== undefined) return existing;
    const writer = this.writer();
    await writer.write(bytes);
    return writer.commit({ digest });
  }

  /** Stores a stream, verifying it while it streams; on mismatch nothing is kept. */
  async putStream(source: AsyncIterable<Uint8Array>, expected: Expectation = {}): Promise<StoredBlob> {
    const writer = this.writer();
    try {
      for await (const chunk of source) {
        await writer.write(chunk);
        if (expected.size !== undefined && writer.size > expected.size) {
          throw new DigestMismatchError(
            `blob ${expected.digest ?? ''} is longer than the ${expected.size} bytes announced`.replace(
              '  ',
              ' ',
            ),
          );
        }
      }
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return writer.commit(expected);
  }

  /** Streams a blob, optionally a byte range (inclusive `end`). */
  async read(digest: Digest, range?: { start: number; end?: number }): Promise<ReadStream> {
    const path = this.blobPath(digest);
    if ((await this.stat(digest)) === undefined)
      throw new NotFoundError(`blob ${digest} is not in the store`);
    return createReadStream(
      path,
      range === undefined
        ? {}
        : { start: range.start, ...(range.end !== undefined ? { end: range.end } : {}) },
    );
  }

  /** A whole blob in memory (for manifests and configs). */
  async readBytes(digest: Digest): Promise<Buffer> {
    try {
      return await readFile(this.blobPath(digest));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError(`blob ${digest} is not in the store`);
      }
      throw error;
    }
  }

  /** A JSON blob, parsed. */
  async readJson<T>(digest: Digest): Promise<T> {
    const bytes = await this.readBytes(digest);
    try {
      return JSON.parse(bytes.toString('utf8')) as T;
    } catch (error) {
      throw new ConflictError(`blob ${digest} is not valid JSON: ${(error as Error).message}`);
    }
  }

  /** Removes a blob (no error when absent). */
  async delete(digest: Digest): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
  }

  /** Every stored blob. */
  async *list(): AsyncGenerator<StoredBlob & { mtimeMs: number }> {
    const dir = join(this.root, 'blobs', 'sha256');
    for (const name of await readdir(dir)) {
      const digest = `sha256:${name}`;
      if (!isDigest(digest)) continue;
      try {
        const s = await stat(join(dir, name));
        yield { digest, size: s.size, mtimeMs: s.mtimeMs };
      } catch {
        // removed concurrently
      }
    }
  }

  /** Blob count and bytes. */
  async usage(): Promise<{ blobs: number; bytes: number }> {
    let blobs = 0;
    let bytes = 0;
    for await (const b of this.list()) {
      blobs++;
      bytes += b.size;
    }
    return { blobs, bytes };
  }

  #refPath(key: string): string {
    return join(this.root, 'refs', ...checkRefKey(key).split('/'));
  }

  /** Points a named ref (`a/b/c`) at a digest, atomically. */
  async setRef(key: string, digest: Digest): Promise<void> {
    await writeFileAtomic(this.#refPath(key), parseDigest(digest));
  }

  /** The digest a ref points at, or undefined. */
  async getRef(key: string): Promise<Digest | undefined> {
    try {
      const text = (await readFile(this.#refPath(key), 'utf8')).trim();
      return isDigest(text) ? text : undefined;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined;
      throw error;
    }
  }

  /** Removes a ref (no error when absent). */
  async deleteRef(key: string): Promise<void> {
    try {
      await unlink(this.#refPath(key));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EISDIR') throw error;
    }
  }

  /** Names of the refs directly under `prefix` (files only), sorted. */
  async listRefs(prefix: string): Promise<string[]> {
    try {
      const entries = await readdir(this.#refPath(prefix), { withFileTypes: true });
      return entries
        .filter((e) => e.isFile() && !e.name.endsWith('.tmp'))
        .map((e) => e.name)
        .sort();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw error;
    }
  }

  /** Sub-prefixes directly under `prefix` (directories), sorted; '' lists the top level. */
  async listRefPrefixes(prefix: string): Promise<string[]> {
    const dir = prefix === '' ? join(this.root, 'refs') : this.#refPath(prefix);
    try {
      const entries = await readdir(dir, { withFileTypes: true });
      return entries
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw error;
    }
  }

  /** Every digest reachable from `roots` through manifests and indexes (including the roots). */
  async reachable(roots: Iterable<Digest>): Promise<Set<Digest>> {
    const seen = new Set<Digest>();
    const stack = [...roots];
    while (stack.length > 0) {
      const digest = stack.pop()!;
      if (seen.has(digest)) continue;
      seen.add(digest);
      const info = await this.stat(digest);
      // Only small blobs can be manifests; never parse layers.
      if (info === undefined || info.size > 4 * 1024 * 1024) continue;
      let doc: unknown;
      try {
        doc = JSON.parse((await this.readBytes(digest)).toString('utf8'));
      } catch {
        continue;
      }
      if (typeof doc !== 'object' || doc === null) continue;
      const d = doc as {
        config?: { digest?: unknown };
        layers?: unknown;
        manifests?: unknown;
        subject?: { digest?: unknown };
      };
      const children: unknown[] = [d.config?.digest, d.subject?.digest];
      for (const list of [d.layers, d.manifests]) {
        if (Array.isArray(list))
          for (const item of list) children.push((item as { digest?: unknown } | null)?.digest);
      }
      for (const child of children) if (isDigest(child) && !seen.has(child)) stack.push(child);
    }
    return seen;
  }

  /** Removes blobs that no root reaches and that are older than the grace period. */
  async gc(options: GcOptions): Promise<GcResult> {
    const keep = await this.reachable(options.roots);
    const cutoff = Date.now() - (options.graceMs ?? 3_600_000);
    const removed: Digest[] = [];
    let freedBytes = 0;
    for await (const blob of this.list()) {
      if (keep.has(blob.digest) || blob.mtimeMs > cutoff) continue;
      await this.delete(blob.digest);
      removed.push(blob.digest);
      freedBytes += blob.size;
    }
    return { removed, freedBytes };
  }
}
