/**
 * unpackLayer against hand-crafted malicious archives (raw ustar headers written here, since our own
 * writer refuses bad input) and against real layers: every refusal names the entry and the reason,
 * and nothing outside the destination changes (a sentinel tree next to it is compared before and after).
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { InputError } from '@aiedge/protocol';
import { writeLayer } from './layer.js';
import { ContentStore } from './store.js';
import { tarStream, type TarEntry } from './tar.js';
import { UnsafeArchiveError, unpackLayer } from './unpack.js';

// ---------------------------------------------------------------------------------------------
// Crafting raw archives

interface Raw {
  readonly name: string;
  /** Typeflag character; default '0' (file). */
  readonly type?: string;
  readonly mode?: number;
  /** Size written in the header; defaults to the data's length (set it to lie). */
  readonly size?: number;
  readonly data?: Buffer | string;
  readonly linkname?: string;
  readonly prefix?: string;
  /** Break the header checksum. */
  readonly badChecksum?: boolean;
}

function octal(block: Buffer, offset: number, width: number, value: number): void {
  block.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'ascii');
}

/** One ustar header block with a computed checksum. */
function rawHeader(entry: Raw, dataLength: number): Buffer {
  const block = Buffer.alloc(512);
  block.write(entry.name, 0, 100, 'utf8');
  octal(block, 100, 8, entry.mode ?? (entry.type === '5' ? 0o755 : 0o644));
  octal(block, 108, 8, 0);
  octal(block, 116, 8, 0);
  octal(block, 124, 12, entry.size ?? dataLength);
  octal(block, 136, 12, 0);
  block.write(entry.type ?? '0', 156, 1, 'ascii');
  if (entry.linkname !== undefined) block.write(entry.linkname, 157, 100, 'utf8');
  block.write('ustar\u000000', 257, 8, 'ascii');
  if (entry.prefix !== undefined) block.write(entry.prefix, 345, 155, 'utf8');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  if (entry.badChecksum === true) sum += 1;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return block;
}

/** A tar archive of raw entries; `end: false` leaves off the two zero blocks. */
function craft(entries: readonly Raw[], options: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const data = typeof entry.data === 'string' ? Buffer.from(entry.data) : (entry.data ?? Buffer.alloc(0));
    parts.push(rawHeader(entry, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  if (options.end !== false) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A PAX extended header record `<len> key=value\n`. */
function paxRecord(key: string, value: string): string {
  const rest = Buffer.byteLength(` ${key}=${value}\n`);
  let length = rest + 1;
  while (length !== rest + String(length).length) length = rest + String(length).length;
  return `${length} ${key}=${value}\n`;
}

/** Yields `bytes` in uneven chunks, to cross header and body boundaries. */
async function* chunked(bytes: Buffer): AsyncGenerator<Uint8Array> {
  const sizes = [1, 700, 511, 4096, 100_000];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    yield new Uint8Array(bytes.subarray(at, at + size));
    at += size;
  }
}

async function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of tarStream(entries)) parts.push(chunk);
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// A destination next to a sentinel tree

let base = '';
let work = '';
let dest = '';
let sentinel = '';

/** Everything under `base` except the destination: type, mode, content or link target. */
async function snapshot(dir = base): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    if (path === dest) continue;
    const s = await lstat(path);
    const key = path.slice(base.length);
    if (s.isSymbolicLink()) out[key] = `link ${await readlink(path)}`;
    else if (s.isDirectory()) {
      out[key] = `dir ${(s.mode & 0o7777).toString(8)}`;
      Object.assign(out, await snapshot(path));
    } else out[key] = `file ${(s.mode & 0o7777).toString(8)} ${(await readFile(path)).toString('hex')}`;
  }
  return out;
}

before(async () => {
  base = await mkdtemp(join(tmpdir(), 'aiedge-unpack-'));
  work = join(base, 'work');
  dest = join(work, 'dest');
  sentinel = join(work, 'sentinel');
  await mkdir(join(sentinel, 'etc'), { recursive: true });
  await writeFile(join(sentinel, 'keep.txt'), 'keep');
  await writeFile(join(sentinel, 'etc', 'passwd'), 'root:x:0:0');
  await chmod(join(sentinel, 'keep.txt'), 0o644);
});

after(async () => {
  await rm(base, { recursive: true, force: true });
});

beforeEach(async () => {
  await rm(dest, { recursive: true, force: true });
  await mkdir(dest);
});

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------

interface MaliciousCase {
  readonly name: string;
  /** Layers unpacked before the malicious one. */
  readonly before?: () => Buffer[];
  readonly archive: () => Buffer;
  readonly gzip?: boolean;
  readonly maxBytes?: number;
  readonly maxEntries?: number;
  /** The entry path the error must name (undefined: the archive as a whole). */
  readonly path: string | undefined | (() => string);
  readonly reason: RegExp;
}

function file(name: string, data: string | Buffer = 'x', extra: Partial<Raw> = {}): Raw {
  return { name, data, ...extra };
}

const cases: MaliciousCase[] = [
  {
    name: 'a "../" path',
    archive: () => craft([file('../evil')]),
    path: '../evil',
    reason: /"\.\." path segment/,
  },
  {
    name: 'an absolute path',
    archive: () => craft([file('/etc/passwd')]),
    path: '/etc/passwd',
    reason: /absolute path/,
  },
  {
    name: 'an absolute path into the sentinel',
    archive: () => craft([file(join(sentinel, 'pwned'))]),
    path: () => join(sentinel, 'pwned'),
    reason: /absolute path/,
  },
  {
    name: 'a ".." in the middle',
    archive: () => craft([file('a/../../evil')]),
    path: 'a/../../evil',
    reason: /"\.\." path segment/,
  },
  {
    name: 'a ".." hidden in the ustar prefix',
    archive: () => craft([file('evil', 'x', { prefix: 'a/../..' })]),
    path: 'a/../../evil',
    reason: /"\.\." path segment/,
  },
  {
    name: 'a symlink escaping, then a write through it',
    archive: () => craft([{ name: 'link', type: '2', linkname: '../../outside' }, file('link/file')]),
    path: 'link',
    reason: /symlink to "\.\.\/\.\.\/outside", which points outside/,
  },
  {
    name: 'a symlink escaping from a subdirectory',
    archive: () => craft([{ name: 'a/b/link', type: '2', linkname: '../../../sentinel' }]),
    path: 'a/b/link',
    reason: /points outside/,
  },
  {
    name: 'a symlink to / and a write through it',
    archive: () => craft([{ name: 'root', type: '2', linkname: '/' }, file('root/etc/passwd')]),
    path: 'root/etc/passwd',
    reason: /goes through the symlink "root"/,
  },
  {
    name: 'a symlink to the sentinel (absolute) and a write through it',
    archive: () => craft([{ name: 's', type: '2', linkname: sentinel }, file('s/pwned')]),
    path: 's/pwned',
    reason: /goes through the symlink "s"/,
  },
  {
    name: 'a directory entry through a symlink',
    archive: () =>
      craft([
        { name: 's', type: '2', linkname: sentinel },
        { name: 's/newdir/', type: '5' },
      ]),
    path: 's/newdir/',
    reason: /goes through the symlink "s"/,
  },
  {
    name: 'a write through a symlink left by an earlier layer',
    before: () => [
      craft([
        { name: 'usr/lib/', type: '5' },
        { name: 'lib', type: '2', linkname: 'usr/lib' },
      ]),
    ],
    archive: () => craft([file('lib/x.so')]),
    path: 'lib/x.so',
    reason: /goes through the symlink "lib"/,
  },
  {
    name: 'a whiteout through a symlink',
    before: () => [craft([{ name: 's', type: '2', linkname: sentinel }])],
    archive: () => craft([file('s/.wh.keep.txt', '')]),
    path: 's/.wh.keep.txt',
    reason: /whiteout goes through the symlink "s"/,
  },
  {
    name: 'an opaque whiteout through a symlink',
    before: () => [craft([{ name: 's', type: '2', linkname: sentinel }])],
    archive: () => craft([file('s/.wh..wh..opq', '')]),
    path: 's/.wh..wh..opq',
    reason: /opaque whiteout goes through the symlink "s"/,
  },
  {
    name: 'a hard link to /etc/shadow',
    archive: () => craft([{ name: 'h', type: '1', linkname: '/etc/shadow' }]),
    path: 'h',
    reason: /hard link to the absolute path "\/etc\/shadow"/,
  },
  {
    name: 'a hard link to a path outside',
    archive: () => craft([{ name: 'h', type: '1', linkname: '../sentinel/keep.txt' }]),
    path: 'h',
    reason: /hard link to "\.\.\/sentinel\/keep\.txt", which has a "\.\." segment/,
  },
  {
    name: 'a hard link to a symlink pointing outside',
    archive: () =>
      craft([
        { name: 's', type: '2', linkname: join(sentinel, 'keep.txt') },
        { name: 'h', type: '1', linkname: 's' },
      ]),
    path: 'h',
    reason: /hard link to "s", which is not a regular file/,
  },
  {
    name: 'a hard link through a symlinked directory',
    archive: () =>
      craft([
        { name: 'd', type: '2', linkname: sentinel },
        { name: 'h', type: '1', linkname: 'd/keep.txt' },
      ]),
    path: 'h',
    reason: /hard link target "d\/keep\.txt" goes through the symlink "d"/,
  },
  {
    name: 'a hard link to a missing file',
    archive: () => craft([{ name: 'h', type: '1', linkname: 'nope' }]),
    path: 'h',
    reason: /hard link to "nope", which does not exist/,
  },
  {
    name: 'a character device',
    archive: () => craft([{ name: 'dev/null', type: '3', mode: 0o666 }]),
    path: 'dev/null',
    reason: /character device/,
  },
  {
    name: 'a block device',
    archive: () => craft([{ name: 'dev/sda', type: '4', mode: 0o660 }]),
    path: 'dev/sda',
    reason: /block device/,
  },
  { name: 'a FIFO', archive: () => craft([{ name: 'fifo', type: '6' }]), path: 'fifo', reason: /FIFO/ },
  {
    name: 'an unsupported entry type',
    archive: () => craft([{ name: 'sparse', type: 'S', data: 'x' }]),
    path: 'sparse',
    reason: /unsupported entry type SparseFile/,
  },
  {
    name: 'a setuid file',
    archive: () => craft([file('usr/bin/su', 'x', { mode: 0o4755 })]),
    path: 'usr/bin/su',
    reason: /setuid\/setgid bits \(mode 0o4755\)/,
  },
  {
    name: 'a setgid directory',
    archive: () => craft([{ name: 'var/mail/', type: '5', mode: 0o2775 }]),
    path: 'var/mail/',
    reason: /setuid\/setgid bits \(mode 0o2775\)/,
  },
  {
    name: 'a file bigger than maxBytes',
    maxBytes: 1000,
    archive: () => craft([file('big', 'x'.repeat(2000))]),
    path: 'big',
    reason: /is 2000 bytes, over the limit: maxBytes is 1000/,
  },
  {
    name: 'files adding up to more than maxBytes',
    maxBytes: 1000,
    archive: () => craft([file('one', 'x'.repeat(600)), file('two', 'x'.repeat(600))]),
    path: 'two',
    reason: /is 600 bytes, over the limit: maxBytes is 1000 and 600 are already unpacked/,
  },
  {
    name: 'a size header claiming more than maxBytes',
    maxBytes: 1 << 20,
    archive: () => craft([file('liar', 'x', { size: 0o77777777777 })], { end: false }),
    path: 'liar',
    reason: /is 8589934591 bytes, over the limit/,
  },
  {
    name: 'a size header claiming more than the archive holds',
    archive: () => craft([file('liar', 'x'.repeat(10), { size: 100_000 })], { end: false }),
    path: 'liar',
    reason: /truncated/i,
  },
  {
    name: 'a size header claiming less than the data',
    archive: () => craft([file('small', 'y'.repeat(1500), { size: 10 })]),
    path: undefined,
    reason: /corrupt after entry "small": (checksum failure|.*invalid)/i,
  },
  {
    name: 'an archive cut in the middle of a file',
    archive: () =>
      craft([file('ok', 'fine'), file('cut', 'z'.repeat(5000))], { end: false }).subarray(0, 512 * 5),
    path: 'cut',
    reason: /truncated/i,
  },
  {
    name: 'a header with a bad checksum',
    archive: () => craft([file('ok', 'fine'), file('bad', 'x', { badChecksum: true })]),
    path: undefined,
    reason: /corrupt after entry "ok": checksum failure/,
  },
  {
    name: 'too many entries',
    maxEntries: 3,
    archive: () => craft([file('f0'), file('f1'), file('f2'), file('f3'), file('f4')]),
    path: 'f3',
    reason: /past the limit of 3 entries/,
  },
  {
    name: 'a gzip bomb (64 MiB of zeros in a small gzip)',
    maxBytes: 1 << 20,
    archive: () => gzipSync(craft([file('zeros', Buffer.alloc(64 << 20))])),
    path: 'zeros',
    reason: /is 67108864 bytes, over the limit: maxBytes is 1048576/,
  },
  {
    name: 'a flood of extended headers',
    archive: () => {
      const record = paxRecord('comment', 'c'.repeat(1_000_000 - 20));
      return gzipSync(
        craft([...Array.from({ length: 20 }, () => ({ name: 'pax', type: 'x', data: record })), file('f')]),
      );
    },
    path: undefined,
    reason: /bytes of tar headers, padding and extended headers for 0 entries, over the \d+ allowed/,
  },
  {
    name: 'a tar gzipped twice',
    archive: () => gzipSync(gzipSync(craft([file('f')]))),
    path: undefined,
    reason: /gzip-compressed twice/,
  },
  {
    name: 'a gzip stream with gzip: false',
    gzip: false,
    archive: () => gzipSync(craft([file('f')])),
    path: undefined,
    reason: /gzip-compressed, but gzip: false/,
  },
  {
    name: 'a broken gzip stream',
    archive: () => gzipSync(craft([file('f', randomBytes(10_000))])).subarray(0, 6000),
    path: undefined,
    reason: /not valid gzip/,
  },
  {
    name: 'zstd data',
    archive: () => Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(2048)]),
    path: undefined,
    reason: /zstd/,
  },
  {
    name: 'something that is not a tar archive',
    archive: () => Buffer.from('hello, this is not a tar archive at all'),
    path: undefined,
    reason: /not a tar archive/,
  },
];

describe('unpackLayer refuses malicious archives', () => {
  for (const c of cases) {
    test(c.name, async () => {
      for (const layer of c.before?.() ?? []) await unpackLayer(chunked(layer), dest, { maxBytes: 1 << 20 });
      const was = await snapshot();
      const archive = c.archive();
      let caught: unknown;
      try {
        await unpackLayer(chunked(archive), dest, {
          maxBytes: c.maxBytes ?? 1 << 20,
          ...(c.maxEntries === undefined ? {} : { maxEntries: c.maxEntries }),
          ...(c.gzip === undefined ? {} : { gzip: c.gzip }),
        });
      } catch (error) {
        caught = error;
      }
      assert.ok(caught instanceof UnsafeArchiveError, `expected UnsafeArchiveError, got ${String(caught)}`);
      assert.ok(caught instanceof InputError);
      const path = typeof c.path === 'function' ? c.path() : c.path;
      assert.equal(caught.entryPath, path);
      if (path !== undefined) assert.ok(caught.message.includes(JSON.stringify(path)), caught.message);
      assert.match(caught.message, c.reason);
      assert.deepEqual(await snapshot(), was, 'nothing outside dest changed');
      assert.equal(await exists(join(base, 'outside')), false);
      assert.equal(await exists(join(work, 'evil')), false);
      assert.equal(await exists(join(base, 'evil')), false);
    });
  }
});

describe('unpackLayer never writes through symlinks it replaces', () => {
  test('a file replacing a symlink that points outside replaces the link itself', async () => {
    const was = await snapshot();
    await unpackLayer(
      chunked(craft([{ name: 'f', type: '2', linkname: join(sentinel, 'keep.txt') }])),
      dest,
      {
        maxBytes: 1000,
      },
    );
    await unpackLayer(chunked(craft([file('f', 'new')])), dest, { maxBytes: 1000 });
    assert.equal(await readFile(join(dest, 'f'), 'utf8'), 'new');
    assert.ok((await lstat(join(dest, 'f'))).isFile());
    assert.deepEqual(await snapshot(), was);
  });

  test('a directory mode is not applied through a symlink that replaced the directory', async () => {
    const was = await snapshot();
    await unpackLayer(
      chunked(
        craft([
          { name: 'd/', type: '5', mode: 0o700 },
          { name: 'd', type: '2', linkname: sentinel },
        ]),
      ),
      dest,
      { maxBytes: 1000 },
    );
    assert.equal(await readlink(join(dest, 'd')), sentinel);
    assert.deepEqual(await snapshot(), was);
  });
});

describe('unpackLayer', () => {
  test('applies whiteouts and opaque whiteouts across layers', async () => {
    const lower = craft([
      { name: 'etc/', type: '5' },
      file('etc/a', 'a'),
      file('etc/b', 'b'),
      file('etc/sub/c', 'c'),
      file('var/x/y', 'y'),
      file('var/x/deep/z', 'z'),
      file('var/other', 'o'),
      file('a/b/old', 'old'),
      file('a/keep', 'keep'),
      file('same', 'same'),
    ]);
    const upper = craft([
      file('etc/.wh.a', ''),
      file('etc/.wh.missing', ''),
      file('nowhere/.wh.thing', ''),
      { name: 'var/x/', type: '5' },
      file('var/x/before', 'written before the marker'),
      file('var/x/.wh..wh..opq', ''),
      file('var/x/new', 'new'),
      file('a/b/c/new', 'implicit parents'),
      file('a/.wh..wh..opq', ''),
      file('same', 'written in this layer'),
      file('.wh.same', ''),
      file('.wh..wh.plnk', ''),
    ]);
    await unpackLayer(chunked(lower), dest, { maxBytes: 1000 });
    const result = await unpackLayer(chunked(upper), dest, { maxBytes: 1000 });
    assert.deepEqual(result, { files: 4, bytes: 25 + 3 + 16 + 21 });
    const list = async (d: string): Promise<string[]> => (await readdir(join(dest, d))).sort();
    assert.deepEqual(await list('etc'), ['b', 'sub']);
    assert.deepEqual(await list('var/x'), ['before', 'new']);
    assert.deepEqual(await list('var'), ['other', 'x']);
    assert.deepEqual(await list('a'), ['b']);
    assert.deepEqual(await list('a/b'), ['c']);
    assert.equal(await readFile(join(dest, 'a/b/c/new'), 'utf8'), 'implicit parents');
    assert.equal(await readFile(join(dest, 'same'), 'utf8'), 'written in this layer');
    assert.deepEqual(await list(''), ['a', 'etc', 'same', 'var']);
  });

  test('an opaque whiteout at the root keeps only the new layer', async () => {
    await unpackLayer(chunked(craft([file('old', '1'), file('dir/old', '2')])), dest, { maxBytes: 1000 });
    await unpackLayer(chunked(craft([file('.wh..wh..opq', ''), file('dir/new', '3')])), dest, {
      maxBytes: 1000,
    });
    assert.deepEqual((await readdir(dest)).sort(), ['dir']);
    assert.deepEqual(await readdir(join(dest, 'dir')), ['new']);
  });

  test('creates safe symlinks, relative and absolute inside the root', async () => {
    const result = await unpackLayer(
      chunked(
        craft([
          file('usr/bin/python3.12', '#!'),
          { name: 'usr/bin/python3', type: '2', linkname: 'python3.12' },
          { name: 'usr/lib/', type: '5' },
          { name: 'lib', type: '2', linkname: 'usr/lib' },
          { name: 'etc/alternatives/python', type: '2', linkname: '/usr/bin/python3' },
          { name: 'etc/up', type: '2', linkname: '../usr/./bin' },
          { name: 'etc/rootish', type: '2', linkname: '/../../usr' },
          { name: 'usr/bin/py', type: '1', linkname: 'usr/bin/python3.12' },
        ]),
      ),
      dest,
      { maxBytes: 1000 },
    );
    assert.deepEqual(result, { files: 7, bytes: 2 });
    assert.equal(await readlink(join(dest, 'usr/bin/python3')), 'python3.12');
    assert.equal(await readlink(join(dest, 'lib')), 'usr/lib');
    assert.equal(await readlink(join(dest, 'etc/alternatives/python')), '/usr/bin/python3');
    assert.equal(await readlink(join(dest, 'etc/up')), '../usr/./bin');
    assert.equal(await readlink(join(dest, 'etc/rootish')), '/../../usr');
    assert.equal(await readFile(join(dest, 'usr/bin/python3'), 'utf8'), '#!');
    const [a, b] = await Promise.all([
      stat(join(dest, 'usr/bin/py')),
      stat(join(dest, 'usr/bin/python3.12')),
    ]);
    assert.equal(a.ino, b.ino, 'hard link shares the inode');
  });

  test('applies file and directory modes (masked to 0o777), even for read-only directories', async () => {
    await unpackLayer(
      chunked(
        craft([
          { name: './', type: '5', mode: 0o755 },
          { name: './ro/', type: '5', mode: 0o555 },
          file('./ro/inside', 'x', { mode: 0o640 }),
          { name: 'tmp/', type: '5', mode: 0o1777 },
          file('bin/tool', 'y', { mode: 0o755 }),
        ]),
      ),
      dest,
      { maxBytes: 1000 },
    );
    const mode = async (p: string): Promise<string> =>
      ((await stat(join(dest, p))).mode & 0o7777).toString(8);
    assert.equal(await mode('ro'), '555');
    assert.equal(await mode('ro/inside'), '640');
    assert.equal(await mode('tmp'), '777');
    assert.equal(await mode('bin'), '755');
    assert.equal(await mode('bin/tool'), '755');
    await chmod(join(dest, 'ro'), 0o755); // so cleanup can remove it
  });

  test('replaces files with directories and directories with files across layers', async () => {
    await unpackLayer(chunked(craft([file('x', 'file'), file('y/inner', 'in')])), dest, { maxBytes: 1000 });
    await unpackLayer(
      chunked(craft([{ name: 'x/', type: '5' }, file('x/z', 'z'), file('y', 'now a file')])),
      dest,
      {
        maxBytes: 1000,
      },
    );
    assert.ok((await lstat(join(dest, 'x'))).isDirectory());
    assert.equal(await readFile(join(dest, 'x/z'), 'utf8'), 'z');
    assert.equal(await readFile(join(dest, 'y'), 'utf8'), 'now a file');
  });

  test('accepts an empty layer', async () => {
    assert.deepEqual(await unpackLayer(chunked(Buffer.alloc(1024)), dest, { maxBytes: 0 }), {
      files: 0,
      bytes: 0,
    });
    assert.deepEqual(await unpackLayer(chunked(gzipSync(Buffer.alloc(1024))), dest, { maxBytes: 0 }), {
      files: 0,
      bytes: 0,
    });
  });

  test('unpacks a layer written by writeLayer, read from the store as a stream', async () => {
    const store = await ContentStore.open(join(base, 'store'));
    const entries: TarEntry[] = [
      { path: 'app', type: 'dir', mode: 0o755 },
      { path: 'app/héllo-日本.txt', type: 'file', mode: 0o644, content: Buffer.from('hi') },
      { path: `app/${'n'.repeat(150)}`, type: 'file', mode: 0o600, content: Buffer.alloc(200_000, 7) },
      { path: 'app/link', type: 'symlink', mode: 0o777, linkname: `${'n'.repeat(150)}` },
    ];
    const layer = await writeLayer(store, entries);
    const result = await unpackLayer(await store.read(layer.descriptor.digest), dest, { maxBytes: 1 << 20 });
    assert.deepEqual(result, { files: 3, bytes: 200_002 });
    assert.equal(await readFile(join(dest, 'app/héllo-日本.txt'), 'utf8'), 'hi');
    assert.ok((await readFile(join(dest, 'app/link'))).equals(Buffer.alloc(200_000, 7)));
    // The same layer uncompressed, from a file stream, with gzip: false.
    await rm(dest, { recursive: true });
    const tarFile = join(base, 'layer.tar');
    await writeFile(tarFile, await tarOf(entries));
    assert.deepEqual(
      await unpackLayer(createReadStream(tarFile), dest, { gzip: false, maxBytes: 1 << 20 }),
      result,
    );
  });

  test('refuses bad options', async () => {
    await assert.rejects(unpackLayer(chunked(Buffer.alloc(1024)), dest, { maxBytes: -1 }), /maxBytes is -1/);
    await assert.rejects(
      unpackLayer(chunked(Buffer.alloc(1024)), dest, { maxBytes: 1, maxEntries: 0 }),
      /maxEntries is 0/,
    );
    await assert.rejects(
      unpackLayer(chunked(Buffer.alloc(1024)), dest, { maxBytes: 1, strip: 1 } as never),
      /option "strip" is unknown/,
    );
  });
});
