/**
 * Safe extraction of image layers. node-tar's Parser reads the archive; this file decides what
 * reaches the disk and writes it itself, refusing anything that could escape the destination or
 * create special files:
 *
 * - paths: no absolute paths, no `..` segments, nothing that resolves outside `dest`;
 * - symlinks: the target, resolved lexically from the link's directory (absolute targets from
 *   `dest` as the root of a container filesystem), must stay inside `dest`; nothing is ever written
 *   through a symlink (parents are checked with lstat, files are opened with O_NOFOLLOW | O_EXCL);
 * - hard links: only to an existing regular file inside `dest`, reached without symlinks;
 * - no devices, FIFOs or setuid/setgid bits; file modes are masked to 0o777;
 * - limits on file bytes and on entries, checked against each header before its body is read;
 * - OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`) apply to what earlier layers left in `dest`, so
 *   unpacking the layers of an image in order into one directory gives its root filesystem.
 *
 * On error, unpacking stops at the offending entry: what was written before stays in `dest`
 * (directory modes of this layer are not applied), and nothing is written outside it. Reading stops
 * at the end-of-archive marker; the rest of the source is not consumed. Written for POSIX systems.
 * Absolute symlinks inside `dest` point at the host's paths when followed from the host: use the
 * result as a container root filesystem, not as a host directory to follow links in.
 */
import { constants, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, readdir, realpath, rm, symlink, unlink } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { InputError, describeValue, type AiEdgeErrorOptions } from '@aiedge/protocol';
import { Parser, type ReadEntry } from 'tar';

/** A layer entry (or the archive itself) that unpacking refuses: names the entry and the reason. */
export class UnsafeArchiveError extends InputError {
  /** The entry's path as written in the archive; undefined when the archive as a whole is at fault. */
  readonly entryPath: string | undefined;

  constructor(entryPath: string | undefined, reason: string, options: AiEdgeErrorOptions = {}) {
    super(
      entryPath === undefined
        ? `layer archive ${reason}`
        : `layer entry ${describeValue(entryPath, 300)} ${reason}`,
      options,
    );
    this.entryPath = entryPath;
  }
}

/** Options of {@link unpackLayer}. */
export interface UnpackLayerOptions {
  /** Whether the source is gzip-compressed. Default: detected from its first bytes. */
  readonly gzip?: boolean;
  /** Total bytes of file content allowed in this layer (checked against each header). */
  readonly maxBytes: number;
  /** Entries allowed in this layer (PAX extended headers not counted). Default 1,000,000. */
  readonly maxEntries?: number;
}

/** What {@link unpackLayer} wrote. */
export interface UnpackResult {
  /** Regular files, symlinks and hard links written. */
  readonly files: number;
  /** Bytes of file content written. */
  readonly bytes: number;
}

const DEFAULT_MAX_ENTRIES = 1_000_000;
/** Decompressed input is handed to the parser in slices of this size, so limits act early. */
const SLICE_BYTES = 64 * 1024;
/**
 * Tar bytes that are not entry content (headers, padding, PAX records) allowed: a base plus a
 * per-entry allowance, so a stream of extended headers cannot keep decompression going forever.
 */
const OVERHEAD_BASE_BYTES = 16 * 1024 * 1024;
const OVERHEAD_PER_ENTRY_BYTES = 8 * 1024;
const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';
const WHITEOUT_OPAQUE = '.wh..wh..opq';
const OPTION_KEYS: ReadonlySet<string> = new Set(['gzip', 'maxBytes', 'maxEntries']);
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const O_DIRECTORY = constants.O_DIRECTORY ?? 0;

type Kind = 'file' | 'dir' | 'symlink' | 'link';
const STOPPED = Symbol('stopped');

/**
 * Unpacks one layer (a tar stream, gzip-compressed or not) into `dest`, on top of what earlier
 * layers left there. Throws UnsafeArchiveError for anything the policy above refuses or for a
 * corrupt archive; stops at the first problem.
 */
export async function unpackLayer(
  source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream,
  dest: string,
  options: UnpackLayerOptions,
): Promise<UnpackResult> {
  const resolved = checkOptions(options);
  await mkdir(dest, { recursive: true });
  const root = await realpath(dest);
  const unpacker = new Unpacker(root, resolved.maxBytes, resolved.maxEntries);
  return unpacker.run(tarBytes(source, resolved.gzip));
}

function checkOptions(options: UnpackLayerOptions): {
  gzip: boolean | undefined;
  maxBytes: number;
  maxEntries: number;
} {
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw new InputError(`unpackLayer option ${describeValue(key)} is unknown`);
  }
  const { gzip, maxBytes, maxEntries = DEFAULT_MAX_ENTRIES } = options;
  if (gzip !== undefined && typeof gzip !== 'boolean') {
    throw new InputError(`unpackLayer gzip is ${describeValue(gzip)}, expected a boolean`);
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new InputError(`unpackLayer maxBytes is ${describeValue(maxBytes)}, expected a byte count`);
  }
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new InputError(
      `unpackLayer maxEntries is ${describeValue(maxEntries)}, expected a positive integer`,
    );
  }
  return { gzip, maxBytes, maxEntries };
}

/** The source's bytes as Buffers. */
async function* bytesOf(source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream): AsyncGenerator<Buffer> {
  for await (const chunk of source as AsyncIterable<unknown>) {
    if (!(chunk instanceof Uint8Array)) {
      throw new InputError(
        `unpackLayer source yielded a ${typeof chunk}, expected bytes (read the stream without an encoding)`,
      );
    }
    yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}

/** The uncompressed tar bytes of `source`, gunzipping when asked or when it starts with gzip magic. */
async function* tarBytes(
  source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream,
  gzip: boolean | undefined,
): AsyncGenerator<Buffer> {
  const input = bytesOf(source);
  const head: Buffer[] = [];
  let headBytes = 0;
  let ended = false;
  while (headBytes < 2) {
    const next = await input.next();
    if (next.done === true) {
      ended = true;
      break;
    }
    head.push(next.value);
    headBytes += next.value.length;
  }
  const first = Buffer.concat(head);
  const looksGzip = first[0] === 0x1f && first[1] === 0x8b;
  if (gzip === false && looksGzip) {
    await input.return(undefined);
    throw new UnsafeArchiveError(undefined, 'is gzip-compressed, but gzip: false was given');
  }
  async function* all(): AsyncGenerator<Buffer> {
    try {
      if (first.length > 0) yield first;
      if (!ended) yield* input;
    } finally {
      await input.return(undefined);
    }
  }
  if (!(gzip ?? looksGzip)) {
    yield* all();
    return;
  }
  const gunzip = createGunzip();
  pipeline(Readable.from(all()), gunzip, () => undefined);
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) yield chunk;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('Z_')) {
      throw new UnsafeArchiveError(undefined, `is not valid gzip: ${(error as Error).message}`, {
        cause: error,
      });
    }
    throw error;
  }
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function kindOf(entry: ReadEntry): Kind {
  switch (entry.type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      return 'file';
    case 'Directory':
      return 'dir';
    case 'SymbolicLink':
      return 'symlink';
    case 'Link':
      return 'link';
    case 'CharacterDevice':
      throw new UnsafeArchiveError(entry.path, 'is a character device; devices are not allowed');
    case 'BlockDevice':
      throw new UnsafeArchiveError(entry.path, 'is a block device; devices are not allowed');
    case 'FIFO':
      throw new UnsafeArchiveError(entry.path, 'is a FIFO; FIFOs are not allowed');
    default:
      throw new UnsafeArchiveError(entry.path, `has the unsupported entry type ${entry.type}`);
  }
}

/** The path's segments below the root (`.` and empty segments dropped), or an error. */
function segmentsOf(path: string): string[] {
  if (path.includes('\0')) throw new UnsafeArchiveError(path, 'has a NUL byte in its path');
  if (path.startsWith('/')) throw new UnsafeArchiveError(path, 'has an absolute path');
  if (process.platform === 'win32' && (path.includes('\\') || /^[A-Za-z]:/.test(path))) {
    throw new UnsafeArchiveError(path, 'has a Windows drive or separator in its path');
  }
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new UnsafeArchiveError(path, 'has a ".." path segment');
  return segments;
}

/** Writes one layer into `root`, entry by entry, in archive order. */
class Unpacker {
  readonly #root: string;
  readonly #maxBytes: number;
  readonly #maxEntries: number;
  #files = 0;
  #bytes = 0;
  #entries = 0;
  /** Entries the parser handed out, and the body bytes they announced. */
  #emitted = 0;
  #announced = 0;
  /** Tar bytes given to the parser. */
  #fed = 0;
  #lastPath: string | undefined;
  #sawEof = false;
  #failure: Error | undefined;
  #wake: (() => void) | undefined;
  /** Settles with the first failure, so a pending read of an entry's body can give up. */
  readonly #stopped: Promise<typeof STOPPED>;
  #stop: () => void = () => undefined;
  #chain: Promise<void> = Promise.resolve();
  /** Paths this layer wrote, with their ancestors: whiteouts never hide them. */
  readonly #layerPaths = new Set<string>();
  /** Paths known to be real directories (not symlinks) right now. */
  readonly #dirs = new Set<string>();
  /** Directory modes, applied once the layer is complete (so read-only directories can be filled). */
  readonly #dirModes = new Map<string, number>();

  constructor(root: string, maxBytes: number, maxEntries: number) {
    this.#root = root;
    this.#maxBytes = maxBytes;
    this.#maxEntries = maxEntries;
    this.#stopped = new Promise((resolve) => {
      this.#stop = () => resolve(STOPPED);
    });
  }

  async run(tar: AsyncIterable<Buffer>): Promise<UnpackResult> {
    // zstd off: compression is decided above. (The parser still sniffs gzip magic; that is refused.)
    const parser = new Parser({ zstd: false, brotli: false });
    parser.on('entry', (entry: ReadEntry) => this.#onEntry(entry));
    parser.on('ignoredEntry', (entry: ReadEntry) => {
      this.#fail(
        new UnsafeArchiveError(
          entry.path,
          entry.meta
            ? `is an extended header of ${entry.size} bytes, over node-tar's limit`
            : `has the unsupported entry type ${entry.type}`,
        ),
      );
    });
    parser.on('eof', () => {
      this.#sawEof = true;
    });
    parser.on('warn', (code: string, message: string, data: { entry?: ReadEntry }) =>
      this.#onWarn(code, message, data),
    );
    parser.on('error', (error: Error) => {
      this.#fail(new UnsafeArchiveError(undefined, `is corrupt: ${error.message}`, { cause: error }));
    });
    let ended = false;
    parser.on('end', () => {
      ended = true;
      this.#wake?.();
    });

    let head = Buffer.alloc(0);
    try {
      pump: for await (const chunk of tar) {
        for (let at = 0; at < chunk.length; at += SLICE_BYTES) {
          if (this.#failure !== undefined || this.#sawEof) break pump;
          const slice = chunk.subarray(at, at + SLICE_BYTES);
          if (head.length < 4) {
            head = Buffer.concat([head, slice]).subarray(0, 4);
            this.#checkMagic(head);
          }
          this.#fed += slice.length;
          this.#checkOverhead();
          if (this.#failure !== undefined) break pump;
          if (!parser.write(slice)) await this.#until(parser, 'drain');
        }
      }
    } catch (error) {
      // The source or gunzip failed: stop the entry being written, then report.
      this.#fail(error as Error);
    }
    if (this.#failure === undefined) {
      parser.end();
      while (!ended && this.#failure === undefined) await this.#until(parser, 'end');
    }
    await this.#chain;
    if (this.#failure !== undefined) throw this.#failure;
    await this.#applyDirModes();
    return { files: this.#files, bytes: this.#bytes };
  }

  #onEntry(entry: ReadEntry): void {
    entry.on('error', () => undefined);
    if (this.#failure !== undefined) {
      entry.resume();
      return;
    }
    this.#emitted++;
    this.#announced += entry.size;
    this.#lastPath = entry.path;
    this.#chain = this.#chain
      .then(async () => {
        if (this.#failure !== undefined) {
          entry.resume();
          return;
        }
        try {
          await this.#entry(entry);
        } finally {
          // Entries without a body (or whose body was not read) must flow for the parser to go on.
          entry.resume();
        }
      })
      .catch((error: unknown) => this.#fail(error as Error));
  }

  #onWarn(code: string, message: string, data: { entry?: ReadEntry }): void {
    if (code === 'TAR_BAD_ARCHIVE' && /unrecognized archive format/i.test(message)) {
      // Two zero blocks and nothing else is a valid, empty layer.
      if (this.#sawEof && this.#emitted === 0) return;
      this.#fail(new UnsafeArchiveError(undefined, 'is not a tar archive'));
      return;
    }
    const path = data.entry?.path;
    if (path !== undefined) {
      this.#fail(new UnsafeArchiveError(path, `is corrupt: ${message}`));
    } else {
      const after =
        this.#lastPath === undefined ? 'at its start' : `after entry ${describeValue(this.#lastPath, 300)}`;
      this.#fail(new UnsafeArchiveError(undefined, `is corrupt ${after}: ${message}`));
    }
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    this.#wake?.();
    this.#stop();
  }

  /** Resolves on `event` or on failure. */
  #until(parser: Parser, event: string): Promise<void> {
    return new Promise((resolve) => {
      if (this.#failure !== undefined) {
        resolve();
        return;
      }
      const done = (): void => {
        parser.off(event, done);
        this.#wake = undefined;
        resolve();
      };
      parser.on(event, done);
      this.#wake = done;
    });
  }

  #checkMagic(head: Buffer): void {
    // The parser would decompress these on its own, bypassing the limits here.
    if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
      this.#fail(new UnsafeArchiveError(undefined, 'is gzip-compressed twice'));
    } else if (head.length >= 4 && head.readUInt32BE(0) === 0x28b52ffd) {
      this.#fail(new UnsafeArchiveError(undefined, 'is zstd-compressed, which is not supported'));
    }
  }

  #checkOverhead(): void {
    const overhead = this.#fed - this.#announced;
    const allowed = OVERHEAD_BASE_BYTES + OVERHEAD_PER_ENTRY_BYTES * this.#emitted;
    if (overhead > allowed) {
      const reason = `has ${overhead} bytes of tar headers, padding and extended headers for ${this.#emitted} entries, over the ${allowed} allowed`;
      this.#fail(
        this.#lastPath === undefined
          ? new UnsafeArchiveError(undefined, reason)
          : new UnsafeArchiveError(
              this.#lastPath,
              `is followed by more tar metadata than allowed (archive ${reason})`,
            ),
      );
    }
  }

  #abs(path: string, segments: readonly string[]): string {
    const abs = join(this.#root, ...segments);
    if (abs !== this.#root && !abs.startsWith(this.#root + sep)) {
      throw new UnsafeArchiveError(path, 'resolves outside the destination');
    }
    return abs;
  }

  async #entry(entry: ReadEntry): Promise<void> {
    const path = entry.path;
    this.#entries++;
    if (this.#entries > this.#maxEntries) {
      throw new UnsafeArchiveError(path, `is past the limit of ${this.#maxEntries} entries (maxEntries)`);
    }
    const kind = kindOf(entry);
    const segments = segmentsOf(path);
    const mode = entry.mode ?? (kind === 'dir' ? 0o755 : 0o644);
    if ((mode & 0o6000) !== 0) {
      throw new UnsafeArchiveError(path, `has setuid/setgid bits (mode 0o${mode.toString(8)})`);
    }
    const size = entry.size;
    if (size > this.#maxBytes - this.#bytes) {
      throw new UnsafeArchiveError(
        path,
        `is ${size} bytes, over the limit: maxBytes is ${this.#maxBytes} and ${this.#bytes} are already unpacked`,
      );
    }
    if (size > 0 && kind !== 'file')
      throw new UnsafeArchiveError(path, `is a ${kind} with a ${size}-byte body`);
    const base = segments.at(-1);
    if (base === undefined) {
      // The root itself (`./`): dest's own mode is left alone.
      if (kind !== 'dir') throw new UnsafeArchiveError(path, `names the root directory but is a ${kind}`);
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      if (size > 0) throw new UnsafeArchiveError(path, `is a whiteout with a ${size}-byte body`);
      await this.#whiteout(path, segments);
      return;
    }
    switch (kind) {
      case 'file':
        await this.#file(entry, segments, mode);
        break;
      case 'dir':
        await this.#dir(path, segments, mode);
        break;
      case 'symlink':
        await this.#symlink(path, segments, entry.linkpath ?? '');
        break;
      case 'link':
        await this.#hardlink(path, segments, entry.linkpath ?? '');
        break;
    }
  }

  async #file(entry: ReadEntry, segments: string[], mode: number): Promise<void> {
    const path = entry.path;
    const abs = await this.#place(path, segments, 'file');
    const handle = await open(
      abs,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW,
      0o600,
    );
    let received = 0;
    try {
      const body = entry[Symbol.asyncIterator]();
      for (;;) {
        const next = await Promise.race([body.next(), this.#stopped]);
        if (next === STOPPED) throw this.#failure ?? new Error('unpacking stopped');
        if (next.done === true) break;
        const chunk = next.value;
        received += chunk.length;
        let at = 0;
        while (at < chunk.length) {
          const { bytesWritten } = await handle.write(chunk, at, chunk.length - at);
          at += bytesWritten;
        }
      }
      if (received !== entry.size) {
        throw new UnsafeArchiveError(
          path,
          `is truncated: ${received} of its ${entry.size} bytes are in the archive`,
        );
      }
      await handle.chmod(mode & 0o777);
    } finally {
      await handle.close();
    }
    this.#bytes += received;
    this.#files++;
  }

  async #dir(path: string, segments: string[], mode: number): Promise<void> {
    const rel = segments.join('/');
    const abs = await this.#place(path, segments, 'dir');
    if (!this.#dirs.has(rel)) {
      await mkdir(abs, { mode: 0o755 });
      this.#dirs.add(rel);
    }
    this.#dirModes.set(rel, mode & 0o777);
  }

  async #symlink(path: string, segments: string[], target: string): Promise<void> {
    if (target.includes('\0')) throw new UnsafeArchiveError(path, 'has a NUL byte in its symlink target');
    if (!target.startsWith('/')) {
      // Resolved lexically from the link's directory; absolute targets are inside the root by definition.
      const stack = segments.slice(0, -1);
      for (const segment of target.split('/')) {
        if (segment === '' || segment === '.') continue;
        if (segment !== '..') stack.push(segment);
        else if (stack.pop() === undefined) {
          throw new UnsafeArchiveError(
            path,
            `is a symlink to ${describeValue(target, 300)}, which points outside the destination`,
          );
        }
      }
    }
    const abs = await this.#place(path, segments, 'symlink');
    await symlink(target, abs);
    this.#files++;
  }

  async #hardlink(path: string, segments: string[], target: string): Promise<void> {
    const shown = describeValue(target, 300);
    if (target.includes('\0')) throw new UnsafeArchiveError(path, 'has a NUL byte in its hard link target');
    if (target.startsWith('/'))
      throw new UnsafeArchiveError(path, `is a hard link to the absolute path ${shown}`);
    const targetSegments = target.split('/').filter((s) => s !== '' && s !== '.');
    if (targetSegments.includes('..')) {
      throw new UnsafeArchiveError(path, `is a hard link to ${shown}, which has a ".." segment`);
    }
    if (targetSegments.length === 0)
      throw new UnsafeArchiveError(path, 'is a hard link to the root directory');
    if (targetSegments.join('/') === segments.join('/')) {
      throw new UnsafeArchiveError(path, 'is a hard link to itself');
    }
    const reachable = await this.#parents(path, targetSegments, false, `hard link target ${shown}`);
    const targetAbs = this.#abs(path, targetSegments);
    const stats = reachable ? await lstatOrUndefined(targetAbs) : undefined;
    if (stats === undefined) {
      throw new UnsafeArchiveError(
        path,
        `is a hard link to ${shown}, which does not exist in the destination`,
      );
    }
    if (!stats.isFile()) {
      throw new UnsafeArchiveError(path, `is a hard link to ${shown}, which is not a regular file`);
    }
    const abs = await this.#place(path, segments, 'link');
    await link(targetAbs, abs);
    this.#files++;
  }

  /**
   * Gets `segments` ready for a new entry of `kind`: parents checked (created when missing), the path
   * recorded as this layer's, whatever was there removed (an existing directory kept for a directory).
   * Returns the absolute path.
   */
  async #place(path: string, segments: string[], kind: Kind): Promise<string> {
    await this.#parents(path, segments, true, 'path');
    const rel = segments.join('/');
    const abs = this.#abs(path, segments);
    for (let i = segments.length; i > 0; i--) {
      const prefix = segments.slice(0, i).join('/');
      if (this.#layerPaths.has(prefix)) break;
      this.#layerPaths.add(prefix);
    }
    const stats = await lstatOrUndefined(abs);
    if (stats !== undefined) {
      if (kind === 'dir' && stats.isDirectory()) this.#dirs.add(rel);
      else await this.#remove(rel, abs, stats);
    }
    return abs;
  }

  /**
   * Checks that every parent of `segments` is a real directory, never a symlink; creates missing ones
   * when `create` (mode 0o755), else returns false at the first missing one.
   */
  async #parents(path: string, segments: string[], create: boolean, subject: string): Promise<boolean> {
    for (let i = 1; i < segments.length; i++) {
      const rel = segments.slice(0, i).join('/');
      if (this.#dirs.has(rel)) continue;
      const abs = this.#abs(path, segments.slice(0, i));
      const stats = await lstatOrUndefined(abs);
      if (stats === undefined) {
        if (!create) return false;
        await mkdir(abs, { mode: 0o755 });
        if (!this.#dirModes.has(rel)) this.#dirModes.set(rel, 0o755);
      } else if (stats.isSymbolicLink()) {
        throw new UnsafeArchiveError(
          path,
          `${subject} goes through the symlink ${describeValue(rel, 300)}; nothing is written through symlinks`,
        );
      } else if (!stats.isDirectory()) {
        throw new UnsafeArchiveError(
          path,
          `${subject} has a parent ${describeValue(rel, 300)} that is not a directory`,
        );
      }
      this.#dirs.add(rel);
    }
    return true;
  }

  /**
   * Removes a path (a directory with its contents, never following symlinks) and drops what is known
   * about the directories there, so no stale "is a real directory" answer survives it.
   */
  async #remove(rel: string, abs: string, stats: Stats): Promise<void> {
    if (!stats.isDirectory()) {
      await unlink(abs);
      return;
    }
    await rm(abs, { recursive: true, force: true });
    const below = `${rel}/`;
    for (const dir of this.#dirs) if (dir === rel || dir.startsWith(below)) this.#dirs.delete(dir);
    for (const dir of this.#dirModes.keys())
      if (dir === rel || dir.startsWith(below)) this.#dirModes.delete(dir);
  }

  /** `.wh.<name>` removes `<name>` from earlier layers; `.wh..wh..opq` empties the directory of them. */
  async #whiteout(path: string, segments: string[]): Promise<void> {
    const base = segments.at(-1) ?? '';
    const dir = segments.slice(0, -1);
    if (base === WHITEOUT_OPAQUE) {
      if (await this.#parents(path, segments, false, 'opaque whiteout')) await this.#clearOpaque(dir);
      return;
    }
    if (base.startsWith(WHITEOUT_META_PREFIX)) return; // other aufs metadata: nothing to do
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === '' || name === '.' || name === '..') {
      throw new UnsafeArchiveError(path, 'is a whiteout without a valid name');
    }
    const target = [...dir, name];
    const rel = target.join('/');
    if (!(await this.#parents(path, target, false, 'whiteout'))) return;
    if (this.#layerPaths.has(rel)) return; // whiteouts only hide what earlier layers wrote
    const abs = this.#abs(path, target);
    const stats = await lstatOrUndefined(abs);
    if (stats !== undefined) await this.#remove(rel, abs, stats);
  }

  /** Removes what earlier layers left under `dir`, keeping what this layer wrote. */
  async #clearOpaque(dir: string[]): Promise<void> {
    const abs = dir.length === 0 ? this.#root : join(this.#root, ...dir);
    let names: string[];
    try {
      names = await readdir(abs);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw error;
    }
    for (const name of names.sort()) {
      const child = [...dir, name];
      const rel = child.join('/');
      const childAbs = join(abs, name);
      const stats = await lstat(childAbs);
      if (!this.#layerPaths.has(rel)) await this.#remove(rel, childAbs, stats);
      else if (stats.isDirectory()) await this.#clearOpaque(child);
    }
  }

  /** Applies this layer's directory modes, deepest first, without following symlinks. */
  async #applyDirModes(): Promise<void> {
    const dirs = [...this.#dirModes].sort(([a], [b]) => b.split('/').length - a.split('/').length);
    for (const [rel, mode] of dirs) {
      const handle = await open(join(this.#root, rel), constants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      try {
        await handle.chmod(mode);
      } finally {
        await handle.close();
      }
    }
  }
}
