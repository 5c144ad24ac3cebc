/**
 * A deterministic tar writer for reproducible layers: POSIX ustar headers, PAX extended headers only
 * when a path, link target or size does not fit ustar, uid/gid 0, empty user and group names, one
 * fixed mtime and no atime/ctime. The same entries always give the same bytes. Files on disk are
 * streamed in chunks, never read whole.
 */
import { open } from 'node:fs/promises';
import { InputError, describeValue } from '@aiedge/protocol';

/** One entry of a tar archive to write. */
export type TarEntry = {
  /** Relative, `/`-separated path: no leading `/`, no trailing `/` (also for directories), no `.`/`..`. */
  path: string;
  /** What the entry is. */
  type: 'file' | 'dir' | 'symlink';
  /** Permission bits, e.g. `0o755` (at most `0o7777`). */
  mode: number;
  /** Target of a symlink (required for symlinks, forbidden otherwise). */
  linkname?: string;
  /** A file's content: bytes, or a file on disk streamed in chunks that must be exactly `size` bytes. */
  content?: Uint8Array | { file: string; size: number };
};

/** Options of {@link tarStream}. */
export interface TarStreamOptions {
  /** Modification time of every entry, in seconds since the epoch. Default 0. */
  readonly mtime?: number;
}

const BLOCK = 512;
/** Chunks handed out are batched up to this size (large file chunks go out as they are). */
const BATCH_BYTES = 64 * 1024;
/** Files on disk are read in chunks of this size. */
const READ_CHUNK_BYTES = 1024 * 1024;
/** The largest value of a 12-byte octal field (11 digits): sizes and mtimes. */
const MAX_OCTAL_11 = 0o77777777777;
const NAME_BYTES = 100;
const PREFIX_BYTES = 155;
const TYPEFLAG = { file: '0', symlink: '2', dir: '5', pax: 'x' } as const;
const ENTRY_TYPES: ReadonlySet<string> = new Set(['file', 'dir', 'symlink']);

/**
 * Writes a tar archive of `entries`, in the order given (see {@link sortEntries}), ending with two
 * zero blocks. Throws InputError naming the entry for invalid or duplicate paths and for files whose
 * size on disk differs from the announced `size`.
 */
export async function* tarStream(
  entries: Iterable<TarEntry> | AsyncIterable<TarEntry>,
  options: TarStreamOptions = {},
): AsyncGenerator<Uint8Array> {
  const mtime = options.mtime ?? 0;
  if (!Number.isSafeInteger(mtime) || mtime < 0 || mtime > MAX_OCTAL_11) {
    throw new InputError(
      `tar mtime is ${describeValue(mtime)}, expected whole seconds in 0..${MAX_OCTAL_11}`,
    );
  }
  const seen = new Set<string>();
  const batch = new Batcher();
  for await (const entry of entries) {
    checkEntry(entry, seen);
    const size = contentSize(entry);
    yield* batch.add(entryHeaders(entry, size, mtime));
    const content = entry.content;
    if (content instanceof Uint8Array) {
      yield* batch.add(content);
    } else if (content !== undefined) {
      for await (const chunk of readExactly(entry.path, content.file, content.size)) yield* batch.add(chunk);
    }
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (padding > 0) yield* batch.add(new Uint8Array(padding));
  }
  yield* batch.add(new Uint8Array(2 * BLOCK));
  yield* batch.flush();
}

/**
 * Entries in archive order: parents before children, siblings in byte-wise (UTF-8) order of their
 * names, each directory's subtree contiguous. Returns a new array.
 */
export function sortEntries(entries: TarEntry[]): TarEntry[] {
  const keyed = entries.map((entry) => ({
    entry,
    key: Buffer.from(entry.path.replaceAll('/', '\0'), 'utf8'),
  }));
  keyed.sort((a, b) => Buffer.compare(a.key, b.key));
  return keyed.map((k) => k.entry);
}

/**
 * `entries` plus a directory entry (mode `dirMode`) for every missing parent directory, each added
 * right before the first entry that needs it. Throws InputError when a parent is not a directory.
 */
export function withParents(entries: TarEntry[], dirMode = 0o755): TarEntry[] {
  checkMode(dirMode, 'withParents dirMode');
  const types = new Map<string, TarEntry['type']>();
  for (const entry of entries) {
    checkPath(entry.path);
    types.set(entry.path, entry.type);
  }
  const out: TarEntry[] = [];
  for (const entry of entries) {
    const segments = entry.path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join('/');
      const type = types.get(parent);
      if (type === undefined) {
        types.set(parent, 'dir');
        out.push({ path: parent, type: 'dir', mode: dirMode });
      } else if (type !== 'dir') {
        throw new InputError(
          `tar entry ${describeValue(entry.path, 200)} has parent ${describeValue(parent, 200)}, which is a ${type}`,
        );
      }
    }
    out.push(entry);
  }
  return out;
}

function fail(path: unknown, reason: string): never {
  throw new InputError(`tar entry ${describeValue(path, 200)} ${reason}`);
}

function checkPath(path: unknown): asserts path is string {
  if (typeof path !== 'string' || path === '') fail(path, 'has no path');
  if (path.includes('\0')) fail(path, 'has a NUL byte in its path');
  if (path.startsWith('/')) fail(path, 'has an absolute path');
  for (const segment of path.split('/')) {
    if (segment === '') fail(path, 'has an empty path segment (leading, trailing or double "/")');
    if (segment === '.' || segment === '..') fail(path, `has a "${segment}" path segment`);
  }
}

function checkMode(mode: unknown, what: string): void {
  if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new InputError(`${what} is ${describeValue(mode)}, expected permission bits in 0..0o7777`);
  }
}

function checkEntry(entry: TarEntry, seen: Set<string>): void {
  const path: unknown = (entry as Partial<TarEntry> | null)?.path;
  checkPath(path);
  if (!ENTRY_TYPES.has(entry.type))
    fail(path, `has type ${describeValue(entry.type)}, expected file, dir or symlink`);
  checkMode(entry.mode, `tar entry ${describeValue(path, 200)} mode`);
  if (entry.type === 'symlink') {
    if (typeof entry.linkname !== 'string' || entry.linkname === '')
      fail(path, 'is a symlink without a linkname');
    if (entry.linkname.includes('\0')) fail(path, 'has a NUL byte in its linkname');
  } else if (entry.linkname !== undefined) {
    fail(path, `is a ${entry.type} with a linkname`);
  }
  const content: unknown = entry.content;
  if (entry.type !== 'file') {
    if (content !== undefined) fail(path, `is a ${entry.type} with content`);
  } else if (content !== undefined && !(content instanceof Uint8Array)) {
    const c = content as { file?: unknown; size?: unknown } | null;
    if (typeof c?.file !== 'string' || c.file === '') fail(path, 'has content without a file to read');
    if (typeof c.size !== 'number' || !Number.isSafeInteger(c.size) || c.size < 0) {
      fail(path, `has content size ${describeValue(c.size)}, expected a byte count`);
    }
  }
  if (seen.has(path)) fail(path, 'appears twice');
  seen.add(path);
}

function contentSize(entry: TarEntry): number {
  const content = entry.content;
  if (content === undefined) return 0;
  return content instanceof Uint8Array ? content.length : content.size;
}

/** Reads `file` in chunks, checking it is exactly `size` bytes. */
async function* readExactly(path: string, file: string, size: number): AsyncGenerator<Uint8Array> {
  const handle = await open(file, 'r');
  try {
    let position = 0;
    while (position < size) {
      const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, size - position));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) {
        fail(
          path,
          `reads ${describeValue(file, 200)}, which has ${position} bytes, not the ${size} announced`,
        );
      }
      position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
    const { bytesRead } = await handle.read(Buffer.alloc(1), 0, 1, position);
    if (bytesRead !== 0) {
      fail(path, `reads ${describeValue(file, 200)}, which is longer than the ${size} bytes announced`);
    }
  } finally {
    await handle.close();
  }
}

/** The header blocks of an entry: a PAX extended header when needed, then the ustar header. */
function entryHeaders(entry: TarEntry, size: number, mtime: number): Uint8Array {
  const name = entry.type === 'dir' ? `${entry.path}/` : entry.path;
  const records: Array<[string, string]> = [];
  const split = ustarSplit(name);
  if (entry.linkname !== undefined && !fitsUstar(entry.linkname, NAME_BYTES)) {
    records.push(['linkpath', entry.linkname]);
  }
  if (split === undefined) records.push(['path', name]);
  if (size > MAX_OCTAL_11) records.push(['size', String(size)]);

  const header = ustarHeader({
    name: split?.name ?? asciiFallback(name, NAME_BYTES),
    prefix: split?.prefix ?? '',
    mode: entry.mode,
    size: size > MAX_OCTAL_11 ? 0 : size,
    mtime,
    typeflag: TYPEFLAG[entry.type],
    linkname: entry.linkname === undefined ? '' : asciiFallback(entry.linkname, NAME_BYTES),
  });
  if (records.length === 0) return header;

  const body = Buffer.from(records.map(([key, value]) => paxRecord(key, value)).join(''), 'utf8');
  const base = name.replace(/\/$/, '').split('/').pop() ?? '';
  const paxHeader = ustarHeader({
    name: asciiFallback(`PaxHeaders/${base}`, NAME_BYTES),
    prefix: '',
    mode: 0o644,
    size: body.length,
    mtime,
    typeflag: TYPEFLAG.pax,
    linkname: '',
  });
  const padded = Buffer.alloc(Math.ceil(body.length / BLOCK) * BLOCK);
  body.copy(padded);
  return Buffer.concat([paxHeader, padded, header]);
}

/** One PAX record: `<length> <key>=<value>\n`, where length counts the whole record. */
function paxRecord(key: string, value: string): string {
  const rest = Buffer.byteLength(` ${key}=${value}\n`, 'utf8');
  let length = rest + 1;
  while (length !== rest + String(length).length) length = rest + String(length).length;
  return `${length} ${key}=${value}\n`;
}

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x01-\x7f]*$/;

function fitsUstar(value: string, bytes: number): boolean {
  return ASCII.test(value) && value.length <= bytes;
}

/** Splits an ASCII path into ustar `prefix` and `name`, or undefined when it cannot fit. */
function ustarSplit(path: string): { prefix: string; name: string } | undefined {
  if (!ASCII.test(path)) return undefined;
  if (path.length <= NAME_BYTES) return { prefix: '', name: path };
  const cut = path.lastIndexOf('/', PREFIX_BYTES);
  if (cut <= 0) return undefined;
  const name = path.slice(cut + 1);
  if (name === '' || name.length > NAME_BYTES) return undefined;
  return { prefix: path.slice(0, cut), name };
}

/** The ustar field value when the real one travels in a PAX record: ASCII, truncated. */
function asciiFallback(value: string, bytes: number): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[^\x01-\x7f]/g, '_').slice(0, bytes);
}

interface UstarFields {
  readonly name: string;
  readonly prefix: string;
  readonly mode: number;
  readonly size: number;
  readonly mtime: number;
  readonly typeflag: string;
  readonly linkname: string;
}

function ustarHeader(fields: UstarFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(fields.name, 0, NAME_BYTES, 'ascii');
  writeOctal(block, 100, 8, fields.mode);
  writeOctal(block, 108, 8, 0); // uid
  writeOctal(block, 116, 8, 0); // gid
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, fields.mtime);
  block.write(fields.typeflag, 156, 1, 'ascii');
  block.write(fields.linkname, 157, NAME_BYTES, 'ascii');
  block.write('ustar\u000000', 257, 8, 'ascii');
  // uname (265) and gname (297) stay empty.
  writeOctal(block, 329, 8, 0); // devmajor
  writeOctal(block, 337, 8, 0); // devminor
  block.write(fields.prefix, 345, PREFIX_BYTES, 'ascii');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii');
  return block;
}

function writeOctal(block: Buffer, offset: number, width: number, value: number): void {
  const digits = value.toString(8).padStart(width - 1, '0');
  if (digits.length > width - 1) throw new Error(`tar: ${value} does not fit a ${width}-byte octal field`);
  block.write(`${digits}\u0000`, offset, width, 'ascii');
}

/** Gathers small pieces into chunks of about {@link BATCH_BYTES}. */
class Batcher {
  #pieces: Uint8Array[] = [];
  #size = 0;

  *add(piece: Uint8Array): Generator<Uint8Array> {
    if (piece.length >= BATCH_BYTES) {
      yield* this.flush();
      yield piece;
      return;
    }
    this.#pieces.push(piece);
    this.#size += piece.length;
    if (this.#size >= BATCH_BYTES) yield* this.flush();
  }

  *flush(): Generator<Uint8Array> {
    if (this.#size === 0) return;
    const chunk = this.#pieces.length === 1 ? this.#pieces[0]! : Buffer.concat(this.#pieces, this.#size);
    this.#pieces = [];
    this.#size = 0;
    yield chunk;
  }
}
