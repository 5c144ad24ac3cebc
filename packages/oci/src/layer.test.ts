import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { InputError } from '@aiedge/protocol';
import { Parser, type ReadEntry } from 'tar';
import { digestOf } from './digest.js';
import { writeLayer } from './layer.js';
import { MediaTypes } from './media-types.js';
import { ContentStore } from './store.js';
import { sortEntries, withParents, type TarEntry } from './tar.js';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aiedge-layer-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function entries(): Promise<TarEntry[]> {
  const weights = join(dir, 'weights.bin');
  const data = Buffer.alloc(300_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 251;
  await writeFile(weights, data);
  return sortEntries(
    withParents([
      {
        path: 'models/m/1/model.onnx',
        type: 'file',
        mode: 0o644,
        content: { file: weights, size: data.length },
      },
      { path: 'models/m/config.pbtxt', type: 'file', mode: 0o644, content: Buffer.from('name: "m"\n') },
      { path: 'usr/bin/serve', type: 'file', mode: 0o755, content: Buffer.from('#!/bin/sh\n') },
      { path: 'usr/bin/srv', type: 'symlink', mode: 0o777, linkname: 'serve' },
      { path: 'models/m/1/README-ü.txt', type: 'file', mode: 0o644, content: Buffer.from('ü') },
    ]),
  );
}

async function parse(
  tar: Buffer,
): Promise<Array<{ path: string; type: string; mode?: number; content: string }>> {
  const out: Array<{ path: string; type: string; mode?: number; content: string }> = [];
  const parser = new Parser({ strict: true });
  const done = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', reject);
  });
  parser.on('entry', (entry: ReadEntry) => {
    const chunks: Buffer[] = [];
    entry.on('data', (c: Buffer) => chunks.push(c));
    entry.on('end', () => {
      const content = Buffer.concat(chunks);
      out.push({
        path: entry.path,
        type: entry.type,
        ...(entry.mode === undefined ? {} : { mode: entry.mode }),
        content: content.length > 100 ? digestOf(content) : content.toString('utf8'),
      });
    });
  });
  parser.end(tar);
  await done;
  return out;
}

describe('writeLayer', () => {
  test('gives the same digest for the same entries, across runs and stores', async () => {
    const storeA = await ContentStore.open(join(dir, 'store-a'));
    const storeB = await ContentStore.open(join(dir, 'store-b'));
    const first = await writeLayer(storeA, await entries());
    const second = await writeLayer(storeA, await entries());
    const third = await writeLayer(storeB, await entries());
    assert.deepEqual(second, first);
    assert.deepEqual(third, first);
    assert.equal(first.descriptor.mediaType, MediaTypes.ociLayerGzip);
    const blob = await storeA.readBytes(first.descriptor.digest);
    assert.equal(blob.length, first.descriptor.size);
    assert.equal(digestOf(blob), first.descriptor.digest);
    assert.ok(blob.equals(await storeB.readBytes(third.descriptor.digest)));
  });

  test('diffId is the sha256 of the decompressed blob; the tar holds the entries', async () => {
    const store = await ContentStore.open(join(dir, 'store-c'));
    const layer = await writeLayer(store, await entries(), { mtime: 1_000 });
    const tar = gunzipSync(await store.readBytes(layer.descriptor.digest));
    assert.equal(layer.diffId, digestOf(tar));
    assert.equal(layer.uncompressedSize, tar.length);
    const parsed = await parse(tar);
    const weights = Buffer.alloc(300_000);
    for (let i = 0; i < weights.length; i++) weights[i] = (i * 31) % 251;
    assert.deepEqual(parsed, [
      { path: 'models/', type: 'Directory', mode: 0o755, content: '' },
      { path: 'models/m/', type: 'Directory', mode: 0o755, content: '' },
      { path: 'models/m/1/', type: 'Directory', mode: 0o755, content: '' },
      { path: 'models/m/1/README-ü.txt', type: 'File', mode: 0o644, content: 'ü' },
      { path: 'models/m/1/model.onnx', type: 'File', mode: 0o644, content: digestOf(weights) },
      { path: 'models/m/config.pbtxt', type: 'File', mode: 0o644, content: 'name: "m"\n' },
      { path: 'usr/', type: 'Directory', mode: 0o755, content: '' },
      { path: 'usr/bin/', type: 'Directory', mode: 0o755, content: '' },
      { path: 'usr/bin/serve', type: 'File', mode: 0o755, content: '#!/bin/sh\n' },
      { path: 'usr/bin/srv', type: 'SymbolicLink', mode: 0o777, content: '' },
    ]);
  });

  test('writes a fixed gzip header: no mtime, no name, OS byte 255', async () => {
    const store = await ContentStore.open(join(dir, 'store-d'));
    for (const gzipLevel of [1, 6, 9]) {
      const layer = await writeLayer(store, await entries(), { gzipLevel });
      const blob = await store.readBytes(layer.descriptor.digest);
      assert.deepEqual([...blob.subarray(0, 4)], [0x1f, 0x8b, 8, 0], 'magic, deflate, no flags');
      assert.deepEqual([...blob.subarray(4, 8)], [0, 0, 0, 0], 'mtime 0');
      assert.equal(blob[9], 0xff, 'OS unknown');
    }
  });

  test('changes digest when content or mtime changes', async () => {
    const store = await ContentStore.open(join(dir, 'store-e'));
    const base = await writeLayer(store, [
      { path: 'a', type: 'file', mode: 0o644, content: Buffer.from('1') },
    ]);
    const content = await writeLayer(store, [
      { path: 'a', type: 'file', mode: 0o644, content: Buffer.from('2') },
    ]);
    const mode = await writeLayer(store, [
      { path: 'a', type: 'file', mode: 0o600, content: Buffer.from('1') },
    ]);
    const mtime = await writeLayer(
      store,
      [{ path: 'a', type: 'file', mode: 0o644, content: Buffer.from('1') }],
      {
        mtime: 1,
      },
    );
    const digests = new Set([base, content, mode, mtime].map((l) => l.descriptor.digest));
    assert.equal(digests.size, 4);
  });

  test('keeps nothing when an entry is invalid', async () => {
    const store = await ContentStore.open(join(dir, 'store-f'));
    await assert.rejects(
      writeLayer(store, [
        { path: 'ok', type: 'file', mode: 0o644, content: Buffer.from('x') },
        { path: '../evil', type: 'file', mode: 0o644 },
      ]),
      (error: Error) => error instanceof InputError && /"\.\.\/evil"/.test(error.message),
    );
    assert.deepEqual(await store.usage(), { blobs: 0, bytes: 0 });
    assert.deepEqual(await readdir(store.ingestDir), []);
    await assert.rejects(writeLayer(store, [], { gzipLevel: 10 }), /gzipLevel is 10/);
  });
});
