import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '@aiedge/protocol';
import { Parser, type ReadEntry } from 'tar';
import { sortEntries, tarStream, withParents, type TarEntry } from './tar.js';

interface Parsed {
  path: string;
  type: string;
  mode: number | undefined;
  size: number;
  linkpath: string | undefined;
  content: Buffer;
  mtime: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  uname: string | undefined;
  gname: string | undefined;
}

/** Parses a whole archive with node-tar's Parser (strict: any warning fails). */
async function parseTar(bytes: Uint8Array): Promise<Parsed[]> {
  const out: Parsed[] = [];
  const parser = new Parser({ strict: true });
  const done = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', reject);
  });
  parser.on('entry', (entry: ReadEntry) => {
    const chunks: Buffer[] = [];
    entry.on('data', (chunk: Buffer) => chunks.push(chunk));
    entry.on('end', () =>
      out.push({
        path: entry.path,
        type: entry.type,
        mode: entry.mode,
        size: entry.size,
        linkpath: entry.linkpath,
        content: Buffer.concat(chunks),
        mtime: entry.mtime === undefined ? undefined : entry.mtime.getTime() / 1000,
        uid: entry.uid,
        gid: entry.gid,
        uname: entry.uname,
        gname: entry.gname,
      }),
    );
  });
  parser.end(Buffer.from(bytes));
  await done;
  return out;
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<{ bytes: Buffer; chunks: number[] }> {
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return { bytes: Buffer.concat(parts), chunks: parts.map((p) => p.length) };
}

/** Typeflags of every header block in an archive (walks headers by their size fields). */
function typeflags(bytes: Buffer): string[] {
  const flags: string[] = [];
  let at = 0;
  while (at + 512 <= bytes.length && bytes[at] !== 0) {
    flags.push(String.fromCharCode(bytes[at + 156]!));
    const size = parseInt(bytes.toString('ascii', at + 124, at + 135), 8);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return flags;
}

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aiedge-tar-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const longDirPath = `deep/${'d'.repeat(60)}/${'f'.repeat(84)}`; // 150 chars, fits ustar prefix + name
const longNamePath = `deep/${'n'.repeat(145)}`; // 150 chars, last segment too long for ustar
const unicodePath = 'deep/héllo-日本語.txt';
const longTarget = `../${'t'.repeat(120)}`;

async function sampleEntries(): Promise<TarEntry[]> {
  const onDisk = join(dir, 'script.sh');
  await writeFile(onDisk, '#!/bin/sh\necho hi\n');
  return [
    { path: 'deep', type: 'dir', mode: 0o755 },
    { path: 'deep/hello.txt', type: 'file', mode: 0o644, content: Buffer.from('hello\n') },
    { path: 'deep/run.sh', type: 'file', mode: 0o755, content: { file: onDisk, size: 18 } },
    { path: 'deep/empty', type: 'file', mode: 0o600 },
    { path: 'deep/link', type: 'symlink', mode: 0o777, linkname: 'hello.txt' },
    { path: 'deep/longlink', type: 'symlink', mode: 0o777, linkname: longTarget },
    { path: longDirPath, type: 'file', mode: 0o640, content: Buffer.from('long dir') },
    { path: longNamePath, type: 'file', mode: 0o644, content: Buffer.from('long name') },
    { path: unicodePath, type: 'file', mode: 0o644, content: Buffer.from('unicode') },
    { path: 'deep/sticky', type: 'dir', mode: 0o1777 },
  ];
}

describe('tarStream', () => {
  test('round-trips paths, types, modes, link targets and content through node-tar', async () => {
    const { bytes } = await collect(tarStream(await sampleEntries(), { mtime: 1_700_000_000 }));
    const parsed = await parseTar(bytes);
    const byPath = new Map(parsed.map((p) => [p.path, p]));
    assert.deepEqual(
      parsed.map((p) => p.path),
      [
        'deep/',
        'deep/hello.txt',
        'deep/run.sh',
        'deep/empty',
        'deep/link',
        'deep/longlink',
        longDirPath,
        longNamePath,
        unicodePath,
        'deep/sticky/',
      ],
    );
    assert.equal(byPath.get('deep/')?.type, 'Directory');
    assert.equal(byPath.get('deep/')?.mode, 0o755);
    assert.equal(byPath.get('deep/hello.txt')?.content.toString(), 'hello\n');
    assert.equal(byPath.get('deep/run.sh')?.content.toString(), '#!/bin/sh\necho hi\n');
    assert.equal(byPath.get('deep/run.sh')?.mode, 0o755);
    assert.equal(byPath.get('deep/empty')?.size, 0);
    assert.equal(byPath.get('deep/empty')?.mode, 0o600);
    assert.equal(byPath.get('deep/link')?.type, 'SymbolicLink');
    assert.equal(byPath.get('deep/link')?.linkpath, 'hello.txt');
    assert.equal(byPath.get('deep/longlink')?.linkpath, longTarget);
    assert.equal(byPath.get(longDirPath)?.content.toString(), 'long dir');
    assert.equal(byPath.get(longDirPath)?.mode, 0o640);
    assert.equal(byPath.get(longNamePath)?.content.toString(), 'long name');
    assert.equal(byPath.get(unicodePath)?.content.toString(), 'unicode');
    assert.equal(byPath.get('deep/sticky/')?.mode, 0o1777);
    for (const p of parsed) {
      assert.equal(p.mtime, 1_700_000_000, p.path);
      assert.equal(p.uid, 0, p.path);
      assert.equal(p.gid, 0, p.path);
      assert.ok(!p.uname, p.path);
      assert.ok(!p.gname, p.path);
    }
  });

  test('uses PAX headers only for what ustar cannot hold', async () => {
    const ustarOnly = await collect(
      tarStream([
        { path: 'a'.repeat(100), type: 'file', mode: 0o644 },
        { path: longDirPath, type: 'file', mode: 0o644 },
        { path: 'l', type: 'symlink', mode: 0o777, linkname: 'x'.repeat(100) },
      ]),
    );
    assert.deepEqual(typeflags(ustarOnly.bytes), ['0', '0', '2']);
    const pax = await collect(
      tarStream([
        { path: longNamePath, type: 'file', mode: 0o644 },
        { path: unicodePath, type: 'file', mode: 0o644 },
        { path: 'l', type: 'symlink', mode: 0o777, linkname: longTarget },
      ]),
    );
    assert.deepEqual(typeflags(pax.bytes), ['x', '0', 'x', '0', 'x', '2']);
    // The PAX records carry no times.
    assert.doesNotMatch(pax.bytes.toString('latin1'), /[0-9]+ (mtime|atime|ctime)=/);
  });

  test('is deterministic and ends with two zero blocks', async () => {
    const first = await collect(tarStream(await sampleEntries()));
    const second = await collect(tarStream(await sampleEntries()));
    assert.ok(first.bytes.equals(second.bytes));
    assert.equal(first.bytes.length % 512, 0);
    assert.ok(first.bytes.subarray(-1024).equals(Buffer.alloc(1024)));
    const parsed = await parseTar(first.bytes);
    assert.ok(parsed.every((p) => p.mtime === 0));
  });

  test('accepts async iterables of entries', async () => {
    async function* entries(): AsyncGenerator<TarEntry> {
      yield { path: 'x', type: 'file', mode: 0o644, content: Buffer.from('1') };
      yield { path: 'y', type: 'file', mode: 0o644, content: Buffer.from('2') };
    }
    const parsed = await parseTar((await collect(tarStream(entries()))).bytes);
    assert.deepEqual(
      parsed.map((p) => [p.path, p.content.toString()]),
      [
        ['x', '1'],
        ['y', '2'],
      ],
    );
  });

  test('streams files from disk in chunks', async () => {
    const big = join(dir, 'big.bin');
    const size = 3 * 1024 * 1024 + 123;
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 7) & 0xff;
    await writeFile(big, data);
    const { bytes, chunks } = await collect(
      tarStream([{ path: 'big.bin', type: 'file', mode: 0o644, content: { file: big, size } }]),
    );
    assert.ok(Math.max(...chunks) <= 1024 * 1024, `largest chunk ${Math.max(...chunks)}`);
    const [entry] = await parseTar(bytes);
    assert.ok(entry?.content.equals(data));
  });

  test('refuses a file whose size on disk differs from the announced size', async () => {
    const file = join(dir, 'ten.bin');
    await writeFile(file, Buffer.alloc(10));
    for (const size of [11, 9]) {
      await assert.rejects(
        collect(tarStream([{ path: 'ten', type: 'file', mode: 0o644, content: { file, size } }])),
        (error: Error) =>
          error instanceof InputError && /"ten"/.test(error.message) && /10|longer/.test(error.message),
      );
    }
  });

  const invalid: Array<[string, TarEntry[], RegExp]> = [
    [
      'absolute path',
      [{ path: '/etc/passwd', type: 'file', mode: 0o644 }],
      /"\/etc\/passwd" has an absolute path/,
    ],
    ['.. segment', [{ path: 'a/../b', type: 'file', mode: 0o644 }], /"a\/..\/b" has a "\.\." path segment/],
    ['. segment', [{ path: './b', type: 'file', mode: 0o644 }], /"\.\/b" has a "\." path segment/],
    ['empty segment', [{ path: 'a//b', type: 'file', mode: 0o644 }], /"a\/\/b" has an empty path segment/],
    ['trailing slash', [{ path: 'a/', type: 'dir', mode: 0o755 }], /"a\/" has an empty path segment/],
    ['empty path', [{ path: '', type: 'file', mode: 0o644 }], /has no path/],
    [
      'duplicate path',
      [
        { path: 'a', type: 'dir', mode: 0o755 },
        { path: 'a', type: 'file', mode: 0o644 },
      ],
      /"a" appears twice/,
    ],
    [
      'symlink without target',
      [{ path: 's', type: 'symlink', mode: 0o777 }],
      /"s" is a symlink without a linkname/,
    ],
    [
      'dir with content',
      [{ path: 'd', type: 'dir', mode: 0o755, content: Buffer.from('x') }],
      /"d" is a dir with content/,
    ],
    ['bad mode', [{ path: 'f', type: 'file', mode: 0o10000 }], /"f" mode is 4096/],
    [
      'bad type',
      [{ path: 'f', type: 'fifo' as 'file', mode: 0o644 }],
      /"f" has type "fifo", expected file, dir or symlink/,
    ],
  ];
  for (const [name, entries, message] of invalid) {
    test(`refuses an entry with ${name}`, async () => {
      await assert.rejects(
        collect(tarStream(entries)),
        (error: Error) => error instanceof InputError && message.test(error.message),
      );
    });
  }

  test('refuses a bad mtime', async () => {
    await assert.rejects(collect(tarStream([], { mtime: -1 })), InputError);
    await assert.rejects(collect(tarStream([], { mtime: 1.5 })), InputError);
  });
});

describe('sortEntries', () => {
  test('puts parents first and siblings in byte order, keeping subtrees together', () => {
    const paths = ['b', 'a/b', 'a-b', 'a', 'Z', 'a/é', 'a/z', 'a/b/c', 'a.txt'];
    const sorted = sortEntries(paths.map((path) => ({ path, type: 'file', mode: 0o644 })));
    assert.deepEqual(
      sorted.map((e) => e.path),
      ['Z', 'a', 'a/b', 'a/b/c', 'a/z', 'a/é', 'a-b', 'a.txt', 'b'],
    );
    assert.deepEqual(paths[0], 'b', 'the input is not changed');
  });
});

describe('withParents', () => {
  test('adds missing parent directories once, before their first child', () => {
    const out = withParents(
      [
        { path: 'a/b/c', type: 'file', mode: 0o644 },
        { path: 'a/b/d', type: 'file', mode: 0o644 },
        { path: 'x', type: 'dir', mode: 0o700 },
        { path: 'x/y', type: 'file', mode: 0o644 },
      ],
      0o750,
    );
    assert.deepEqual(
      out.map((e) => [e.path, e.type, e.mode.toString(8)]),
      [
        ['a', 'dir', '750'],
        ['a/b', 'dir', '750'],
        ['a/b/c', 'file', '644'],
        ['a/b/d', 'file', '644'],
        ['x', 'dir', '700'],
        ['x/y', 'file', '644'],
      ],
    );
  });

  test('refuses a parent that is not a directory', () => {
    assert.throws(
      () =>
        withParents([
          { path: 'a', type: 'file', mode: 0o644 },
          { path: 'a/b', type: 'file', mode: 0o644 },
        ]),
      (error: Error) =>
        error instanceof InputError && /"a\/b" has parent "a", which is a file/.test(error.message),
    );
  });
});
